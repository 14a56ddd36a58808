package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// shortTimeouts makes the header and idle timeouts short enough to watch.
func shortTimeouts(header, idle time.Duration) func(*Server) {
	return func(s *Server) {
		s.srv.ReadHeaderTimeout = header
		s.srv.IdleTimeout = idle
	}
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	_, _ = io.WriteString(w, "ok")
})

// TestTimeoutsConfigured pins the values the port runs with.
func TestTimeoutsConfigured(t *testing.T) {
	s, err := New(loadConfig(t), okHandler, discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.srv.ReadHeaderTimeout != 10*time.Second || s.srv.IdleTimeout != 120*time.Second || s.srv.MaxHeaderBytes != 64<<10 {
		t.Errorf("ReadHeaderTimeout %v, IdleTimeout %v, MaxHeaderBytes %d", s.srv.ReadHeaderTimeout, s.srv.IdleTimeout, s.srv.MaxHeaderBytes)
	}
	// A server-wide read or write timeout would end every stream at a
	// fixed age; the per-request deadlines replace them.
	if s.srv.ReadTimeout != 0 || s.srv.WriteTimeout != 0 {
		t.Errorf("ReadTimeout %v, WriteTimeout %v; want none", s.srv.ReadTimeout, s.srv.WriteTimeout)
	}
	if s.srv.ErrorLog == nil {
		t.Error("net/http's errors are not routed to the wallet's log")
	}
}

// TestSilentConnectionClosed protects the descriptor budget: a connection
// that never sends a request is closed after the header timeout, with
// nothing written to it.
func TestSilentConnectionClosed(t *testing.T) {
	rs := start(t, okHandler, nil, shortTimeouts(100*time.Millisecond, time.Minute))
	c := dial(t, rs.addr)
	if got := waitClosed(t, c, c, 5*time.Second); got != "" {
		t.Errorf("server sent %q before closing", got)
	}
}

// TestSlowHeaderClosed protects against slowloris clients, on a
// connection's first request and on a later one.
func TestSlowHeaderClosed(t *testing.T) {
	rs := start(t, okHandler, nil, shortTimeouts(200*time.Millisecond, time.Minute))
	t.Run("first", func(t *testing.T) {
		c := dial(t, rs.addr)
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
		if got := waitClosed(t, c, c, 5*time.Second); got != "" {
			t.Errorf("server sent %q before closing", got)
		}
	})
	t.Run("second", func(t *testing.T) {
		c := dial(t, rs.addr)
		br := bufio.NewReader(c)
		roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
		if got := waitClosed(t, c, br, 5*time.Second); got != "" {
			t.Errorf("server sent %q before closing", got)
		}
	})
}

// TestIdleConnectionClosed protects the descriptor budget from idle
// keep-alive connections.
func TestIdleConnectionClosed(t *testing.T) {
	rs := start(t, okHandler, nil, shortTimeouts(10*time.Second, 200*time.Millisecond))
	c := dial(t, rs.addr)
	br := bufio.NewReader(c)
	roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if got := waitClosed(t, c, br, 5*time.Second); got != "" {
		t.Errorf("server sent %q on an idle connection", got)
	}
}

// TestIdleLongerThanHeaderTimeout protects keep-alive clients: the header
// timeout starts with the next request's first bytes, not when the
// connection goes idle.
func TestIdleLongerThanHeaderTimeout(t *testing.T) {
	rs := start(t, okHandler, nil, shortTimeouts(50*time.Millisecond, time.Minute))
	c := dial(t, rs.addr)
	br := bufio.NewReader(c)
	roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(300 * time.Millisecond) // idle for six header timeouts
	if res, body := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); res.StatusCode != 200 || body != "ok" {
		t.Errorf("second request: %d %q", res.StatusCode, body)
	}
}

// TestPanicLogged protects operators: a handler's panic reaches the
// wallet's log with its value, the client gets no answer it could take for
// a real one, and the server goes on serving.
func TestPanicLogged(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom-7f3a")
		}
		_, _ = io.WriteString(w, "ok")
	})
	rs := start(t, h, nil, nil)
	c := dial(t, rs.addr)
	_, _ = io.WriteString(c, "GET /panic HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	if res, err := http.ReadResponse(br, nil); err == nil {
		t.Errorf("a %d answer to a handler that panicked", res.StatusCode)
	}
	waitClosed(t, c, br, 5*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(rs.logs.String(), "boom-7f3a") {
		if time.Now().After(deadline) {
			t.Fatalf("panic not logged; log: %s", rs.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(rs.logs.String(), `"level":"ERROR"`) {
		t.Errorf("panic not logged as an error: %s", rs.logs)
	}
	c2 := dial(t, rs.addr)
	if res, body := roundTrip(t, c2, bufio.NewReader(c2), "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); res.StatusCode != 200 || body != "ok" {
		t.Errorf("after a panic: %d %q", res.StatusCode, body)
	}
}

// TestAbortHandler protects proxied streams: a handler that aborts with
// http.ErrAbortHandler (the proxy, when an upstream breaks off) leaves the
// client a broken body, never a clean end it could take for the whole
// answer, and logs nothing.
func TestAbortHandler(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "partial")
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	})
	rs := start(t, h, nil, nil)
	res, err := http.Get("http://" + rs.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if !errors.Is(err, io.ErrUnexpectedEOF) || string(body) != "partial" {
		t.Errorf("body %q, error %v; want %q and io.ErrUnexpectedEOF", body, err, "partial")
	}
	if s := rs.logs.String(); s != "" {
		t.Errorf("ErrAbortHandler was logged: %s", s)
	}
}

// TestContextCanceledOnDisconnect protects upstream calls: when the client
// goes away, a slow handler's context ends so that its work stops.
func TestContextCanceledOnDisconnect(t *testing.T) {
	started, result := make(chan struct{}), make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			result <- r.Context().Err()
		case <-time.After(10 * time.Second):
			result <- nil
		}
	})
	rs := start(t, h, nil, nil)
	c := dial(t, rs.addr)
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	c.Close()
	if err := <-result; !errors.Is(err, context.Canceled) {
		t.Fatalf("context error %v, want context.Canceled", err)
	}
}

// TestShutdownFinishesInFlight protects deploys: Shutdown lets a request
// in flight finish with its whole answer while the listener and idle
// connections close at once.
func TestShutdownFinishesInFlight(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
			_, _ = io.WriteString(w, strings.Repeat("done", 1000))
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	rs := start(t, h, nil, nil)
	idle := dial(t, rs.addr)
	idleBr := bufio.NewReader(idle)
	roundTrip(t, idle, idleBr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")

	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		res, err := http.Get("http://" + rs.addr + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		got <- result{res.StatusCode, string(b), err}
	}()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- rs.Shutdown(context.Background()) }()
	if data := waitClosed(t, idle, idleBr, 5*time.Second); data != "" {
		t.Errorf("idle connection got %q", data)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(release)
	if r := <-got; r.err != nil || r.status != 200 || r.body != strings.Repeat("done", 1000) {
		t.Errorf("in-flight request: %d, %d bytes, %v", r.status, len(r.body), r.err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if c, err := net.Dial("tcp", rs.addr); err == nil {
		c.Close()
		t.Error("dial succeeded after Shutdown")
	}
}

// TestExpectContinue protects clients that wait for "100 Continue" before
// sending a body: it comes when the handler reads, and the connection
// serves the next request after.
func TestExpectContinue(t *testing.T) {
	rs := start(t, framingHandler, nil, nil)
	c := dial(t, rs.addr)
	br := bufio.NewReader(c)
	for i := range 2 {
		_, _ = io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != 100 {
			t.Fatalf("round %d: %v %v, want 100 before the body is sent", i, res, err)
		}
		res, body := roundTrip(t, c, br, "hello")
		if res.StatusCode != 200 || body != "hello" || res.Close {
			t.Fatalf("round %d: %d %q close=%v", i, res.StatusCode, body, res.Close)
		}
	}
}

// TestHostCountedAcrossReads: a second Host header is found wherever the
// header is split across reads, and a pipelined request's Host lines are
// counted for it alone.
func TestHostCountedAcrossReads(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, r.Host)
	})
	rs := start(t, h, nil, nil)
	cases := []struct {
		name   string
		pieces []string
		want   []int
	}{
		{"one Host in pieces", []string{"GET / HTTP/1.1\r\nHo", "st: a.example\r", "\nX: 1\r\n\r\n"}, []int{200}},
		{"second Host in a later read", []string{"GET / HTTP/1.1\r\nHost: a.example\r\n", "X: 1\r\nhO", "sT: b.example\r\n\r\n"}, []int{400}},
		{"Host-like names are not Host", []string{"GET / HTTP/1.1\r\nHost: a.example\r\nHostile: x\r\nX-Host: y\r\n\r\n"}, []int{200}},
		{"pipelined second request with two", []string{
			"GET / HTTP/1.1\r\nHost: a.example\r\n\r\nGET / HTTP/1.1\r\nHost: b.example\r\nHost: c.example\r\n\r\n"}, []int{200, 400}},
		{"body bytes that look like a Host line", []string{
			"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 24\r\n\r\n", "\r\nHost: evil.example\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: b.example\r\n\r\n"}, []int{200, 200}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, rs.addr)
			for _, p := range tc.pieces {
				if _, err := io.WriteString(c, p); err != nil {
					t.Fatal(err)
				}
				time.Sleep(5 * time.Millisecond) // separate reads on the server
			}
			br := bufio.NewReader(c)
			for i, want := range tc.want {
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("answer %d: %v", i+1, err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != want {
					t.Fatalf("answer %d: %d, want %d", i+1, res.StatusCode, want)
				}
			}
		})
	}
}

// TestPanicEndsRequest: after a handler panics, a goroutine it left
// reading the body cannot read another connection's request.
func TestPanicEndsRequest(t *testing.T) {
	ctxs := make(chan context.Context, 1)
	readNow := make(chan struct{})
	orphan := make(chan string, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			ctxs <- r.Context()
			body := r.Body
			go func() {
				<-readNow
				b := make([]byte, 64)
				n, _ := body.Read(b)
				orphan <- string(b[:n])
			}()
			panic(http.ErrAbortHandler)
		}
		close(readNow)
		time.Sleep(50 * time.Millisecond)
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	})
	rs := start(t, h, nil, nil)
	a := dial(t, rs.addr)
	_, _ = io.WriteString(a, "POST /panic HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
	select {
	case <-(<-ctxs).Done():
	case <-time.After(5 * time.Second):
		t.Fatal("context not cancelled after the handler panicked")
	}
	a.Close()

	b := dial(t, rs.addr)
	res, body := roundTrip(t, b, bufio.NewReader(b), "POST /victim HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\nAuthorization=SECRET")
	if res.StatusCode != 200 || body != "Authorization=SECRET" {
		t.Fatalf("victim's handler: %d %q", res.StatusCode, body)
	}
	select {
	case s := <-orphan:
		if strings.Contains(s, "SECRET") {
			t.Fatalf("the panicked request's body read another connection's bytes: %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the orphaned body read never returned")
	}
}
