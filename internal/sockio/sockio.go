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
	"syscall"
)

// Conn is a TCP connection with raw Read and Write. Everything else
// (deadlines, addresses, CloseWrite, SyscallConn) is the TCPConn's.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn
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
	return &Conn{TCPConn: tc, rc: rc}
}

// Read implements net.Conn.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var (
		n     int
		errno syscall.Errno
	)
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			n, errno = rawRead(fd, p)
			switch errno {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait for the netpoller to say it is readable
			}
			return true
		}
	})
	if err == nil && errno != 0 {
		err = errno
	}
	if err != nil {
		return 0, c.opError("read", err)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// Write implements net.Conn: it writes all of p unless an error, such as
// a passed deadline, stops it.
func (c *Conn) Write(p []byte) (int, error) {
	var (
		n    int
		werr error
	)
	err := c.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			m, e := rawWrite(fd, p[n:])
			switch {
			case e == syscall.EINTR:
			case e == syscall.EAGAIN:
				return false // wait for room
			case e != 0:
				werr = e
				return true
			case m == 0:
				// As internal/poll: a write that takes nothing and
				// reports nothing must not spin.
				werr = io.ErrUnexpectedEOF
				return true
			default:
				n += m
			}
		}
		return true
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
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
