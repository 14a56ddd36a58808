package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/apikeywallet/apiwallet"
)

// decode reads one JSON object from r's body into dst, bounded by limit
// bytes. Unknown fields, fields of the wrong type, trailing data and bodies
// over the limit are EINVALID/ETOOLARGE with the offending field named.
func decode(w http.ResponseWriter, r *http.Request, limit int64, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return apiwallet.Errorf(apiwallet.EINVALID, "Content-Type must be application/json")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return bodyTooLarge(limit)
	} else if err != nil {
		return apiwallet.Errorf(apiwallet.EINVALID, "the request body could not be read")
	}
	if hasNULEscape(body) {
		return errNUL
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err = dec.Decode(dst)
	if err == nil {
		// Anything after the object but white space is an error too.
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = terr
			if err == nil {
				err = errors.New("trailing data")
			}
		}
	}
	if err == nil {
		return nil
	}
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return apiwallet.Errorf(apiwallet.EINVALID, "the request body is empty; send a JSON object")
	case errors.As(err, &syntaxErr):
		return apiwallet.Errorf(apiwallet.EINVALID, "malformed JSON at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apiwallet.Errorf(apiwallet.EINVALID, "malformed JSON: the body ends too early")
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return apiwallet.Errorf(apiwallet.EINVALID, "the body must be a JSON object")
		}
		return &apiwallet.Error{Code: apiwallet.EINVALID, Message: "the request has invalid fields",
			Fields: []apiwallet.FieldError{{Field: field, Detail: "must be " + jsonKind(typeErr.Type.Kind().String())}}}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &apiwallet.Error{Code: apiwallet.EINVALID, Message: "the request has invalid fields",
			Fields: []apiwallet.FieldError{{Field: field, Detail: "is not a known field"}}}
	default:
		return apiwallet.Errorf(apiwallet.EINVALID, "malformed JSON: the body must be one JSON object")
	}
}

// errNUL refuses text holding a NUL character: no text the wallet stores
// or matches may hold one (PostgreSQL's text cannot), so it is bad input,
// refused the same way on every backend.
var errNUL = apiwallet.Errorf(apiwallet.EINVALID, "text must not contain NUL characters")

// hasNULEscape reports whether a JSON text holds a string escape \u0000 (a
// literal NUL is a JSON syntax error already). A backslash starts an escape
// only when an even number of backslashes precede it.
func hasNULEscape(b []byte) bool {
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(`\u0000`))
		if j < 0 {
			return false
		}
		j += i
		n := 0
		for k := j - 1; k >= 0 && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return true
		}
		i = j + 1
	}
}

func bodyTooLarge(limit int64) error {
	return apiwallet.Errorf(apiwallet.ETOOLARGE, "the request body is larger than %d bytes", limit)
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	default:
		if strings.HasPrefix(k, "int") || strings.HasPrefix(k, "uint") || strings.HasPrefix(k, "float") {
			return "a number"
		}
		return fmt.Sprintf("of type %s", k)
	}
}

// writeJSON writes v with status. Answers are not cached unless the
// handler said otherwise.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	if w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}
