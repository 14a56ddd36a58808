package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// docBlock is one fenced code block of a Markdown document.
type docBlock struct {
	lang, text string
	line       int // where the block's fence opens, 1-based
	// answer is the text of the ```json block that directly follows a
	// ```sh block: the answer the document shows for its last call.
	answer     string
	answerLine int
	// end is where the block ends in the document; shown, when not
	// empty, is where the ```json or ```text block right after it (its
	// output) starts and ends.
	end   int
	shown [2]int
}

var fenceRE = regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```[ \t]*$")

// docBlocks returns the ```sh blocks of doc, in order, each with the
// ```json answer shown right after it, if any. The other blocks (text,
// json on their own, http) are shown, never run.
func docBlocks(doc string) []docBlock {
	var out []docBlock
	ms := fenceRE.FindAllStringSubmatchIndex(doc, -1)
	for i, m := range ms {
		if doc[m[2]:m[3]] != "sh" {
			continue
		}
		b := docBlock{lang: "sh", text: doc[m[4]:m[5]], line: strings.Count(doc[:m[0]], "\n") + 1, end: m[1]}
		if i+1 < len(ms) {
			next := ms[i+1]
			if lang := doc[next[2]:next[3]]; strings.TrimSpace(doc[m[1]:next[0]]) == "" && (lang == "json" || lang == "text") {
				b.shown = [2]int{next[0], next[1]}
				if lang == "json" {
					b.answer, b.answerLine = doc[next[4]:next[5]], strings.Count(doc[:next[0]], "\n")+1
				}
			}
		}
		out = append(out, b)
	}
	return out
}

// expectRE is the comment that gives the status the next curl must get.
var (
	expectRE = regexp.MustCompile(`^\s*# → (\d{3})\b`)
	curlRE   = regexp.MustCompile(`(^|[\s($|;&])curl\s`)
)

// runnable turns a block into the script that runs it: the curl after an
// expectation comment gets --expect, which the harness's curl function
// reads.
func runnable(b docBlock) (string, error) {
	lines := strings.Split(b.text, "\n")
	want := ""
	for i, l := range lines {
		if m := expectRE.FindStringSubmatch(l); m != nil {
			if want != "" {
				return "", fmt.Errorf("line %d: an expected status with no curl after the previous one", b.line+1+i)
			}
			want = m[1]
			continue
		}
		if want == "" || strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if loc := curlRE.FindStringSubmatchIndex(l); loc != nil {
			at := loc[3] // after the character before curl
			lines[i] = l[:at] + "curl --expect " + want + " " + l[at+len("curl "):]
			want = ""
		}
	}
	if want != "" {
		return "", fmt.Errorf("block at line %d: expected status %s but no curl follows", b.line, want)
	}
	return strings.Join(lines, "\n"), nil
}

// harness is the bash prelude of the examples. Its curl runs the real one
// with the response headers kept aside and checks the final status: the
// one a block's "# → NNN" comment names, else any status below 400. A
// stream cut by --max-time (an SSE example) is a success once its 200
// has arrived.
const harness = `set -euo pipefail
curl() {
  local want="" rc=0 status hdr
  if [ "${1:-}" = "--expect" ]; then want=$2; shift 2; fi
  hdr=$(mktemp)
  command curl -D "$hdr" "$@" || rc=$?
  status=$(tr -d '\r' <"$hdr" | awk '/^HTTP\//{s=$2} END{print s}')
  if [ "$rc" -eq 28 ] && [ "$status" = 200 ] && grep -qi '^content-type: text/event-stream' "$hdr"; then
    rc=0
  fi
  rm -f "$hdr"
  if [ "$rc" -ne 0 ]; then echo "curl $* exited $rc" >&2; return "$rc"; fi
  if [ -n "$want" ]; then
    if [ "$status" != "$want" ]; then echo "curl $*: status $status, want $want" >&2; return 1; fi
  elif [ -z "$status" ] || [ "$status" -ge 400 ]; then
    echo "curl $*: status $status, and the example names no expected status" >&2; return 1
  fi
}
`

// blockMark separates the output of one block from the next.
const blockMark = "\n::apidoc-block %d::\n"

// docsStub is the upstream every proxied example reaches: Stripe's
// charges (and the Checkout Sessions the wallet itself creates), and
// OpenAI's chat completions. It counts calls and those that came without
// the stored key.
type docsStub struct {
	*httptest.Server
	hits, wrongKey atomic.Int64
}

func newDocsStub(t *testing.T) *docsStub {
	s := &docsStub{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/v1/checkout/sessions":
			// The wallet's own call to Stripe (STRIPE_API_BASE_URL).
			if r.Header.Get("Authorization") != "Bearer sk_test_wallet_checkout" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			fmt.Fprint(w, `{"id":"cs_test_a1b2c3","object":"checkout.session","mode":"subscription",`+
				`"url":"https://checkout.stripe.com/c/pay/cs_test_a1b2c3"}`)
			return
		case strings.HasPrefix(r.URL.Path, "/v1/charges"):
			s.hits.Add(1)
			if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc") &&
				r.Header.Get("Authorization") != "Bearer sk_test_51QrotatedDocsKey9mRtY7vWq" {
				s.wrongKey.Add(1)
			}
			amount := "2000"
			if bytes.Contains(body, []byte("amount=1500")) || bytes.Contains(body, []byte(`"amount":1500`)) {
				amount = "1500"
			}
			fmt.Fprintf(w, `{"id":"ch_3Qdocs","object":"charge","amount":%s,"currency":"usd","status":"succeeded"}`, amount)
		case r.URL.Path == "/v1/chat/completions":
			s.hits.Add(1)
			if a := r.Header.Get("Authorization"); a != "Bearer sk-proj-revokedDocsKey7Qw2Xe9Rt0ld" &&
				a != "Bearer sk-proj-currentDocsKey3Lm8Vb5Nk6ew" {
				s.wrongKey.Add(1)
			}
			if r.Header.Get("Authorization") == "Bearer sk-proj-revokedDocsKey7Qw2Xe9Rt0ld" {
				// A key its owner revoked at OpenAI.
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","code":"invalid_api_key"}}`)
				return
			}
			if bytes.Contains(body, []byte(`"stream":true`)) {
				w.Header().Set("Content-Type", "text/event-stream")
				for _, part := range []string{"Hel", "lo!"} {
					fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-docs\",\"object\":\"chat.completion.chunk\","+
						"\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", part)
					w.(http.Flusher).Flush()
				}
				fmt.Fprint(w, "data: [DONE]\n\n")
				return
			}
			fmt.Fprint(w, `{"id":"chatcmpl-docs","object":"chat.completion","model":"gpt-4o-mini",`+
				`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}]}`)
		case r.URL.Path == "/v1/forecast":
			s.hits.Add(1)
			// The admin-added service takes its key as ?appid=.
			if q := r.URL.Query(); q.Get("appid") != "wx_docs_5f2c9a7e1b3d" || q.Get("city") != "Paris" {
				s.wrongKey.Add(1)
			}
			fmt.Fprint(w, `{"city":"Paris","tempC":18}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":{"type":"invalid_request_error","message":"Unrecognized request URL"}}`)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// apiDoc returns docs/API.md.
func apiDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every ```sh example of docs/API.md runs, in order, in one bash session,
// against a fresh wallet whose upstreams are a local stand-in: each curl
// gets the status its "# → NNN" comment names (else a success), and each
// answer the document shows has the fields of the real one.
func TestAPIDocExamples(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			if testenv.CI() {
				t.Fatalf("%s is not installed but CI=true: .ci/setup/40-docs-tools.sh installs it", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
	blocks := docBlocks(apiDoc(t))
	if len(blocks) < 50 {
		t.Fatalf("docs/API.md has %d runnable examples; expected far more", len(blocks))
	}
	// -update-apidoc rewrites the answers API.md shows from the SQLite run.
	t.Run("sqlite", func(t *testing.T) { runAPIDoc(t, blocks, nil, *updateAPIDoc) })
	t.Run("postgres", func(t *testing.T) {
		runAPIDoc(t, blocks, []string{"DATABASE_URL=" + testenv.PostgresURL(t)}, false)
	})
}

const docsWebhookSecret = "whsec_docs_0123456789abcdef"

// runAPIDoc runs the examples on a wallet started with env; with update,
// it writes the real answers into docs/API.md.
func runAPIDoc(t *testing.T, blocks []docBlock, env []string, update bool) {
	stub := newDocsStub(t)
	dir := t.TempDir()
	env = append(env, "ENABLE_METRICS=true",
		"STRIPE_BASE_URL="+stub.URL, "OPENAI_BASE_URL="+stub.URL,
		"STRIPE_API_BASE_URL="+stub.URL, "STRIPE_SECRET_KEY=sk_test_wallet_checkout",
		"STRIPE_PRICE_PROFESSIONAL=price_professional_monthly",
		"STRIPE_WEBHOOK_SECRET="+docsWebhookSecret, "GATEWAY_URL=https://wallet.example.com")
	w := startWallet(t, dir, env...)
	w.waitHealth(t, 15*time.Second, "healthy")

	var script strings.Builder
	script.WriteString(harness)
	for i, b := range blocks {
		r, err := runnable(b)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&script, "printf '"+strings.ReplaceAll(blockMark, "\n", `\n`)+"' | tee /dev/stderr\n", i)
		script.WriteString(r)
		script.WriteString("\n")
	}
	text := strings.ReplaceAll(script.String(), "http://localhost:6789", w.url)
	// The example upstream an admin adds to the catalog is the stand-in.
	text = strings.ReplaceAll(text, "https://weather.example.com", stub.URL)

	// A wait in the examples that never ends must not hang the suite.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", text)
	cmd.Dir = dir // where `apiwallet user create` finds the wallet's database
	cmd.Env = cleanEnv(env...)
	cmd.Env = append(cmd.Env, "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"STRIPE_WEBHOOK_SECRET="+docsWebhookSecret)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	outs := splitBlocks(stdout.String(), len(blocks))
	if dumpDir := os.Getenv("APIWALLET_APIDOC_OUT"); dumpDir != "" {
		// For whoever edits API.md: each block's real output.
		_ = os.MkdirAll(dumpDir, 0o755)
		for i, o := range outs {
			_ = os.WriteFile(filepath.Join(dumpDir, fmt.Sprintf("%03d-line%d.txt", i, blocks[i].line)), []byte(o), 0o644)
		}
	}
	if update && err == nil {
		updateAnswers(t, blocks, outs, map[string]string{w.url: "http://localhost:6789", stub.URL: "https://weather.example.com"})
	}
	if err != nil {
		last := len(outs) - 1
		where := "before the first block"
		if last >= 0 {
			where = fmt.Sprintf("in the block at docs/API.md:%d", blocks[last].line)
		}
		t.Fatalf("examples failed %s: %v\nstderr (tail):\n%s\nstdout (tail):\n%s", where, err,
			tail(stderr.String(), 3000), tail(stdout.String(), 3000))
	}
	if len(outs) != len(blocks) {
		t.Fatalf("%d of %d blocks ran", len(outs), len(blocks))
	}
	for i, b := range blocks {
		if b.answer == "" {
			continue
		}
		if err := sameShape(b.answer, outs[i]); err != nil {
			t.Errorf("docs/API.md:%d: the answer shown is not the real one's shape: %v\nreal output:\n%s",
				b.answerLine, err, tail(outs[i], 2000))
		}
	}
	if stub.hits.Load() == 0 || stub.wrongKey.Load() != 0 {
		t.Errorf("the upstream saw %d calls, %d without the stored key", stub.hits.Load(), stub.wrongKey.Load())
	}
	for _, secret := range []string{"sk_test_4eC39HqLyjWDarjtT1zdp7dc", "sk_test_51QrotatedDocsKey9mRtY7vWq",
		"sk_test_51SpareDocsKey4hJ2cN8pLx", "sk-proj-revokedDocsKey7Qw2Xe9Rt0ld", "sk-proj-currentDocsKey3Lm8Vb5Nk6ew",
		"wx_docs_5f2c9a7e1b3d"} {
		if strings.Contains(stdout.String(), secret) {
			t.Errorf("an answer carried the stored secret %s", secret)
		}
	}
	t.Logf("%d examples ran", len(blocks))
}

// splitBlocks cuts the session's output at the block marks.
func splitBlocks(out string, n int) []string {
	var res []string
	for i := 0; i < n; i++ {
		mark := fmt.Sprintf(blockMark, i)
		j := strings.Index(out, mark)
		if j < 0 {
			break
		}
		if i > 0 {
			res[i-1] = out[:j]
		}
		out = out[j+len(mark):]
		res = append(res, out)
	}
	if len(res) > 0 {
		res[len(res)-1] = out
	}
	return res
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// sameShape reports whether the JSON answer shown and the last JSON value
// in the real output have the same member names at every depth (array
// elements merged, so a document may show fewer of them).
func sameShape(shown, out string) error {
	var want any
	if err := json.Unmarshal([]byte(shown), &want); err != nil {
		return fmt.Errorf("the answer shown is not JSON: %v", err)
	}
	got, ok := lastJSON(out)
	if !ok {
		return fmt.Errorf("the block printed no JSON")
	}
	wp, gp := jsonPaths(want, "", map[string]bool{}), jsonPaths(got, "", map[string]bool{})
	for p := range volatilePaths {
		delete(wp, p)
		delete(gp, p)
	}
	var missing, extra []string
	for p := range wp {
		if !gp[p] {
			extra = append(extra, p)
		}
	}
	for p := range gp {
		if !wp[p] {
			missing = append(missing, p)
		}
	}
	if len(missing)+len(extra) == 0 {
		return nil
	}
	slices.Sort(missing)
	slices.Sort(extra)
	return fmt.Errorf("shown but not real: %v; real but not shown: %v", extra, missing)
}

// volatilePaths are members that come and go with timing the examples do
// not control, so the shape check leaves them out.
var volatilePaths = map[string]bool{
	// Key use is written off the hot path once a minute; until then key
	// health has no last use (and omits the member).
	".keys[].lastUsedAt": true,
}

// lastJSON is the last JSON value of out that starts a line.
func lastJSON(out string) (any, bool) {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := lines[i]; !strings.HasPrefix(l, "{") && !strings.HasPrefix(l, "[") {
			continue
		}
		var v any
		dec := json.NewDecoder(strings.NewReader(strings.Join(lines[i:], "\n")))
		if err := dec.Decode(&v); err == nil {
			return v, true
		}
	}
	return nil, false
}

func jsonPaths(v any, prefix string, out map[string]bool) map[string]bool {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := prefix + "." + k
			out[p] = true
			jsonPaths(e, p, out)
		}
	case []any:
		for _, e := range x {
			jsonPaths(e, prefix+"[]", out)
		}
	}
	return out
}

// routeRE finds route patterns ("GET /keys/{id}") in internal/api's
// source, wherever its route table keeps them.
var routeRE = regexp.MustCompile(`"((?:GET|POST|PUT|PATCH|DELETE) /[^" ]*)"`)

// notAPI are patterns of internal/api that are no API endpoint: the
// dashboard's pages and assets.
var notAPI = map[string]bool{"GET /app/": true, "GET /static/": true, "GET /{$}": true}

// apiRoutes returns the route patterns internal/api serves.
func apiRoutes(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("../../internal/api/*.go")
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range routeRE.FindAllStringSubmatch(string(src), -1) {
			if !notAPI[m[1]] {
				routes[m[1]] = true
			}
		}
	}
	if len(routes) < 60 {
		t.Fatalf("found only %d routes in internal/api; has the route table moved?", len(routes))
	}
	return routes
}

// docRouteRE finds the endpoint headings of docs/API.md.
var docRouteRE = regexp.MustCompile(`(?m)^### ((?:GET|POST|PUT|PATCH|DELETE|ANY) /\S*)`)

// Every route the wallet registers has its section in docs/API.md, every
// section names a real route (or one of the proxy's forms), and each
// section shows at least one example that the test above runs.
func TestAPIDocCoversEveryRoute(t *testing.T) {
	routes := apiRoutes(t)
	// The proxy's forms are served before the mux (dispatch), not by a route.
	proxyForms := map[string]bool{"ANY /proxy/{service}/{path...}": true, "ANY /{path...}": true}
	doc := apiDoc(t)
	sections := docRouteRE.FindAllStringSubmatchIndex(doc, -1)
	documented := map[string]bool{}
	for i, m := range sections {
		pattern := doc[m[2]:m[3]]
		if documented[pattern] {
			t.Errorf("docs/API.md documents %s twice", pattern)
		}
		documented[pattern] = true
		if !routes[pattern] && !proxyForms[pattern] {
			t.Errorf("docs/API.md documents %s, which the wallet does not serve", pattern)
		}
		end := len(doc)
		if i+1 < len(sections) {
			end = sections[i+1][0]
		}
		body := doc[m[1]:end]
		if j := strings.Index(body, "\n## "); j >= 0 {
			body = body[:j]
		}
		if !strings.Contains(body, "```sh\n") {
			t.Errorf("docs/API.md: %s has no runnable example", pattern)
		}
	}
	for r := range routes {
		if !documented[r] {
			t.Errorf("the route %s is not documented in docs/API.md", r)
		}
	}
	for p := range proxyForms {
		if !documented[p] {
			t.Errorf("the proxy form %s is not documented in docs/API.md", p)
		}
	}
	t.Logf("%d routes and %d proxy forms documented", len(routes), len(proxyForms))
}

// docs/API.md shows no call it does not run: its code blocks are sh (run),
// json (an answer, checked) or text (output), and no text block holds a
// curl command.
func TestAPIDocShowsOnlyExamplesItRuns(t *testing.T) {
	doc := apiDoc(t)
	for _, m := range fenceRE.FindAllStringSubmatchIndex(doc, -1) {
		lang, body := doc[m[2]:m[3]], doc[m[4]:m[5]]
		line := strings.Count(doc[:m[0]], "\n") + 1
		switch {
		case lang != "sh" && lang != "json" && lang != "text":
			t.Errorf("docs/API.md:%d: a %q block; use sh for what runs, json or text for what it prints", line, lang)
		case lang == "text" && curlRE.MatchString(body):
			t.Errorf("docs/API.md:%d: a curl command in a text block is shown but never run", line)
		}
	}
}
