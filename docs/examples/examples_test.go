package examples_test

// The examples of docs/EXAMPLES.md, run: the Go and Node programs with the
// official SDKs, the webhook verifiers and the curl commands, against a
// real `apiwallet serve` on loopback whose services point at local
// upstreams. Each upstream is a real net/http server that accepts only the
// key stored in the wallet, so an example passes only if the wallet
// swapped the app's access token for that key. The markdown shows every
// program verbatim (TestExamplesAreVerbatim), so the docs cannot drift
// from what runs here.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet/internal/alerts"
	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// bin holds the apiwallet binary and the Go examples, built once.
var (
	bin      string
	buildErr error
	building sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if bin != "" {
		os.RemoveAll(bin)
	}
	os.Exit(code)
}

// binaries builds the wallet and the Go examples into one directory.
func binaries(t *testing.T) string {
	t.Helper()
	building.Do(func() {
		dir, err := os.MkdirTemp("", "apiwallet-examples")
		if err != nil {
			buildErr = err
			return
		}
		bin = dir
		out, err := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
			"../../cmd/apiwallet", "./go/...").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bin
}

// The keys stored in the wallet: the only credentials the upstreams take.
const (
	openaiKey      = "sk-proj-examplesOPENAIkey000000000001"
	anthropicKey   = "sk-ant-api03-examplesANTHROPICkey0001"
	stripeKey      = "sk_test_examplesSTRIPEkey000000000001"
	openweatherKey = "0123456789abcdef0123456789abcdef"
	// openweatherFree is the free-tier key EXAMPLES.md's routing example stores.
	openweatherFree = "f1e2d3c4b5a69788f1e2d3c4b5a69788"
	mapsKey         = "AIzaSyExamplesMAPSkey0000000000000001"
)

// upstream is a stand-in for one service's API. It answers only calls
// that carry its key where the service expects it, and notes any wallet
// access token that reached it.
type upstream struct {
	*httptest.Server
	mu     sync.Mutex
	seen   []string // the credential of each call
	paths  []string // method and path of each call
	leaked []string // where an awk_ token showed up
}

func (u *upstream) record(r *http.Request, body []byte, cred string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.seen = append(u.seen, cred)
	u.paths = append(u.paths, r.Method+" "+r.URL.Path)
	for k, vs := range r.Header {
		for _, v := range vs {
			if strings.Contains(v, "awk_") {
				u.leaked = append(u.leaked, "header "+k)
			}
		}
	}
	if strings.Contains(r.URL.RawQuery, "awk_") {
		u.leaked = append(u.leaked, "query")
	}
	if bytes.Contains(body, []byte("awk_")) {
		u.leaked = append(u.leaked, "body")
	}
}

// calls returns the credentials seen so far and the paths called.
func (u *upstream) calls() ([]string, []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...), append([]string(nil), u.paths...)
}

// want fails t unless the upstream got exactly n calls, each with key, and
// never a wallet access token.
func (u *upstream) want(t *testing.T, name string, n int, key string) {
	t.Helper()
	seen, paths := u.calls()
	u.mu.Lock()
	leaked := append([]string(nil), u.leaked...)
	u.mu.Unlock()
	if len(leaked) > 0 {
		t.Errorf("%s: a wallet access token reached the upstream (%v)", name, leaked)
	}
	if len(seen) != n {
		t.Errorf("%s: upstream got %d calls %v, want %d", name, len(seen), paths, n)
	}
	for _, s := range seen {
		if s != key {
			t.Errorf("%s: upstream got credential %q, want the stored key", name, s)
		}
	}
}

// newUpstream starts an upstream. cred extracts the call's credential;
// answer writes the answer to a call carrying one of the valid keys.
func newUpstream(t *testing.T, cred func(*http.Request) string, valid map[string]bool,
	answer func(w http.ResponseWriter, r *http.Request, body []byte)) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		c := cred(r)
		u.record(r, body, c)
		if !valid[c] {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"error":{"type":"permission_error","message":"invalid key"}}`)
			return
		}
		answer(w, r, body)
	}))
	t.Cleanup(u.Close)
	return u
}

func bearer(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

func writeJSON(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, body)
}

// fixture is a running wallet with its upstreams, an account, the keys
// stored and a wallet access token per example.
type fixture struct {
	t      *testing.T
	url    string
	client *http.Client
	logs   *testenv.LogBuffer
	jwt    string // the account's login token

	openai, anthropic, stripe, openweather, googlemaps *upstream
	tokens                                             map[string]string // by example: openai, anthropic, stripe, maps
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, client: &http.Client{Timeout: 20 * time.Second}, tokens: map[string]string{}}
	f.openai = newUpstream(t, bearer, map[string]bool{openaiKey: true}, func(w http.ResponseWriter, r *http.Request, body []byte) {
		if r.URL.Path != "/v1/chat/completions" {
			http.NotFound(w, r)
			return
		}
		if bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "text/event-stream")
			for i, part := range []string{"Hello", " from", " the stream", ""} {
				finish := "null"
				if part == "" {
					finish = `"stop"`
				}
				fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-stream\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"+
					"\"model\":\"gpt-5.4-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":%s}]}\n\n", part, finish)
				if i < 3 {
					w.(http.Flusher).Flush()
				}
			}
			_, _ = io.WriteString(w, "data: [DONE]\n\n")
			return
		}
		writeJSON(w, `{"id":"chatcmpl-examples","object":"chat.completion","created":1700000000,"model":"gpt-5.4-mini",`+
			`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the OpenAI stub","refusal":null},`+
			`"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}`)
	})
	f.anthropic = newUpstream(t, func(r *http.Request) string { return r.Header.Get("X-Api-Key") },
		map[string]bool{anthropicKey: true}, func(w http.ResponseWriter, r *http.Request, _ []byte) {
			if r.URL.Path != "/v1/messages" || r.Header.Get("Anthropic-Version") == "" || r.Header.Get("Authorization") != "" {
				http.Error(w, "not a Messages call as the SDK makes it", http.StatusBadRequest)
				return
			}
			writeJSON(w, `{"id":"msg_examples","type":"message","role":"assistant","model":"claude-haiku-4-5",`+
				`"content":[{"type":"text","text":"Hello from the Anthropic stub"}],"stop_reason":"end_turn",`+
				`"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":5}}`)
		})
	f.stripe = newUpstream(t, bearer, map[string]bool{stripeKey: true}, func(w http.ResponseWriter, r *http.Request, body []byte) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/customers" || !bytes.Contains(body, []byte("email=jenny.rosen%40example.com")) {
			http.Error(w, "not a customer creation", http.StatusBadRequest)
			return
		}
		writeJSON(w, `{"id":"cus_examples123","object":"customer","email":"jenny.rosen@example.com","name":"Jenny Rosen",`+
			`"created":1700000000,"livemode":false}`)
	})
	f.openweather = newUpstream(t, func(r *http.Request) string { return r.URL.Query().Get("appid") },
		map[string]bool{openweatherKey: true, openweatherFree: true}, func(w http.ResponseWriter, r *http.Request, _ []byte) {
			writeJSON(w, fmt.Sprintf(`{"name":%q,"main":{"temp":281.52,"humidity":81},"weather":[{"main":"Clouds"}]}`, r.URL.Query().Get("q")))
		})
	// Google Maps refuses every key but one: a call with another one is how
	// the webhook tests get a key quarantined, and so an alert.
	f.googlemaps = newUpstream(t, func(r *http.Request) string { return r.URL.Query().Get("key") },
		map[string]bool{mapsKey: true}, func(w http.ResponseWriter, r *http.Request, _ []byte) {
			writeJSON(w, fmt.Sprintf(`{"status":"OK","results":[{"formatted_address":%q}]}`, r.URL.Query().Get("address")))
		})

	port := freePort(t)
	f.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	f.logs = &testenv.LogBuffer{}
	cmd := exec.Command(filepath.Join(binaries(t), "apiwallet"), "serve")
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir,
		"HOST=127.0.0.1", fmt.Sprintf("PORT=%d", port), "APIWALLET_DATA_DIR=" + cmd.Dir,
		"JWT_SECRET=examples-test-secret-0123456789abcdef", "ENCRYPTION_KEY=" + strings.Repeat("ef", 32),
		"ALERT_WEBHOOK_ALLOW_PRIVATE=true",
		"OPENAI_BASE_URL=" + f.openai.URL, "ANTHROPIC_BASE_URL=" + f.anthropic.URL, "STRIPE_BASE_URL=" + f.stripe.URL,
		"OPENWEATHER_BASE_URL=" + f.openweather.URL, "GOOGLEMAPS_BASE_URL=" + f.googlemaps.URL}
	cmd.Stdout, cmd.Stderr = f.logs, f.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		f.client.CloseIdleConnections()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := f.client.Get(f.url + "/monitoring/health")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the wallet did not become healthy; logs:\n%s", f.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}

	f.jwt = f.register("examples@example.com")
	for _, k := range []struct{ service, key string }{{"openai", openaiKey}, {"anthropic", anthropicKey},
		{"stripe", stripeKey}, {"openweather", openweatherKey}, {"googlemaps", mapsKey}} {
		f.api(http.StatusCreated, "POST", "/keys", f.jwt, map[string]any{"key": k.key, "service": k.service, "tier": "paid"})
	}
	for name, services := range map[string][]string{"openai": {"openai"}, "anthropic": {"anthropic"},
		"stripe": {"stripe"}, "maps": {"openweather", "googlemaps"}} {
		f.tokens[name] = f.token(f.jwt, name, services...)
	}
	return f
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// api makes one call to the wallet's HTTP API, fails the test unless it
// answers want, and decodes the answer.
func (f *fixture) api(want int, method, path, jwt string, body any) map[string]any {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.url+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if jwt != "" {
		req.Header.Set("Authorization", "Bearer "+jwt)
	}
	res, err := f.client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		f.t.Fatalf("%s %s: %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// register creates an account and returns its login token.
func (f *fixture) register(email string) string {
	f.t.Helper()
	m := f.api(http.StatusCreated, "POST", "/auth/register", "", map[string]string{
		"email": email, "password": "correct horse battery", "name": "Examples"})
	return m["token"].(string)
}

// token creates a wallet access token scoped to services.
func (f *fixture) token(jwt, name string, services ...string) string {
	f.t.Helper()
	tok := f.api(http.StatusCreated, "POST", "/tokens", jwt, map[string]any{"name": name, "services": services})["token"].(string)
	if !strings.HasPrefix(tok, "awk_") {
		f.t.Fatalf("token %q is not a wallet access token", tok)
	}
	return tok
}

// run runs an example to its end with WALLET_URL and WALLET_TOKEN set (and
// TOKEN, the login token the curl examples manage keys with) and returns
// what it printed.
func (f *fixture) run(token string, name string, args ...string) string {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = "node"
	cmd.Env = append(os.Environ(), "WALLET_URL="+f.url, "WALLET_TOKEN="+token, "TOKEN="+f.jwt)
	out, err := cmd.CombinedOutput()
	if err != nil {
		f.t.Fatalf("%s %v: %v\n%s\nwallet logs:\n%s", filepath.Base(name), args, err, out, f.logs)
	}
	return string(out)
}

// sdkExamples are the SDK examples: the token each uses, what it must
// print, and the upstream that must have got the stored key.
func (f *fixture) sdkExamples() []struct {
	name, token string
	want        []string
	up          *upstream
	key         string
	calls       int
} {
	return []struct {
		name, token string
		want        []string
		up          *upstream
		key         string
		calls       int
	}{
		{"openai", f.tokens["openai"], []string{"Hello from the OpenAI stub", "1 attempt(s), strategy cost", "\nHello from the stream\n"}, f.openai, openaiKey, 2},
		{"anthropic", f.tokens["anthropic"], []string{"Hello from the Anthropic stub", "12 input and 5 output tokens"}, f.anthropic, anthropicKey, 1},
		{"stripe", f.tokens["stripe"], []string{"customer cus_examples123 jenny.rosen@example.com"}, f.stripe, stripeKey, 1},
	}
}

// The Go examples, with openai-go, anthropic-sdk-go and stripe-go.
func TestGoExamples(t *testing.T) {
	f := newFixture(t)
	for _, ex := range f.sdkExamples() {
		t.Run(ex.name, func(t *testing.T) {
			f.t = t
			out := f.run(ex.token, filepath.Join(binaries(t), ex.name))
			for _, w := range ex.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			ex.up.want(t, ex.name, ex.calls, ex.key)
		})
	}
}

// requireNodeModules returns the path of node once the examples'
// dependencies are installed (npm ci, which .ci/setup/50-node.sh runs).
func requireNodeModules(t *testing.T) string {
	t.Helper()
	node := testenv.RequireNode(t)
	if _, err := os.Stat(filepath.Join("node", "node_modules", "openai")); err != nil {
		if testenv.CI() {
			t.Fatal("docs/examples/node/node_modules is missing but CI=true: .ci/setup/50-node.sh runs npm ci")
		}
		t.Skip("no docs/examples/node/node_modules; run npm ci --no-audit --no-fund in docs/examples/node")
	}
	return node
}

// The Node examples, with the openai, @anthropic-ai/sdk and stripe packages.
func TestNodeExamples(t *testing.T) {
	node := requireNodeModules(t)
	f := newFixture(t)
	for _, ex := range f.sdkExamples() {
		t.Run(ex.name, func(t *testing.T) {
			f.t = t
			out := f.run(ex.token, node, ex.name+".mjs")
			for _, w := range ex.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			ex.up.want(t, ex.name, ex.calls, ex.key)
		})
	}
}

// delivery is one webhook POST as the wallet sent it, and what the
// receiver answered.
type delivery struct {
	header http.Header
	body   []byte
	status int
}

// Each webhook verifier receives a real alert from the wallet and accepts
// it, and rejects that delivery tampered with, replayed late, signed with
// another secret or unsigned.
func TestWebhookVerifiers(t *testing.T) {
	f := newFixture(t)
	for _, v := range []struct {
		name string
		cmd  func(t *testing.T) []string
	}{
		{"go", func(t *testing.T) []string { return []string{filepath.Join(binaries(t), "webhook-verify")} }},
		{"node", func(t *testing.T) []string { return []string{testenv.RequireNode(t), "webhook-verify.mjs"} }},
	} {
		t.Run(v.name, func(t *testing.T) {
			f.t = t
			argv := v.cmd(t)
			// A workspace of its own, so that its alert is the only one.
			jwt := f.register("alerts-" + v.name + "@example.com")
			f.api(http.StatusCreated, "POST", "/keys", jwt, map[string]any{
				"key": "AIzaSyRevokedKEY" + v.name + "000000000000001", "service": "googlemaps", "tier": "paid"})
			tok := f.token(jwt, "maps", "googlemaps")

			// The wallet posts to a recorder in front of the receiver, which
			// keeps the delivery as sent for the replays below.
			port := freePort(t)
			receiver := fmt.Sprintf("http://127.0.0.1:%d", port)
			var mu sync.Mutex
			var got []delivery
			rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				st, _, err := post(receiver+r.URL.Path, r.Header, body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadGateway)
					return
				}
				mu.Lock()
				got = append(got, delivery{header: r.Header.Clone(), body: body, status: st})
				mu.Unlock()
				w.WriteHeader(st)
			}))
			defer rec.Close()
			settings := f.api(http.StatusOK, "PUT", "/alerts/settings", jwt, map[string]any{"webhookUrl": rec.URL + "/wallet-alerts"})
			secret, _ := settings["webhookSecret"].(string)
			if !strings.HasPrefix(secret, "whsec_") {
				t.Fatalf("PUT /alerts/settings generated no secret: %v", settings)
			}

			out := startReceiver(t, argv, secret, port)

			// The upstream refuses the key: the wallet quarantines it and
			// raises a key_quarantined alert, delivered to the webhook.
			req, _ := http.NewRequest("GET", f.url+"/proxy/googlemaps/maps/api/geocode/json?address=Paris", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := f.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			var alert map[string]any
			deadline := time.Now().Add(20 * time.Second)
			for alert == nil {
				list, _ := f.api(http.StatusOK, "GET", "/alerts?kind=key_quarantined", jwt, nil)["alerts"].([]any)
				for _, a := range list {
					if a := a.(map[string]any); a["delivery"].(map[string]any)["state"] == "delivered" {
						alert = a
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("no alert delivered: %v\nreceiver:\n%s\nwallet:\n%s", list, out, f.logs)
				}
				time.Sleep(50 * time.Millisecond)
			}
			mu.Lock()
			sent := got[len(got)-1]
			mu.Unlock()
			if sent.status != http.StatusNoContent {
				t.Fatalf("the receiver answered the wallet's delivery %d", sent.status)
			}
			id := alert["id"].(string)
			if !waitFor(out, "verified alert "+id+" (key_quarantined)") {
				t.Fatalf("the receiver did not report alert %s:\n%s", id, out)
			}

			sig := sent.header.Get(alerts.SignatureHeader)
			tampered := bytes.Replace(sent.body, []byte(`"key_quarantined"`), []byte(`"plan_quota"`), 1)
			if bytes.Equal(tampered, sent.body) {
				t.Fatalf("the delivery has no kind to tamper with: %s", sent.body)
			}
			now := time.Now()
			for _, c := range []struct {
				name   string
				sig    string
				body   []byte
				reason string
			}{
				{"tampered body", sig, tampered, "signature does not match"},
				{"another secret", alerts.Sign([]byte("whsec_"+strings.Repeat("0", 64)), now, sent.body), sent.body, "signature does not match"},
				{"signed an hour ago", alerts.Sign([]byte(secret), now.Add(-time.Hour), sent.body), sent.body, "too old"},
				{"unsigned", "", sent.body, "no valid X-Wallet-Signature"},
			} {
				h := http.Header{"Content-Type": {"application/json"}}
				if c.sig != "" {
					h.Set(alerts.SignatureHeader, c.sig)
				}
				st, body, err := post(receiver+"/wallet-alerts", h, c.body)
				if err != nil {
					t.Fatal(err)
				}
				if st != http.StatusBadRequest || !strings.Contains(body, c.reason) {
					t.Errorf("%s: the receiver answered %d %q, want 400 saying %q", c.name, st, body, c.reason)
				}
			}
			for i := 0; i < 200 && out.Count("rejected:") < 4; i++ {
				time.Sleep(50 * time.Millisecond) // the child's output trails its answers
			}
			if n := out.Count("rejected:"); n != 4 {
				t.Errorf("the receiver logged %d rejections, want 4:\n%s", n, out)
			}
			// The same bytes signed now, by the wallet's own signing code, pass.
			h := http.Header{alerts.SignatureHeader: {alerts.Sign([]byte(secret), time.Now(), sent.body)}}
			if st, body, err := post(receiver+"/wallet-alerts", h, sent.body); err != nil || st != http.StatusNoContent {
				t.Errorf("a freshly signed delivery: %d %q %v, want 204", st, body, err)
			}
		})
	}
}

// post sends body to url and returns the status and answer.
func post(url string, h http.Header, body []byte) (int, string, error) {
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	c := http.Client{Timeout: 10 * time.Second}
	res, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), nil
}

// startReceiver starts a verifier on port and waits until it listens.
func startReceiver(t *testing.T, argv []string, secret string, port int) *testenv.LogBuffer {
	t.Helper()
	out := &testenv.LogBuffer{}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "node"
	cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+secret, "HOST=127.0.0.1", fmt.Sprintf("PORT=%d", port))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return out
		}
		select {
		case <-done:
			t.Fatalf("the receiver exited:\n%s", out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver does not listen:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitFor reports whether s shows up in out within 10 s: a child's output
// arrives a moment after its answer.
func waitFor(out *testenv.LogBuffer, s string) bool {
	for range 200 {
		if strings.Contains(out.String(), s) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// examplesDoc returns docs/EXAMPLES.md.
func examplesDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../EXAMPLES.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// included matches a program shown verbatim: a marker naming its file
// (relative to docs/examples) and the fenced block right after it.
var included = regexp.MustCompile("(?s)<!-- file: ([^ ]+) -->\n```[a-z]*\n(.*?)```\n")

// update rewrites EXAMPLES.md's file blocks from the files:
// go test ./docs/examples -run Verbatim -update.
var update = flag.Bool("update", false, "copy the example files into docs/EXAMPLES.md")

// Every program in docs/examples is shown in EXAMPLES.md exactly as it is
// on disk, and everything EXAMPLES.md shows as a file is one.
func TestExamplesAreVerbatim(t *testing.T) {
	doc := examplesDoc(t)
	if *update {
		doc = included.ReplaceAllStringFunc(doc, func(block string) string {
			m := included.FindStringSubmatch(block)
			b, err := os.ReadFile(filepath.FromSlash(m[1]))
			if err != nil {
				t.Fatal(err)
			}
			return strings.Replace(block, m[2], string(b), 1)
		})
		if err := os.WriteFile("../EXAMPLES.md", []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shown := map[string]bool{}
	for _, m := range included.FindAllStringSubmatch(doc, -1) {
		name, block := m[1], m[2]
		shown[name] = true
		b, err := os.ReadFile(filepath.FromSlash(name))
		if err != nil {
			t.Errorf("EXAMPLES.md shows %s, which does not exist: %v", name, err)
			continue
		}
		if string(b) != block {
			t.Errorf("EXAMPLES.md shows %s differently from the file: run go test ./docs/examples -run Verbatim -update", name)
		}
	}
	var files []string
	for _, pat := range []string{"go/*/main.go", "node/*.mjs", "node/package.json"} {
		m, _ := filepath.Glob(filepath.FromSlash(pat))
		files = append(files, m...)
	}
	sort.Strings(files)
	if len(files) < 9 {
		t.Fatalf("found only %d example files: %v", len(files), files)
	}
	for _, f := range files {
		if !shown[filepath.ToSlash(f)] {
			t.Errorf("EXAMPLES.md does not show %s", filepath.ToSlash(f))
		}
	}
	if strings.Count(doc, "<!-- file:") != len(shown) {
		t.Errorf("EXAMPLES.md has a file marker not followed by a code block, or one shown twice")
	}
}

// shBlocks returns the ```sh blocks of doc between two headings.
func shBlocks(t *testing.T, doc, from, to string) []string {
	t.Helper()
	i := strings.Index(doc, from)
	j := strings.Index(doc[i+1:], to) + i + 1
	if i < 0 || j <= i {
		t.Fatalf("EXAMPLES.md has no section %q before %q", from, to)
	}
	var out []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(doc[i:j], -1) {
		out = append(out, m[1])
	}
	return out
}

// The curl examples for the services that take their key in the query
// string, run as written.
func TestCurlExamples(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if testenv.CI() {
			t.Fatal("no curl on PATH but CI=true")
		}
		t.Skip("no curl on PATH")
	}
	f := newFixture(t)
	blocks := shBlocks(t, examplesDoc(t), "## OpenWeather and Google Maps", "\n## ")
	if len(blocks) != 1 {
		t.Fatalf("want one block of curl examples, got %d", len(blocks))
	}
	out := f.run(f.tokens["maps"], "bash", "-c", "set -euo pipefail\n"+strings.Join(blocks, "\n"))
	if strings.Count(out, `"name":"London"`) != 2 || !strings.Contains(out, `"formatted_address":"1600 Amphitheatre Parkway, Mountain View, CA"`) {
		t.Errorf("want two weather answers and a geocoding one:\n%s", out)
	}
	if strings.Contains(out, openweatherKey) || strings.Contains(out, mapsKey) {
		t.Error("an answer carried a stored key")
	}
	seen, _ := f.openweather.calls()
	f.openweather.want(t, "openweather", len(seen), openweatherKey)
	seen2, _ := f.googlemaps.calls()
	f.googlemaps.want(t, "googlemaps", len(seen2), mapsKey)
	if len(seen) != 2 || len(seen2) != 1 {
		t.Errorf("upstreams got %d openweather and %d googlemaps calls", len(seen), len(seen2))
	}
}

// The routing example, run as written: with cost the free key serves, with
// priority the paid key stored before it.
func TestRoutingExamples(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if testenv.CI() {
			t.Fatal("no curl on PATH but CI=true")
		}
		t.Skip("no curl on PATH")
	}
	f := newFixture(t)
	blocks := shBlocks(t, examplesDoc(t), "## Routing strategies", "\n## ")
	if len(blocks) != 1 {
		t.Fatalf("want one routing block, got %d", len(blocks))
	}
	out := f.run(f.tokens["maps"], "bash", "-c", "set -euo pipefail\n"+blocks[0])
	for _, w := range []string{`"tier":"free"`, "X-Wallet-Strategy: cost", "X-Wallet-Strategy: priority"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	seen, _ := f.openweather.calls()
	if len(seen) != 2 || seen[0] != openweatherFree || seen[1] != openweatherKey {
		t.Errorf("openweather got keys %q, want the free key, then the paid one", seen)
	}
	f.openweather.mu.Lock()
	defer f.openweather.mu.Unlock()
	if len(f.openweather.leaked) > 0 {
		t.Errorf("a wallet access token reached openweather: %v", f.openweather.leaked)
	}
}
