#!/usr/bin/env bash
# Benchmark: resident memory of the server while citizens upload large files through the
# presigned path (requestUpload → PUT → confirmUpload) on the embedded default (SQLite + local
# storage, where every byte passes through the server). Uploads 10, 100 and 500 MB side by side in
# one run and prints the peak RSS growth of each and its ratio to the file size (flat memory: the
# growth stays the same few KiB whatever the size, so the ratio falls towards 0).
#
#   deploy/bench/upload.sh                 # 10, 100 and 500 MB
#   SIZES_MB="100" deploy/bench/upload.sh
#
# Needs: Python 3 (standard library only).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-/root}/.cache/amtsplatz-target}"
SIZES_MB=${SIZES_MB:-"10 100 500"}

echo "== building (release)"
cargo build --release -q -p server
BIN="$CARGO_TARGET_DIR/release"

WORK=$(mktemp -d)
cleanup() { kill "${SERVER_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

AMTSPLATZ_BIND=127.0.0.1:18090 AMTSPLATZ_DATA_DIR="$WORK/data" AMTSPLATZ_TENANTS_DIR="$ROOT/tenants" \
  AMTSPLATZ_STORAGE__MAX_FILE_BYTES=1073741824 AMTSPLATZ_APPLICATIONS__WRITES_PER_IP_PER_MINUTE=100000 \
  RUST_LOG=warn "$BIN/server" > "$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 120); do curl -fs http://127.0.0.1:18090/readyz >/dev/null && break; sleep 0.5; done

python3 deploy/bench/upload_rss.py --url http://127.0.0.1:18090 --pid "$SERVER_PID" --work "$WORK" $SIZES_MB
