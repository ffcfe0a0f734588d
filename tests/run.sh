#!/usr/bin/env bash
# The README's test command: installs what the tests need beyond Rust (xmllint, which validates
# the XML export against frontend-schema/application-export.xsd: libxml2 is the reference
# validator, and no Rust crate checks XSD as completely; age, sqlite3 and pg_dump for the restore
# drill), then runs the workspace's tests.
# Arguments go to `cargo test --workspace` (e.g. a test name filter). PostgreSQL instead of
# SQLite: AMTSPLATZ_TEST_DATABASE_URL=postgres://… bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# xmllint validates the XML export (libxml2-utils); the restore drill (tests/tests/api/backup.rs)
# encrypts with age and copies databases with sqlite3 and pg_dump (postgresql-client).
missing=()
for tool in xmllint:libxml2-utils age:age sqlite3:sqlite3 pg_dump:postgresql-client; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing what the tests use: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "${missing[@]}" >/dev/null; }
fi
# With the tools here, the drill must run, not be skipped.
export AMTSPLATZ_REQUIRE_BACKUP_TOOLS=1

exec cargo test --workspace "$@"
