#!/usr/bin/env bash
# The README's test command: installs what the tests need beyond Rust (xmllint, which validates
# the XML export against frontend-schema/application-export.xsd: libxml2 is the reference
# validator, and no Rust crate checks XSD as completely), then runs the workspace's tests.
# Arguments go to `cargo test --workspace` (e.g. a test name filter). PostgreSQL instead of
# SQLite: AMTSPLATZ_TEST_DATABASE_URL=postgres://… bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v xmllint >/dev/null; then
  echo "installing xmllint (Debian: libxml2-utils)" >&2
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y -q libxml2-utils >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q libxml2-utils >/dev/null; }
fi

exec cargo test --workspace "$@"
