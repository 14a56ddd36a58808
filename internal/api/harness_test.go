package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet/internal/alerts"
	"github.com/apikeywallet/apiwallet/internal/api"
	"github.com/apikeywallet/apiwallet/internal/config"
	"github.com/apikeywallet/apiwallet/internal/metering"
	"github.com/apikeywallet/apiwallet/internal/proxy"
	"github.com/apikeywallet/apiwallet/internal/server"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/testenv"
	"github.com/apikeywallet/apiwallet/internal/vault"
	"github.com/apikeywallet/apiwallet/internal/wallet"
)

// testServer is the wallet's HTTP API on a real database, served by the
// server `apiwallet serve` uses.
type testServer struct {
	*liveServer
	t   *testing.T
	db  *sqldb.DB
	cfg *config.Config
	// keys is the vault behind /keys, for tests that reveal secrets.
	keys     *vault.Service
	proxy    *proxy.Proxy
	recorder *metering.Recorder
	alerts   *alerts.Service
	// logs holds everything the server logged, for secret-leak checks.
	logs *testenv.LogBuffer
	// api is the server's route table and handlers.
	api *api.Server
}

// forEachBackend runs fn against a fresh SQLite wallet and a fresh
// PostgreSQL wallet (the latter skipped locally without a server, failed
// under CI), each configured by env on top of testConfig's.
func forEachBackend(t *testing.T, fn func(t *testing.T, ts *testServer), env ...string) {
	t.Run("sqlite", func(t *testing.T) { fn(t, newTestServer(t, filepath.Join(t.TempDir(), "wallet.db"), env...)) })
	t.Run("postgres", func(t *testing.T) { fn(t, newTestServer(t, testenv.PostgresURL(t), env...)) })
}

func testConfig(t *testing.T, env ...string) *config.Config {
	t.Helper()
	base := []string{
		"JWT_SECRET=test-secret-test-secret-test-secret-0123",
		"ENCRYPTION_KEY=" + strings.Repeat("ab", 32),
		"ENABLE_METRICS=true",
		"APIWALLET_DATA_DIR=" + t.TempDir(),
	}
	cfg, err := config.Load(append(base, env...))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newTestServer(t *testing.T, dsn string, env ...string) *testServer {
	t.Helper()
	cfg := testConfig(t, env...)
	logs := &testenv.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, db := openWallet(t, dsn, cfg, log)
	ts := &testServer{liveServer: startLive(t, cfg, log, w.Handler), t: t, db: db, cfg: cfg, keys: w.Keys, logs: logs,
		proxy: w.Proxy, recorder: w.Recorder, alerts: w.Alerts, api: w.Handler.(*api.Server)}
	t.Cleanup(func() {
		ts.Close()
		_ = w.Close(context.Background())
	})
	return ts
}

// openWallet opens and migrates the database at dsn and builds the wallet
// on it as `apiwallet serve` does, with the short usage flush and alert
// backoff the tests wait on. Closing the database is left to tb's cleanup;
// closing the wallet (which must come first) to the caller's.
func openWallet(tb testing.TB, dsn string, cfg *config.Config, log *slog.Logger) (*wallet.Wallet, *sqldb.DB) {
	tb.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, dsn, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, log); err != nil {
		tb.Fatal(err)
	}
	w, err := wallet.New(ctx, wallet.Deps{Config: cfg, DB: db, Log: log,
		Metering: metering.Options{FlushInterval: 20 * time.Millisecond},
		Alerts:   alerts.Options{Backoff: 20 * time.Millisecond}})
	if err != nil {
		tb.Fatal(err)
	}
	db.OnCommit = w.Proxy.Epoch().Bump
	return w, db
}

// response is a decoded HTTP response.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic map.
func (r *response) JSON() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.Body, &m)
	return m
}

// do sends a request. body may be nil, a string (sent raw) or a value
// (sent as JSON). headers alternate name, value.
func (ts *testServer) do(method, path, token string, body any, headers ...string) *response {
	ts.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			ts.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := ts.Client().Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return &response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// want fails unless r has the given status; problem responses must be
// problem+json.
func (r *response) want(t *testing.T, status int) *response {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body: %s", r.Status, status, r.Body)
	}
	if status >= 400 && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("error response Content-Type = %q, want application/problem+json", r.Header.Get("Content-Type"))
	}
	return r
}

// account is a registered test user.
type account struct {
	ID          string
	Email       string
	Token       string
	WorkspaceID string
}

// register creates an account and returns its token and ids.
func (ts *testServer) register(email string) account {
	ts.t.Helper()
	r := ts.do("POST", "/auth/register", "", map[string]string{
		"email": email, "password": "correct horse battery", "name": "User " + email})
	r.want(ts.t, http.StatusCreated)
	m := r.JSON()
	u := m["user"].(map[string]any)
	return account{ID: u["id"].(string), Email: email, Token: m["token"].(string),
		WorkspaceID: u["personalWorkspaceId"].(string)}
}

// liveServer serves a handler on a loopback port with the server
// `apiwallet serve` uses, so every API test runs over it.
type liveServer struct {
	URL      string
	Listener net.Listener
	srv      *server.Server
	client   *http.Client
	errc     chan error
	once     sync.Once
}

func startLive(tb testing.TB, cfg *config.Config, log *slog.Logger, h http.Handler) *liveServer {
	tb.Helper()
	srv, err := server.New(cfg, h, log)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &liveServer{URL: "http://" + ln.Addr().String(), Listener: ln, srv: srv,
		client: &http.Client{Transport: &contractTransport{t: tb, next: &http.Transport{}}}, errc: make(chan error, 1)}
	go func() { s.errc <- s.srv.Serve(ln) }()
	return s
}

// Client returns a client for the server, as httptest.Server's does.
func (s *liveServer) Client() *http.Client { return s.client }

// Close waits for the requests in flight and stops the server. Like
// httptest.Server's, it may be called more than once.
func (s *liveServer) Close() {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			_ = s.srv.Close()
		}
		<-s.errc
		s.client.CloseIdleConnections()
	})
}
