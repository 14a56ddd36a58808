#!/usr/bin/env bash
# Runs the API Key Wallet benchmark from the repository root; see
# bench/README.md. Settings come from the environment, e.g.
#   DURATION=30s CONNECTIONS=128 bash bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./bench/cmd/bench "$@"
