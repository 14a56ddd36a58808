package testenv

import (
	"os/exec"
	"testing"
)

// RequireNode returns the path of the node binary, for tests that run the
// Node examples. Without one it skips t, or fails it under CI, where
// .ci/setup/50-node.sh installs Debian's nodejs and npm.
func RequireNode(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err == nil {
		return p
	}
	if CI() {
		t.Fatal("no node on PATH but CI=true: the Node examples must run in CI (apt-get install nodejs npm)")
	}
	t.Skip("no node on PATH; skipping the Node examples (apt-get install nodejs npm, or run bash .ci/run)")
	return ""
}
