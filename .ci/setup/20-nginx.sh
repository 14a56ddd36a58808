# Debian's nginx, for the multi-instance test that runs docs/DEPLOYMENT.md's
# load-balancer configuration (cmd/apiwallet/deployment_test.go). The test
# runs nginx in a directory of its own; the package's service is kept from
# starting (it would want port 80).
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "ci: installing nginx"
  policy_made=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_made=1
  fi
  apt_install nginx
  [ -z "$policy_made" ] || rm -f /usr/sbin/policy-rc.d
  service nginx stop >/dev/null 2>&1 || true
fi
