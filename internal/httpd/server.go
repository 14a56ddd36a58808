// Package httpd serves an http.Handler over HTTP/1.1 with less work per
// request than net/http's server.
//
// Every proxied call crosses the wallet's server, so its per-request cost is
// the product's floor. net/http's server starts a goroutine per request to
// watch for the client hanging up, hands it the connection and takes it back
// when the handler returns, and sorts the response headers; on a 2-core
// machine that is a large share of a proxied call. This server keeps what
// matters and drops the rest:
//
//   - Requests are parsed by the standard library (http.ReadRequest), and the
//     server-side checks net/http adds are repeated here: one valid Host for
//     HTTP/1.1, valid header names and values, a bound on the header size,
//     HTTP/1.x only, Expect handling. Framing (Content-Length,
//     Transfer-Encoding, their conflicts) is ReadRequest's, as in net/http.
//   - A hang-up is watched for only when a handler runs longer than
//     watchDelay: fast requests never pay for it, and a slow upstream call
//     still has its context cancelled when its client goes away.
//   - Responses are framed as net/http frames them: a handler's
//     Content-Length, else one computed for a small finished body, else
//     chunked; flushing streams at once.
//
// It speaks plain HTTP/1.1 only: no TLS, HTTP/2, trailers or hijacking. The
// wallet runs behind a TLS terminator, and a handler that needs those
// features is served by net/http.
package httpd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/apikeywallet/apiwallet/internal/sockio"
)

const (
	// watchDelay is how long a handler runs before the server starts
	// watching its connection for a hang-up.
	watchDelay = 10 * time.Millisecond
	// maxDrain is how much of a request body the handler left unread is
	// read to keep the connection, as in net/http.
	maxDrain = 256 << 10
	// pendingSize is the response body held back before the header is
	// written, so that a small body finished without a flush gets a
	// Content-Length (net/http holds 2 KB).
	pendingSize = 2048
	bufSize     = 4096
)

// Server serves HTTP/1.1 on the listeners given to Serve. Set its fields
// before the first Serve.
type Server struct {
	Handler           http.Handler
	ReadHeaderTimeout time.Duration // 10 s when zero: the time to send a request's header
	IdleTimeout       time.Duration // 120 s when zero: how long a kept-alive connection waits
	MaxHeaderBytes    int           // http.DefaultMaxHeaderBytes when zero
	Log               *slog.Logger  // accept errors and handler panics; slog.Default() when nil

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   atomic.Bool
}

func (s *Server) headerTimeout() time.Duration {
	if s.ReadHeaderTimeout > 0 {
		return s.ReadHeaderTimeout
	}
	return 10 * time.Second
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return 120 * time.Second
}

func (s *Server) maxHeaderBytes() int64 {
	n := s.MaxHeaderBytes
	if n <= 0 {
		n = http.DefaultMaxHeaderBytes
	}
	return int64(n) + 4096 // the request line and slack, as net/http allows
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// Serve accepts connections on ln and serves each on its own goroutine. It
// returns http.ErrServerClosed once Shutdown or Close was called.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		_ = ln.Close()
		return http.ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		_ = ln.Close()
	}()

	var backoff time.Duration
	for {
		rwc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait and go on, as
			// net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log().Warn("http: accept failed; retrying", "err", err, "retry_in", backoff.String())
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c := &conn{s: s, rwc: rwc, sock: sockio.Wrap(rwc), remoteAddr: rwc.RemoteAddr().String()}
		if !s.track(c) {
			_ = rwc.Close()
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) closeListeners() {
	for ln := range s.listeners {
		_ = ln.Close()
	}
}

// Shutdown stops accepting, closes idle connections, and waits until every
// request in flight has been answered and its connection closed, or until
// ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	s.closeListeners()
	s.mu.Unlock()

	wait := time.Millisecond
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		if s.closeIdle() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			wait = min(2*wait, 100*time.Millisecond)
			t.Reset(wait)
		}
	}
}

// closeIdle closes the connections waiting for a request and reports
// whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			_ = c.rwc.Close()
		}
	}
	return len(s.conns) == 0
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing.Store(true)
	s.closeListeners()
	for c := range s.conns {
		c.state.Store(stateClosed)
		_ = c.rwc.Close()
	}
	return nil
}

const (
	stateIdle int32 = iota
	stateActive
	stateClosed
)

// conn is one client connection, served on one goroutine.
type conn struct {
	s          *Server
	rwc        net.Conn
	sock       net.Conn // rwc for reads and writes (sockio.Wrap)
	remoteAddr string
	state      atomic.Int32

	r  connReader
	br *bufio.Reader
	bw *bufio.Writer

	// watch starts a hang-up watch once a handler has run watchDelay.
	watch *time.Timer
	// wmu orders a 100 Continue, which the body's reader may send, with
	// the response header.
	wmu      sync.Mutex
	pending  [pendingSize]byte
	lastPOST bool
	// body is the body of the request being served, for abandon.
	body   *requestBody
	served int // requests read on this connection
	// linger: the client may still be sending when the connection
	// closes; see lingerClose.
	linger bool
}

func leadingCRLF(b []byte) int {
	n := 0
	for n < len(b) && (b[n] == '\r' || b[n] == '\n') {
		n++
	}
	return n
}

var (
	readerPool sync.Pool
	writerPool sync.Pool
)

func (c *conn) serve() {
	defer c.s.forget(c)
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.s.log().Error("http: panic serving", "remote", c.remoteAddr, "panic", fmt.Sprint(v), "stack", string(buf))
		}
		c.state.Store(stateClosed)
		if !c.abandon() {
			// A reader of the last body may still hold the buffers.
			c.br, c.bw = nil, nil
		}
		if c.linger {
			c.lingerClose()
		}
		_ = c.rwc.Close()
		c.release()
	}()

	c.r.c = c
	c.r.cond.L = &c.r.mu
	c.r.remain = 1<<63 - 1
	c.br = getReader(&c.r)
	c.bw = getWriter(c.sock)
	c.watch = time.AfterFunc(time.Hour, c.r.watchTimerFired)
	c.watch.Stop()
	for {
		if !c.serveOne() {
			return
		}
		if c.s.closing.Load() {
			return
		}
	}
}

// abandon ends the request a panic left behind, as net/http does: its
// context is cancelled and its body closed, so a goroutine the handler
// left reading it stops rather than read the connection's next bytes. It
// reports whether the connection's buffers are free for reuse.
func (c *conn) abandon() bool {
	c.r.mu.Lock()
	cancel := c.r.cancel
	c.r.mu.Unlock()
	if cancel == nil {
		return true // no request was being served
	}
	c.watch.Stop()
	c.r.endRequest()
	cancel()
	if c.body == nil {
		return true
	}
	// Unblock a read in progress so that its reader lets go of the body.
	_ = c.rwc.SetReadDeadline(aLongTimeAgo)
	return c.body.tryClose()
}

func (c *conn) release() {
	if c.watch != nil {
		c.watch.Stop()
	}
	if c.br != nil {
		c.br.Reset(nil)
		readerPool.Put(c.br)
		c.br = nil
	}
	if c.bw != nil {
		c.bw.Reset(nil)
		writerPool.Put(c.bw)
		c.bw = nil
	}
}

func getReader(r io.Reader) *bufio.Reader {
	if v := readerPool.Get(); v != nil {
		br := v.(*bufio.Reader)
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, bufSize)
}

func getWriter(w io.Writer) *bufio.Writer {
	if v := writerPool.Get(); v != nil {
		bw := v.(*bufio.Writer)
		bw.Reset(w)
		return bw
	}
	return bufio.NewWriterSize(w, bufSize)
}

// serveOne reads one request, serves it, and reports whether the
// connection may carry another.
func (c *conn) serveOne() bool {
	// Old clients end a POST body with a stray CRLF (RFC 9112 section
	// 2.2); net/http skips up to four such bytes too.
	skip := 0
	if c.lastPOST {
		skip = 4
	}
	skip -= c.skipCRLF(skip)
	// Wait for the next request, idle: a new connection only as long as
	// a request's header may take.
	first := c.served == 0
	if first {
		// From accept, the whole header must come within the timeout.
		_ = c.rwc.SetReadDeadline(time.Now().Add(c.s.headerTimeout()))
	}
	for c.br.Buffered() == 0 {
		if !c.state.CompareAndSwap(stateActive, stateIdle) && c.state.Load() != stateIdle {
			return false
		}
		if !first {
			_ = c.rwc.SetReadDeadline(time.Now().Add(c.s.idleTimeout()))
		}
		if _, err := c.br.Peek(1); err != nil {
			return false
		}
		skip -= c.skipCRLF(skip)
	}
	if !c.state.CompareAndSwap(stateIdle, stateActive) && c.state.Load() != stateActive {
		return false // Shutdown closed it as idle
	}
	c.served++

	if !first {
		_ = c.rwc.SetReadDeadline(time.Now().Add(c.s.headerTimeout()))
	}
	c.r.scan.reset()
	c.r.scan.feed(c.peekBuffered())
	// What the wait read ahead counts toward the header's bound.
	c.r.remain = c.s.maxHeaderBytes() - int64(c.br.Buffered())
	req, err := http.ReadRequest(c.br)
	tooLarge := c.r.remain <= 0
	c.r.remain = 1<<63 - 1
	c.r.scan.active = false
	if err != nil {
		switch {
		case tooLarge:
			c.refuse(http.StatusRequestHeaderFieldsTooLarge, "")
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), isTimeout(err):
			// The client went away or stalled: nothing to answer.
		case strings.HasPrefix(err.Error(), "unsupported transfer encoding"),
			strings.HasPrefix(err.Error(), "too many transfer encodings"):
			// ReadRequest's unsupported or repeated Transfer-Encoding,
			// which net/http answers with 501.
			c.refuse(http.StatusNotImplemented, "unsupported transfer encoding")
		default:
			c.refuse(http.StatusBadRequest, "")
		}
		return false
	}
	if code, msg := checkRequest(req, &c.r.scan); code != 0 {
		c.refuse(code, msg)
		return false
	}
	req.RemoteAddr = c.remoteAddr
	c.lastPOST = req.Method == http.MethodPost

	// A proxied answer carries the upstream's headers and the wallet's
	// own; sized for them, the map does not grow while they are set.
	w := &response{c: c, req: req, header: make(http.Header, 16), contentLength: -1, pending: c.pending[:0]}
	w.closeAfter = req.Close
	// Like net/http, only the first Expect header counts.
	expect := req.Header.Get("Expect")
	continues := httpguts.HeaderValuesContainsToken([]string{expect}, "100-continue")
	if expect != "" && !continues {
		w.header.Set("Connection", "close")
		w.WriteHeader(http.StatusExpectationFailed)
		w.finish()
		return false
	}
	var body *requestBody
	if req.Body != http.NoBody {
		// The header's deadline must not cut a slow upload short.
		_ = c.rwc.SetReadDeadline(time.Time{})
		body = &requestBody{rc: req.Body, w: w}
		body.sendContinue = continues && req.ProtoAtLeast(1, 1) && req.ContentLength != 0
		req.Body = body
	}
	ctx, cancel := context.WithCancel(context.Background())
	req = req.WithContext(ctx)
	w.req = req
	c.body = body
	c.r.startRequest(cancel, body == nil)
	c.watch.Reset(watchDelay)

	if req.RequestURI == "*" && req.Method == http.MethodOptions {
		// Server-wide OPTIONS is the server's to answer, as in net/http.
		w.header.Set("Content-Length", "0")
	} else {
		c.s.Handler.ServeHTTP(w, req)
	}

	c.watch.Stop()
	c.r.endRequest()
	cancel()
	c.body = nil
	if body != nil && !body.finish() {
		w.closeAfter = true
		c.linger = true
	}
	return w.finish()
}

// skipCRLF discards up to max buffered CR and LF bytes without waiting for
// more, and returns how many it discarded.
func (c *conn) skipCRLF(max int) int {
	if max <= 0 {
		return 0
	}
	b := c.peekBuffered()
	n := leadingCRLF(b[:min(len(b), max)])
	_, _ = c.br.Discard(n)
	return n
}

// peekBuffered returns the bytes already read past the last request.
func (c *conn) peekBuffered() []byte {
	b, _ := c.br.Peek(c.br.Buffered())
	return b
}

// checkRequest repeats the checks net/http's server makes after parsing.
func checkRequest(req *http.Request, scan *hostScan) (int, string) {
	hosts := scan.hosts
	if req.ProtoMajor != 1 {
		return http.StatusHTTPVersionNotSupported, "unsupported protocol version"
	}
	if req.ProtoAtLeast(1, 1) && hosts == 0 && req.Method != http.MethodConnect {
		return http.StatusBadRequest, "missing required Host header"
	}
	if hosts > 1 {
		return http.StatusBadRequest, "too many Host headers"
	}
	if hosts == 1 {
		// ReadRequest took r.Host from the header unless the target
		// names a host; only then is the header's own value needed.
		v, ok := req.Host, true
		if req.URL.Host != "" {
			v, ok = scan.hostValue()
		}
		if !ok || !httpguts.ValidHostHeader(v) {
			return http.StatusBadRequest, "malformed Host header"
		}
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return http.StatusBadRequest, "invalid header name"
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return http.StatusBadRequest, "invalid header value"
			}
		}
	}
	return 0, ""
}

// refuse answers a request that is not served, as net/http does, and the
// connection closes after it.
func (c *conn) refuse(code int, msg string) {
	text := strconv.Itoa(code) + " " + http.StatusText(code)
	if msg != "" {
		text += ": " + msg
	}
	_ = c.rwc.SetWriteDeadline(time.Now().Add(time.Second))
	c.bw.Reset(c.sock)
	_, _ = fmt.Fprintf(c.bw, "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n%s", text, text)
	_ = c.bw.Flush()
	c.linger = true
}

// lingerClose lets a client that is still sending read the answer before
// the connection closes: closing over unread request bytes resets the
// connection, and the client may lose the answer with it. net/http waits
// the same 500 ms.
func (c *conn) lingerClose() {
	tc, ok := c.rwc.(*net.TCPConn)
	if !ok {
		return
	}
	_ = tc.CloseWrite()
	_ = c.rwc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, _ = io.Copy(io.Discard, c.rwc)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// connReader reads the connection for the bufio.Reader. It bounds a
// request's header, counts its Host lines, and holds the byte a hang-up
// watch may read.
type connReader struct {
	c      *conn
	remain int64 // bytes the current request's header may still use
	scan   hostScan

	mu       sync.Mutex
	cond     sync.Cond
	active   bool // a request is being served
	bodyDone bool // its body was read to the end (or it has none)
	wanted   bool // the watch delay passed before the body ended
	inRead   bool // a watch is reading the connection
	aborted  bool // that read was cut short on purpose
	hasByte  bool
	byteBuf  [1]byte
	cancel   context.CancelFunc
}

func (cr *connReader) Read(p []byte) (int, error) {
	if cr.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > cr.remain {
		p = p[:cr.remain]
	}
	if len(p) == 0 {
		return 0, nil
	}
	cr.mu.Lock()
	if cr.inRead {
		cr.abortLocked()
	}
	if cr.hasByte {
		p[0] = cr.byteBuf[0]
		cr.hasByte = false
		cr.mu.Unlock()
		cr.consumed(p[:1])
		return 1, nil
	}
	cr.mu.Unlock()
	n, err := cr.c.sock.Read(p)
	cr.consumed(p[:n])
	return n, err
}

func (cr *connReader) consumed(p []byte) {
	cr.remain -= int64(len(p))
	if cr.scan.active {
		cr.scan.feed(p)
	}
}

// startRequest marks a request as being served; bodyDone says it has no
// body to read.
func (cr *connReader) startRequest(cancel context.CancelFunc, bodyDone bool) {
	cr.mu.Lock()
	cr.active, cr.wanted, cr.cancel, cr.bodyDone = true, false, cancel, bodyDone
	cr.mu.Unlock()
}

// bodyEnded records that the request body was read to its end: a watch
// the delay asked for may start now.
func (cr *connReader) bodyEnded() {
	cr.mu.Lock()
	cr.bodyDone = true
	start := cr.wanted && cr.active
	cr.mu.Unlock()
	if start {
		cr.startWatch()
	}
}

// watchTimerFired runs when a handler has run watchDelay: the connection
// is watched once the request body has been read, since until then the
// handler itself reads the connection.
func (cr *connReader) watchTimerFired() {
	cr.mu.Lock()
	if !cr.active {
		cr.mu.Unlock()
		return
	}
	cr.wanted = true
	start := cr.bodyDone
	cr.mu.Unlock()
	if start {
		cr.startWatch()
	}
}

func (cr *connReader) startWatch() {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if !cr.active || cr.inRead || cr.hasByte {
		return
	}
	cr.inRead = true
	// The header's deadline may still be set on a request without a body.
	_ = cr.c.rwc.SetReadDeadline(time.Time{})
	go cr.watchRead()
}

// watchRead reads one byte: the client's next pipelined request, which is
// kept, or the end of the connection, which cancels the request.
func (cr *connReader) watchRead() {
	n, err := cr.c.sock.Read(cr.byteBuf[:])
	cr.mu.Lock()
	if n == 1 {
		cr.hasByte = true
	}
	if err != nil && !(cr.aborted && isTimeout(err)) && cr.cancel != nil {
		cr.cancel()
	}
	cr.inRead, cr.aborted = false, false
	cr.cond.Broadcast()
	cr.mu.Unlock()
}

// abortLocked ends a watch's read and waits for it. cr.mu is held.
func (cr *connReader) abortLocked() {
	cr.aborted = true
	_ = cr.c.rwc.SetReadDeadline(aLongTimeAgo)
	for cr.inRead {
		cr.cond.Wait()
	}
	_ = cr.c.rwc.SetReadDeadline(time.Time{})
}

func (cr *connReader) endRequest() {
	cr.mu.Lock()
	cr.active, cr.cancel = false, nil
	if cr.inRead {
		cr.abortLocked()
	}
	cr.mu.Unlock()
}

var aLongTimeAgo = time.Unix(1, 0)

// hostScan counts the Host lines of a request's header as its bytes are
// read: http.ReadRequest keeps the first Host and drops the header, and
// net/http's server refuses a request with two.
type hostScan struct {
	active  bool
	match   int // bytes of "host:" matched at the start of this line; -1: none
	lineLen int
	hosts   int
	// value is the first Host line's value, up to maxHostValue bytes:
	// with an absolute-form target ReadRequest takes the host from the
	// URL, and the header must still be valid, as net/http requires.
	value   []byte
	inValue bool
	long    bool
}

const maxHostValue = 1024

func (s *hostScan) reset() { *s = hostScan{active: true, value: s.value[:0]} }

// hostValue returns the first Host header's value and whether it was
// short enough to keep.
func (s *hostScan) hostValue() (string, bool) {
	return textproto.TrimString(string(s.value)), !s.long
}

func (s *hostScan) feed(p []byte) {
	for i := 0; i < len(p) && s.active; i++ {
		switch b := p[i]; b {
		case '\n':
			if s.lineLen == 0 {
				s.active = false // the blank line ending the header
			}
			s.lineLen, s.match, s.inValue = 0, 0, false
		case '\r':
		default:
			if s.inValue {
				if len(s.value) < maxHostValue {
					s.value = append(s.value, b)
				} else {
					s.long = true
				}
			}
			if s.match >= 0 && s.match < 5 {
				if b|0x20 == "host:"[s.match] {
					s.match++
					if s.match == 5 {
						s.hosts++
						s.inValue = s.hosts == 1
					}
				} else {
					s.match = -1
				}
			}
			s.lineLen++
		}
	}
}

// requestBody is the handler's view of the request body: it sends 100
// Continue when first read if the client asked for it, tells the
// connection when the body has ended, and is closed for good when the
// handler returns.
type requestBody struct {
	mu           sync.Mutex
	rc           io.ReadCloser
	w            *response
	sendContinue bool
	sawEOF       bool
	closed       bool
	readAny      bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.sawEOF {
		return 0, io.EOF
	}
	b.readAny = true
	if b.sendContinue {
		b.sendContinue = false
		b.w.writeContinue()
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.sawEOF = true
		b.w.c.r.bodyEnded()
	}
	return n, err
}

// tryClose closes the body for good unless a read holds it, and reports
// whether it did.
func (b *requestBody) tryClose() bool {
	if !b.mu.TryLock() {
		return false
	}
	b.closed = true
	b.mu.Unlock()
	return true
}

func (b *requestBody) Close() error {
	// The server reads what is left after the handler returns.
	return nil
}

// finish closes the body when the handler has returned and reads what it
// left, up to maxDrain. It reports whether the connection can carry
// another request.
func (b *requestBody) finish() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.sawEOF {
		return true
	}
	if b.sendContinue {
		// The client waits for a 100 Continue it will not get: the body
		// may never come.
		return false
	}
	n, err := io.CopyN(io.Discard, b.rc, maxDrain+1)
	return err == io.EOF && n <= maxDrain
}

// response is the http.ResponseWriter of one request.
type response struct {
	c      *conn
	req    *http.Request
	header http.Header

	status        int
	wroteHeader   bool // the handler's status is set
	committed     bool // the header is on the wire (or in the write buffer)
	chunked       bool
	closeAfter    bool
	failed        bool // a write to the connection failed
	contentLength int64
	written       int64
	pending       []byte
	trailers      []string // declared in the Trailer header
	// sent is the header as it was at WriteHeader, when the handler
	// changed it afterwards: as with net/http, later changes are not sent
	// (only trailers are read from the live header).
	sent http.Header
	// informed: the handler wrote a status, so no automatic 100 Continue.
	informed atomic.Bool
}

func (w *response) Header() http.Header {
	if w.wroteHeader && !w.committed && w.sent == nil {
		w.sent = w.header.Clone()
	}
	return w.header
}

func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.wroteHeader {
		return
	}
	w.informed.Store(true)
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.writeInformational(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	if code == http.StatusSwitchingProtocols {
		w.closeAfter = true // there is no upgrade to switch to
	}
	if cl := w.header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.contentLength = n
		} else {
			w.header.Del("Content-Length")
		}
	}
}

func (w *response) writeInformational(code int) {
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	bw := w.c.bw
	w.writeStatusLine(code)
	for k, vv := range w.header {
		if k != "Content-Length" && k != "Transfer-Encoding" {
			writeHeaderField(bw, k, vv) // an interim answer has no body
		}
	}
	_, _ = bw.WriteString("\r\n")
	if bw.Flush() != nil {
		w.failed = true
	}
}

func (w *response) writeContinue() {
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	if w.committed || w.informed.Load() {
		return
	}
	_, _ = w.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	_ = w.c.bw.Flush()
}

func bodyAllowed(status int) bool {
	return !(status >= 100 && status <= 199 || status == http.StatusNoContent || status == http.StatusNotModified)
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.failed {
		return 0, errWriteFailed
	}
	if w.contentLength >= 0 && w.written+int64(len(p)) > w.contentLength {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.committed {
		if len(w.pending)+len(p) <= cap(w.pending) {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		sniff := w.pending
		if len(sniff) == 0 {
			sniff = p
		}
		w.commit(false, sniff)
		if err := w.writeBody(w.pending); err != nil {
			return 0, err
		}
		w.pending = w.pending[:0]
	}
	if err := w.writeBody(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

var errWriteFailed = errors.New("http: connection write failed")

func (w *response) writeBody(p []byte) error {
	if len(p) == 0 || w.req.Method == http.MethodHead {
		return nil
	}
	bw := w.c.bw
	if w.chunked {
		var hdr [18]byte
		b := strconv.AppendInt(hdr[:0], int64(len(p)), 16)
		b = append(b, '\r', '\n')
		_, _ = bw.Write(b)
	}
	_, err := bw.Write(p)
	if w.chunked {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.failed = true
		return err
	}
	return nil
}

// commit writes the status line and header. final says the handler has
// returned, so a body still held back is all there is; sniff is the start
// of the body, for a Content-Type the handler did not set.
func (w *response) commit(final bool, sniff []byte) {
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	w.committed = true
	h := w.header
	if w.sent != nil {
		h = w.sent
	}
	allowed := bodyAllowed(w.status)
	is11 := w.req.ProtoAtLeast(1, 1)
	isHEAD := w.req.Method == http.MethodHead
	_, hasTE := h["Transfer-Encoding"]
	if allowed && !hasTE && len(sniff) > 0 {
		if _, ok := h["Content-Type"]; !ok && h.Get("Content-Encoding") == "" {
			h.Set("Content-Type", http.DetectContentType(sniff))
		}
	}
	delete(h, "Transfer-Encoding")
	if vv := h["Trailer"]; len(vv) > 0 && is11 && allowed && !isHEAD {
		for _, v := range vv {
			for name := range strings.SplitSeq(v, ",") {
				if name = textproto.TrimString(name); name != "" {
					w.trailers = append(w.trailers, http.CanonicalHeaderKey(name))
				}
			}
		}
	}
	if httpguts.HeaderValuesContainsToken(h["Connection"], "close") {
		w.closeAfter = true
	}
	delete(h, "Connection")
	if final && w.contentLength < 0 && allowed && !hasTE && w.trailers == nil && (!isHEAD || w.written > 0) {
		w.contentLength = w.written // all of it held back
	}
	// The length sent is the one the framing uses, whatever the header
	// map says by now.
	delete(h, "Content-Length")
	switch {
	case w.status == http.StatusNotModified:
		// RFC 9110 section 15.4.5: a 304 describes a body it does not
		// carry; net/http drops its type too.
		delete(h, "Content-Type")
	case !allowed:
	case w.trailers != nil:
		w.contentLength = -1
		w.chunked = true
	case w.contentLength < 0 && !isHEAD:
		if is11 {
			w.chunked = true
		} else {
			w.closeAfter = true
		}
	default:
		if w.contentLength >= 0 {
			h["Content-Length"] = []string{strconv.FormatInt(w.contentLength, 10)}
		}
	}
	keepAlive10 := false
	if !is11 && !w.closeAfter {
		if httpguts.HeaderValuesContainsToken(w.req.Header["Connection"], "keep-alive") && (w.contentLength >= 0 || isHEAD || !allowed) {
			keepAlive10 = true
		} else {
			w.closeAfter = true
		}
	}
	if w.c.s.closing.Load() {
		w.closeAfter = true
	}

	bw := w.c.bw
	w.writeStatusLine(w.status)
	for k, vv := range h {
		if w.trailers != nil && (slices.Contains(w.trailers, k) || strings.HasPrefix(k, http.TrailerPrefix)) {
			continue // sent after the body
		}
		writeHeaderField(bw, k, vv)
	}
	if _, ok := h["Date"]; !ok {
		_, _ = bw.WriteString("Date: ")
		_, _ = bw.Write(httpDate())
		_, _ = bw.WriteString("\r\n")
	}
	if w.chunked {
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case w.closeAfter && is11:
		_, _ = bw.WriteString("Connection: close\r\n")
	case keepAlive10:
		_, _ = bw.WriteString("Connection: keep-alive\r\n")
	}
	if _, err := bw.WriteString("\r\n"); err != nil {
		w.failed = true
	}
}

// Flush sends the header and the body written so far.
func (w *response) Flush() { _ = w.FlushError() }

// FlushError is Flush for http.ResponseController.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false, w.pending)
		if err := w.writeBody(w.pending); err != nil {
			return err
		}
		w.pending = w.pending[:0]
	}
	if w.failed {
		return errWriteFailed
	}
	if err := w.c.bw.Flush(); err != nil {
		w.failed = true
		return err
	}
	return nil
}

// finish ends the response when the handler has returned, and reports
// whether the connection can carry another request.
func (w *response) finish() bool {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true, w.pending)
		_ = w.writeBody(w.pending)
	}
	w.pending = nil
	if w.chunked && !w.failed {
		bw := w.c.bw
		_, _ = bw.WriteString("0\r\n")
		for _, k := range w.trailers {
			writeHeaderField(bw, k, w.header[k])
		}
		for k, vv := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				writeHeaderField(bw, http.CanonicalHeaderKey(name), vv)
			}
		}
		if _, err := bw.WriteString("\r\n"); err != nil {
			w.failed = true
		}
	}
	if w.contentLength >= 0 && w.written != w.contentLength && w.req.Method != http.MethodHead && bodyAllowed(w.status) {
		// The client waits for bytes that will not come.
		w.closeAfter = true
	}
	if w.c.bw.Flush() != nil {
		w.failed = true
	}
	return !w.closeAfter && !w.failed
}

var statusLines [600]string

func init() {
	for code := 100; code < len(statusLines); code++ {
		if text := http.StatusText(code); text != "" {
			statusLines[code] = " " + strconv.Itoa(code) + " " + text + "\r\n"
		}
	}
}

// writeStatusLine answers in the request's version, as net/http does.
func (w *response) writeStatusLine(code int) {
	bw := w.c.bw
	if w.req.ProtoAtLeast(1, 1) {
		_, _ = bw.WriteString("HTTP/1.1")
	} else {
		_, _ = bw.WriteString("HTTP/1.0")
	}
	if code < len(statusLines) && statusLines[code] != "" {
		_, _ = bw.WriteString(statusLines[code])
		return
	}
	_, _ = fmt.Fprintf(bw, " %03d status code %d\r\n", code, code)
}

// writeHeaderField writes a header as net/http does: an invalid name is
// left out, and line breaks in a value become spaces.
func writeHeaderField(bw *bufio.Writer, k string, vv []string) {
	if !httpguts.ValidHeaderFieldName(k) {
		return
	}
	for _, v := range vv {
		_, _ = bw.WriteString(k)
		_, _ = bw.WriteString(": ")
		v = textproto.TrimString(v)
		if strings.ContainsAny(v, "\r\n") {
			v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
		}
		_, _ = bw.WriteString(v)
		_, _ = bw.WriteString("\r\n")
	}
}

// httpDate is the Date header's value, formatted once a second.
func httpDate() []byte {
	now := time.Now().Unix()
	if d := cachedDate.Load(); d != nil && d.unix == now {
		return d.text
	}
	d := &dateText{unix: now, text: time.Unix(now, 0).UTC().AppendFormat(nil, http.TimeFormat)}
	cachedDate.Store(d)
	return d.text
}

type dateText struct {
	unix int64
	text []byte
}

var cachedDate atomic.Pointer[dateText]
