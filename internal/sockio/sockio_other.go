//go:build !linux

package sockio

import "syscall"

// Elsewhere Wrap leaves connections as they are.
const supported = false

func rawRead(uintptr, []byte) (int, syscall.Errno)  { panic("sockio: not supported") }
func rawWrite(uintptr, []byte) (int, syscall.Errno) { panic("sockio: not supported") }
