package api_test

// Acceptance tests of the proxy (issue 4): official SDKs against local fake
// upstreams, routing with fallback, quotas and quarantine, and the wallet's
// own refusals as the SDKs read them. Safety (SSRF, header smuggling,
// masking) is in proxy_safety_test.go; broken streams and POST /proxy in
// proxy_stream_test.go.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stripe/stripe-go/v82"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// ---------------------------------------------------------------------
// Fake upstreams and fixtures.

// seenRequest is one request a fake upstream received.
type seenRequest struct {
	Method     string
	RequestURI string
	Path       string
	RawQuery   string
	Host       string
	Header     http.Header
	Body       []byte
}

// auth is the Authorization header the upstream received.
func (s seenRequest) auth() string { return s.Header.Get("Authorization") }

// fakeUpstream is an httptest.Server that records every request it
// receives before handing it to its handler.
type fakeUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seenRequest
}

func newFakeUpstream(t *testing.T, handler http.HandlerFunc) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		u.mu.Lock()
		u.seen = append(u.seen, seenRequest{Method: r.Method, RequestURI: r.RequestURI, Path: r.URL.Path,
			RawQuery: r.URL.RawQuery, Host: r.Host, Header: r.Header.Clone(), Body: body})
		u.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

// requests returns a copy of what the upstream has received so far.
func (u *fakeUpstream) requests() []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seenRequest(nil), u.seen...)
}

// count is how many requests the upstream received with the given
// Authorization header ("" counts all).
func (u *fakeUpstream) count(auth string) int {
	n := 0
	for _, r := range u.requests() {
		if auth == "" || r.auth() == auth {
			n++
		}
	}
	return n
}

// proxyWorld is a wallet, one registered account, and the secrets it
// stored (to look for leaks).
type proxyWorld struct {
	t       *testing.T
	ts      *testServer
	acct    account
	secrets keySecrets
	tokens  []string
}

func newProxyWorld(t *testing.T, ts *testServer) *proxyWorld {
	t.Helper()
	w := &proxyWorld{t: t, ts: ts}
	w.acct = ts.register(fmt.Sprintf("proxy-%d@example.com", time.Now().UnixNano()))
	t.Cleanup(func() {
		if !t.Failed() {
			w.assertNoLeakInLogs()
		}
	})
	return w
}

// proxyServer starts a SQLite wallet whose services point at the given
// upstreams ("stripe", u.URL, ...).
func proxySQLite(t *testing.T, env ...string) *testServer {
	t.Helper()
	return newTestServer(t, filepath.Join(t.TempDir(), "wallet.db"), env...)
}

// addKey stores an upstream key and returns its id. quota < 0 leaves the
// metadata quota out.
func (w *proxyWorld) addKey(service, secret, tier string, quota int) string {
	w.t.Helper()
	w.secrets.add(secret)
	body := map[string]any{"key": secret, "service": service, "tier": tier}
	if quota >= 0 {
		body["metadata"] = map[string]any{"quota": quota}
	}
	r := w.ts.do("POST", "/keys", w.acct.Token, body).want(w.t, http.StatusCreated)
	return r.JSON()["id"].(string)
}

// token creates a wallet access token scoped to services and returns its
// id and secret.
func (w *proxyWorld) token(services ...string) (id, secret string) {
	w.t.Helper()
	r := w.ts.do("POST", "/tokens", w.acct.Token, map[string]any{"name": "sdk " + strings.Join(services, ","),
		"services": services}).want(w.t, http.StatusCreated)
	m := r.JSON()
	secret = m["token"].(string)
	if !strings.HasPrefix(secret, apiwallet.AccessTokenPrefix) {
		w.t.Fatalf("token %q lacks the %s prefix", secret, apiwallet.AccessTokenPrefix)
	}
	w.tokens = append(w.tokens, secret)
	return m["id"].(string), secret
}

// revoke revokes a wallet access token.
func (w *proxyWorld) revoke(id string) {
	w.t.Helper()
	r := w.ts.do("DELETE", "/tokens/"+id, w.acct.Token, nil)
	if r.Status != http.StatusNoContent && r.Status != http.StatusOK {
		w.t.Fatalf("revoke token: status %d: %s", r.Status, r.Body)
	}
}

// call sends a request through the wallet and checks the response for
// stored secrets.
func (w *proxyWorld) call(method, path, token string, body any, headers ...string) *response {
	w.t.Helper()
	r := w.ts.do(method, path, token, body, headers...)
	w.assertNoSecretIn(method+" "+path, r)
	return r
}

// assertNoSecretIn fails if a response shows a stored key's secret in a
// header or the body.
func (w *proxyWorld) assertNoSecretIn(where string, r *response) {
	w.t.Helper()
	w.secrets.assertNoSecret(w.t, where+" body", string(r.Body))
	for name, vs := range r.Header {
		w.secrets.assertNoSecret(w.t, where+" header "+name, strings.Join(vs, " "))
	}
}

// assertNoLeakInLogs fails if the wallet logged a stored key's secret or a
// wallet access token.
func (w *proxyWorld) assertNoLeakInLogs() {
	w.t.Helper()
	logs := w.ts.logs.String()
	w.secrets.assertNoSecret(w.t, "the wallet's logs", logs)
	for _, tok := range w.tokens {
		if strings.Contains(logs, tok) {
			w.t.Errorf("the wallet's logs contain a wallet access token")
		}
	}
}

// usageRow is one usage record as stored.
type usageRow struct {
	KeyID     string
	Status    int
	Failed    bool
	Attempts  int
	Attempted string
	Strategy  string
	Premium   bool
	Unreached bool
}

// waitUsage flushes the recorder until the workspace has at least n usage
// records, and returns them oldest first.
func (w *proxyWorld) waitUsage(n int) []usageRow {
	w.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := w.ts.recorder.Flush(ctx); err != nil {
			w.t.Logf("flush: %v", err)
		}
		rows, err := w.ts.db.SQL().QueryContext(ctx, `SELECT key_id, status, failed, attempts, attempted, strategy, premium, unreached
			FROM usage_records WHERE workspace_id = $1 ORDER BY created_at, id`, w.acct.WorkspaceID)
		if err != nil {
			w.t.Fatal(err)
		}
		var out []usageRow
		for rows.Next() {
			var u usageRow
			if err := rows.Scan(&u.KeyID, &u.Status, &u.Failed, &u.Attempts, &u.Attempted, &u.Strategy, &u.Premium, &u.Unreached); err != nil {
				w.t.Fatal(err)
			}
			out = append(out, u)
		}
		if err := rows.Close(); err != nil {
			w.t.Fatal(err)
		}
		if len(out) >= n {
			return out
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("usage records: have %d, want %d: %+v", len(out), n, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// auditActions lists the audit events of the world's workspace with the
// given action (exact, or a prefix ending in ".").
func (w *proxyWorld) auditEvents(action string) []*apiwallet.AuditEvent {
	w.t.Helper()
	evs, err := w.ts.db.FindAuditEvents(context.Background(), apiwallet.AuditFilter{
		WorkspaceID: w.acct.WorkspaceID, Action: action, Limit: 500})
	if err != nil {
		w.t.Fatal(err)
	}
	return evs
}

// ---------------------------------------------------------------------
// OpenAI fakes.

const chatCompletionJSON = `{"id":"chatcmpl-abc123","object":"chat.completion","created":1700000000,` +
	`"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the fake!",` +
	`"refusal":null},"logprobs":null,"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":5,"completion_tokens":4,"total_tokens":9}}`

func chatChunk(content string, finish string) string {
	fr := "null"
	if finish != "" {
		fr = `"` + finish + `"`
	}
	return `{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini",` +
		`"choices":[{"index":0,"delta":{"role":"assistant","content":` + fmt.Sprintf("%q", content) + `},` +
		`"logprobs":null,"finish_reason":` + fr + `}]}`
}

func chatParams() openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    "gpt-4.1-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello")},
	}
}

func openaiClient(ts *testServer, token string) *openai.Client {
	c := openai.NewClient(option.WithBaseURL(ts.URL+"/proxy/openai/v1/"), option.WithAPIKey(token),
		option.WithMaxRetries(0), option.WithRequestTimeout(20*time.Second))
	return &c
}

// stripeClient is stripe-go pointed at the wallet's root, as its README
// says: only the URL and the key change.
func stripeClient(ts *testServer, token string) *stripe.Client {
	backends := stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL:               stripe.String(ts.URL),
		HTTPClient:        &http.Client{Timeout: 20 * time.Second},
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
		MaxNetworkRetries: stripe.Int64(0),
	})
	return stripe.NewClient(token, stripe.WithBackends(backends))
}

// ---------------------------------------------------------------------
// 1. Official SDKs.

func TestProxyOpenAISDK(t *testing.T) {
	forEachProxyBackend(t, func(t *testing.T, open func(env ...string) *testServer) {
		const secret = "sk-proj-openaiFAKEsecret0000000000001"
		release := make(chan struct{})
		var upstreamDone, waitedTooLong atomic.Bool
		up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+secret {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"error":{"message":"bad key","type":"invalid_request_error"}}`)
				return
			}
			if r.URL.Path != "/v1/chat/completions" || r.Method != "POST" {
				http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
				return
			}
			body, _ := io.ReadAll(r.Body)
			if !bytes.Contains(body, []byte(`"stream":true`)) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, chatCompletionJSON)
				return
			}
			// Streaming: one chunk, then wait until the test has seen it
			// through the SDK, then the rest with pauses.
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-cache")
			fl := w.(http.Flusher)
			_, _ = fmt.Fprintf(w, "data: %s\n\n", chatChunk("Hel", ""))
			fl.Flush()
			select {
			case <-release:
			case <-time.After(10 * time.Second):
				waitedTooLong.Store(true)
			}
			for _, part := range []string{"lo", ", ", "world"} {
				time.Sleep(30 * time.Millisecond)
				_, _ = fmt.Fprintf(w, "data: %s\n\n", chatChunk(part, ""))
				fl.Flush()
			}
			_, _ = fmt.Fprintf(w, "data: %s\n\n", chatChunk("", "stop"))
			_, _ = io.WriteString(w, "data: [DONE]\n\n")
			fl.Flush()
			upstreamDone.Store(true)
		})
		ts := open("OPENAI_BASE_URL=" + up.URL)
		pw := newProxyWorld(t, ts)
		keyID := pw.addKey("openai", secret, "paid", -1)
		_, tok := pw.token("openai")
		client := openaiClient(ts, tok)
		ctx := context.Background()

		// A chat completion.
		var raw *http.Response
		cc, err := client.Chat.Completions.New(ctx, chatParams(), option.WithResponseInto(&raw))
		if err != nil {
			t.Fatalf("chat completion: %v", err)
		}
		if len(cc.Choices) != 1 || cc.Choices[0].Message.Content != "Hello from the fake!" || cc.ID != "chatcmpl-abc123" {
			t.Fatalf("chat completion = %+v", cc)
		}
		if got := raw.Header.Get("X-Wallet-Key-Id"); got != keyID {
			t.Errorf("X-Wallet-Key-Id = %q, want %q", got, keyID)
		}
		for _, h := range []string{"X-Wallet-Attempts", "X-Wallet-Strategy", "X-Wallet-Overhead-Ms"} {
			if raw.Header.Get(h) == "" {
				t.Errorf("response lacks %s", h)
			}
		}

		// A streaming chat completion: the first chunk reaches the SDK
		// while the upstream is still blocked.
		stream := client.Chat.Completions.NewStreaming(ctx, func() openai.ChatCompletionNewParams {
			p := chatParams()
			p.StreamOptions = openai.ChatCompletionStreamOptionsParam{}
			return p
		}())
		if !stream.Next() {
			close(release)
			t.Fatalf("no first chunk: %v", stream.Err())
		}
		first := stream.Current()
		if upstreamDone.Load() || waitedTooLong.Load() {
			t.Fatalf("the first chunk arrived only after the upstream finished (buffered stream)")
		}
		if len(first.Choices) == 0 || first.Choices[0].Delta.Content != "Hel" {
			t.Fatalf("first chunk = %+v", first)
		}
		close(release)
		var acc openai.ChatCompletionAccumulator
		acc.AddChunk(first)
		chunks := 1
		for stream.Next() {
			acc.AddChunk(stream.Current())
			chunks++
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("stream: %v", err)
		}
		if err := stream.Close(); err != nil {
			t.Fatal(err)
		}
		if chunks < 4 {
			t.Errorf("stream arrived in %d chunks, want several", chunks)
		}
		if got := acc.Choices[0].Message.Content; got != "Hello, world" {
			t.Errorf("streamed content = %q", got)
		}

		// What the upstream saw: the stored key, never the wallet token.
		reqs := up.requests()
		if len(reqs) != 2 {
			t.Fatalf("upstream saw %d requests, want 2", len(reqs))
		}
		for _, r := range reqs {
			assertNoWalletCredential(t, r, tok)
		}
		rows := pw.waitUsage(2)
		for _, u := range rows {
			if u.KeyID != keyID || u.Status != 200 || u.Failed || u.Attempts != 1 {
				t.Errorf("usage record %+v", u)
			}
		}
	})
}

func TestProxyStripeSDKAtRoot(t *testing.T) {
	forEachProxyBackend(t, func(t *testing.T, open func(env ...string) *testServer) {
		const secret = "sk_test_stripeFAKEsecret000000000001"
		up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Request-Id", "req_fake1")
			if r.Header.Get("Authorization") != "Bearer "+secret {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}`)
				return
			}
			switch {
			case r.Method == "POST" && r.URL.Path == "/v1/customers":
				_ = r.ParseForm()
				fmt.Fprintf(w, `{"id":"cus_fake123","object":"customer","email":%q,"livemode":false}`, r.PostForm.Get("email"))
			case r.Method == "POST" && r.URL.Path == "/v1/charges":
				_ = r.ParseForm()
				fmt.Fprintf(w, `{"id":"ch_fake1","object":"charge","amount":%s,"currency":%q,"paid":true,"status":"succeeded"}`,
					r.PostForm.Get("amount"), r.PostForm.Get("currency"))
			case r.Method == "GET" && r.URL.Path == "/v1/customers/cus_fake123":
				_, _ = io.WriteString(w, `{"id":"cus_fake123","object":"customer","email":"jenny@example.com"}`)
			default:
				w.WriteHeader(http.StatusNotFound)
				fmt.Fprintf(w, `{"error":{"type":"invalid_request_error","message":"Unrecognized request URL (%s: %s)"}}`, r.Method, r.URL.Path)
			}
		})
		ts := open("STRIPE_BASE_URL=" + up.URL)
		pw := newProxyWorld(t, ts)
		keyID := pw.addKey("stripe", secret, "paid", -1)
		_, tok := pw.token("stripe")
		sc := stripeClient(ts, tok)
		ctx := context.Background()

		cust, err := sc.V1Customers.Create(ctx, &stripe.CustomerCreateParams{Email: stripe.String("jenny@example.com")})
		if err != nil {
			t.Fatalf("create customer: %v", err)
		}
		if cust.ID != "cus_fake123" || cust.Email != "jenny@example.com" {
			t.Fatalf("customer = %+v", cust)
		}
		if cust.LastResponse == nil || cust.LastResponse.Header.Get("X-Wallet-Key-Id") != keyID {
			t.Errorf("the SDK's response lacks X-Wallet-Key-Id %s", keyID)
		}
		got, err := sc.V1Customers.Retrieve(ctx, "cus_fake123", nil)
		if err != nil || got.ID != "cus_fake123" {
			t.Fatalf("retrieve customer: %v %+v", err, got)
		}
		ch, err := sc.V1Charges.Create(ctx, &stripe.ChargeCreateParams{Amount: stripe.Int64(2000),
			Currency: stripe.String(string(stripe.CurrencyUSD)), Source: &stripe.PaymentSourceSourceParams{Token: stripe.String("tok_visa")}})
		if err != nil {
			t.Fatalf("create charge: %v", err)
		}
		if ch.ID != "ch_fake1" || ch.Amount != 2000 || !ch.Paid {
			t.Fatalf("charge = %+v", ch)
		}

		reqs := up.requests()
		if len(reqs) != 3 {
			t.Fatalf("upstream saw %d requests, want 3", len(reqs))
		}
		for _, r := range reqs {
			if r.auth() != "Bearer "+secret {
				t.Errorf("upstream got Authorization %q, want the stored key", r.auth())
			}
			assertNoWalletCredential(t, r, tok)
			if r.Header.Get("Stripe-Version") == "" {
				t.Errorf("the SDK's Stripe-Version header was not forwarded")
			}
		}
		if reqs[0].Header.Get("Idempotency-Key") == "" {
			t.Errorf("the SDK's Idempotency-Key was not forwarded")
		}
		pw.waitUsage(3)
	})
}

// assertNoWalletCredential fails if the upstream received the wallet
// token anywhere.
func assertNoWalletCredential(t *testing.T, r seenRequest, tok string) {
	t.Helper()
	if strings.Contains(r.RequestURI, tok) || bytes.Contains(r.Body, []byte(tok)) {
		t.Errorf("upstream received the wallet token in the URL or body")
	}
	for name, vs := range r.Header {
		if strings.Contains(strings.Join(vs, " "), tok) || strings.Contains(strings.Join(vs, " "), apiwallet.AccessTokenPrefix) {
			t.Errorf("upstream received the wallet token in header %s", name)
		}
	}
}

// forEachProxyBackend is forEachBackend for tests that start their fake
// upstreams first: open starts the wallet, with the environment pointing
// services at them, on a fresh SQLite or PostgreSQL database.
func forEachProxyBackend(t *testing.T, fn func(t *testing.T, open func(env ...string) *testServer)) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, func(env ...string) *testServer { return proxySQLite(t, env...) })
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, func(env ...string) *testServer { return newTestServer(t, testenv.PostgresURL(t), env...) })
	})
}

// ---------------------------------------------------------------------
// 2. Wallet refusals the SDKs can read.

func TestProxySDKRefusals(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		// Every key is refused: the wallet quarantines it.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":{"message":"Incorrect API key provided: `+r.Header.Get("Authorization")+`","type":"invalid_request_error","code":"invalid_api_key"}}`)
	})
	ts := proxySQLite(t, "OPENAI_BASE_URL="+up.URL, "STRIPE_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	ctx := context.Background()

	t.Run("revoked token", func(t *testing.T) {
		oid, otok := pw.token("openai")
		sid, stok := pw.token("stripe")
		pw.revoke(oid)
		pw.revoke(sid)

		_, err := openaiClient(ts, otok).Chat.Completions.New(ctx, chatParams())
		var oerr *openai.Error
		if !errors.As(err, &oerr) {
			t.Fatalf("openai-go error = %T %v, want *openai.Error", err, err)
		}
		if oerr.StatusCode != 401 || !strings.Contains(oerr.Message, "revoked") || oerr.Type == "" {
			t.Fatalf("openai-go sees status %d type %q message %q", oerr.StatusCode, oerr.Type, oerr.Message)
		}

		_, err = stripeClient(ts, stok).V1Customers.Create(ctx, &stripe.CustomerCreateParams{Email: stripe.String("a@example.com")})
		var serr *stripe.Error
		if !errors.As(err, &serr) {
			t.Fatalf("stripe-go error = %T %v, want *stripe.Error", err, err)
		}
		if serr.HTTPStatusCode != 401 || !strings.Contains(serr.Msg, "revoked") || serr.Type == "" {
			t.Fatalf("stripe-go sees status %d type %q message %q", serr.HTTPStatusCode, serr.Type, serr.Msg)
		}
		if n := up.count(""); n != 0 {
			t.Fatalf("a revoked token reached the upstream %d times", n)
		}
	})

	t.Run("no usable key", func(t *testing.T) {
		_, otok := pw.token("openai")
		_, stok := pw.token("stripe")

		// stripe: the workspace holds no stripe key at all.
		_, err := stripeClient(ts, stok).V1Customers.Create(ctx, &stripe.CustomerCreateParams{Email: stripe.String("a@example.com")})
		var serr *stripe.Error
		if !errors.As(err, &serr) {
			t.Fatalf("stripe-go error = %T %v, want *stripe.Error", err, err)
		}
		if serr.HTTPStatusCode != 503 || !strings.Contains(serr.Msg, "stripe key") {
			t.Fatalf("stripe-go sees status %d message %q", serr.HTTPStatusCode, serr.Msg)
		}

		// openai: the only key is refused upstream (the SDK sees the
		// upstream's 401, the key masked), then quarantined: the next call
		// is the wallet's 503.
		keyID := pw.addKey("openai", "sk-proj-refusedFAKEkey0000000000000002", "paid", -1)
		_, err = openaiClient(ts, otok).Chat.Completions.New(ctx, chatParams())
		var oerr *openai.Error
		if !errors.As(err, &oerr) || oerr.StatusCode != 401 {
			t.Fatalf("first call: %v, want the upstream's 401", err)
		}
		pw.secrets.assertNoSecret(t, "upstream 401 message as the SDK reads it", oerr.Message)
		if !strings.Contains(oerr.Message, "Incorrect API key provided") {
			t.Errorf("upstream 401 message = %q", oerr.Message)
		}
		var raw *http.Response
		_, err = openaiClient(ts, otok).Chat.Completions.New(ctx, chatParams(), option.WithResponseInto(&raw))
		if !errors.As(err, &oerr) {
			t.Fatalf("second call: %T %v, want *openai.Error", err, err)
		}
		if oerr.StatusCode != 503 || !strings.Contains(oerr.Message, "no usable openai key") {
			t.Fatalf("openai-go sees status %d message %q", oerr.StatusCode, oerr.Message)
		}
		if !strings.Contains(oerr.RawJSON(), `"no_usable_key"`) {
			t.Errorf("error member = %s", oerr.RawJSON())
		}
		if n := up.count(""); n != 1 {
			t.Errorf("upstream saw %d requests, want 1 (the quarantined key is not tried again)", n)
		}
		if len(pw.auditEvents("key.quarantine")) != 1 {
			t.Errorf("want one key.quarantine audit event for %s", keyID)
		}
	})
}

// TestProxySDKRateLimitRefusal: the wallet's 429 reads as a rate-limit
// error in both SDKs, with the status, the message and Retry-After.
func TestProxySDKRateLimitRefusal(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(r.URL.Path, "/v1/chat/") {
			_, _ = io.WriteString(w, chatCompletionJSON)
			return
		}
		_, _ = io.WriteString(w, `{"id":"cus_rl","object":"customer"}`)
	})
	ts := proxySQLite(t, "OPENAI_BASE_URL="+up.URL, "STRIPE_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	pw.addKey("openai", "sk-proj-rateLIMITfake000000000000000o", "paid", -1)
	pw.addKey("stripe", "sk_test_rateLIMITfake00000000000000s", "paid", -1)
	limited := func(service string) string {
		r := pw.ts.do("POST", "/tokens", pw.acct.Token, map[string]any{"name": "limited " + service,
			"services": []string{service}, "rate_limit_per_minute": 1}).want(t, http.StatusCreated)
		tok := r.JSON()["token"].(string)
		pw.tokens = append(pw.tokens, tok)
		return tok
	}
	ctx := context.Background()

	oc := openaiClient(ts, limited("openai"))
	if _, err := oc.Chat.Completions.New(ctx, chatParams()); err != nil {
		t.Fatalf("first openai call: %v", err)
	}
	var raw *http.Response
	_, err := oc.Chat.Completions.New(ctx, chatParams(), option.WithResponseInto(&raw))
	var oerr *openai.Error
	if !errors.As(err, &oerr) {
		t.Fatalf("openai-go error = %T %v, want *openai.Error", err, err)
	}
	if oerr.StatusCode != 429 || oerr.Type != "rate_limit_error" || !strings.Contains(oerr.Message, "per minute") {
		t.Fatalf("openai-go sees status %d type %q message %q", oerr.StatusCode, oerr.Type, oerr.Message)
	}
	if oerr.Response.Header.Get("Retry-After") == "" || oerr.Response.Header.Get("RateLimit-Limit") == "" {
		t.Errorf("429 headers: %v", oerr.Response.Header)
	}

	sc := stripeClient(ts, limited("stripe"))
	if _, err := sc.V1Customers.Create(ctx, &stripe.CustomerCreateParams{}); err != nil {
		t.Fatalf("first stripe call: %v", err)
	}
	_, err = sc.V1Customers.Create(ctx, &stripe.CustomerCreateParams{})
	var serr *stripe.Error
	if !errors.As(err, &serr) {
		t.Fatalf("stripe-go error = %T %v, want *stripe.Error", err, err)
	}
	if serr.HTTPStatusCode != 429 || !strings.Contains(serr.Msg, "per minute") || serr.Code != "rate_limit_exceeded" {
		t.Fatalf("stripe-go sees status %d code %q message %q", serr.HTTPStatusCode, serr.Code, serr.Msg)
	}
	if n := up.count(""); n != 2 {
		t.Errorf("upstream saw %d requests, want 2 (refusals never reach it)", n)
	}
}

// ---------------------------------------------------------------------
// 3. Fallback.

func TestProxyFallback(t *testing.T) {
	forEachProxyBackend(t, func(t *testing.T, open func(env ...string) *testServer) {
		const secretA, secretB = "sk-proj-freeAAAAfake000000000000000a", "sk-proj-paidBBBBfake000000000000000b"
		up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			switch r.Header.Get("Authorization") {
			case "Bearer " + secretA:
				w.Header().Set("Retry-After", "30")
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = io.WriteString(w, `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`)
			case "Bearer " + secretB:
				_, _ = io.WriteString(w, chatCompletionJSON)
			default:
				w.WriteHeader(http.StatusUnauthorized)
			}
		})
		ts := open("OPENAI_BASE_URL=" + up.URL)
		pw := newProxyWorld(t, ts)
		a := pw.addKey("openai", secretA, "free", -1)
		b := pw.addKey("openai", secretB, "paid", -1)
		_, tok := pw.token("openai")
		req := map[string]any{"model": "gpt-4o-mini", "messages": []map[string]string{{"role": "user", "content": "hi"}}}

		r := pw.call("POST", "/proxy/openai/v1/chat/completions", tok, req).want(t, 200)
		if r.Header.Get("X-Wallet-Key-Id") != b || r.Header.Get("X-Wallet-Attempts") != "2" {
			t.Fatalf("first call: key %q attempts %q, want %s and 2", r.Header.Get("X-Wallet-Key-Id"),
				r.Header.Get("X-Wallet-Attempts"), b)
		}
		if r.Header.Get("X-Wallet-Strategy") != "cost" {
			t.Errorf("X-Wallet-Strategy = %q", r.Header.Get("X-Wallet-Strategy"))
		}
		if !bytes.Contains(r.Body, []byte("chatcmpl-abc123")) {
			t.Fatalf("body = %s", r.Body)
		}
		// A is cooling down for its Retry-After: the next call goes
		// straight to B.
		r = pw.call("POST", "/proxy/openai/v1/chat/completions", tok, req).want(t, 200)
		if r.Header.Get("X-Wallet-Key-Id") != b || r.Header.Get("X-Wallet-Attempts") != "1" {
			t.Fatalf("second call: key %q attempts %q, want %s and 1", r.Header.Get("X-Wallet-Key-Id"),
				r.Header.Get("X-Wallet-Attempts"), b)
		}
		if n := up.count("Bearer " + secretA); n != 1 {
			t.Errorf("upstream saw key A %d times, want 1", n)
		}
		if n := up.count("Bearer " + secretB); n != 2 {
			t.Errorf("upstream saw key B %d times, want 2", n)
		}
		// Both requests carried the same body: the retry replayed it.
		for _, s := range up.requests() {
			if !bytes.Contains(s.Body, []byte(`"gpt-4o-mini"`)) {
				t.Errorf("upstream got body %q", s.Body)
			}
		}

		rows := pw.waitUsage(2)
		var found bool
		for _, u := range rows {
			if u.Attempts == 2 {
				found = true
				if want := a + ":429," + b + ":200"; u.Attempted != want || u.KeyID != b || u.Status != 200 || u.Failed {
					t.Errorf("usage record = %+v, want attempted %q", u, want)
				}
			}
		}
		if !found {
			t.Fatalf("no usage record with 2 attempts: %+v", rows)
		}
	})
}

// ---------------------------------------------------------------------
// 4. Quota skip.

func TestProxyQuotaSkip(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
	})
	ts := proxySQLite(t, "OPENAI_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	const freeSecret, paidSecret = "sk-proj-freeQUOTAfake00000000000000f", "sk-proj-paidQUOTAfake00000000000000p"
	paid := pw.addKey("openai", paidSecret, "paid", -1)
	free := pw.addKey("openai", freeSecret, "free", 3)
	_, tok := pw.token("openai")
	for i := 1; i <= 5; i++ {
		r := pw.call("GET", "/proxy/openai/v1/models", tok, nil).want(t, 200)
		want := free
		if i > 3 {
			want = paid
		}
		if got := r.Header.Get("X-Wallet-Key-Id"); got != want {
			t.Fatalf("call %d went to %s, want %s", i, got, want)
		}
		if r.Header.Get("X-Wallet-Attempts") != "1" {
			t.Errorf("call %d: %s attempts", i, r.Header.Get("X-Wallet-Attempts"))
		}
	}
	if n := up.count("Bearer " + freeSecret); n != 3 {
		t.Errorf("upstream saw the free key %d times, want 3", n)
	}
	if n := up.count("Bearer " + paidSecret); n != 2 {
		t.Errorf("upstream saw the paid key %d times, want 2", n)
	}
}

// ---------------------------------------------------------------------
// 5. Quarantine and running out of keys.

func TestProxyQuarantine(t *testing.T) {
	const revoked, good = "sk-proj-revokedFAKE0000000000000000r", "sk-proj-goodFAKE000000000000000000g"
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") == "Bearer "+good {
			_, _ = io.WriteString(w, chatCompletionJSON)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":{"message":"Incorrect API key provided: `+r.Header.Get("Authorization")+`"}}`)
	})
	ts := proxySQLite(t, "OPENAI_BASE_URL="+up.URL)
	pw := newProxyWorld(t, ts)
	a := pw.addKey("openai", revoked, "free", -1)
	b := pw.addKey("openai", good, "paid", -1)
	_, tok := pw.token("openai")
	body := map[string]any{"model": "gpt-4o-mini"}

	// POST: 401 is retried with the next key whatever the method.
	r := pw.call("POST", "/proxy/openai/v1/chat/completions", tok, body).want(t, 200)
	if r.Header.Get("X-Wallet-Key-Id") != b || r.Header.Get("X-Wallet-Attempts") != "2" {
		t.Fatalf("first call: key %s attempts %s", r.Header.Get("X-Wallet-Key-Id"), r.Header.Get("X-Wallet-Attempts"))
	}
	r = pw.call("POST", "/proxy/openai/v1/chat/completions", tok, body).want(t, 200)
	if r.Header.Get("X-Wallet-Key-Id") != b || r.Header.Get("X-Wallet-Attempts") != "1" {
		t.Fatalf("second call: key %s attempts %s", r.Header.Get("X-Wallet-Key-Id"), r.Header.Get("X-Wallet-Attempts"))
	}
	if n := up.count("Bearer " + revoked); n != 1 {
		t.Errorf("the quarantined key was tried %d times, want 1", n)
	}
	evs := pw.auditEvents("key.quarantine")
	if len(evs) != 1 || evs[0].TargetID != a {
		t.Fatalf("key.quarantine audit events = %+v, want one for %s", evs, a)
	}
	if evs[0].Details["reason"] != "revoked" || evs[0].Details["status"] != "401" {
		t.Errorf("audit details = %v", evs[0].Details)
	}
	pw.secrets.assertNoSecret(t, "audit details", fmt.Sprint(evs[0].Details))
	rows := pw.waitUsage(2)
	if want := a + ":401," + b + ":200"; rows[0].Attempted != want && rows[1].Attempted != want {
		t.Errorf("usage records %+v, want one attempted %q", rows, want)
	}
}

func TestProxyEveryKeyFails(t *testing.T) {
	t.Run("network errors", func(t *testing.T) {
		// The upstream drops every connection without answering.
		up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		})
		ts := proxySQLite(t, "OPENAI_BASE_URL="+up.URL)
		pw := newProxyWorld(t, ts)
		a := pw.addKey("openai", "sk-proj-netAAAAfake00000000000000000a", "free", -1)
		b := pw.addKey("openai", "sk-proj-netBBBBfake00000000000000000b", "paid", -1)
		_, tok := pw.token("openai")
		r := pw.call("GET", "/proxy/openai/v1/models", tok, nil).want(t, http.StatusBadGateway)
		m := r.JSON()
		tried, _ := m["tried"].([]any)
		if len(tried) != 2 {
			t.Fatalf("tried = %v, want both keys; body %s", m["tried"], r.Body)
		}
		for i, want := range []string{a, b} {
			e := tried[i].(map[string]any)
			if e["keyId"] != want || e["reason"] != "network_error" {
				t.Errorf("tried[%d] = %v, want %s network_error", i, e, want)
			}
		}
		if em, _ := m["error"].(map[string]any); em == nil || em["code"] != "no_usable_key" {
			t.Errorf("no OpenAI error member: %s", r.Body)
		}
		rows := pw.waitUsage(1)
		if !rows[0].Failed || rows[0].Attempts != 2 {
			t.Errorf("usage record = %+v", rows[0])
		}
	})

	t.Run("all quarantined", func(t *testing.T) {
		up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"error":{"message":"key `+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")+` is suspended"}}`)
		})
		ts := proxySQLite(t, "STRIPE_BASE_URL="+up.URL)
		pw := newProxyWorld(t, ts)
		a := pw.addKey("stripe", "sk_test_suspendedAAAAfake0000000000a", "free", -1)
		b := pw.addKey("stripe", "sk_test_suspendedBBBBfake0000000000b", "paid", -1)
		_, tok := pw.token("stripe")
		// Both keys refused: the last upstream answer passes through,
		// the key masked.
		r := pw.call("GET", "/proxy/stripe/v1/balance", tok, nil)
		if r.Status != http.StatusForbidden || r.Header.Get("X-Wallet-Attempts") != "2" || !bytes.Contains(r.Body, []byte("suspended")) {
			t.Fatalf("first call: attempts %s body %s", r.Header.Get("X-Wallet-Attempts"), r.Body)
		}
		// Now every key is quarantined: the wallet's 503 names them and
		// why.
		r = pw.call("GET", "/proxy/stripe/v1/balance", tok, nil).want(t, http.StatusServiceUnavailable)
		m := r.JSON()
		skipped, _ := m["skipped"].([]any)
		ids := map[string]string{}
		for _, s := range skipped {
			e := s.(map[string]any)
			ids[e["id"].(string)], _ = e["reason"].(string)
		}
		if ids[a] != "expired" || ids[b] != "expired" {
			t.Fatalf("skipped = %v, want %s and %s expired; body %s", skipped, a, b, r.Body)
		}
		if em, _ := m["error"].(map[string]any); em == nil || em["message"] == "" {
			t.Errorf("no Stripe error member: %s", r.Body)
		}
		if n := up.count(""); n != 2 {
			t.Errorf("upstream saw %d requests, want 2", n)
		}
		if n := len(pw.auditEvents("key.quarantine")); n != 2 {
			t.Errorf("%d key.quarantine events, want 2", n)
		}
	})
}

// ---------------------------------------------------------------------
// Fallback key from the environment.

func TestProxyOperatorFallbackKey(t *testing.T) {
	const userKey, opKey = "sk_test_userKEYfake00000000000000u", "sk_test_operatorFALLBACK000000000o"
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") == "Bearer "+opKey {
			_, _ = io.WriteString(w, `{"object":"balance"}`)
			return
		}
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":{"message":"slow down"}}`)
	})
	ts := proxySQLite(t, "STRIPE_BASE_URL="+up.URL, "STRIPE_FALLBACK_KEY="+opKey)
	pw := newProxyWorld(t, ts)
	pw.secrets.add(opKey)
	pw.addKey("stripe", userKey, "paid", -1)
	_, tok := pw.token("stripe")
	r := pw.call("GET", "/proxy/stripe/v1/balance", tok, nil).want(t, 200)
	if r.Header.Get("X-Wallet-Key-Id") != "fallback" || r.Header.Get("X-Wallet-Attempts") != "2" {
		t.Fatalf("key %s attempts %s, want fallback after the user's key", r.Header.Get("X-Wallet-Key-Id"),
			r.Header.Get("X-Wallet-Attempts"))
	}
}
