# promtool, for the alert-rule checks and unit tests (deploy/monitoring_test.go):
# Debian's prometheus package ships it. The package may start a Prometheus
# server of its own; it is not used.
if ! command -v promtool >/dev/null; then
  echo "ci: installing prometheus (for promtool)"
  apt_install prometheus
  service prometheus stop >/dev/null 2>&1 || true
  systemctl stop prometheus >/dev/null 2>&1 || true
fi
echo "ci: $(promtool --version 2>&1 | head -1)"
