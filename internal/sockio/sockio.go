// Package sockio reads and writes TCP sockets without entering the
// scheduler's syscall state.
//
// The net package makes every read and write of a socket a blocking-style
// syscall: the goroutine's processor is marked as in a syscall, and the
// runtime's monitor thread, asleep while the process is idle, is woken to
// watch it. A socket behind the netpoller is non-blocking, so its reads and
// writes return at once (EAGAIN when they would wait) and there is nothing
// to watch. At a moderate request rate the wallet goes idle between calls
// many times a second, and waking the monitor on every read and write, then
// letting it poll every 20 µs until the process idles again, cost about a
// seventh of the wallet's CPU in context switches on a virtual machine.
//
// Wrap returns a connection whose Read and Write make the same syscalls
// raw, through the connection's syscall.RawConn, so readiness, deadlines
// and Close still go through the netpoller exactly as before.
package sockio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// Conn is a TCP connection with raw Read and Write. Everything else
// (deadlines, addresses, CloseWrite, SyscallConn) is the TCPConn's.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn
	// The Read and the Write in progress. The RawConn takes callbacks; a
	// closure per call would cost a few allocations on every read and
	// write of the proxy path, so each direction keeps its state here and
	// its callback is made once, in Wrap.
	r, w            op
	readFn, writeFn func(fd uintptr) bool
}

// op is the state of one direction's call in progress. mu serialises
// calls in the same direction, which the netpoller's own lock would do
// anyway.
type op struct {
	mu  sync.Mutex
	p   []byte
	n   int
	err error
}

// run makes one call with p: raw (the RawConn's Read or Write) with
// callback fn, which works on o.
func (o *op) run(p []byte, raw func(func(uintptr) bool) error, fn func(uintptr) bool) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.p, o.n, o.err = p, 0, nil
	err := raw(fn)
	if err == nil {
		err = o.err
	}
	o.p, o.err = nil, nil // do not hold on to the caller's buffer
	return o.n, err
}

// Wrap returns c as a *Conn when it is a TCP connection on a platform
// where raw reads and writes are supported, and c itself otherwise.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok || !supported {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	sc := &Conn{TCPConn: tc, rc: rc}
	sc.readFn, sc.writeFn = sc.read, sc.write
	return sc
}

// Read implements net.Conn.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := c.r.run(p, c.rc.Read, c.readFn)
	if err != nil {
		return 0, c.opError("read", err)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// read is the Read callback: one read(2), retried on EINTR; EAGAIN waits
// for the netpoller to say the socket is readable.
func (c *Conn) read(fd uintptr) bool {
	for {
		n, e := rawRead(fd, c.r.p)
		switch e {
		case 0:
			c.r.n = n
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			c.r.err = e
		}
		return true
	}
}

// Write implements net.Conn: it writes all of p unless an error, such as
// a passed deadline, stops it.
func (c *Conn) Write(p []byte) (int, error) {
	n, err := c.w.run(p, c.rc.Write, c.writeFn)
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
}

// write is the Write callback: write(2) until all is written, retried on
// EINTR; EAGAIN waits for room.
func (c *Conn) write(fd uintptr) bool {
	for c.w.n < len(c.w.p) {
		m, e := rawWrite(fd, c.w.p[c.w.n:])
		switch {
		case e == syscall.EINTR:
		case e == syscall.EAGAIN:
			return false
		case e != 0:
			c.w.err = e
			return true
		case m == 0:
			// As internal/poll: a write that takes nothing and reports
			// nothing must not spin.
			c.w.err = io.ErrUnexpectedEOF
			return true
		default:
			c.w.n += m
		}
	}
	return true
}

// opError wraps err as the net package does, so callers that look for
// timeouts, closed connections or resets find them the same way.
func (c *Conn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		// A deadline or a closed connection, reported by the RawConn as
		// a "raw-read" or "raw-write".
		oe.Op = op
		return oe
	}
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, errno)
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
