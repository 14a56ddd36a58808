package upstream

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// direct keeps the tests independent of HTTP_PROXY and friends in the
// environment that runs them.
func direct(*http.Request) (*url.URL, error) { return nil, nil }

func newClient(t *testing.T, o Options) *Client {
	t.Helper()
	if o.Proxy == nil {
		o.Proxy = direct
	}
	c := New(o)
	t.Cleanup(c.Close)
	return c
}

// connStats counts the connections a server accepted and saw closed: the
// client's reuse is only observable from the server's side.
type connStats struct {
	opened, closed atomic.Int64
}

func (s *connStats) hook(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		s.opened.Add(1)
	case http.StateClosed, http.StateHijacked:
		s.closed.Add(1)
	}
}

func startServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *connStats) {
	t.Helper()
	st := &connStats{}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = st.hook
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, st
}

// seenReq is what a handler saw, copied out: the request itself must not
// outlive its handler, and the race detector does not see the TCP
// round trip as synchronisation.
type seenReq struct {
	method, requestURI, host, proto string
	url                             *url.URL
	header                          http.Header
	contentLength                   int64
	transferEncoding                []string
	close                           bool
	body                            string
	tls                             *tls.ConnectionState
}

func capture(r *http.Request) seenReq {
	b, _ := io.ReadAll(r.Body)
	u := *r.URL
	return seenReq{
		method: r.Method, requestURI: r.RequestURI, host: r.Host, proto: r.Proto,
		url: &u, header: r.Header.Clone(), contentLength: r.ContentLength,
		transferEncoding: slices.Clone(r.TransferEncoding), close: r.Close,
		body: string(b), tls: r.TLS,
	}
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(2 * time.Second):
		t.Fatal("nothing received within 2s")
		panic("unreachable")
	}
}

func newRequest(t *testing.T, method, target string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// readAllWithin turns a hang into a failure instead of a stuck test run.
func readAllWithin(t *testing.T, r io.Reader, d time.Duration) (string, error) {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(r)
		ch <- result{b, err}
	}()
	select {
	case res := <-ch:
		return string(res.b), res.err
	case <-time.After(d):
		t.Fatalf("body not read within %v", d)
		return "", nil
	}
}

func roundTrip(t *testing.T, c *Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	res, err := c.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	b, err := readAllWithin(t, res.Body, 2*time.Second)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	if err := res.Body.Close(); err != nil {
		t.Fatalf("closing body: %v", err)
	}
	return res, b
}

func get(t *testing.T, c *Client, target string) string {
	t.Helper()
	_, b := roundTrip(t, c, newRequest(t, http.MethodGet, target, nil))
	return b
}

func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func poolOf(c *Client, key string) *pool {
	u, err := url.Parse(key)
	if err != nil {
		panic(err)
	}
	return (*c.routes.Load())[hostKey{u.Scheme, u.Host}]
}

func idleConns(c *Client, key string) []*conn {
	p := poolOf(c, key)
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.idle)
}

// ageIdle backdates the pool's idle connections, standing in for a pause
// without waiting it out.
func ageIdle(t *testing.T, c *Client, key string, d time.Duration) {
	t.Helper()
	p := poolOf(c, key)
	if p == nil {
		t.Fatalf("no pool for %s", key)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) == 0 {
		t.Fatalf("no idle connection for %s", key)
	}
	for _, pc := range p.idle {
		pc.idleAt = time.Now().Add(-d)
	}
}

// rawServer is a TCP server whose misbehaviour the test chooses: what
// net/http's server would never do (close after every answer without
// saying so, send headers without end, send 1xx) is what the client must
// survive.
type rawServer struct {
	url   string
	conns atomic.Int64

	mu     sync.Mutex
	open   []net.Conn
	closed bool
	reqs   []rawReq
}

type rawReq struct {
	conn   int
	method string
	header http.Header
	body   string
}

func startRaw(t *testing.T, handle func(rs *rawServer, n int, c net.Conn)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs := &rawServer{url: "http://" + ln.Addr().String()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			rs.mu.Lock()
			if rs.closed {
				rs.mu.Unlock()
				c.Close()
				return
			}
			rs.open = append(rs.open, c)
			rs.mu.Unlock()
			n := int(rs.conns.Add(1))
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(rs, n, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		rs.mu.Lock()
		rs.closed = true
		for _, c := range rs.open {
			c.Close()
		}
		rs.mu.Unlock()
		wg.Wait()
	})
	return rs
}

// read reads one request and records it; ok is false at end of stream.
func (rs *rawServer) read(n int, br *bufio.Reader) bool {
	req, err := http.ReadRequest(br)
	if err != nil {
		return false
	}
	b, err := io.ReadAll(req.Body)
	if err != nil {
		return false
	}
	rs.mu.Lock()
	rs.reqs = append(rs.reqs, rawReq{conn: n, method: req.Method, header: req.Header, body: string(b)})
	rs.mu.Unlock()
	return true
}

func (rs *rawServer) requests() []rawReq {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return slices.Clone(rs.reqs)
}

// oneShot answers one request per connection and then closes it without
// announcing it, as upstreams that drop idle keep-alive connections do.
func oneShot(rs *rawServer, n int, c net.Conn) {
	if !rs.read(n, bufio.NewReader(c)) {
		return
	}
	body := "conn " + strconv.Itoa(n)
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// closeRecorder is a request body that says whether it was closed: a
// RoundTripper must close it on every path.
type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func (r *closeRecorder) Close() error {
	r.closed.Store(true)
	return nil
}

var errClientBody = errors.New("client body broke off")

// brokenBody yields some bytes and then fails, like a client that goes
// away mid-upload.
type brokenBody struct{ left int }

func (b *brokenBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, errClientBody
	}
	n := min(len(p), b.left)
	for i := range p[:n] {
		p[i] = 'z'
	}
	b.left -= n
	return n, nil
}

func TestGetDeliversRequestAndResponse(t *testing.T) {
	seen := make(chan seenReq, 1)
	srv, _ := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- capture(r)
		w.Header().Set("X-Answer", "42")
		w.Header().Add("X-Multi-Out", "a")
		w.Header().Add("X-Multi-Out", "b")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "payload")
	})
	c := newClient(t, Options{})

	req := newRequest(t, http.MethodGet, srv.URL+"/v1/a%2Fb?x=1&y=%20", nil)
	req.Header["User-Agent"] = []string{""}
	req.Header["X-Multi"] = []string{"one", "two"}
	req.Header.Set("X-Single", "v")
	res, body := roundTrip(t, c, req)

	if res.StatusCode != http.StatusAccepted || res.Proto != "HTTP/1.1" {
		t.Errorf("status %d %s, want 202 HTTP/1.1", res.StatusCode, res.Proto)
	}
	if got := res.Header.Get("X-Answer"); got != "42" {
		t.Errorf("X-Answer = %q, want 42", got)
	}
	if got := res.Header["X-Multi-Out"]; !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("X-Multi-Out = %q, want [a b]", got)
	}
	if body != "payload" || res.ContentLength != 7 {
		t.Errorf("body %q (length %d), want payload (7)", body, res.ContentLength)
	}

	r := recv(t, seen)
	if r.requestURI != "/v1/a%2Fb?x=1&y=%20" {
		t.Errorf("request target %q, want /v1/a%%2Fb?x=1&y=%%20 (escaping kept)", r.requestURI)
	}
	if want := srv.Listener.Addr().String(); r.host != want {
		t.Errorf("Host %q, want %q", r.host, want)
	}
	if ua, ok := r.header["User-Agent"]; ok {
		t.Errorf("User-Agent sent as %q; an empty value means none", ua)
	}
	if got := r.header["X-Multi"]; !slices.Equal(got, []string{"one", "two"}) {
		t.Errorf("X-Multi = %q, want [one two]", got)
	}
	if got := r.header.Get("X-Single"); got != "v" {
		t.Errorf("X-Single = %q, want v", got)
	}
	if r.method != http.MethodGet || r.proto != "HTTP/1.1" {
		t.Errorf("request %s %s, want GET HTTP/1.1", r.method, r.proto)
	}

	t.Run("Host field and empty method", func(t *testing.T) {
		req := newRequest(t, http.MethodGet, srv.URL+"/h", nil)
		req.Method = ""
		req.Host = "api.example.com"
		roundTrip(t, c, req)
		r := recv(t, seen)
		if r.host != "api.example.com" || r.method != http.MethodGet {
			t.Errorf("saw %s with Host %q, want GET with Host api.example.com", r.method, r.host)
		}
	})
}

func TestKeepAliveReusesOneConnection(t *testing.T) {
	srv, st := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("chunked") {
			io.WriteString(w, "ab")
			w.(http.Flusher).Flush()
			io.WriteString(w, "cd")
			return
		}
		io.WriteString(w, "abcd")
	})
	c := newClient(t, Options{})

	for i := range 50 {
		target := srv.URL + "/n"
		if i%2 == 1 {
			// Chunked answers end differently from sized ones; both must
			// give the connection back.
			target += "?chunked=1"
		}
		if got := get(t, c, target); got != "abcd" {
			t.Fatalf("request %d: body %q, want abcd", i, got)
		}
	}
	if n := st.opened.Load(); n != 1 {
		t.Errorf("50 sequential requests opened %d connections, want 1", n)
	}
	if n := len(idleConns(c, srv.URL)); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
}

func TestBodyClosedBeforeEOFDiscardsConnection(t *testing.T) {
	srv, st := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello world")
	})
	c := newClient(t, Options{})

	res, err := c.RoundTrip(newRequest(t, http.MethodGet, srv.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	if n, err := res.Body.Read(one); n != 1 || err != nil {
		t.Fatalf("first byte: %d, %v", n, err)
	}
	res.Body.Close()
	if n, err := res.Body.Read(one); n != 0 || err == nil || err == io.EOF {
		t.Errorf("Read after Close = %d, %v; want an error other than EOF", n, err)
	}
	if n := len(idleConns(c, srv.URL)); n != 0 {
		t.Errorf("%d idle connections after an early Close, want 0", n)
	}
	if !eventually(2*time.Second, func() bool { return st.closed.Load() == 1 }) {
		t.Errorf("server saw %d connections closed, want 1", st.closed.Load())
	}

	if got := get(t, c, srv.URL); got != "hello world" {
		t.Errorf("body %q", got)
	}
	if n := st.opened.Load(); n != 2 {
		t.Errorf("%d connections opened, want 2: a half-read answer leaves the connection unusable", n)
	}
}

func TestConcurrentRequests(t *testing.T) {
	srv, st := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Query().Get("g")+"/"+r.URL.Query().Get("i"))
	})
	c := newClient(t, Options{})

	const goroutines, each = 32, 50
	var wg sync.WaitGroup
	var ok atomic.Int64
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				want := fmt.Sprintf("%d/%d", g, i)
				req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/c?g=%d&i=%d", srv.URL, g, i), nil)
				res, err := c.RoundTrip(req)
				if err != nil {
					t.Errorf("%s: %v", want, err)
					return
				}
				b, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil || string(b) != want {
					t.Errorf("got %q, %v; want %q", b, err, want)
					return
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if n := ok.Load(); n != goroutines*each {
		t.Errorf("%d requests answered correctly, want %d", n, goroutines*each)
	}
	// A goroutine dials only when no connection is idle, so connections
	// track concurrency, not the request count.
	n := st.opened.Load()
	t.Logf("%d requests from %d goroutines used %d connections", goroutines*each, goroutines, n)
	if n > 2*goroutines {
		t.Errorf("%d connections opened, want at most %d", n, 2*goroutines)
	}
}

func TestRequestBodyFraming(t *testing.T) {
	seen := make(chan seenReq, 1)
	srv, _ := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- capture(r)
	})
	c := newClient(t, Options{})
	big := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB: more than any buffer

	type want struct {
		contentLength string // "" means no Content-Length header
		chunked       bool
		body          string
	}
	tests := []struct {
		name string
		req  func() *http.Request
		want want
	}{
		{"known length", func() *http.Request {
			return newRequest(t, http.MethodPost, srv.URL, bytes.NewReader([]byte("hello body")))
		}, want{"10", false, "hello body"}},
		{"known length, large", func() *http.Request {
			return newRequest(t, http.MethodPost, srv.URL, strings.NewReader(big))
		}, want{strconv.Itoa(len(big)), false, big}},
		{"unknown length", func() *http.Request {
			req := newRequest(t, http.MethodPost, srv.URL, nil)
			req.Body = io.NopCloser(strings.NewReader("streamed body"))
			req.ContentLength = -1
			return req
		}, want{"", true, "streamed body"}},
		{"unknown length, large", func() *http.Request {
			req := newRequest(t, http.MethodPut, srv.URL, nil)
			req.Body = io.NopCloser(strings.NewReader(big))
			req.ContentLength = -1
			return req
		}, want{"", true, big}},
		{"body with ContentLength 0 is unknown length", func() *http.Request {
			req := newRequest(t, http.MethodPost, srv.URL, nil)
			req.Body = io.NopCloser(strings.NewReader("surprise"))
			return req
		}, want{"", true, "surprise"}},
		{"POST without body", func() *http.Request {
			return newRequest(t, http.MethodPost, srv.URL, nil)
		}, want{"0", false, ""}},
		{"PATCH with NoBody", func() *http.Request {
			req := newRequest(t, http.MethodPatch, srv.URL, nil)
			req.Body = http.NoBody
			return req
		}, want{"0", false, ""}},
		{"GET", func() *http.Request {
			return newRequest(t, http.MethodGet, srv.URL, nil)
		}, want{"", false, ""}},
		{"DELETE without body", func() *http.Request {
			return newRequest(t, http.MethodDelete, srv.URL, nil)
		}, want{"", false, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _ := roundTrip(t, c, tt.req())
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			r := recv(t, seen)
			if got := r.header.Get("Content-Length"); got != tt.want.contentLength {
				t.Errorf("Content-Length %q, want %q", got, tt.want.contentLength)
			}
			if chunked := slices.Equal(r.transferEncoding, []string{"chunked"}); chunked != tt.want.chunked {
				t.Errorf("Transfer-Encoding %q, chunked want %v", r.transferEncoding, tt.want.chunked)
			}
			if r.body != tt.want.body {
				t.Errorf("body of %d bytes (%.20q...), want %d bytes", len(r.body), r.body, len(tt.want.body))
			}
		})
	}
}

// http.RoundTripper: "RoundTrip should not modify the request, except for
// consuming and closing the Request's Body."
func TestRoundTripDoesNotModifyRequest(t *testing.T) {
	srv, _ := startServer(t, func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
	c := newClient(t, Options{})

	req := newRequest(t, http.MethodPost, srv.URL, nil)
	req.Body = io.NopCloser(strings.NewReader("abc"))
	req.ContentLength = 0 // net/http's "unknown" for a non-nil body
	roundTrip(t, c, req)
	if req.ContentLength != 0 {
		t.Errorf("RoundTrip changed req.ContentLength from 0 to %d; a RoundTripper must not modify the request "+
			"(the unknown length belongs in a local, not in the caller's request)", req.ContentLength)
	}
}

func TestStaleConnectionRetry(t *testing.T) {
	t.Run("GET is sent again on a new connection", func(t *testing.T) {
		rs := startRaw(t, oneShot)
		c := newClient(t, Options{})
		if got := get(t, c, rs.url+"/1"); got != "conn 1" {
			t.Fatalf("first body %q", got)
		}
		if got := get(t, c, rs.url+"/2"); got != "conn 2" {
			t.Fatalf("second body %q, want it from a second connection", got)
		}
		if n, reqs := rs.conns.Load(), rs.requests(); n != 2 || len(reqs) != 2 {
			t.Errorf("server saw %d connections, %d requests; want 2, 2", n, len(reqs))
		}
	})

	t.Run("complete POST without idempotency key is not sent again", func(t *testing.T) {
		rs := startRaw(t, oneShot)
		c := newClient(t, Options{})
		get(t, c, rs.url)
		// bytes.Reader sets GetBody: the body could be replayed, so only
		// the method's semantics can stop the retry.
		body := &closeRecorder{Reader: strings.NewReader("charge=1")}
		req := newRequest(t, http.MethodPost, rs.url+"/charge", bytes.NewReader([]byte("charge=1")))
		req.Body = body
		res, err := c.RoundTrip(req)
		if err == nil {
			res.Body.Close()
			t.Fatalf("POST answered %d; want an error, as the upstream may have acted on it", res.StatusCode)
		}
		if !body.closed.Load() {
			t.Error("request body not closed after the error")
		}
		if n, reqs := rs.conns.Load(), rs.requests(); n != 1 || len(reqs) != 1 {
			t.Errorf("server saw %d connections, %d requests; want 1, 1 (no retry)", n, len(reqs))
		}
	})

	for _, key := range []string{"Idempotency-Key", "X-Idempotency-Key"} {
		t.Run("POST with "+key+" is sent again", func(t *testing.T) {
			rs := startRaw(t, oneShot)
			c := newClient(t, Options{})
			get(t, c, rs.url)
			req := newRequest(t, http.MethodPost, rs.url+"/charge", bytes.NewReader([]byte("charge=1")))
			req.Header.Set(key, "k-123")
			if _, got := roundTrip(t, c, req); got != "conn 2" {
				t.Errorf("body %q, want conn 2", got)
			}
			reqs := rs.requests()
			if len(reqs) != 2 || reqs[1].method != http.MethodPost || reqs[1].conn != 2 || reqs[1].body != "charge=1" {
				t.Errorf("server saw %+v; want the POST with its whole body on connection 2", reqs)
			}
		})
	}

	t.Run("POST with idempotency key but no GetBody is not sent again", func(t *testing.T) {
		rs := startRaw(t, oneShot)
		c := newClient(t, Options{})
		get(t, c, rs.url)
		req := newRequest(t, http.MethodPost, rs.url, nil)
		req.Body = io.NopCloser(strings.NewReader("charge=1"))
		req.ContentLength = 8
		req.Header.Set("Idempotency-Key", "k-123")
		res, err := c.RoundTrip(req)
		if err == nil {
			res.Body.Close()
			t.Fatal("POST succeeded; its spent body cannot have been replayed")
		}
		if n := len(rs.requests()); n != 1 {
			t.Errorf("server saw %d requests, want 1", n)
		}
	})
}

func requireAliveCheck(t *testing.T) {
	switch runtime.GOOS {
	case "windows", "plan9", "js", "wasip1":
		t.Skip("idle connections are not checked on " + runtime.GOOS)
	}
}

func TestDeadIdleConnectionDiscardedBeforeUse(t *testing.T) {
	requireAliveCheck(t)
	rs := startRaw(t, oneShot)
	c := newClient(t, Options{})
	get(t, c, rs.url)

	idle := idleConns(c, rs.url)
	if len(idle) != 1 {
		t.Fatalf("%d idle connections, want 1", len(idle))
	}
	// The server closed its end right after answering; wait until that
	// shows on this end so the outcome does not depend on timing.
	if !eventually(2*time.Second, func() bool { return !idle[0].alive() }) {
		t.Fatal("alive() still true for a connection the server closed")
	}
	ageIdle(t, c, rs.url, 2*time.Second)

	// Not retryable once written: it only succeeds if the dead connection
	// is never written to.
	req := newRequest(t, http.MethodPost, rs.url+"/p", bytes.NewReader([]byte("data")))
	if _, got := roundTrip(t, c, req); got != "conn 2" {
		t.Errorf("body %q, want conn 2", got)
	}
	if n, reqs := rs.conns.Load(), rs.requests(); n != 2 || len(reqs) != 2 || reqs[1].body != "data" {
		t.Errorf("server saw %d connections, requests %+v; want 2 connections, 2 requests", n, reqs)
	}
}

func TestLiveIdleConnectionReusedAfterPause(t *testing.T) {
	requireAliveCheck(t)
	srv, st := startServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	c := newClient(t, Options{})
	get(t, c, srv.URL)
	ageIdle(t, c, srv.URL, 2*time.Second)
	get(t, c, srv.URL)
	if n := st.opened.Load(); n != 1 {
		t.Errorf("%d connections opened, want 1: an open idle connection passes the check", n)
	}
}

func TestIdleConnectionWithUnexpectedBytesDiscarded(t *testing.T) {
	requireAliveCheck(t)
	junk := make(chan struct{})
	rs := startRaw(t, func(rs *rawServer, n int, c net.Conn) {
		br := bufio.NewReader(c)
		if !rs.read(n, br) {
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nconn %d", n)
		if n == 1 {
			<-junk
			// Nothing is owed on an idle connection: taken for the next
			// request's answer, this would be a wrong one.
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstale!")
		}
		io.Copy(io.Discard, br)
	})
	c := newClient(t, Options{})
	get(t, c, rs.url)
	close(junk)
	idle := idleConns(c, rs.url)
	if len(idle) != 1 {
		t.Fatalf("%d idle connections, want 1", len(idle))
	}
	if !eventually(2*time.Second, func() bool { return !idle[0].alive() }) {
		t.Fatal("alive() still true for an idle connection with unread bytes")
	}
	ageIdle(t, c, rs.url, 2*time.Second)
	if got := get(t, c, rs.url); got != "conn 2" {
		t.Errorf("body %q, want conn 2", got)
	}
}

func TestResponseHeaderTimeout(t *testing.T) {
	var slow atomic.Int64
	srv, _ := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			slow.Add(1)
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
		}
		io.WriteString(w, "ok")
	})
	c := newClient(t, Options{ResponseHeaderTimeout: 100 * time.Millisecond})
	// A pooled connection first: the slow request then runs on a reused
	// one, where a wrongly classified timeout would be retried.
	get(t, c, srv.URL+"/fast")

	start := time.Now()
	res, err := c.RoundTrip(newRequest(t, http.MethodGet, srv.URL+"/slow", nil))
	elapsed := time.Since(start)
	if err == nil {
		res.Body.Close()
		t.Fatal("no error from a handler that does not answer")
	}
	if !strings.Contains(err.Error(), "no response headers") {
		t.Errorf("error %q does not mention the missing response headers", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("error %v is not a timeout", err)
	}
	if elapsed > time.Second {
		t.Errorf("took %v, want about 100ms", elapsed)
	}
	if n := slow.Load(); n != 1 {
		t.Errorf("slow handler invoked %d times, want 1", n)
	}
}

func TestContextCancelWhileWaitingForHeaders(t *testing.T) {
	var calls atomic.Int64
	srv, _ := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			calls.Add(1)
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
		}
	})
	c := newClient(t, Options{})
	get(t, c, srv.URL) // the blocked request runs on a reused connection

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	req := newRequest(t, http.MethodGet, srv.URL+"/block", nil).WithContext(ctx)
	res, err := c.RoundTrip(req)
	elapsed := time.Since(start)
	if err == nil {
		res.Body.Close()
		t.Fatal("no error after cancellation")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v is not context.Canceled", err)
	}
	if elapsed > time.Second {
		t.Errorf("returned after %v, want soon after the 50ms cancel", elapsed)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler invoked %d times, want 1: a cancelled request is not retried", n)
	}
	if n := len(idleConns(c, srv.URL)); n != 0 {
		t.Errorf("%d idle connections; the interrupted one must not be pooled", n)
	}
}

// Do lets the proxy pass its context without copying the request to
// attach it: the given context governs, the request's own is ignored.
func TestDoUsesGivenContext(t *testing.T) {
	srv, _ := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
		}
		io.WriteString(w, "ok")
	})
	c := newClient(t, Options{})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := c.Do(ctx, newRequest(t, http.MethodGet, srv.URL+"/block", nil))
	if err == nil {
		res.Body.Close()
		t.Fatal("no error after Do's context expired")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("returned after %v, want soon after 50ms", d)
	}

	gone, cancelGone := context.WithCancel(context.Background())
	cancelGone()
	res, err = c.Do(context.Background(), newRequest(t, http.MethodGet, srv.URL, nil).WithContext(gone))
	if err != nil {
		t.Fatalf("the request's cancelled context stopped Do: %v", err)
	}
	if b, err := readAllWithin(t, res.Body, 2*time.Second); err != nil || b != "ok" {
		t.Errorf("body %q, %v", b, err)
	}
	res.Body.Close()
}

func TestContextCancelledBeforeSend(t *testing.T) {
	var calls atomic.Int64
	srv, _ := startServer(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	c := newClient(t, Options{})
	get(t, c, srv.URL)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	body := &closeRecorder{Reader: strings.NewReader("x")}
	req := newRequest(t, http.MethodPost, srv.URL, body).WithContext(ctx)
	if _, err := c.RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if !body.closed.Load() {
		t.Error("request body not closed")
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler invoked %d times, want 1 (only the first GET)", n)
	}
}

func TestContextCancelWhileReadingBody(t *testing.T) {
	srv, _ := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	})
	c := newClient(t, Options{})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := c.RoundTrip(newRequest(t, http.MethodGet, srv.URL, nil).WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(res.Body, buf); err != nil || string(buf) != "first" {
		t.Fatalf("first chunk %q, %v", buf, err)
	}

	errc := make(chan error, 1)
	go func() {
		_, err := res.Body.Read(make([]byte, 16))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the Read block on the socket
	start := time.Now()
	cancel()
	select {
	case err := <-errc:
		if err == nil || err == io.EOF {
			t.Errorf("Read after cancel returned %v, want an error", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Read returned %v after cancel", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Read still blocked 2s after cancel")
	}
	if _, err := res.Body.Read(make([]byte, 1)); err == nil || err == io.EOF {
		t.Errorf("second Read after the failure returned %v, want the error again", err)
	}
	if n := len(idleConns(c, srv.URL)); n != 0 {
		t.Errorf("%d idle connections; the cut-off one must not be pooled", n)
	}
}

// headerServer answers with size bytes of header lines, written at once.
func headerServer(t *testing.T, size int) *rawServer {
	return startRaw(t, func(rs *rawServer, n int, c net.Conn) {
		br := bufio.NewReader(c)
		if !rs.read(n, br) {
			return
		}
		w := bufio.NewWriterSize(c, 64<<10)
		w.WriteString("HTTP/1.1 200 OK\r\n")
		line := "X-Pad: " + strings.Repeat("a", 1017) + "\r\n" // 1 KiB
		for written := 0; written < size; written += len(line) {
			if _, err := w.WriteString(line); err != nil {
				return
			}
		}
		w.WriteString("Content-Length: 2\r\n\r\nok")
		if w.Flush() == nil {
			io.Copy(io.Discard, br)
		}
	})
}

func TestResponseHeadersTooLarge(t *testing.T) {
	rs := headerServer(t, 2<<20)
	c := newClient(t, Options{MaxHeaderBytes: 64 << 10})
	start := time.Now()
	res, err := c.RoundTrip(newRequest(t, http.MethodGet, rs.url, nil))
	if err == nil {
		res.Body.Close()
		t.Fatalf("2 MiB of headers accepted with a 64 KiB limit (%d X-Pad lines)", len(res.Header["X-Pad"]))
	}
	if !errors.Is(err, errHeadersTooLarge) {
		t.Errorf("error %v, want errHeadersTooLarge", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
}

func TestResponseHeadersWithinLimit(t *testing.T) {
	rs := headerServer(t, 32<<10)
	c := newClient(t, Options{MaxHeaderBytes: 64 << 10})
	res, body := roundTrip(t, c, newRequest(t, http.MethodGet, rs.url, nil))
	if n := len(res.Header["X-Pad"]); n != 32 || body != "ok" {
		t.Errorf("%d X-Pad headers, body %q; want 32, ok", n, body)
	}
}

// The limit must hold however the headers arrive, including in the first
// read from the socket.
func TestResponseHeaderLimitBelowReadBuffer(t *testing.T) {
	rs := headerServer(t, 12<<10)
	c := newClient(t, Options{MaxHeaderBytes: 4 << 10})
	res, err := c.RoundTrip(newRequest(t, http.MethodGet, rs.url, nil))
	if err == nil {
		res.Body.Close()
		t.Fatalf("12 KiB of response headers accepted with MaxHeaderBytes 4 KiB (%d X-Pad lines read): the limit "+
			"(pc.lr.n) must be in force before the first read, br.Peek(1), which fills up to 16 KiB",
			len(res.Header["X-Pad"]))
	}
	if !errors.Is(err, errHeadersTooLarge) {
		t.Errorf("error %v, want errHeadersTooLarge", err)
	}
}

func TestInvalidRequestSendsNothing(t *testing.T) {
	tests := []struct {
		name string
		edit func(*http.Request)
	}{
		{"CRLF in header value", func(r *http.Request) { r.Header.Set("X-Note", "a\r\nX-Injected: 1") }},
		{"LF in header value", func(r *http.Request) { r.Header["X-Note"] = []string{"ok", "a\nb"} }},
		{"NUL in header value", func(r *http.Request) { r.Header.Set("X-Note", "a\x00b") }},
		{"space in header name", func(r *http.Request) { r.Header["Bad Name"] = []string{"v"} }},
		{"colon in header name", func(r *http.Request) { r.Header["X-A:b"] = []string{"v"} }},
		{"CRLF in Host", func(r *http.Request) { r.Host = "a.example\r\nX-Injected: 1" }},
		{"invalid method", func(r *http.Request) { r.Method = "GET /x" }},
		{"space in request target", func(r *http.Request) { r.URL.Opaque = "/a b" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var received, finished atomic.Int64
			rs := startRaw(t, func(_ *rawServer, _ int, c net.Conn) {
				n, _ := io.Copy(io.Discard, c)
				received.Add(n)
				finished.Add(1)
			})
			c := newClient(t, Options{})
			body := &closeRecorder{Reader: strings.NewReader("payload")}
			req := newRequest(t, http.MethodPost, rs.url+"/x", body)
			tt.edit(req)
			res, err := c.RoundTrip(req)
			if err == nil {
				res.Body.Close()
				t.Fatal("invalid request sent")
			}
			if !body.closed.Load() {
				t.Error("request body not closed")
			}
			// Any connection made was closed by the failure; once the
			// server has seen it end, it has seen all that was sent.
			eventually(time.Second, func() bool { n := rs.conns.Load(); return n > 0 && finished.Load() == n })
			if n := received.Load(); n != 0 {
				t.Errorf("server received %d bytes, want none", n)
			}
		})
	}
}

func TestInterimResponsesSkipped(t *testing.T) {
	rs := startRaw(t, func(rs *rawServer, n int, c net.Conn) {
		br := bufio.NewReader(c)
		if !rs.read(n, br) {
			return
		}
		io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
		io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Final: yes\r\nContent-Length: 5\r\n\r\nhello")
		io.Copy(io.Discard, br)
	})
	c := newClient(t, Options{})
	res, body := roundTrip(t, c, newRequest(t, http.MethodPost, rs.url, strings.NewReader("x")))
	if res.StatusCode != http.StatusOK || body != "hello" {
		t.Errorf("got %d %q, want 200 hello", res.StatusCode, body)
	}
	if res.Header.Get("X-Final") != "yes" || res.Header.Get("Link") != "" {
		t.Errorf("headers %v: want the final answer's, not the 103's", res.Header)
	}
}

func TestSwitchingProtocolsRefused(t *testing.T) {
	rs := startRaw(t, func(rs *rawServer, n int, c net.Conn) {
		br := bufio.NewReader(c)
		if rs.read(n, br) {
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			io.Copy(io.Discard, br)
		}
	})
	c := newClient(t, Options{})
	res, err := c.RoundTrip(newRequest(t, http.MethodGet, rs.url, nil))
	if err == nil {
		res.Body.Close()
		t.Fatalf("101 returned as a response (%d)", res.StatusCode)
	}
	if !strings.Contains(err.Error(), "upgrade") {
		t.Errorf("error %q does not say why", err)
	}
}

func TestHeadResponseHasNoBody(t *testing.T) {
	srv, st := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		if r.Method != http.MethodHead {
			io.WriteString(w, "hello")
		}
	})
	c := newClient(t, Options{})
	res, body := roundTrip(t, c, newRequest(t, http.MethodHead, srv.URL, nil))
	if res.ContentLength != 5 || body != "" {
		t.Errorf("HEAD: length %d, body %q; want 5 and no body", res.ContentLength, body)
	}
	if got := get(t, c, srv.URL); got != "hello" {
		t.Errorf("GET after HEAD: body %q", got)
	}
	if n := st.opened.Load(); n != 1 {
		t.Errorf("%d connections opened, want 1: the HEAD's connection is reused", n)
	}
}

func TestTLS(t *testing.T) {
	seen := make(chan seenReq, 10)
	st := &connStats{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- capture(r)
		io.WriteString(w, "secure")
	}))
	srv.Config.ConnState = st.hook
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted handshake below is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)

	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c := newClient(t, Options{TLSConfig: &tls.Config{RootCAs: roots}})
	for i := range 10 {
		if got := get(t, c, srv.URL+"/s"); got != "secure" {
			t.Fatalf("request %d: body %q", i, got)
		}
		r := recv(t, seen)
		if r.proto != "HTTP/1.1" || r.tls == nil {
			t.Fatalf("server saw %s, TLS %v; want HTTP/1.1 over TLS", r.proto, r.tls != nil)
		}
		if p := r.tls.NegotiatedProtocol; p != "http/1.1" && p != "" {
			t.Errorf("ALPN negotiated %q", p)
		}
	}
	if n := st.opened.Load(); n != 1 {
		t.Errorf("10 requests opened %d TLS connections, want 1", n)
	}

	t.Run("certificate is verified", func(t *testing.T) {
		c := newClient(t, Options{})
		res, err := c.RoundTrip(newRequest(t, http.MethodGet, srv.URL, nil))
		if err == nil {
			res.Body.Close()
			t.Fatal("untrusted certificate accepted")
		}
		var cve *tls.CertificateVerificationError
		if !errors.As(err, &cve) {
			t.Errorf("error %v is not a certificate verification error", err)
		}
	})
}

func TestPoolConfiguration(t *testing.T) {
	given := &tls.Config{NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS10}
	c := newClient(t, Options{TLSConfig: given})

	p := c.route(hostKey{"http", "api.example.com"}, newRequest(t, http.MethodGet, "http://api.example.com", nil))
	if p.addr != "api.example.com:80" || p.tls != nil {
		t.Errorf("http pool: addr %q, TLS %v; want api.example.com:80 without TLS", p.addr, p.tls != nil)
	}
	p = c.route(hostKey{"https", "[::1]"}, newRequest(t, http.MethodGet, "https://[::1]", nil))
	if p.addr != "[::1]:443" {
		t.Errorf("https pool addr %q, want [::1]:443", p.addr)
	}
	if p.tls == nil || p.tls.ServerName != "::1" || !slices.Equal(p.tls.NextProtos, []string{"http/1.1"}) ||
		p.tls.MinVersion != tls.VersionTLS12 {
		t.Errorf("https TLS config %+v: want ServerName ::1, ALPN http/1.1 only, TLS 1.2 at least", p.tls)
	}
	if !slices.Equal(given.NextProtos, []string{"h2"}) || given.ServerName != "" || given.MinVersion != tls.VersionTLS10 {
		t.Errorf("the caller's TLS config was changed: %+v", given)
	}
	if again := c.route(hostKey{"https", "[::1]"}, newRequest(t, http.MethodGet, "https://[::1]", nil)); again != p {
		t.Error("a second pool for the same host")
	}

	named := newClient(t, Options{TLSConfig: &tls.Config{ServerName: "sni.example"}})
	p = named.route(hostKey{"https", "10.0.0.1:8443"}, newRequest(t, http.MethodGet, "https://10.0.0.1:8443", nil))
	if p.addr != "10.0.0.1:8443" || p.tls.ServerName != "sni.example" {
		t.Errorf("addr %q, ServerName %q; want 10.0.0.1:8443 and the configured sni.example", p.addr, p.tls.ServerName)
	}
}

func TestProxyOption(t *testing.T) {
	seen := make(chan seenReq, 1)
	proxy, _ := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- capture(r)
		io.WriteString(w, "via proxy")
	})
	proxyURL, _ := url.Parse(proxy.URL)

	c := newClient(t, Options{Proxy: func(*http.Request) (*url.URL, error) { return proxyURL, nil }})
	res, body := roundTrip(t, c, newRequest(t, http.MethodGet, "http://target.invalid:8080/v1/x?q=1", nil))
	if res.StatusCode != http.StatusOK || body != "via proxy" {
		t.Errorf("got %d %q, want 200 via proxy", res.StatusCode, body)
	}
	r := recv(t, seen)
	if r.requestURI != "http://target.invalid:8080/v1/x?q=1" || r.url.Host != "target.invalid:8080" {
		t.Errorf("proxy saw request target %q (host %q); want the absolute URL", r.requestURI, r.url.Host)
	}

	t.Run("nil proxy is direct", func(t *testing.T) {
		seen := make(chan seenReq, 1)
		srv, _ := startServer(t, func(w http.ResponseWriter, r *http.Request) {
			seen <- capture(r)
			io.WriteString(w, "direct")
		})
		var asked atomic.Int64
		c := newClient(t, Options{Proxy: func(*http.Request) (*url.URL, error) { asked.Add(1); return nil, nil }})
		if got := get(t, c, srv.URL+"/d"); got != "direct" {
			t.Errorf("body %q", got)
		}
		if r := recv(t, seen); r.requestURI != "/d" {
			t.Errorf("server saw target %q, want origin-form /d", r.requestURI)
		}
		if asked.Load() == 0 {
			t.Error("Proxy option never consulted")
		}
		if idleConns(c, srv.URL) == nil {
			t.Error("direct request did not go through the client's own pool")
		}
	})

	t.Run("proxy error is reported", func(t *testing.T) {
		errNoProxy := errors.New("no proxy for you")
		c := newClient(t, Options{Proxy: func(*http.Request) (*url.URL, error) { return nil, errNoProxy }})
		res, err := c.RoundTrip(newRequest(t, http.MethodGet, "http://target.invalid/", nil))
		if err == nil {
			res.Body.Close()
			t.Fatal("no error")
		}
		if !errors.Is(err, errNoProxy) {
			t.Errorf("error %v does not carry the Proxy function's", err)
		}
	})
}

func TestCloseClosesIdleConnections(t *testing.T) {
	srv, st := startServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	c := New(Options{Proxy: direct})
	t.Cleanup(c.Close) // a second Close must be harmless

	// Three answers held at once need three connections.
	holdAnswers(t, c, srv.URL, 3)
	if n := len(idleConns(c, srv.URL)); n != 3 {
		t.Fatalf("%d idle connections, want 3", n)
	}
	c.Close()
	if !eventually(2*time.Second, func() bool { return st.closed.Load() == 3 }) {
		t.Errorf("server saw %d of 3 connections closed after Close", st.closed.Load())
	}
}

// Close's doc: "connections in use are closed when their responses are
// done".
func TestCloseClosesBusyConnectionsWhenDone(t *testing.T) {
	srv, st := startServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

	t.Run("in use during Close", func(t *testing.T) {
		c := New(Options{Proxy: direct})
		t.Cleanup(c.Close)
		before := st.closed.Load()
		res, err := c.RoundTrip(newRequest(t, http.MethodGet, srv.URL, nil))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if b, err := io.ReadAll(res.Body); err != nil || string(b) != "ok" {
			t.Fatalf("body %q, %v", b, err)
		}
		res.Body.Close()
		if !eventually(time.Second, func() bool { return st.closed.Load() > before }) {
			t.Error("a connection in use during Close() stays open after its response is read: put back " +
				"into a pool Close has already emptied and forgotten, nothing ever closes it")
		}
	})

	t.Run("request after Close", func(t *testing.T) {
		c := New(Options{Proxy: direct})
		c.Close()
		before := st.closed.Load()
		if got := get(t, c, srv.URL); got != "ok" {
			t.Fatalf("body %q", got)
		}
		if !eventually(time.Second, func() bool { return st.closed.Load() > before }) {
			t.Error("a request made after Close() leaves its connection open: kept idle in a pool the " +
				"closed client does not register, no sweeper or Close reaches it")
		}
	})
}

func TestCloseIdleConnections(t *testing.T) {
	srv, st := startServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	c := newClient(t, Options{})
	get(t, c, srv.URL)
	c.CloseIdleConnections()
	if !eventually(2*time.Second, func() bool { return st.closed.Load() == 1 }) {
		t.Fatalf("server saw %d connections closed, want 1", st.closed.Load())
	}
	// The client stays usable.
	if got := get(t, c, srv.URL); got != "ok" {
		t.Errorf("body %q", got)
	}
	if n := st.opened.Load(); n != 2 {
		t.Errorf("%d connections opened, want 2", n)
	}
}

func TestIdleTimeout(t *testing.T) {
	t.Run("sweeper closes idle connections", func(t *testing.T) {
		srv, st := startServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
		c := newClient(t, Options{IdleTimeout: 100 * time.Millisecond})
		get(t, c, srv.URL)
		if !eventually(2*time.Second, func() bool { return st.closed.Load() == 1 }) {
			t.Errorf("idle connection still open long after the 100ms idle timeout")
		}
		if n := len(idleConns(c, srv.URL)); n != 0 {
			t.Errorf("%d idle connections left in the pool", n)
		}
	})

	t.Run("expired connection is not used", func(t *testing.T) {
		srv, st := startServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
		c := newClient(t, Options{})
		get(t, c, srv.URL)
		ageIdle(t, c, srv.URL, 91*time.Second) // past the 90s default
		get(t, c, srv.URL)
		if n := st.opened.Load(); n != 2 {
			t.Errorf("%d connections opened, want 2", n)
		}
		if !eventually(2*time.Second, func() bool { return st.closed.Load() == 1 }) {
			t.Error("expired idle connection not closed")
		}
	})
}

func TestMaxIdlePerHost(t *testing.T) {
	srv, st := startServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	c := newClient(t, Options{MaxIdlePerHost: 1})
	holdAnswers(t, c, srv.URL, 2)
	if n := len(idleConns(c, srv.URL)); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
	if !eventually(2*time.Second, func() bool { return st.closed.Load() == 1 }) {
		t.Errorf("server saw %d connections closed, want the one over the limit", st.closed.Load())
	}
}

func TestUnsupportedURL(t *testing.T) {
	c := newClient(t, Options{})
	tests := []struct {
		name string
		url  *url.URL
	}{
		{"ftp scheme", &url.URL{Scheme: "ftp", Host: "files.example", Path: "/f", RawQuery: "key=s3cret"}},
		{"no host", &url.URL{Scheme: "http", Path: "/x"}},
		{"no URL", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := &closeRecorder{Reader: strings.NewReader("x")}
			req := &http.Request{Method: http.MethodPost, URL: tt.url, Header: http.Header{}, Body: body, ContentLength: 1}
			res, err := c.RoundTrip(req)
			if err == nil {
				res.Body.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), "unsupported URL") {
				t.Errorf("error %q", err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the query", err)
			}
			if !body.closed.Load() {
				t.Error("request body not closed")
			}
		})
	}
}

func TestDialErrorClosesBody(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	c := newClient(t, Options{})
	body := &closeRecorder{Reader: strings.NewReader("x")}
	res, err := c.RoundTrip(newRequest(t, http.MethodPost, "http://"+addr, body))
	if err == nil {
		res.Body.Close()
		t.Fatal("no error")
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" {
		t.Errorf("error %v, want a dial error", err)
	}
	if !body.closed.Load() {
		t.Error("request body not closed")
	}
}

func TestConnectionCloseNotReused(t *testing.T) {
	t.Run("response says close", func(t *testing.T) {
		srv, st := startServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		})
		c := newClient(t, Options{})
		res, body := roundTrip(t, c, newRequest(t, http.MethodGet, srv.URL, nil))
		if !res.Close || body != "bye" {
			t.Errorf("Close %v, body %q", res.Close, body)
		}
		if n := len(idleConns(c, srv.URL)); n != 0 {
			t.Errorf("%d idle connections, want 0", n)
		}
		get(t, c, srv.URL)
		if n := st.opened.Load(); n != 2 {
			t.Errorf("%d connections opened, want 2", n)
		}
	})

	t.Run("request says close", func(t *testing.T) {
		seen := make(chan seenReq, 2)
		srv, st := startServer(t, func(w http.ResponseWriter, r *http.Request) {
			seen <- capture(r)
			io.WriteString(w, "ok")
		})
		c := newClient(t, Options{})
		req := newRequest(t, http.MethodGet, srv.URL, nil)
		req.Close = true
		roundTrip(t, c, req)
		if r := recv(t, seen); !r.close || r.header.Get("Connection") != "close" {
			t.Errorf("server saw Close %v, Connection %q; want close", r.close, r.header.Get("Connection"))
		}
		get(t, c, srv.URL)
		if n := st.opened.Load(); n != 2 {
			t.Errorf("%d connections opened, want 2", n)
		}
	})

	t.Run("bytes after the answer", func(t *testing.T) {
		rs := startRaw(t, func(rs *rawServer, n int, c net.Conn) {
			br := bufio.NewReader(c)
			if rs.read(n, br) {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK")
				io.Copy(io.Discard, br)
			}
		})
		c := newClient(t, Options{})
		if got := get(t, c, rs.url); got != "ok" {
			t.Errorf("body %q", got)
		}
		if n := len(idleConns(c, rs.url)); n != 0 {
			t.Errorf("%d idle connections; one with unread bytes must not be pooled", n)
		}
	})
}

func TestRequestBodyReadError(t *testing.T) {
	srv, _ := startServer(t, func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
	for _, length := range []int64{-1, 100 << 10} {
		t.Run("ContentLength "+strconv.FormatInt(length, 10), func(t *testing.T) {
			c := newClient(t, Options{})
			req := newRequest(t, http.MethodPost, srv.URL, nil)
			req.Body = io.NopCloser(&brokenBody{left: 20 << 10})
			req.ContentLength = length
			res, err := c.RoundTrip(req)
			if err == nil {
				res.Body.Close()
				t.Fatal("no error")
			}
			if !errors.Is(err, errClientBody) {
				t.Errorf("error %v does not carry the body's error", err)
			}
		})
	}

	t.Run("body shorter than ContentLength", func(t *testing.T) {
		c := newClient(t, Options{})
		req := newRequest(t, http.MethodPost, srv.URL, nil)
		req.Body = io.NopCloser(strings.NewReader("abc"))
		req.ContentLength = 10
		res, err := c.RoundTrip(req)
		if err == nil {
			res.Body.Close()
			t.Fatal("no error")
		}
		if !strings.Contains(err.Error(), "not the 10 announced") {
			t.Errorf("error %q", err)
		}
	})
}

func TestValidTokenAndValue(t *testing.T) {
	for s, want := range map[string]bool{
		"GET": true, "X-Custom_Header.1": true, "!#$%&'*+-.^_`|~": true,
		"": false, "a b": false, "a:b": false, "a\tb": false, "é": false, "a(b)": false, "a\x7f": false,
	} {
		if got := validToken(s); got != want {
			t.Errorf("validToken(%q) = %v, want %v", s, got, want)
		}
	}
	for s, want := range map[string]bool{
		"": true, "plain": true, "tab\tok": true, "utf-8 é": true,
		"a\rb": false, "a\nb": false, "a\x00b": false, "a\x01b": false, "a\x7fb": false,
	} {
		if got := validValue(s); got != want {
			t.Errorf("validValue(%q) = %v, want %v", s, got, want)
		}
	}
}

// A HEAD answer has nothing to read: closing it unread must not cost the
// connection.
func TestUnreadEmptyBodiesKeepTheConnection(t *testing.T) {
	srv, st := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/empty" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Length", "5")
	})
	c := newClient(t, Options{})
	for _, req := range []*http.Request{
		newRequest(t, http.MethodHead, srv.URL, nil),
		newRequest(t, http.MethodHead, srv.URL, nil),
		newRequest(t, http.MethodGet, srv.URL+"/empty", nil),
		newRequest(t, http.MethodGet, srv.URL+"/empty", nil),
	} {
		res, err := c.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	if n := st.opened.Load(); n != 1 {
		t.Errorf("%d connections opened, want 1", n)
	}
}

// Close must unblock a Read in progress on another goroutine, as
// net/http's bodies do, rather than wait for the upstream's next bytes.
func TestCloseUnblocksRead(t *testing.T) {
	release := make(chan struct{})
	srv, _ := startServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	c := newClient(t, Options{})
	res, err := c.RoundTrip(newRequest(t, http.MethodGet, srv.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(res.Body, buf); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := res.Body.Read(make([]byte, 16))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the Read block on the socket
	closed := make(chan struct{})
	go func() { res.Body.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(time.Second):
		t.Fatal("Close still blocked after 1s")
	}
	if err := recv(t, errc); err == nil || err == io.EOF {
		t.Errorf("Read during Close returned %v, want an error", err)
	}
	if n := len(idleConns(c, srv.URL)); n != 0 {
		t.Errorf("%d idle connections; a body closed early must not be pooled", n)
	}
}

// holdAnswers makes n requests whose answers are all open at once, so that
// each needs its own connection, then reads and closes them.
func holdAnswers(t *testing.T, c *Client, target string, n int) {
	t.Helper()
	var held []*http.Response
	for range n {
		res, err := c.RoundTrip(newRequest(t, http.MethodGet, target, nil))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, res)
	}
	for _, res := range held {
		io.ReadAll(res.Body)
		res.Body.Close()
	}
}

// An upstream may refuse a large upload from its headers alone (a bad key)
// and close the connection without reading the body. Its answer, not the
// failed write, is what the caller must see, or a refused key would look
// like a network failure.
func TestAnswerBeforeBodyIsRead(t *testing.T) {
	rs := startRaw(t, func(rs *rawServer, n int, c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		body := `{"error":"invalid key"}`
		fmt.Fprintf(c, "HTTP/1.1 401 Unauthorized\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		// Close with unread data pending makes the kernel reset the
		// connection, which fails the client's write.
		c.(*net.TCPConn).SetLinger(0)
	})
	c := newClient(t, Options{})
	upload := bytes.Repeat([]byte("x"), 8<<20)
	res, body := roundTrip(t, c, newRequest(t, http.MethodPost, rs.url+"/v1/files", bytes.NewReader(upload)))
	if res.StatusCode != http.StatusUnauthorized || body != `{"error":"invalid key"}` {
		t.Fatalf("got %d %q; want the upstream's 401", res.StatusCode, body)
	}
	if n := len(idleConns(c, rs.url)); n != 0 {
		t.Errorf("%d idle connections; one the request could not be written on is not reused", n)
	}
}
