package testenv

import (
	"os/exec"
	"testing"
)

// chromiumNames are the names a Chromium or Chrome binary goes by; Debian's
// package installs chromium.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// RequireChromium returns the path of a Chromium binary for browser tests.
// Without one it skips t, or fails it under CI, where .ci/run installs
// Debian's chromium.
func RequireChromium(t testing.TB) string {
	t.Helper()
	for _, name := range chromiumNames {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if CI() {
		t.Fatal("no chromium on PATH but CI=true: browser tests must run in CI (apt-get install chromium)")
	}
	t.Skip("no chromium on PATH; skipping the browser test (apt-get install chromium, or run bash .ci/run)")
	return ""
}
