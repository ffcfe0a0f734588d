#!/usr/bin/env bash
# The browser suite: the citizen portal in Debian's Chromium (playwright-core, no browser
# download), every page checked by axe-core (WCAG 2.1 A/AA). Builds nothing: run
# `cargo test --workspace --no-run` first. Screenshots of a failing scenario stay in
# target/browser-artifacts/<scenario>/.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-/root}/.cache/amtsplatz-target}"
export AMTSPLATZ_BIN="${AMTSPLATZ_BIN:-$CARGO_TARGET_DIR/debug/amtsplatz-test-server}"
ARTIFACTS="$ROOT/target/browser-artifacts"

if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q chromium >/dev/null
fi
command -v node >/dev/null || { echo "node (20 or newer) is needed" >&2; exit 1; }

if [ ! -x "$AMTSPLATZ_BIN" ]; then
  echo "server binary not found: $AMTSPLATZ_BIN" >&2
  echo "build it first: cargo test --workspace --no-run" >&2
  exit 1
fi

cd "$HERE"
npm ci --quiet --no-audit --no-fund --loglevel=error
rm -rf "$ARTIFACTS"

status=0
timeout 600 node --test --test-concurrency=1 --test-timeout=150000 portal.test.mjs || status=$?
if [ "$status" -ne 0 ]; then
  if [ -d "$ARTIFACTS" ] && [ -n "$(ls -A "$ARTIFACTS" 2>/dev/null)" ]; then
    echo "browser suite failed: screenshots of each step in $ARTIFACTS/" >&2
  else
    echo "browser suite failed (exit $status)" >&2
  fi
fi
exit "$status"
