package main

import (
	"slices"
	"testing"
)

// The floor gets the wallet's Go runtime settings from WALLET_ENV and
// nothing else of it, so that both collect garbage alike.
func TestGoRuntimeEnv(t *testing.T) {
	t.Setenv("PATH", "/bin")
	t.Setenv("HOME", "/home/bench")
	r := &runner{cfg: &config{WalletEnv: []string{"LOG_LEVEL=warn", "GOGC=200", "GOMEMLIMIT=64MiB", "STRIPE_BASE_URL=http://x", "GODEBUG=madvdontneed=1"}},
		certFile: "/tmp/run/tls/cert.pem"}
	got := r.goRuntimeEnv()
	want := []string{"PATH=/bin", "HOME=/home/bench", "SSL_CERT_FILE=/tmp/run/tls/cert.pem", "GOGC=200", "GOMEMLIMIT=64MiB", "GODEBUG=madvdontneed=1"}
	if !slices.Equal(got, want) {
		t.Fatalf("goRuntimeEnv() = %q, want %q", got, want)
	}
	if s := r.gcSettings(); s != "`GOGC=200`, `GOMEMLIMIT=64MiB`, `GODEBUG=madvdontneed=1`" {
		t.Errorf("gcSettings() = %q: with GOGC set, the adaptive floor does not run", s)
	}
	r.cfg.WalletEnv = nil
	if s := r.gcSettings(); s != "the adaptive GC floor (internal/gcfloor)" {
		t.Errorf("gcSettings() = %q without WALLET_ENV", s)
	}
}

func TestProtoOf(t *testing.T) {
	for _, tc := range []struct {
		upstream, http2 int64
		want            string
	}{
		{0, 0, "?"},
		{100, 0, "HTTP/1.1"},
		{100, 100, "HTTP/2"},
		{100, 40, "40% HTTP/2"},
	} {
		if got := protoOf(measured{upstream: tc.upstream, http2: tc.http2}); got != tc.want {
			t.Errorf("protoOf(%d of %d over HTTP/2) = %q, want %q", tc.http2, tc.upstream, got, tc.want)
		}
	}
}
