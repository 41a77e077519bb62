#!/usr/bin/env bash
# The test command (README "Run the tests"; CI runs exactly this).
# Every integration test starts its own nats-server on a free loopback
# port with a temp store, and the real switchboard binary.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/install-nats.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}"
nats-server --version
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
  # nextest does not run doc tests; the core's pin that id kinds don't mix.
  cargo test --doc -p switchboard-core
else
  cargo test --workspace --no-fail-fast "$@"
fi
