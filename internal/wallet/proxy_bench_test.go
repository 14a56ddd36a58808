package wallet

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apikeywallet/apiwallet/internal/config"
	"github.com/apikeywallet/apiwallet/internal/sqldb"
)

// answerTransport answers every upstream call at once from memory, so
// that the benchmark measures the wallet's own work per call.
type answerTransport struct{}

func (answerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(`{"object":"list","data":[]}`)),
		ContentLength: 27, Request: r}, nil
}

// BenchmarkProxiedCall is one proxied call through the wallet's handler,
// metrics and metering on: its allocations are the hot path's.
func BenchmarkProxiedCall(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	cfg, err := config.Load([]string{"JWT_SECRET=bench-secret-bench-secret-0123456789",
		"ENCRYPTION_KEY=" + strings.Repeat("ef", 32), "ENABLE_METRICS=true", "APIWALLET_DATA_DIR=" + dir,
		"MAX_REQUESTS_PER_MINUTE=1000000000", "DEFAULT_FREE_QUOTA=1000000000"})
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	db, err := sqldb.Open(ctx, filepath.Join(dir, "wallet.db"), dir)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx, log); err != nil {
		b.Fatal(err)
	}
	w, err := New(ctx, Deps{Config: cfg, DB: db, Log: log, Transport: answerTransport{}})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close(ctx)
	db.OnCommit = w.Proxy.Epoch().Bump
	do := func(method, path, token, body string) map[string]any {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		w.Handler.ServeHTTP(rec, req)
		if rec.Code >= 300 {
			b.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
		}
		var m map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		return m
	}
	login := do("POST", "/auth/register", "", `{"email":"bench@example.com","password":"correct horse battery","name":"B"}`)["token"].(string)
	do("POST", "/keys", login, `{"key":"sk-proj-benchFAKE000000000000000000001","service":"openai","tier":"paid"}`)
	tok := do("POST", "/tokens", login, `{"name":"bench","services":["openai"]}`)["token"].(string)
	req := httptest.NewRequest("GET", "/proxy/openai/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	// Warm the caches.
	for range 10 {
		w.Handler.ServeHTTP(httptest.NewRecorder(), req)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		w.Handler.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
