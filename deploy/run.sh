#!/usr/bin/env bash
# Runs the platform on one machine (README "Run it"): installs nats-server
# if it is missing, then `switchboard serve` with its embedded defaults —
# a local nats-server it starts itself, read models under ./data, HTTP on
# 127.0.0.1:8080. Extra arguments go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/install-nats.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}"
exec cargo run --release --quiet -- serve "$@"
