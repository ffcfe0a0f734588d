#!/usr/bin/env bash
# The CycloneDX SBOM of the server binary: every crate compiled into it (and its build
# dependencies), with version, licence and package URL. Run it for each release and publish the
# file beside the image:
#
#   deploy/sbom.sh                 # writes target/sbom/amtsplatz-server-<version>.cdx.json
#   deploy/sbom.sh dist/           # into another folder
#
# Installs cargo-cyclonedx (pinned) into ~/.cargo/bin when missing. Works offline once the
# dependencies are in cargo's cache (it reads `cargo metadata`; nothing is built).
set -euo pipefail
CYCLONEDX_VERSION=0.5.9
cd "$(dirname "$0")/.."
OUT=${1:-target/sbom}

if [ "$(cargo cyclonedx --version 2>/dev/null | awk '{print $2}')" != "$CYCLONEDX_VERSION" ]; then
  cargo install --locked "cargo-cyclonedx@$CYCLONEDX_VERSION"
fi

# cargo-cyclonedx writes `<binary>_bin.cdx.json` beside the Cargo.toml of every workspace member
# with a binary; keep the server's and remove the others.
trap 'rm -f ./*/*_bin.cdx.json' EXIT
cargo cyclonedx --quiet --manifest-path server/Cargo.toml --format json --spec-version 1.5 \
  --describe binaries
VERSION=$(cargo metadata --format-version 1 --no-deps --offline \
  | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "server"))')
mkdir -p "$OUT"
FILE="$OUT/amtsplatz-server-$VERSION.cdx.json"
mv server/server_bin.cdx.json "$FILE"

# Sanity: a CycloneDX document naming the server, and a licence for every component.
python3 - "$FILE" <<'PY'
import json, sys
bom = json.load(open(sys.argv[1]))
assert bom["bomFormat"] == "CycloneDX", "not a CycloneDX document"
assert bom["metadata"]["component"]["name"] == "server", "the SBOM does not describe the server"
components = bom["components"]
unlicensed = [c["name"] for c in components if not c.get("licenses")]
assert not unlicensed, f"components without a licence: {unlicensed}"
print(f"{sys.argv[1]}: CycloneDX {bom['specVersion']}, {len(components)} components, each with a licence")
PY
