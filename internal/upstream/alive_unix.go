//go:build unix

package upstream

import "syscall"

// alive reports whether an idle connection is still open with nothing to
// read: a peek that would block. End of stream (the upstream closed it)
// or unexpected bytes (nothing is owed on an idle connection) mean it must
// not be used.
func (pc *conn) alive() bool {
	sc, ok := pc.raw.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true // never wait
	})
	return err == nil && alive
}
