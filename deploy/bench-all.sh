#!/usr/bin/env bash
# Regenerates the README's benchmark table in one command:
#   bash deploy/bench-all.sh [--runs 3] [--duration 10] [other `switchboard-bench all` flags]
# Builds both binaries (release; BENCH_PROFILE=debug for a quick smoke run),
# starts a fresh `switchboard serve` on 127.0.0.1 with a temporary data dir
# (and its own nats-server; rate limits off: one token posts tens of
# thousands of messages a second), runs `switchboard-bench all` against it, and
# stops and removes everything on exit. All traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/install-nats.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}"
profile="${BENCH_PROFILE:-release}"
if [ "$profile" = release ]; then
  cargo build --release --locked -p switchboard -p switchboard-bench
else
  cargo build --locked -p switchboard -p switchboard-bench
fi
bin="$CARGO_TARGET_DIR/$profile"

# Many idle WebSockets need many descriptors (client and server side).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tmp=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
SWITCHBOARD_ADMIN_TOKEN="$token" RUST_LOG=warn \
  "$bin/switchboard" serve --listen 127.0.0.1:0 --data "$tmp/data" \
  --rate-limits off \
  >"$tmp/serve.out" 2>"$tmp/serve.err" &
pid=$!
url=""
for _ in $(seq 1 600); do
  url=$(sed -n 's/^switchboard listening on //p' "$tmp/serve.out" | head -n 1)
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/serve.err" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "switchboard serve did not start" >&2; cat "$tmp/serve.err" >&2; exit 1; }

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then commit="$commit-dirty"; fi

SWITCHBOARD_ADMIN_TOKEN="$token" "$bin/switchboard-bench" all \
  --url "$url" --pid "$pid" --data "$tmp/data" --commit "$commit" "$@"
