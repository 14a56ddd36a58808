package httpd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet/internal/testenv"
)

// testServer is the API that Server shares with http.Server. Every behaviour
// test runs against net/http first, so that a failure on httpd shows a
// difference from the reference rather than a mistaken expectation.
type testServer interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

type testConfig struct {
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	Log               *slog.Logger
}

type testImpl struct {
	name string
	new  func(http.Handler, testConfig) testServer
}

var testImpls = []testImpl{
	{"net-http", newStd},
	{"httpd", newHTTPD},
}

var discardLog = slog.New(slog.DiscardHandler)

func newStd(h http.Handler, c testConfig) testServer {
	log := c.Log
	if log == nil {
		log = discardLog
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelError),
	}
}

func newHTTPD(h http.Handler, c testConfig) testServer {
	log := c.Log
	if log == nil {
		log = discardLog
	}
	return &Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		Log:               log,
	}
}

func forEachImpl(t *testing.T, f func(t *testing.T, im testImpl)) {
	t.Helper()
	for _, im := range testImpls {
		t.Run(im.name, func(t *testing.T) { f(t, im) })
	}
}

type runningServer struct {
	srv  testServer
	addr string

	mu     sync.Mutex
	served chan error
	done   bool
	err    error
}

func testListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func startServer(t *testing.T, im testImpl, h http.Handler, c testConfig) *runningServer {
	t.Helper()
	return startServerOn(t, im, testListen(t), h, c)
}

func startServerOn(t *testing.T, im testImpl, ln net.Listener, h http.Handler, c testConfig) *runningServer {
	t.Helper()
	r := &runningServer{srv: im.new(h, c), addr: ln.Addr().String(), served: make(chan error, 1)}
	go func() { r.served <- r.srv.Serve(ln) }()
	t.Cleanup(func() {
		r.srv.Close()
		if ok, _ := r.serveResult(5 * time.Second); !ok {
			t.Errorf("Serve did not return within 5s of Close")
		}
	})
	return r
}

// serveResult waits up to d for Serve to return and reports its error.
func (r *runningServer) serveResult(d time.Duration) (returned bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return true, r.err
	}
	select {
	case r.err = <-r.served:
		r.done = true
		return true, r.err
	case <-time.After(d):
		return false, nil
	}
}

func dialServer(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawRoundTrip writes raw and reads one response with its body.
func rawRoundTrip(t *testing.T, c net.Conn, br *bufio.Reader, raw string) (*http.Response, string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("write request: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, string(body)
}

// waitServerClose reads until the server ends the connection, failing if that
// takes longer than within. It returns what was read and how long it took.
func waitServerClose(t *testing.T, c net.Conn, br io.Reader, within time.Duration) (string, time.Duration) {
	t.Helper()
	t0 := time.Now()
	c.SetReadDeadline(t0.Add(within))
	data, err := io.ReadAll(br)
	elapsed := time.Since(t0)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection not closed by the server after %v: %v (read %q)", elapsed, err, data)
	}
	return string(data), elapsed
}

func newTestClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// TestFlushStreams protects server-sent events: each Flush must put the
// headers and the data written so far on the wire while the handler is
// still running.
func TestFlushStreams(t *testing.T) {
	flushers := map[string]func(http.ResponseWriter) error{
		"Flusher": func(w http.ResponseWriter) error {
			w.(http.Flusher).Flush()
			return nil
		},
		"ResponseController": func(w http.ResponseWriter) error {
			return http.NewResponseController(w).Flush()
		},
	}
	forEachImpl(t, func(t *testing.T, im testImpl) {
		for name, flush := range flushers {
			t.Run(name, func(t *testing.T) {
				step1, step2 := make(chan struct{}), make(chan struct{})
				flushErr := make(chan error, 2)
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/event-stream")
					flushErr <- flush(w)
					select {
					case <-step1:
					case <-r.Context().Done():
						return
					}
					io.WriteString(w, "data: first\n\n")
					flushErr <- flush(w)
					select {
					case <-step2:
					case <-r.Context().Done():
						return
					}
					io.WriteString(w, "data: second\n\n")
				})
				rs := startServer(t, im, h, testConfig{})
				resp, err := newTestClient(t).Get("http://" + rs.addr + "/")
				if err != nil {
					t.Fatalf("Get returned no headers while the handler waits after Flush: %v", err)
				}
				defer resp.Body.Close()
				if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
					t.Errorf("TransferEncoding = %q, want [chunked]", resp.TransferEncoding)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
					t.Errorf("Content-Type = %q", ct)
				}
				close(step1)
				first := make([]byte, len("data: first\n\n"))
				if _, err := io.ReadFull(resp.Body, first); err != nil {
					t.Fatalf("first event did not arrive while the handler waits: %v", err)
				}
				if string(first) != "data: first\n\n" {
					t.Errorf("first event = %q", first)
				}
				close(step2)
				rest, err := io.ReadAll(resp.Body)
				if err != nil || string(rest) != "data: second\n\n" {
					t.Errorf("rest = %q, %v; want second event and a clean end", rest, err)
				}
				for range 2 {
					if err := <-flushErr; err != nil {
						t.Errorf("Flush: %v", err)
					}
				}
			})
		}
	})
}

// TestAbortHandler protects proxies: a handler that panics with
// http.ErrAbortHandler must leave the client with a broken body, never a
// clean end it could mistake for the whole response.
func TestAbortHandler(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im testImpl) {
		var logBuf testenv.LogBuffer
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		})
		rs := startServer(t, im, h, testConfig{Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
		resp, err := newTestClient(t).Get("http://" + rs.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("body read error = %v, want io.ErrUnexpectedEOF", err)
		}
		if string(body) != "partial" {
			t.Errorf("body = %q, want %q", body, "partial")
		}
		if s := logBuf.String(); s != "" {
			t.Errorf("ErrAbortHandler was logged (net/http logs nothing): %s", s)
		}
	})
}

// TestPanicLogged protects operators: a handler panic is logged with its
// value and the connection is dropped without a response, while the server
// keeps serving other connections.
func TestPanicLogged(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im testImpl) {
		var logBuf testenv.LogBuffer
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/panic" {
				panic("boom-7f3a")
			}
			io.WriteString(w, "ok")
		})
		rs := startServer(t, im, h, testConfig{Log: slog.New(slog.NewTextHandler(&logBuf, nil))})

		c := dialServer(t, rs.addr)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /panic HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		if resp, err := http.ReadResponse(br, nil); err == nil {
			t.Errorf("got a %d response to a panicking handler; net/http sends none", resp.StatusCode)
		}
		waitServerClose(t, c, br, 2*time.Second)

		deadline := time.Now().Add(2 * time.Second)
		for !strings.Contains(logBuf.String(), "boom-7f3a") {
			if time.Now().After(deadline) {
				t.Fatalf("panic value not logged; log: %q", logBuf.String())
			}
			time.Sleep(5 * time.Millisecond)
		}

		c2 := dialServer(t, rs.addr)
		if resp, body := rawRoundTrip(t, c2, bufio.NewReader(c2), "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 || body != "ok" {
			t.Errorf("after a panic: %d %q", resp.StatusCode, body)
		}
	})
}

// TestContextCanceledOnDisconnect protects upstream calls: when the client
// goes away, a slow handler's context must end so its work stops.
func TestContextCanceledOnDisconnect(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im testImpl) {
		started := make(chan struct{})
		result := make(chan error, 1)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(started)
			select {
			case <-r.Context().Done():
				result <- r.Context().Err()
			case <-time.After(5 * time.Second):
				result <- nil
			}
		})
		rs := startServer(t, im, h, testConfig{})
		c := dialServer(t, rs.addr)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("handler not called")
		}
		c.Close()
		t0 := time.Now()
		err := <-result
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("context error = %v after %v, want context.Canceled", err, time.Since(t0))
		}
		if d := time.Since(t0); d > time.Second {
			t.Errorf("cancellation took %v, want under 1s", d)
		}
	})
}

// TestContextCanceledAfterHandler protects goroutines a handler starts with
// r.Context(): they must see the request end.
func TestContextCanceledAfterHandler(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im testImpl) {
		ctxs := make(chan context.Context, 1)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctxs <- r.Context()
			if r.Context().Err() != nil {
				io.WriteString(w, "canceled early")
				return
			}
			io.WriteString(w, "ok")
		})
		rs := startServer(t, im, h, testConfig{})
		c := dialServer(t, rs.addr)
		if _, body := rawRoundTrip(t, c, bufio.NewReader(c), "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); body != "ok" {
			t.Errorf("body = %q", body)
		}
		ctx := <-ctxs
		select {
		case <-ctx.Done():
			if !errors.Is(ctx.Err(), context.Canceled) {
				t.Errorf("ctx.Err() = %v", ctx.Err())
			}
		case <-time.After(time.Second):
			t.Error("request context still live 1s after the handler returned")
		}
	})
}

// TestReadHeaderTimeout protects against slowloris clients, on the first
// request of a connection and on later ones.
func TestReadHeaderTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	forEachImpl(t, func(t *testing.T, im testImpl) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
		rs := startServer(t, im, h, testConfig{ReadHeaderTimeout: timeout, IdleTimeout: 10 * time.Second})
		check := func(t *testing.T, c net.Conn, br *bufio.Reader) {
			t0 := time.Now()
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
			data, _ := waitServerClose(t, c, br, 3*time.Second)
			if d := time.Since(t0); d < timeout-50*time.Millisecond {
				t.Errorf("closed after %v, before the %v timeout", d, timeout)
			}
			if data != "" {
				t.Errorf("server sent %q before closing; net/http sends nothing", data)
			}
		}
		t.Run("first", func(t *testing.T) {
			c := dialServer(t, rs.addr)
			check(t, c, bufio.NewReader(c))
		})
		t.Run("second", func(t *testing.T) {
			c := dialServer(t, rs.addr)
			br := bufio.NewReader(c)
			rawRoundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			check(t, c, br)
		})
	})
}

// TestIdleTimeout protects the file-descriptor budget from idle keep-alive
// connections.
func TestIdleTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	forEachImpl(t, func(t *testing.T, im testImpl) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
		rs := startServer(t, im, h, testConfig{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: timeout})
		c := dialServer(t, rs.addr)
		br := bufio.NewReader(c)
		rawRoundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		data, d := waitServerClose(t, c, br, 3*time.Second)
		if d < timeout-50*time.Millisecond {
			t.Errorf("idle connection closed after %v, before the %v timeout", d, timeout)
		}
		if data != "" {
			t.Errorf("server sent %q on an idle connection", data)
		}
	})
}

// TestIdleLongerThanReadHeaderTimeout protects keep-alive clients: the
// header timeout starts with the next request's first bytes, not when the
// connection goes idle.
func TestIdleLongerThanReadHeaderTimeout(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im testImpl) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
		rs := startServer(t, im, h, testConfig{ReadHeaderTimeout: 50 * time.Millisecond, IdleTimeout: 10 * time.Second})
		c := dialServer(t, rs.addr)
		br := bufio.NewReader(c)
		rawRoundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(200 * time.Millisecond) // idle for four header timeouts
		if resp, body := rawRoundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 || body != "ok" {
			t.Errorf("second request: %d %q", resp.StatusCode, body)
		}
	})
}

// TestShutdown protects deploys: in-flight requests finish with their full
// response while idle connections and the listener close at once.
func TestShutdown(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im testImpl) {
		started, release := make(chan struct{}), make(chan struct{})
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				close(started)
				<-release
				io.WriteString(w, strings.Repeat("done", 1000))
				return
			}
			io.WriteString(w, "ok")
		})
		rs := startServer(t, im, h, testConfig{})
		defer func() {
			select {
			case <-release:
			default:
				close(release)
			}
		}()

		idle := dialServer(t, rs.addr)
		idleBr := bufio.NewReader(idle)
		rawRoundTrip(t, idle, idleBr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")

		type result struct {
			status int
			body   string
			err    error
		}
		got := make(chan result, 1)
		client := newTestClient(t)
		go func() {
			resp, err := client.Get("http://" + rs.addr + "/slow")
			if err != nil {
				got <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			got <- result{resp.StatusCode, string(b), err}
		}()
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("slow handler not called")
		}

		shutdownErr := make(chan error, 1)
		go func() { shutdownErr <- rs.srv.Shutdown(context.Background()) }()

		returned, err := rs.serveResult(2 * time.Second)
		if !returned {
			t.Fatal("Serve did not return within 2s of Shutdown")
		}
		if !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v, want http.ErrServerClosed", err)
		}
		if data, _ := waitServerClose(t, idle, idleBr, 2*time.Second); data != "" {
			t.Errorf("idle connection got %q", data)
		}
		if c, err := net.Dial("tcp", rs.addr); err == nil {
			c.Close()
			t.Error("dial succeeded after Shutdown")
		}
		select {
		case err := <-shutdownErr:
			t.Fatalf("Shutdown returned %v while a request is in flight", err)
		default:
		}

		close(release)
		r := <-got
		if r.err != nil || r.status != 200 || r.body != strings.Repeat("done", 1000) {
			t.Errorf("in-flight request: status %d, %d bytes, err %v", r.status, len(r.body), r.err)
		}
		select {
		case err := <-shutdownErr:
			if err != nil {
				t.Errorf("Shutdown = %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Shutdown did not return within 5s of the last request ending")
		}
	})
}

// TestShutdownContextExpires protects deploy deadlines: a handler that never
// finishes must not hold Shutdown past its context.
func TestShutdownContextExpires(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im testImpl) {
		started, release := make(chan struct{}), make(chan struct{})
		defer close(release)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(started)
			<-release
		})
		rs := startServer(t, im, h, testConfig{})
		c := dialServer(t, rs.addr)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		<-started
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		t0 := time.Now()
		err := rs.srv.Shutdown(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(t0); d > 2*time.Second {
			t.Errorf("Shutdown took %v with a 100ms context", d)
		}
	})
}

// TestClose protects fast exits: Close drops every connection, including one
// with a handler still running.
func TestClose(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im testImpl) {
		started, release := make(chan struct{}), make(chan struct{})
		defer close(release)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				close(started)
				<-release
			}
			io.WriteString(w, "ok")
		})
		rs := startServer(t, im, h, testConfig{})
		idle := dialServer(t, rs.addr)
		idleBr := bufio.NewReader(idle)
		rawRoundTrip(t, idle, idleBr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		busy := dialServer(t, rs.addr)
		io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
		<-started

		if err := rs.srv.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
		returned, err := rs.serveResult(2 * time.Second)
		if !returned {
			t.Fatal("Serve did not return within 2s of Close")
		}
		if !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v, want http.ErrServerClosed", err)
		}
		waitServerClose(t, idle, idleBr, 2*time.Second)
		if data, _ := waitServerClose(t, busy, busy, 2*time.Second); data != "" {
			t.Errorf("busy connection got %q", data)
		}
		if c, err := net.Dial("tcp", rs.addr); err == nil {
			c.Close()
			t.Error("dial succeeded after Close")
		}
	})
}

type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// TestConcurrentKeepAlive protects the wallet's main traffic pattern: many
// clients reusing connections, each getting its own answer.
func TestConcurrentKeepAlive(t *testing.T) {
	const goroutines, requests = 8, 200
	forEachImpl(t, func(t *testing.T, im testImpl) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "POST" {
				io.Copy(w, r.Body)
				return
			}
			io.WriteString(w, r.URL.Query().Get("q"))
		})
		ln := &countingListener{Listener: testListen(t)}
		rs := startServerOn(t, im, ln, h, testConfig{})
		client := newTestClient(t)
		errs := make(chan error, goroutines)
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range requests {
					want := fmt.Sprintf("g%d-r%d", g, i)
					var resp *http.Response
					var err error
					if i%2 == 0 {
						resp, err = client.Get("http://" + rs.addr + "/?q=" + want)
					} else {
						resp, err = client.Post("http://"+rs.addr+"/", "text/plain", strings.NewReader(want))
					}
					if err != nil {
						errs <- err
						return
					}
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || string(body) != want || resp.StatusCode != 200 {
						errs <- fmt.Errorf("request %s: status %d, body %q, err %v", want, resp.StatusCode, body, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		// Without keep-alive every request would need its own connection.
		if n := ln.accepted.Load(); n > 4*goroutines {
			t.Errorf("%d connections for %d requests; keep-alive is not working", n, goroutines*requests)
		}
	})
}

// echoHandler answers with the request body.
var echoHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Write(b)
})

// TestEchoLargeBody protects large uploads through the request body and
// chunked responses.
func TestEchoLargeBody(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im testImpl) {
		rs := startServer(t, im, echoHandler, testConfig{})
		want := make([]byte, 1<<20)
		for i := range want {
			want[i] = byte(i * 7 >> 3)
		}
		client := newTestClient(t)
		for range 2 { // the second request proves the connection stays usable
			resp, err := client.Post("http://"+rs.addr+"/", "application/octet-stream", bytes.NewReader(want))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, want) {
				t.Fatalf("status %d, %d bytes back (equal=%v), err %v", resp.StatusCode, len(got), bytes.Equal(got, want), err)
			}
		}
	})
}

// TestRequestFields protects handlers and access logs that read the
// connection-derived request fields.
func TestRequestFields(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im testImpl) {
		reqs := make(chan *http.Request, 1)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reqs <- r
			io.WriteString(w, "ok")
		})
		rs := startServer(t, im, h, testConfig{})
		c := dialServer(t, rs.addr)
		rawRoundTrip(t, c, bufio.NewReader(c), "GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: Example.COM:8080\r\nX-Test: v\r\n\r\n")
		r := <-reqs
		if r.RemoteAddr != c.LocalAddr().String() {
			t.Errorf("RemoteAddr = %q, want %q", r.RemoteAddr, c.LocalAddr())
		}
		if r.Host != "Example.COM:8080" {
			t.Errorf("Host = %q", r.Host)
		}
		if _, ok := r.Header["Host"]; ok {
			t.Errorf("Host left in r.Header: %q", r.Header["Host"])
		}
		if r.RequestURI != "/a/b?x=1&y=%20" {
			t.Errorf("RequestURI = %q", r.RequestURI)
		}
		if r.URL.Path != "/a/b" || r.URL.Query().Get("y") != " " {
			t.Errorf("URL = %#v", r.URL)
		}
		if r.Header.Get("X-Test") != "v" || r.Proto != "HTTP/1.1" || r.ProtoMajor != 1 || r.ProtoMinor != 1 {
			t.Errorf("Header = %v, Proto = %q", r.Header, r.Proto)
		}
	})
}

// TestWriteErrors protects handlers that check Write's error: over-long
// bodies and bodies on bodiless statuses are refused with the sentinel
// errors net/http uses.
func TestWriteErrors(t *testing.T) {
	cases := []struct {
		name, raw string
		write     func(http.ResponseWriter) error
		want      error
	}{
		{"over Content-Length", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", func(w http.ResponseWriter) error {
			w.Header().Set("Content-Length", "3")
			io.WriteString(w, "ab")
			_, err := io.WriteString(w, "cd")
			return err
		}, http.ErrContentLength},
		{"204", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", func(w http.ResponseWriter) error {
			w.WriteHeader(http.StatusNoContent)
			_, err := io.WriteString(w, "x")
			return err
		}, http.ErrBodyNotAllowed},
		{"304", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", func(w http.ResponseWriter) error {
			w.WriteHeader(http.StatusNotModified)
			_, err := io.WriteString(w, "x")
			return err
		}, http.ErrBodyNotAllowed},
		{"HEAD", "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", func(w http.ResponseWriter) error {
			_, err := io.WriteString(w, "x")
			return err
		}, nil},
	}
	forEachImpl(t, func(t *testing.T, im testImpl) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				errs := make(chan error, 1)
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { errs <- tc.write(w) })
				rs := startServer(t, im, h, testConfig{})
				c := dialServer(t, rs.addr)
				io.WriteString(c, tc.raw)
				select {
				case err := <-errs:
					if !errors.Is(err, tc.want) {
						t.Errorf("Write = %v, want %v", err, tc.want)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("handler not called")
				}
			})
		}
	})
}

// TestExpectContinue protects clients that wait for "100 Continue" before
// sending a body: it must come when the handler reads, and only then.
func TestExpectContinue(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im testImpl) {
		rs := startServer(t, im, echoHandler, testConfig{})
		c := dialServer(t, rs.addr)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		for i := range 2 { // the second round proves the connection is reusable
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("round %d: reading the interim response: %v", i, err)
			}
			if resp.StatusCode != 100 {
				t.Fatalf("round %d: first response %d, want 100 before the body is sent", i, resp.StatusCode)
			}
			io.WriteString(c, "hello")
			resp, err = http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != 200 || string(body) != "hello" || resp.Close {
				t.Fatalf("round %d: %d %q close=%v err=%v", i, resp.StatusCode, body, resp.Close, err)
			}
		}
	})
}

// TestDefaultMaxHeaderBytes protects the documented 1 MiB default against
// both a smaller limit and none at all.
func TestDefaultMaxHeaderBytes(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im testImpl) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
		rs := startServer(t, im, h, testConfig{})
		for _, tc := range []struct {
			size int
			want int
		}{{512 << 10, 200}, {1<<20 + 64<<10, 431}} {
			c := dialServer(t, rs.addr)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			raw := "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", tc.size) + "\r\n\r\n"
			go io.WriteString(c, raw)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("%d-byte header: %v", tc.size, err)
			}
			if resp.StatusCode != tc.want {
				t.Errorf("%d-byte header: status %d, want %d", tc.size, resp.StatusCode, tc.want)
			}
			c.Close()
		}
	})
}
