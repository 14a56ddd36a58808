# Debian's nginx, for the multi-instance test that runs docs/DEPLOYMENT.md's
# load-balancer configuration (cmd/apiwallet/deployment_test.go). The
# package's own service is not used: the test runs nginx in its own
# directory.
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "ci: installing nginx"
  apt_install nginx
  service nginx stop >/dev/null 2>&1 || true
fi
