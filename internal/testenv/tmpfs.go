package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Tmpfs mounts a tmpfs of sizeMB megabytes on a fresh directory, unmounted
// when t ends, for tests of a full disk. Mounting needs root: it skips t
// without it (fails it under CI=true, which runs as root).
func Tmpfs(t testing.TB, sizeMB int) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "apiwallet-tmpfs-")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm,mode=0700", sizeMB), "tmpfs", dir).CombinedOutput()
	if err != nil {
		os.Remove(dir)
		if CI() {
			t.Fatalf("mount a tmpfs: %v %s; CI=true: this test must run in CI", err, out)
		}
		t.Skipf("cannot mount a tmpfs (%v %s); skipping", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command("umount", "-l", dir).Run()
		os.Remove(dir)
	})
	return dir
}
