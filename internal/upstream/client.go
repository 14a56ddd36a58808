// Package upstream is the proxy's HTTP/1.1 client for upstream APIs.
//
// net/http's Transport hands every request to two goroutines per
// connection (one writes, one reads) and passes it between them and the
// caller over channels. On the proxy's path that is several goroutine
// switches per call, and it was the largest single cost of a proxied call.
// Client does the same job on the calling goroutine: it takes a pooled
// keep-alive connection, writes the request, reads the response with
// http.ReadResponse, and puts the connection back when the body has been
// read to its end.
//
// It speaks HTTP/1.1 only (over TLS it offers only "http/1.1" by ALPN),
// which every API the catalog knows accepts. Requests that the environment
// sends through an HTTP proxy (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) go
// through a net/http Transport instead.
package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apikeywallet/apiwallet/internal/sockio"
)

// Options tunes a Client. Zero values take the defaults shown.
type Options struct {
	DialTimeout         time.Duration // 5 s
	TLSHandshakeTimeout time.Duration // 10 s
	// ResponseHeaderTimeout bounds the wait for the response's headers once
	// the request is written (60 s). Bodies are not cut: streams may last.
	ResponseHeaderTimeout time.Duration
	IdleTimeout           time.Duration // 90 s: idle connections are closed after it
	MaxIdlePerHost        int           // 256
	MaxHeaderBytes        int64         // 1 MiB of response headers
	// TLSConfig is cloned for each host; nil means the system's roots.
	TLSConfig *tls.Config
	// Proxy chooses an HTTP proxy (default http.ProxyFromEnvironment);
	// requests it sends to a proxy go through a net/http Transport. It is
	// asked once per scheme and host, and the answer kept.
	Proxy func(*http.Request) (*url.URL, error)
}

// Client is an http.RoundTripper for HTTP/1.1 upstreams with per-host
// keep-alive pools. It is safe for concurrent use.
type Client struct {
	opts   Options
	dialer net.Dialer
	slow   *http.Transport // requests through a proxy

	// routes maps each upstream to its pool, or to nil when the
	// environment sends its requests through a proxy. It is copied on
	// write (a new upstream is rare) so that every call reads it without
	// a lock.
	routes atomic.Pointer[map[hostKey]*pool]
	mu     sync.Mutex // serialises changes to routes, and closed
	closed bool

	stop chan struct{}
	done chan struct{}
}

// New returns a Client. Close it to release its connections.
func New(o Options) *Client {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.TLSHandshakeTimeout <= 0 {
		o.TLSHandshakeTimeout = 10 * time.Second
	}
	if o.ResponseHeaderTimeout <= 0 {
		o.ResponseHeaderTimeout = 60 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 90 * time.Second
	}
	if o.MaxIdlePerHost <= 0 {
		o.MaxIdlePerHost = 256
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 1 << 20
	}
	if o.Proxy == nil {
		o.Proxy = http.ProxyFromEnvironment
	}
	c := &Client{
		opts:   o,
		dialer: net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second},
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	c.slow = &http.Transport{
		Proxy:                  o.Proxy,
		DialContext:            c.dialer.DialContext,
		TLSClientConfig:        o.TLSConfig,
		MaxIdleConnsPerHost:    o.MaxIdlePerHost,
		IdleConnTimeout:        o.IdleTimeout,
		TLSHandshakeTimeout:    o.TLSHandshakeTimeout,
		ResponseHeaderTimeout:  o.ResponseHeaderTimeout,
		MaxResponseHeaderBytes: o.MaxHeaderBytes,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true, // bodies pass through as encoded
	}
	c.routes.Store(&map[hostKey]*pool{})
	go c.sweep()
	return c
}

// hostKey names an upstream: the scheme and host[:port] of its URLs.
type hostKey struct{ scheme, host string }

// Close closes idle connections and stops the idle sweeper; connections
// in use are closed when their responses are done.
func (c *Client) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	pools := c.allPools()
	c.routes.Store(&map[hostKey]*pool{})
	c.mu.Unlock()
	close(c.stop)
	<-c.done
	for _, p := range pools {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.closeIdle(time.Time{})
	}
	c.slow.CloseIdleConnections()
}

// CloseIdleConnections closes the connections no request is using.
func (c *Client) CloseIdleConnections() {
	for _, p := range c.allPools() {
		p.closeIdle(time.Time{})
	}
	c.slow.CloseIdleConnections()
}

// allPools lists the pools.
func (c *Client) allPools() []*pool {
	routes := *c.routes.Load()
	pools := make([]*pool, 0, len(routes))
	for _, p := range routes {
		if p != nil {
			pools = append(pools, p)
		}
	}
	return pools
}

func (c *Client) sweep() {
	defer close(c.done)
	t := time.NewTicker(c.opts.IdleTimeout / 2)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			for _, p := range c.allPools() {
				p.closeIdle(now.Add(-c.opts.IdleTimeout))
			}
		}
	}
}

// RoundTrip is Do with the request's context.
func (c *Client) RoundTrip(req *http.Request) (*http.Response, error) {
	return c.Do(req.Context(), req)
}

// Do sends req under ctx (req's own context is not consulted: the proxy
// builds one request per attempt and saves copying it to attach one) and
// returns the response, whose body must be read to its end and closed
// for the connection to be reused. Like any RoundTripper it closes
// req.Body, also on errors.
func (c *Client) Do(ctx context.Context, req *http.Request) (*http.Response, error) {
	u := req.URL
	if u == nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		closeBody(req)
		return nil, fmt.Errorf("upstream: unsupported URL %q", redactURL(req))
	}
	k := hostKey{u.Scheme, u.Host}
	p, known := (*c.routes.Load())[k]
	if !known {
		p = c.route(k, req)
	}
	if p == nil {
		if req.Context() != ctx {
			req = req.WithContext(ctx)
		}
		return c.slow.RoundTrip(req)
	}
	for fresh := false; ; fresh = true {
		pc, err := p.get(ctx, c, fresh)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		res, err := c.send(ctx, pc, req)
		if err == nil {
			return res, nil
		}
		// A kept-alive connection the upstream has closed in the meantime
		// fails before any answer: send again on a new one, if the body
		// can be sent again.
		var nr *notReceived
		if pc.reused && !fresh && errors.As(err, &nr) && ctx.Err() == nil && retryable(req, nr) {
			if req.Body == nil || req.Body == http.NoBody {
				continue
			}
			if req.GetBody != nil {
				if b, gerr := req.GetBody(); gerr == nil {
					req = req.Clone(ctx)
					req.Body = b
					continue
				}
			}
		}
		closeBody(req)
		if nr != nil {
			return nil, nr.err
		}
		return nil, err
	}
}

// retryable reports whether a request that got no answer on a reused
// connection may be sent again, as net/http's Transport decides it: when
// the failure came while writing it (the upstream had closed the
// connection and cannot have acted on a partial request), or when the
// request is idempotent. A complete request that got no answer may have
// been acted on.
func retryable(req *http.Request, nr *notReceived) bool {
	var we *writeError
	if errors.As(nr.err, &we) {
		return true
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, ok := req.Header["Idempotency-Key"]
	if !ok {
		_, ok = req.Header["X-Idempotency-Key"]
	}
	return ok
}

// route finds how requests to a new upstream go, and keeps it: nil when
// Options.Proxy sends them to a proxy (or fails, which the Transport then
// reports), else the upstream's pool.
func (c *Client) route(k hostKey, req *http.Request) *pool {
	c.mu.Lock()
	defer c.mu.Unlock()
	routes := *c.routes.Load()
	if p, ok := routes[k]; ok {
		return p
	}
	var p *pool
	if pu, err := c.opts.Proxy(req); err == nil && pu == nil {
		u := req.URL
		host, port := u.Hostname(), u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		p = &pool{addr: net.JoinHostPort(host, port), max: c.opts.MaxIdlePerHost, idleTimeout: c.opts.IdleTimeout}
		if u.Scheme == "https" {
			cfg := &tls.Config{}
			if c.opts.TLSConfig != nil {
				cfg = c.opts.TLSConfig.Clone()
			}
			if cfg.ServerName == "" {
				cfg.ServerName = host
			}
			cfg.NextProtos = []string{"http/1.1"}
			cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
			p.tls = cfg
		}
	}
	if c.closed {
		if p != nil {
			p.closed = true // used once, kept nowhere
		}
		return p
	}
	next := make(map[hostKey]*pool, len(routes)+1)
	maps.Copy(next, routes)
	next[k] = p
	c.routes.Store(&next)
	return p
}

// pool holds one upstream's idle connections, most recently used last.
type pool struct {
	addr        string
	tls         *tls.Config
	max         int
	idleTimeout time.Duration

	mu     sync.Mutex
	idle   []*conn
	closed bool // the client is closed: connections are not kept
}

func (p *pool) get(ctx context.Context, c *Client, fresh bool) (*conn, error) {
	if !fresh {
		now := time.Now()
		p.mu.Lock()
		for n := len(p.idle); n > 0; n = len(p.idle) {
			pc := p.idle[n-1]
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
			idle := now.Sub(pc.idleAt)
			if idle < p.idleTimeout {
				p.mu.Unlock()
				// After a pause the upstream may have closed it (many close
				// idle connections after a few seconds): look before use.
				if idle > time.Second && !pc.alive() {
					pc.nc.Close()
					p.mu.Lock()
					continue
				}
				pc.reused = true
				return pc, nil
			}
			pc.nc.Close()
		}
		p.mu.Unlock()
	}
	nc, err := c.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	nc = sockio.Wrap(nc)
	raw := nc
	if p.tls != nil {
		tc := tls.Client(nc, p.tls)
		hctx, cancel := context.WithTimeout(ctx, c.opts.TLSHandshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: nc.RemoteAddr(), Err: err}
		}
		nc = tc
	}
	pc := &conn{nc: nc, raw: raw, pool: p, maxHeader: c.opts.MaxHeaderBytes}
	pc.lr = limitReader{r: nc, n: -1}
	pc.br = bufio.NewReaderSize(&pc.lr, 16<<10)
	pc.bw = bufio.NewWriterSize(nc, 8<<10)
	return pc, nil
}

func (p *pool) put(pc *conn) {
	pc.idleAt = time.Now()
	p.mu.Lock()
	if !p.closed && len(p.idle) < p.max {
		p.idle = append(p.idle, pc)
		pc = nil
	}
	p.mu.Unlock()
	if pc != nil {
		pc.nc.Close()
	}
}

// closeIdle closes the idle connections unused since before (all of them
// when before is zero).
func (p *pool) closeIdle(before time.Time) {
	p.mu.Lock()
	var old []*conn
	keep := p.idle[:0]
	for _, pc := range p.idle {
		if before.IsZero() || pc.idleAt.Before(before) {
			old = append(old, pc)
		} else {
			keep = append(keep, pc)
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	p.mu.Unlock()
	for _, pc := range old {
		pc.nc.Close()
	}
}

// conn is one keep-alive connection to an upstream.
type conn struct {
	nc        net.Conn // raw, or TLS over it
	raw       net.Conn
	lr        limitReader
	br        *bufio.Reader
	bw        *bufio.Writer
	pool      *pool
	maxHeader int64
	idleAt    time.Time
	reused    bool
}

// notReceived is a failure before any byte of an answer arrived.
type notReceived struct{ err error }

func (e *notReceived) Error() string { return e.err.Error() }
func (e *notReceived) Unwrap() error { return e.err }

// earlyAnswerWait bounds the wait for an answer after the request could
// not be written whole.
const earlyAnswerWait = time.Second

// aLongTimeAgo is a deadline in the past: it unblocks any read or write.
var aLongTimeAgo = time.Unix(1, 0)

// send writes req on pc and reads the response headers. The connection
// is pc's until the returned body is done.
func (c *Client) send(ctx context.Context, pc *conn, req *http.Request) (*http.Response, error) {
	if err := ctx.Err(); err != nil {
		pc.nc.Close()
		return nil, err
	}
	// A cancelled context (the client went away) unblocks the connection
	// at once; the connection is then not reused.
	stop := context.AfterFunc(ctx, func() { pc.nc.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		pc.nc.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("upstream: %w (%v)", cerr, err)
		}
		return nil, err
	}
	var we *writeError
	if err := writeRequest(pc.bw, req); err != nil && !errors.As(err, &we) {
		return fail(err) // an invalid request, or the client's body failed
	}
	wait := c.opts.ResponseHeaderTimeout
	if we != nil {
		// The upstream may have answered before reading the whole body (a
		// refusal of a large upload) and closed the connection. Its
		// answer, already here if it came, is the result, as with
		// net/http's Transport; a closed stale connection shows at once.
		wait = min(wait, earlyAnswerWait)
	}
	pc.nc.SetReadDeadline(time.Now().Add(wait))
	pc.lr.n = pc.maxHeader
	if _, err := pc.br.Peek(1); err != nil {
		if we != nil {
			return fail(&notReceived{we})
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() && ctx.Err() == nil {
			return fail(fmt.Errorf("upstream: no response headers within %s: %w", c.opts.ResponseHeaderTimeout, err))
		}
		return fail(&notReceived{err})
	}
	var res *http.Response
	for {
		var err error
		res, err = http.ReadResponse(pc.br, req)
		if err != nil {
			if pc.lr.n == 0 {
				err = errHeadersTooLarge
			}
			return fail(err)
		}
		if res.StatusCode >= 200 || res.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		pc.lr.n = pc.maxHeader // an interim 1xx answer: the real one follows
	}
	pc.lr.n = -1
	pc.nc.SetReadDeadline(time.Time{})
	if ctx.Err() != nil {
		// Cancelled while the deadline was being cleared: make sure the
		// cancellation still unblocks the body.
		pc.nc.SetDeadline(aLongTimeAgo)
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		res.Body.Close()
		return fail(errors.New("upstream: protocol upgrades are not proxied"))
	}
	b := &body{rc: res.Body, pc: pc, nc: pc.nc, stop: stop, reuse: !res.Close && !req.Close && we == nil}
	if res.Body == http.NoBody {
		// HEAD, 204, 304 or an empty body: the connection is free now.
		b.mu.Lock()
		b.finish(true)
		b.mu.Unlock()
		return res, nil
	}
	res.Body = b
	return res, nil
}

// body is a response body; at its end the connection goes back to its
// pool, and if it is closed before then, the connection is closed.
type body struct {
	rc    io.ReadCloser
	pc    *conn
	nc    net.Conn // pc's, kept to unblock a Read from Close
	stop  func() bool
	reuse bool

	mu      sync.Mutex // serialises Read and finish
	done    atomic.Bool
	closing atomic.Bool
	err     error
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done.Load() {
		if b.err != nil {
			return 0, b.err
		}
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		b.err = err
		b.finish(false)
	}
	return n, err
}

// Close ends the body. A Read blocked on another goroutine is unblocked
// first, as with net/http's bodies.
func (b *body) Close() error {
	// Ordered against finish: either finish sees closing and does not
	// pool the connection, or Close sees done and leaves the (possibly
	// pooled, reused) connection alone.
	b.closing.Store(true)
	if !b.done.Load() {
		b.nc.SetDeadline(aLongTimeAgo)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done.Load() {
		b.err = errors.New("upstream: body closed")
		b.finish(false)
	}
	return nil
}

// finish releases the connection; b.mu is held.
func (b *body) finish(atEOF bool) {
	b.done.Store(true)
	pc := b.pc
	b.pc = nil
	// Reused only when the answer ended cleanly, nobody is closing the
	// body, the cancellation hook had not fired, and nothing beyond the
	// answer arrived.
	if b.stop() && atEOF && b.reuse && !b.closing.Load() && pc.br.Buffered() == 0 {
		pc.reused = false
		pc.pool.put(pc)
		return
	}
	pc.nc.Close()
}

// limitReader caps how much is read while n >= 0: it bounds the response
// headers, which http.ReadResponse does not.
type limitReader struct {
	r io.Reader
	n int64 // -1: no limit
}

var errHeadersTooLarge = errors.New("upstream: response headers too large")

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		return 0, errHeadersTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// writeError is a failure writing to the connection, as opposed to a
// request that cannot be written or a request body that cannot be read.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// bodyError is a failure reading the request body (the caller's, e.g. a
// client that went away mid-upload): returned as it is.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// writeRequest writes req's head and body in HTTP/1.1 framing. Header
// names and values are checked first, so an invalid one sends nothing.
func writeRequest(w *bufio.Writer, req *http.Request) error {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if !validToken(method) {
		return fmt.Errorf("upstream: invalid method %q", method)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !validValue(host) {
		return errors.New("upstream: invalid Host")
	}
	for k, vv := range req.Header {
		if !validToken(k) {
			return fmt.Errorf("upstream: invalid header name %q", k)
		}
		for _, v := range vv {
			if !validValue(v) {
				return fmt.Errorf("upstream: invalid value for header %s", k)
			}
		}
	}
	uri := req.URL.RequestURI()
	if strings.ContainsAny(uri, " \r\n") {
		return errors.New("upstream: invalid request target")
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	length := req.ContentLength
	if hasBody && length == 0 {
		// Unknown length (the net/http convention for a body with
		// ContentLength 0) is sent chunked.
		length = -1
	}

	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(uri)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	for k, vv := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Trailer":
			continue
		case "User-Agent":
			if len(vv) == 1 && vv[0] == "" {
				continue // explicitly none
			}
		}
		for _, v := range vv {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if req.Close {
		w.WriteString("Connection: close\r\n")
	}
	switch {
	case hasBody && length < 0:
		w.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	case hasBody || bodyMethod(method):
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(max(length, 0), 10))
		w.WriteString("\r\n\r\n")
	default:
		w.WriteString("\r\n")
	}
	if hasBody {
		if err := writeBody(w, req.Body, length); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return &writeError{err}
	}
	return nil
}

func writeBody(w *bufio.Writer, body io.ReadCloser, length int64) error {
	defer body.Close()
	src := &trackedReader{r: body}
	if length < 0 {
		cw := httputil.NewChunkedWriter(w)
		if _, err := io.Copy(cw, src); err != nil {
			return src.classify(err)
		}
		if err := cw.Close(); err != nil {
			return &writeError{err}
		}
		_, err := w.WriteString("\r\n")
		return wrapWrite(err)
	}
	n, err := io.CopyN(w, src, length)
	if err != nil {
		if src.err == nil && errors.Is(err, io.EOF) {
			return fmt.Errorf("upstream: request body is %d bytes, not the %d announced", n, length)
		}
		return src.classify(err)
	}
	return nil
}

// trackedReader remembers a failure of the body it reads, so that it is
// told apart from a failure of the connection.
type trackedReader struct {
	r   io.Reader
	err error
}

func (t *trackedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

func (t *trackedReader) classify(err error) error {
	if t.err != nil {
		return &bodyError{t.err}
	}
	return &writeError{err}
}

func wrapWrite(err error) error {
	if err != nil {
		return &writeError{err}
	}
	return nil
}

func bodyMethod(m string) bool { return m == "POST" || m == "PUT" || m == "PATCH" }

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// redactURL names the request's target without its query, where a key
// may be.
func redactURL(req *http.Request) string {
	if req.URL == nil {
		return ""
	}
	return req.URL.Scheme + "://" + req.URL.Host + req.URL.EscapedPath()
}

// validToken reports whether s is an RFC 9110 token (a method or a header
// name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || !tokenChar[c] {
			return false
		}
	}
	return true
}

// validValue reports whether s can be a header value: no CR, LF or NUL.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\r' || c == '\n' || c == 0:
			return false
		case c < ' ' && c != '\t', c == 0x7f:
			return false
		}
	}
	return true
}

var tokenChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
