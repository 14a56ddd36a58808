package testenv

import (
	"os/exec"
	"testing"
)

// RequirePromtool returns the path of promtool, Prometheus's rule checker.
// Without it it skips t, or fails it under CI, where
// .ci/setup/30-promtool.sh installs Debian's prometheus package.
func RequirePromtool(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if CI() {
		t.Fatal("no promtool on PATH but CI=true: the alert rules must be tested in CI (apt-get install prometheus)")
	}
	t.Skip("no promtool on PATH; skipping the rule checks (apt-get install prometheus, or run bash .ci/run)")
	return ""
}
