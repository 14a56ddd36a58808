package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A problem answer becomes an *Error that reads as the status, its reason,
// the detail and each bad field; a non-problem answer still names its
// status, without echoing whatever body it had.
func TestProblemErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/keys":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"type":"https://apiwallet.dev/problems/forbidden","title":"Forbidden","status":403,`+
				`"detail":"a viewer may not add keys","requestId":"req_1"}`)
		case "/tokens":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"title":"Bad Request","status":400,"detail":"the request is invalid",`+
				`"errors":[{"field":"name","detail":"is required"}]}`)
		default:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "<html>upstream proxy says no</html>")
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL+"/", "tok")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = c.CreateKey(ctx, KeyCreate{Secret: "sk_x", Service: "stripe", Tier: "paid"})
	var e *Error
	if !errors.As(err, &e) || e.Status != 403 || err.Error() != "403 forbidden: a viewer may not add keys\n  (request req_1)" {
		t.Fatalf("403: %q", err)
	}
	if strings.Contains(err.Error(), "sk_x") {
		t.Fatal("the error carries the secret sent")
	}
	_, err = c.CreateToken(ctx, TokenCreate{})
	if err == nil || err.Error() != "400 bad request: the request is invalid\n  name is required" {
		t.Fatalf("400: %q", err)
	}
	_, err = c.Me(ctx)
	if StatusOf(err) != 502 || err.Error() != "502 bad gateway" {
		t.Fatalf("502: %q", err)
	}
}

// Responses are read up to MaxResponseBytes, and a call gives up after
// its timeout.
func TestBoundsAndTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/monitoring/health" {
			<-release
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"keys":["`)
		chunk := strings.Repeat("x", 1<<20)
		for range MaxResponseBytes>>20 + 1 {
			fmt.Fprint(w, chunk)
		}
		fmt.Fprint(w, `"]}`)
	}))
	defer srv.Close()
	defer close(release)
	c, _ := New(srv.URL, "")
	if _, err := c.ListKeys(context.Background(), KeyFilter{}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized answer: %v", err)
	}
	c.SetTimeout(200 * time.Millisecond)
	if _, err := c.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "cannot reach the wallet") {
		t.Fatalf("a wallet that never answers: %v", err)
	}
}

// Lists follow nextAfter until the last page.
func TestListPages(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("after") {
		case "":
			fmt.Fprint(w, `{"tokens":[{"id":"tok_1"},{"id":"tok_2"}],"nextAfter":"tok_2"}`)
		case "tok_2":
			fmt.Fprint(w, `{"tokens":[{"id":"tok_3"}]}`)
		}
	}))
	defer srv.Close()
	c, _ := New(srv.URL, "t")
	toks, err := c.ListTokens(context.Background())
	if err != nil || len(toks) != 3 || toks[2].ID != "tok_3" {
		t.Fatalf("%v %+v", err, toks)
	}
}

// Only absolute http(s) URLs without credentials are wallets.
func TestParseURL(t *testing.T) {
	for _, bad := range []string{"localhost:6789", "ftp://x", "http://", "http://u:p@host", "::"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
		}
	}
	u, err := ParseURL(" https://wallet.example.com/base/?x=1#f ")
	if err != nil || u.String() != "https://wallet.example.com/base" {
		t.Fatalf("%v %v", u, err)
	}
}

// An unhealthy wallet answers 503 with its health report: Health returns
// the report, which says what is wrong, rather than an error.
func TestHealthUnhealthy(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"status":"unhealthy","timestamp":"2026-01-01T00:00:00.000Z","services":{"database":"disconnected","redis":"connected"}}`)
	}))
	defer srv.Close()
	c, _ := New(srv.URL, "")
	h, err := c.Health(context.Background())
	if err != nil || h.Status != "unhealthy" || h.Services.Database != "disconnected" {
		t.Fatalf("%v %+v", err, h)
	}
}
