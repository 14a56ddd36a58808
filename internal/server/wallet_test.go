package server

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apikeywallet/apiwallet/internal/sqldb"
	"github.com/apikeywallet/apiwallet/internal/wallet"
)

// startWallet serves the real wallet (SQLite in a temporary directory)
// with the server `apiwallet serve` builds.
func startWallet(t *testing.T, env ...string) *running {
	t.Helper()
	env = append([]string{
		"JWT_SECRET=test-secret-test-secret-test-secret-0123",
		"ENCRYPTION_KEY=" + strings.Repeat("ab", 32),
	}, env...)
	cfg := loadConfig(t, env...)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	db, err := sqldb.Open(ctx, filepath.Join(t.TempDir(), "wallet.db"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, log); err != nil {
		t.Fatal(err)
	}
	w, err := wallet.New(ctx, wallet.Deps{Config: cfg, DB: db, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return startConfig(t, cfg, w.Handler, nil)
}

// TestWalletFraming: the refusals net/http makes before any handler runs
// hold in front of the wallet's own routes.
func TestWalletFraming(t *testing.T) {
	rs := startWallet(t)
	for _, tc := range []struct {
		name, raw string
		want      int
	}{
		{"health", "GET /monitoring/health HTTP/1.1\r\nHost: wallet.example\r\n\r\n", 200},
		{"invalid Host", "GET /monitoring/health HTTP/1.1\r\nHost: wal let\r\n\r\n", 400},
		{"two Hosts", "GET /monitoring/health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"two Content-Lengths", "POST /auth/login HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x", 400},
		{"oversized header", "GET /monitoring/health HTTP/1.1\r\nHost: a\r\nX-Pad: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", 431},
		{"HTTP/2 preface without h2c", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, rs.addr)
			go func() { _, _ = io.WriteString(c, tc.raw) }()
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.want)
			}
		})
	}
}

// TestWalletOverTLS: the wallet answers over HTTP/2 with TLS, and in
// production its secure answers carry HSTS beside the other security
// headers.
func TestWalletOverTLS(t *testing.T) {
	env, _, _, pool := tlsEnv(t)
	rs := startWallet(t, append(env, "APP_ENV=production")...)
	res, err := h2Client(t, pool).Get("https://" + rs.addr + "/monitoring/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.ProtoMajor != 2 {
		t.Fatalf("%s %d %s", res.Proto, res.StatusCode, body)
	}
	for k, want := range map[string]string{
		"Strict-Transport-Security": "max-age=63072000; includeSubDomains",
		"X-Content-Type-Options":    "nosniff",
		"X-Frame-Options":           "DENY",
		"Referrer-Policy":           "no-referrer",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	// An API route over TLS is served, not refused as plain HTTP.
	res, err = h2Client(t, pool).Get("https://" + rs.addr + "/auth/me")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /auth/me over TLS: %d, want 401", res.StatusCode)
	}
}
