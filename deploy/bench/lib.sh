# Shared setup of the benchmarks in deploy/bench: sourced, not run.
#
#   source "$(dirname "$0")/lib.sh"      # cds to the repository root, sets ROOT, PG, THREADS, DURATION
#   bench_build baseline                 # release build of the server (and the baseline)
#   bench_db amtsplatz_bench_x           # fresh database; WORK is a temp dir removed on exit
#   start_server 127.0.0.1:18090 amtsplatz_bench_x [VAR=value ...]
#   start_baseline 127.0.0.1:18091 amtsplatz_bench_x
#   run 16 -s file.lua http://…          # "req/s p50_ms" of one wrk run
#
# Needs: PostgreSQL on 127.0.0.1:5432 (trust auth), wrk (installed from Debian if missing).
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)
PG=${PG:-postgres://postgres@127.0.0.1:5432}
THREADS=${THREADS:-2}
DURATION=${DURATION:-15s}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-/root}/.cache/amtsplatz-target}"
BIN="$CARGO_TARGET_DIR/release"
PIDS=()

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

bench_build() { # [baseline]; SKIP_BUILD=1: use the binaries already built
  [ -z "${SKIP_BUILD:-}" ] || return 0
  echo "== building (release)"
  cargo build --release -q -p server
  [ "${1:-}" != baseline ] || cargo build --release -q --manifest-path deploy/bench/baseline/Cargo.toml
}

bench_cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -z "${WORK:-}" ] || rm -rf "$WORK"
}

bench_db() { # database name → a fresh database; WORK: a temp dir, removed with the processes on exit
  DB=$1
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  WORK=$(mktemp -d)
  trap bench_cleanup EXIT
}

fail() { # message → the tails of the logs in WORK, exit 1
  echo "FAILED: $*" >&2
  local log
  for log in "$WORK"/*.log; do
    [ -e "$log" ] || continue
    echo "-- $(basename "$log") (tail)" >&2; tail -20 "$log" >&2
  done
  exit 1
}

# The demo server on a database (it migrates and seeds it), with the per-IP write limits lifted
# (one client IP sends everything) and no TLS to the database on loopback, like the baseline.
start_server() { # host:port, database, extra VAR=value...
  local bind=$1 db=$2; shift 2
  env DATABASE_URL="$PG/$db?sslmode=disable" AMTSPLATZ_DEMO=true AMTSPLATZ_BIND="$bind" AMTSPLATZ_DATA_DIR="$WORK" \
    AMTSPLATZ_APPLICATIONS__WRITES_PER_IP_PER_MINUTE=4000000000 \
    AMTSPLATZ_TENANTS_DIR="$ROOT/tenants" RUST_LOG=warn "$@" "$BIN/server" > "$WORK/server.log" 2>&1 &
  PIDS+=($!)
  local _
  for _ in $(seq 1 120); do curl -fs "http://$bind/readyz" >/dev/null && return 0; sleep 0.5; done
  fail "server not ready on $bind"
}

# The hand-written baseline (deploy/bench/baseline); after the server, which migrates the database.
start_baseline() { # host:port, database
  DATABASE_URL="$PG/$2" BIND="$1" "$BIN/amtsplatz-bench-baseline" > "$WORK/baseline.log" 2>&1 &
  PIDS+=($!)
  local _
  for _ in $(seq 1 60); do curl -s -o /dev/null "http://$1/me" && return 0; sleep 0.5; done
  fail "baseline not ready on $1"
}

# A wrk script that POSTs one JSON body (kept verbatim in a Lua long string).
post_lua() { # file, body, extra "Header: value"...
  local file=$1 body=$2 h; shift 2
  {
    echo 'wrk.method = "POST"'
    echo 'wrk.headers["Content-Type"] = "application/json"'
    for h in "$@"; do echo "wrk.headers[\"${h%%:*}\"] = \"${h#*: }\""; done
    echo "wrk.body = [==[$body]==]"
  } > "$file"
}

# GraphQL request body for a query (and optional variables as JSON).
gql_body() { # query, [variables JSON]
  python3 -c 'import json,sys; b={"query": sys.argv[1]}; b.update({"variables": json.loads(sys.argv[2])} if len(sys.argv) > 2 else {}); print(json.dumps(b))' "$@"
}

# Staff login on the server: prints the access token.
login() { # server host:port, tenant slug, email, password
  curl -fs "http://$1/graphql" -H 'content-type: application/json' -H "X-Tenant: $2" \
    -d "$(gql_body 'mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { accessToken } }' \
          "{\"e\":\"$3\",\"p\":\"$4\"}")" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["accessToken"])'
}

# One wrk run: prints "req/s p50_ms"; the whole output in $WORK/last.txt, the request count in
# $WORK/last-requests. Any non-2xx answer fails the benchmark.
run() { # connections, wrk args...
  local conns=$1; shift
  local threads=$((THREADS < conns ? THREADS : conns))
  local out; out=$(wrk -t"$threads" -c"$conns" -d"$DURATION" --latency "$@")
  echo "$out" > "$WORK/last.txt"
  echo "$out" | awk '/requests in/ {print $1}' > "$WORK/last-requests"
  local errors; errors=$(echo "$out" | awk '/Non-2xx/ {print $4}')
  [ -z "$errors" ] || { echo "$out" >&2; echo "non-2xx responses: $errors" >&2; exit 1; }
  local rps p50
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}')
  echo "$rps $p50"
}

# GraphQL answers errors with 200: checks the body of one request for data without errors.
gql_ok() { # url, body, extra curl args...
  local url=$1 body=$2; shift 2
  local out; out=$(curl -fs "$url" -H 'content-type: application/json' "$@" -d "$body") || fail "$url: request failed"
  echo "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin); sys.exit(0 if r.get("data") and not r.get("errors") else 1)' \
    || fail "$url answered with errors: $out"
  echo "$out"
}

# Fills the marketplace to a full page: 20 more public templates (copies of the seeded ones with
# all their versions), written as the owner straight into the database every side reads.
fill_marketplace() { # database
  psql -q "$PG/$1" <<'SQL'
INSERT INTO templates (id, author_tenant_id, slug, title, summary, category, tags, license, visibility, created_by, created_at, updated_at)
SELECT gen_random_uuid(), t.author_tenant_id, t.slug || '-kopie-' || n, t.title, t.summary, t.category, t.tags, t.license, 'public', NULL, now(), now()
FROM templates t CROSS JOIN generate_series(1, 5) AS n WHERE t.slug NOT LIKE '%-kopie-%';
INSERT INTO template_versions (id, template_id, version, major, minor, patch, content, changelog, status, deprecation_note, published_by, published_at, deprecated_at)
SELECT gen_random_uuid(), c.id, v.version, v.major, v.minor, v.patch, v.content, v.changelog, v.status, NULL, NULL, v.published_at, NULL
FROM templates c JOIN templates o ON c.slug LIKE o.slug || '-kopie-%' JOIN template_versions v ON v.template_id = o.id;
SQL
}
