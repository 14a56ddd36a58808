package sockio_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet/internal/sockio"
)

// pair returns a wrapped client connection and the server's end of it.
func pair(t *testing.T) (net.Conn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv := <-accepted
	if srv == nil {
		t.Fatal("accept failed")
	}
	w := sockio.Wrap(c)
	if _, ok := w.(*sockio.Conn); !ok {
		t.Fatalf("Wrap(%T) = %T, want *sockio.Conn", c, w)
	}
	t.Cleanup(func() { w.Close(); srv.Close() })
	return w, srv.(*net.TCPConn)
}

// Data larger than the socket buffers goes through both ways intact:
// writes and reads that would block wait for the netpoller.
func TestRoundTrip(t *testing.T) {
	c, srv := pair(t)
	want := make([]byte, 16<<20)
	rand.Read(want)
	errc := make(chan error, 1)
	go func() {
		// An echo: the client's 16 MB cannot all sit in the buffers, so
		// its writes and reads wait for each other.
		_, err := io.Copy(struct{ io.Writer }{srv}, struct{ io.Reader }{srv})
		srv.CloseWrite()
		errc <- err
	}()
	go func() {
		_, err := c.Write(want)
		c.(*sockio.Conn).CloseWrite()
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes back, want the %d sent", len(got), len(want))
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer closed = %d, %v; want 0, EOF", n, err)
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty Read = %d, %v", n, err)
	}
}

// Deadlines, Close and resets come back as net reports them.
func TestErrors(t *testing.T) {
	c, srv := pair(t)

	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Read(make([]byte, 10))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past its deadline = %v, want a timeout", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("Read error %#v, want a *net.OpError for read", err)
	}
	c.SetReadDeadline(time.Time{})

	// A peer that does not read: the write fills the buffers and times out
	// with part of the data written.
	big := make([]byte, 64<<20) // more than both socket buffers hold
	c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := c.Write(big)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n <= 0 || n >= len(big) {
		t.Fatalf("Write past its deadline = %d, %v; want part written and a timeout", n, err)
	}
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("Write error %#v, want a *net.OpError for write", err)
	}

	c.SetWriteDeadline(time.Time{})

	// A reset by the peer.
	srv.SetLinger(0)
	srv.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 10))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read after a reset = %v, want ECONNRESET", err)
	}
	// Writing to it fails the same way (or with EPIPE); the process does
	// not die of SIGPIPE.
	if _, err := c.Write([]byte("after the reset")); !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Write after a reset = %v, want EPIPE or ECONNRESET", err)
	}

	c.Close()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close = %v, want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close = %v, want net.ErrClosed", err)
	}
}

// A Close from another goroutine ends a Read waiting for data.
func TestCloseUnblocksRead(t *testing.T) {
	c, _ := pair(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting Read")
	}
}

// Wrap leaves what is not a TCP connection alone, and a wrapped one keeps
// the TCPConn's other methods.
func TestWrapKinds(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := sockio.Wrap(a); got != a {
		t.Fatalf("Wrap(net.Pipe) = %T, want it unchanged", got)
	}
	c, _ := pair(t)
	if _, ok := c.(syscall.Conn); !ok {
		t.Fatal("a wrapped connection lost SyscallConn")
	}
}

// Reads and writes allocate nothing: they are on the proxy's path twice
// each per call.
func TestNoAllocations(t *testing.T) {
	c, srv := pair(t)
	msg, buf, sbuf := []byte("ping"), make([]byte, 64), make([]byte, 64)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		n, err := srv.Read(sbuf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Write(sbuf[:n]); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("a write and a read allocated %v times", allocs)
	}
}
