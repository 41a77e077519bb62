#!/usr/bin/env bash
# Set-up of the Python replay example (docs/replay.md): a virtualenv in
# examples/python/.venv with the pinned packages of requirements.txt (from
# PyPI only), and Python code generated from the project's own schema,
# core/proto/switchboard/v1/events.proto, into examples/python/gen/.
#
# protoc: $PROTOC if set, else the protoc the Rust build already uses
# (the protoc-bin-vendored crate in cargo's registry; `cargo fetch` brings
# it if it is not there yet). Idempotent and quick when nothing changed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
venv="$here/.venv"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
# Installs only when requirements.txt changed since the last set-up.
stamp="$venv/.requirements"
if ! cmp -s "$here/requirements.txt" "$stamp"; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --only-binary=:all: -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi

find_protoc() {
  local arch
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) arch=linux-x86_64 ;;
    Linux-aarch64) arch=linux-aarch_64 ;;
    Darwin-arm64) arch=macos-aarch_64 ;;
    Darwin-x86_64) arch=macos-x86_64 ;;
    *) return 1 ;;
  esac
  local version
  version="$(grep -A1 '^name = "protoc-bin-vendored"$' "$root/Cargo.lock" | sed -n 's/^version = "\(.*\)"$/\1/p')"
  ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"protoc-bin-vendored-$arch-$version"/bin/protoc 2>/dev/null | head -n1
}
protoc="${PROTOC:-}"
if [ -z "$protoc" ]; then
  protoc="$(find_protoc || true)"
  if [ -z "$protoc" ] && command -v cargo >/dev/null; then
    (cd "$root" && cargo fetch --locked >/dev/null)
    protoc="$(find_protoc || true)"
  fi
fi
if [ -z "$protoc" ] || [ ! -x "$protoc" ]; then
  echo "setup.sh: no protoc found: set PROTOC, or run 'cargo fetch' in $root first" >&2
  exit 1
fi

gen="$here/gen"
rm -rf "$gen.tmp" && mkdir -p "$gen.tmp"
"$protoc" --proto_path="$root/core/proto" --python_out="$gen.tmp" \
  "$root/core/proto/switchboard/v1/events.proto"
rm -rf "$gen" && mv "$gen.tmp" "$gen"
PYTHONPATH="$gen" "$venv/bin/python" -c "from switchboard.v1 import events_pb2"
echo "ready: $venv/bin/python $here/replay.py --help"
