package main_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// updateAPIDoc makes TestAPIDocExamples write each example's real output
// into docs/API.md, as the answer shown after it:
//
//	go test ./cmd/apiwallet -run TestAPIDocExamples/sqlite -update-apidoc
var updateAPIDoc = flag.Bool("update-apidoc", false, "rewrite the answers docs/API.md shows from a real run")

// updateAnswers replaces the answer after each block with what it printed:
// a json block for one JSON value, a text block for anything else, none
// for nothing. replace maps the run's own addresses to the document's.
func updateAnswers(t *testing.T, blocks []docBlock, outs []string, replace map[string]string) {
	t.Helper()
	// Longer addresses first, so that one that begins another cannot cut it.
	var pairs []string
	for _, from := range slices.SortedFunc(maps.Keys(replace), func(a, b string) int { return len(b) - len(a) }) {
		pairs = append(pairs, from, replace[from])
	}
	r := strings.NewReplacer(pairs...)
	doc := apiDoc(t)
	var b strings.Builder
	pos := 0
	for i, blk := range blocks {
		out := r.Replace(outs[i])
		b.WriteString(doc[pos:blk.end])
		pos = blk.end
		if blk.shown != [2]int{} {
			pos = blk.shown[1]
		}
		if a := answerBlock(out); a != "" {
			b.WriteString("\n\n" + a)
		}
	}
	b.WriteString(doc[pos:])
	if err := os.WriteFile("../../docs/API.md", []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

var blankLines = regexp.MustCompile(`\n{3,}`)

// answerBlock is the fenced block that shows out.
func answerBlock(out string) string {
	// curl -i prints the headers with CRLF.
	out = strings.Trim(strings.ReplaceAll(out, "\r\n", "\n"), "\n")
	if strings.TrimSpace(out) == "" {
		return ""
	}
	if v, err := decodeOrdered(out); err == nil {
		return "```json\n" + formatJSON(shorten(v), 0, 0) + "\n```"
	}
	return "```text\n" + blankLines.ReplaceAllString(out, "\n\n") + "\n```"
}

// ordered is a JSON object with its members in the order they came.
type ordered struct {
	keys []string
	vals []any
}

// decodeOrdered decodes exactly one JSON value, keeping member order.
func decodeOrdered(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errTrailing
	}
	if _, err := dec.Token(); err == nil {
		return nil, errTrailing
	}
	return v, nil
}

var errTrailing = errors.New("more than one JSON value")

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch d := tok.(type) {
	case json.Delim:
		if d == '{' {
			o := &ordered{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				o.keys, o.vals = append(o.keys, k.(string)), append(o.vals, v)
			}
			_, err := dec.Token()
			return o, err
		}
		arr := []any{}
		for dec.More() {
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err := dec.Token()
		return arr, err
	default:
		return tok, nil
	}
}

// shorten keeps the shown answers readable: a login JWT is cut after its
// header, a CSRF token after 8 characters.
func shorten(v any) any {
	switch x := v.(type) {
	case *ordered:
		for i, k := range x.keys {
			if s, ok := x.vals[i].(string); ok && k == "csrfToken" && len(s) > 8 {
				x.vals[i] = s[:8] + "…"
				continue
			}
			x.vals[i] = shorten(x.vals[i])
		}
	case []any:
		for i := range x {
			x[i] = shorten(x[i])
		}
	case string:
		if strings.HasPrefix(x, "eyJ") && strings.Count(x, ".") == 2 && len(x) > 36 {
			return x[:36] + "…"
		}
	}
	return v
}

// formatJSON writes v indented by two spaces per level, keeping an object
// or array on one line when it fits in 88 columns after lead.
func formatJSON(v any, depth, lead int) string {
	one := compactJSON(v)
	switch x := v.(type) {
	case *ordered:
		if lead+len([]rune(one)) <= 88 || len(x.keys) == 0 {
			return one
		}
		pad := strings.Repeat("  ", depth+1)
		var items []string
		for i, k := range x.keys {
			key := pad + quote(k) + ": "
			items = append(items, key+formatJSON(x.vals[i], depth+1, len([]rune(key))))
		}
		return "{\n" + strings.Join(items, ",\n") + "\n" + strings.Repeat("  ", depth) + "}"
	case []any:
		if lead+len([]rune(one)) <= 88 || len(x) == 0 {
			return one
		}
		pad := strings.Repeat("  ", depth+1)
		var items []string
		for _, e := range x {
			items = append(items, pad+formatJSON(e, depth+1, len(pad)))
		}
		return "[\n" + strings.Join(items, ",\n") + "\n" + strings.Repeat("  ", depth) + "]"
	}
	return one
}

// compactJSON is v on one line, with a space after each comma and colon.
func compactJSON(v any) string {
	switch x := v.(type) {
	case *ordered:
		var parts []string
		for i, k := range x.keys {
			parts = append(parts, quote(k)+": "+compactJSON(x.vals[i]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case []any:
		var parts []string
		for _, e := range x {
			parts = append(parts, compactJSON(e))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case json.Number:
		return x.String()
	case nil:
		return "null"
	case string:
		return quote(x)
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// quote writes s as a JSON string without escaping <, > and &, as
// Python's json.dumps and jq do.
func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}
