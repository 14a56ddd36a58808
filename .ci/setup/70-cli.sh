# The CLI's progress-bar test runs the binary on a pseudo-terminal with
# script(1), from util-linux (bsdutils on Debian).
command -v script >/dev/null 2>&1 || apt_install bsdutils
