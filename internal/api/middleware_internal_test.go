package api

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet/internal/config"
	"github.com/apikeywallet/apiwallet/internal/server"
)

// TestResponseControllerThroughMiddleware pins finding 2 of issue 12: a
// handler behind the wallet's middleware, on the wallet's server, can set
// read and write deadlines, enable full duplex and flush through
// http.ResponseController, on HTTP/1.1 and on HTTP/2 (h2c here; TLS in
// internal/server). They failed with "feature not supported" before.
func TestResponseControllerThroughMiddleware(t *testing.T) {
	cfg, err := config.Load([]string{"H2C=true", "APIWALLET_DATA_DIR=" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	s := &Server{cfg: cfg, log: log}
	type result struct {
		proto string
		err   error
		rw    http.ResponseWriter
	}
	results := make(chan result, 1)
	h := s.observe(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_, _ = io.WriteString(w, "a")
		err := errors.Join(
			rc.SetReadDeadline(time.Now().Add(time.Minute)),
			rc.SetWriteDeadline(time.Now().Add(time.Minute)),
			rc.EnableFullDuplex(),
			rc.Flush(),
		)
		results <- result{r.Proto, err, w}
	}))
	srv, err := server.New(cfg, h, log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	defer h2c.CloseIdleConnections()
	h1 := &http.Transport{}
	defer h1.CloseIdleConnections()
	for i, tr := range []*http.Transport{h1, h2c} {
		res, err := (&http.Client{Transport: tr}).Post("http://"+ln.Addr().String()+"/", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		r := <-results
		if want := []string{"HTTP/1.1", "HTTP/2.0"}[i]; r.proto != want {
			t.Errorf("served over %s, want %s", r.proto, want)
		}
		if r.err != nil {
			t.Errorf("%s: %v", r.proto, r.err)
		}
		if _, ok := r.rw.(*statusWriter); !ok {
			t.Errorf("%s: the handler got a %T, not the middleware's writer", r.proto, r.rw)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: a flushed answer lost its security headers", r.proto)
		}
	}
}
