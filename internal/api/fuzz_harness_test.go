package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet/internal/config"
	"github.com/apikeywallet/apiwallet/internal/metering"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// The fuzz targets that need the whole wallet share this harness: a
// SQLite wallet on a loopback port, served by the server `apiwallet serve`
// uses, with one account, one stored Stripe key, one access token and an
// upstream whose answer each fuzz input chooses. It is built once per
// fuzz process (testing.F, not testing.T, hence not newTestServer) and
// needs no database server, so the seed corpora run everywhere.

const (
	fuzzSecret        = "sk_test_fuzz_0123456789abcdef"
	fuzzWebhookSecret = "whsec_fuzz_0123456789"
	fuzzKeyLabel      = `=HYPERLINK("http://evil.example","x")`
	// fuzzFallback is the operator's OpenAI key: the calls that let the
	// upstream answer anything go through it, since a key of the
	// workspace would be quarantined or cooled down by a 401 or a 5xx.
	fuzzFallback = "sk-fuzz-fallback-abcdefghijklmnop"
)

// upstreamAnswer is what the fake upstream sends for the next call.
type upstreamAnswer struct {
	status int
	header http.Header
	body   []byte
}

type fuzzWorld struct {
	tb      testing.TB
	url     string
	client  *http.Client
	db      *sqldb.DB
	rec     *metering.Recorder
	logs    *testenv.LogBuffer
	jwt     string // the account's login token
	token   string // an access token scoped to stripe
	aiToken string // an access token scoped to openai
	userID  string
	ws      string
	keyID   string
	tokenID string

	mu       sync.Mutex
	answer   upstreamAnswer
	seenPath []string // paths the upstream received
}

func newFuzzWorld(f *testing.F, env ...string) *fuzzWorld {
	f.Helper()
	w := &fuzzWorld{tb: f, answer: upstreamAnswer{status: 200, body: []byte(`{"ok":true}`)}}
	up := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.mu.Lock()
		a := w.answer
		w.seenPath = append(w.seenPath, r.URL.EscapedPath())
		w.mu.Unlock()
		for k, vv := range a.header {
			rw.Header()[k] = vv
		}
		rw.WriteHeader(a.status)
		_, _ = rw.Write(a.body)
	}))
	f.Cleanup(up.Close)

	ctx := context.Background()
	dir := f.TempDir()
	base := []string{
		"JWT_SECRET=fuzz-secret-fuzz-secret-fuzz-secret-0123",
		"ENCRYPTION_KEY=" + strings.Repeat("cd", 32),
		"APIWALLET_DATA_DIR=" + dir,
		"STRIPE_BASE_URL=" + up.URL + "/base",
		"OPENAI_BASE_URL=" + up.URL + "/base",
		"STRIPE_WEBHOOK_SECRET=" + fuzzWebhookSecret,
		"OPENAI_FALLBACK_KEY=" + fuzzFallback,
		// A fuzz run makes far more calls than the free plan allows in a
		// month or its rate in a minute; past them every call would be the
		// same refusal.
		"DEFAULT_FREE_QUOTA=1099511627776",
		"MAX_REQUESTS_PER_MINUTE=1073741824",
	}
	cfg, err := config.Load(append(base, env...))
	if err != nil {
		f.Fatal(err)
	}
	w.logs = &testenv.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	wal, db := openWallet(f, filepath.Join(dir, "wallet.db"), cfg, log)
	live := startLive(f, cfg, log, wal.Handler)
	// Fuzz inputs are meant to stray from the API's contract, so this
	// client does not check exchanges against the OpenAPI document.
	live.client = &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	w.url, w.client, w.db, w.rec = live.URL, live.client, db, wal.Recorder
	f.Cleanup(func() {
		live.Close()
		_ = wal.Close(context.Background())
	})

	r := w.mustDo("POST", "/auth/register", "", `{"email":"fuzz@example.com","password":"correct horse battery","name":"Fuzz"}`, 201)
	var reg struct {
		Token string
		User  struct{ ID, PersonalWorkspaceID string }
	}
	_ = json.Unmarshal(r.Body, &reg)
	w.jwt, w.ws, w.userID = reg.Token, reg.User.PersonalWorkspaceID, reg.User.ID
	r = w.mustDo("POST", "/keys", w.jwt, fmt.Sprintf(`{"key":%q,"service":"stripe","tier":"paid","label":%q}`, fuzzSecret, fuzzKeyLabel), 201)
	w.keyID = jsonField(r.Body, "id")
	r = w.mustDo("POST", "/tokens", w.jwt, `{"name":"fuzz","services":["stripe"]}`, 201)
	w.token, w.tokenID = jsonField(r.Body, "token"), jsonField(r.Body, "id")
	r = w.mustDo("POST", "/tokens", w.jwt, `{"name":"fuzz-ai","services":["openai"]}`, 201)
	w.aiToken = jsonField(r.Body, "token")
	// One proxied call, so that /usage has a row to export.
	w.mustDo("GET", "/proxy/stripe/v1/balance", w.token, "", 200)
	if err := w.rec.Flush(ctx); err != nil {
		f.Fatal(err)
	}
	return w
}

func jsonField(b []byte, name string) string {
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	s, _ := m[name].(string)
	return s
}

type fuzzResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends a request; a transport error is returned (the fuzz target
// decides whether it is a failure).
func (w *fuzzWorld) do(method, path, bearer string, body []byte, headers ...string) (*fuzzResponse, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, w.url+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := w.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	return &fuzzResponse{Status: res.StatusCode, Header: res.Header, Body: b}, nil
}

func (w *fuzzWorld) mustDo(method, path, bearer, body string, status int) *fuzzResponse {
	w.tb.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	r, err := w.do(method, path, bearer, b)
	if err != nil {
		w.tb.Fatalf("%s %s: %v", method, path, err)
	}
	if r.Status != status {
		w.tb.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, status, r.Body)
	}
	return r
}

// checkAnswer is what every answer of the wallet must be, whatever the
// input: never a 5xx of its own (502/503/504 relayed or refused by the
// proxy are named by the caller), a problem+json body for every error,
// and no stored secret anywhere in it.
func (w *fuzzWorld) checkAnswer(t *testing.T, what string, r *fuzzResponse, allow5xx ...int) {
	t.Helper()
	if r.Status >= 500 && !containsInt(allow5xx, r.Status) {
		t.Fatalf("%s: status %d: %s", what, r.Status, r.Body)
	}
	if r.Status >= 400 {
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") &&
			!strings.HasPrefix(ct, "application/json") {
			t.Fatalf("%s: error %d with Content-Type %q", what, r.Status, ct)
		}
		var p struct{ Status int }
		if err := json.Unmarshal(r.Body, &p); err != nil {
			t.Fatalf("%s: error %d body is not JSON: %q", what, r.Status, r.Body)
		}
	}
	w.checkNoSecret(t, what, r)
}

func (w *fuzzWorld) checkNoSecret(t *testing.T, what string, r *fuzzResponse) {
	t.Helper()
	for _, sec := range []string{fuzzSecret, fuzzFallback} {
		if bytes.Contains(r.Body, []byte(sec)) {
			t.Fatalf("%s: a key is in the body: %q", what, r.Body)
		}
		for k, vv := range r.Header {
			for _, v := range vv {
				if strings.Contains(v, sec) {
					t.Fatalf("%s: a key is in header %s: %q", what, k, v)
				}
			}
		}
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// state is what the account can see of its workspace: keys, tokens,
// workspaces, members, invitations, alert and billing settings, the
// catalog and the plans. Bad input must leave it unchanged.
func (w *fuzzWorld) state(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, p := range []string{"/keys", "/tokens", "/workspaces", "/workspaces/" + w.ws + "/members",
		"/workspaces/" + w.ws + "/invitations", "/alerts/settings", "/billing/plan", "/services", "/plans"} {
		r, err := w.do("GET", p, w.jwt, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		fmt.Fprintf(&b, "%s %d %s\n", p, r.Status, stripVolatile(r.Body))
	}
	return b.String()
}

// stripVolatile drops what changes by itself between two reads: the time
// a key or token was last used and the month's call counts, which the
// proxy and the usage recorder update in the background after a call.
var volatile = map[string]bool{"usedCalls": true, "premiumCalls": true, "remainingCalls": true,
	"projected": true, "overageCalls": true, "overage": true, "overageMicros": true}

func stripVolatile(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	var walk func(any) any
	walk = func(x any) any {
		switch x := x.(type) {
		case map[string]any:
			for k, e := range x {
				if strings.HasPrefix(k, "lastUsed") || volatile[k] {
					delete(x, k)
					continue
				}
				x[k] = walk(e)
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		}
		return x
	}
	out, _ := json.Marshal(walk(v))
	return string(out)
}
