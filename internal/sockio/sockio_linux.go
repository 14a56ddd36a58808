package sockio

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const supported = true

// rawRead and rawWrite run read(2) and write(2) on a non-blocking socket
// without telling the scheduler: they return at once, EAGAIN included.
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}
