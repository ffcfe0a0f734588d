#!/usr/bin/env bash
# The README's two commands share one build only if `cargo run -p server` resolves every crate
# with the features `cargo test --workspace` already built it with (resolver 2+ leaves the test
# crates' features out of a server-only build). Fails, naming them, when a crate would be built
# with other features: add those to the unification list in server/Cargo.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
tree() { cargo tree --locked "$@" -f '{p} [{f}]' --prefix none | grep -v ' (\*)$' | grep -v '(/' | sort -u; }
WS=$(mktemp); SRV=$(mktemp); trap 'rm -f "$WS" "$SRV"' EXIT
tree --workspace -e normal,build,dev > "$WS"
tree -p server -e normal,build > "$SRV"
DIFF=$(comm -13 "$WS" "$SRV")
if [ -n "$DIFF" ]; then
  echo "cargo run -p server would rebuild these with other features than the test build:" >&2
  echo "$DIFF" >&2
  echo "(the test build has:)" >&2
  for p in $(echo "$DIFF" | awk '{print $1"@"$2}' | sort -u); do grep "^${p%@*} ${p#*@} " "$WS" >&2 || true; done
  exit 1
fi
echo "cargo run -p server reuses the test build's features ($(wc -l < "$SRV") crates)"
