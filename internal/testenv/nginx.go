package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// RequireNginx returns the path of an nginx binary (Debian's installs
// /usr/sbin/nginx, which is not on every user's PATH). Without one it
// skips t, or fails it under CI, where .ci/setup/20-nginx.sh installs it.
func RequireNginx(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if fi, err := os.Stat("/usr/sbin/nginx"); err == nil && !fi.IsDir() {
		return "/usr/sbin/nginx"
	}
	if CI() {
		t.Fatal("no nginx but CI=true: the load-balancer test must run in CI (apt-get install nginx)")
	}
	t.Skip("no nginx; skipping the load-balancer test (apt-get install nginx, or run bash .ci/run)")
	return ""
}
