# Node and the SDKs of the Node examples (docs/examples): Debian's nodejs and
# npm when there is no node, then exactly the versions package-lock.json
# names. The examples need Node 18 or newer (bookworm ships 18).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "ci: installing nodejs npm"
  apt_install nodejs npm
fi
echo "ci: node $(node --version), npm $(npm --version)"
(cd docs/examples/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
