#!/usr/bin/env bash
# Benchmark: Amtsplatz GraphQL vs. a hand-written actix-web + tokio-postgres baseline answering the
# same data, side by side in one run on PostgreSQL. Prints requests/s, p50 and the ratio.
#
#   deploy/bench/bench.sh            # 16 connections, 15 s per run
#   CONNS=32 DURATION=30s deploy/bench/bench.sh
#
# Needs: PostgreSQL on 127.0.0.1:5432 (trust auth), wrk (installed from Debian if missing).
# Figures are ratios: absolute numbers depend on the machine; both sides share it.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
CONNS=${CONNS:-16}
DURATION=${DURATION:-15s}
THREADS=${THREADS:-2}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
DB=amtsplatz_bench
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-/root}/.cache/amtsplatz-target}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

echo "== building (release)"
cargo build --release -q -p server
cargo build --release -q --manifest-path deploy/bench/baseline/Cargo.toml
BIN="$CARGO_TARGET_DIR/release"

psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
WORK=$(mktemp -d)
cleanup() { kill "${SERVER_PID:-}" "${BASE_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# One client IP sends everything: lift the per-IP limit on citizens' writes. No TLS to the
# database on loopback, like the baseline (sqlx would otherwise prefer TLS when the server offers it).
DATABASE_URL="$PG/$DB?sslmode=disable" AMTSPLATZ_DEMO=true AMTSPLATZ_BIND=127.0.0.1:18080 AMTSPLATZ_DATA_DIR="$WORK" \
  AMTSPLATZ_APPLICATIONS__WRITES_PER_IP_PER_MINUTE=4000000000 \
  AMTSPLATZ_TENANTS_DIR="$ROOT/tenants" RUST_LOG=warn "$BIN/server" > "$WORK/server.log" 2>&1 &
SERVER_PID=$!
DATABASE_URL="$PG/$DB" BIND=127.0.0.1:18081 "$BIN/amtsplatz-bench-baseline" > "$WORK/baseline.log" 2>&1 &
BASE_PID=$!
for _ in $(seq 1 60); do curl -fs http://127.0.0.1:18080/readyz >/dev/null && break; sleep 0.5; done
for _ in $(seq 1 60); do curl -s -o /dev/null http://127.0.0.1:18081/me && break; sleep 0.5; done

gql() { curl -fs http://127.0.0.1:18080/graphql -H 'content-type: application/json' "$@"; }
LOGIN=$(gql -H 'X-Tenant: musterstadt' -d '{"query":"mutation { login(input: {email: \"sachbearbeitung@musterstadt.example\", password: \"musterstadt-staff\"}) { accessToken viewer { id } } }"}')
TOKEN=$(echo "$LOGIN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["accessToken"])')
USER_ID=$(echo "$LOGIN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["viewer"]["id"])')

cat > "$WORK/departments.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Tenant"] = "musterstadt"
wrk.body = '{"query":"query TenantDepartments { tenant { departments { edges { node { id key name email } } } } }","operationName":"TenantDepartments"}'
LUA
cat > "$WORK/me.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.body = '{"query":"query Me { me { id email displayName } }","operationName":"Me"}'
LUA
# The marketplace page as an anonymous visitor of musterstadt: three nested lists per request
# (page, versions, adoption), each one DataLoader batch on our side, one prepared query in the baseline.
TEMPLATES_QUERY='query Templates { templates(first: 20) { edges { node { slug title category versions { version changelog publishedAt } adoption { tenants byVersion { version tenants } } } } } }'
cat > "$WORK/templates.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Tenant"] = "musterstadt"
wrk.body = '{"query":"$TEMPLATES_QUERY","operationName":"Templates"}'
LUA

# Applications: an anonymous citizen submits Musterstadt's dog tax form (validation, reference
# number, routing, event, outbox, status notification); the administrator lists the first 20 with
# their tasks.
ADMIN_TOKEN=$(gql -H 'X-Tenant: musterstadt' -d '{"query":"mutation { login(input: {email: \"admin@musterstadt.example\", password: \"musterstadt-admin\"}) { accessToken } }"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["accessToken"])')
FORM='{"name":"Erika Mustermann","street":"Hauptstraße 1","postcode":"12345","city":"Musterstadt","email":"erika@example.org","dog_count":1,"breed":"Pudel","listed_breed":false,"date_acquired":"2026-10-01","iban":"DE02120300000000202051","account_holder":"Erika Mustermann"}'
cat > "$WORK/submit.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Tenant"] = "musterstadt"
wrk.body = '{"query":"mutation Submit(\$i: SubmitApplicationInput!) { submitApplication(input: \$i) { application { reference } } }","operationName":"Submit","variables":{"i":{"serviceSlug":"hundesteuer","data":$FORM}}}'
LUA
cat > "$WORK/submit-baseline.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Tenant"] = "musterstadt"
wrk.body = '$FORM'
LUA
APPS_QUERY='query Apps { applications(first: 20) { edges { node { id reference state submittedAt tasks { state department { key name } } } } } }'
cat > "$WORK/applications.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Tenant"] = "musterstadt"
wrk.headers["Authorization"] = "Bearer $ADMIN_TOKEN"
wrk.body = '{"query":"$APPS_QUERY","operationName":"Apps"}'
LUA
# Both sides store a submission the same way (the GraphQL one must succeed, not just answer 200).
wrk_body() { python3 -c 'import re,sys; print(re.search(r"wrk.body = \x27(.*)\x27", open(sys.argv[1]).read()).group(1))' "$1"; }
R=$(gql -H 'X-Tenant: musterstadt' -d "$(wrk_body "$WORK/submit.lua")" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["submitApplication"]["application"]["reference"])')
S=$(curl -fs -H 'X-Tenant: musterstadt' -H 'content-type: application/json' -d "$FORM" http://127.0.0.1:18081/submit | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["submitApplication"]["application"]["reference"])')
echo "submitted $R (amtsplatz) and $S (baseline)"

# Sanity: both sides answer the same departments.
A=$(gql -H 'X-Tenant: musterstadt' -d '{"query":"{ tenant { departments { edges { node { id key name email } } } } }"}' | python3 -c 'import json,sys; print(sorted(e["node"]["key"] for e in json.load(sys.stdin)["data"]["tenant"]["departments"]["edges"]))')
B=$(curl -fs -H 'X-Tenant: musterstadt' http://127.0.0.1:18081/departments | python3 -c 'import json,sys; print(sorted(e["node"]["key"] for e in json.load(sys.stdin)["data"]["tenant"]["departments"]["edges"]))')
[ "$A" = "$B" ] || { echo "baseline and server disagree: $A vs $B"; exit 1; }

# Fill the marketplace to a full page: 20 more public templates (copies of the seeded ones with all
# their versions), written as the owner straight into the database both sides read.
psql -q "$PG/$DB" <<'SQL'
INSERT INTO templates (id, author_tenant_id, slug, title, summary, category, tags, license, visibility, created_by, created_at, updated_at)
SELECT gen_random_uuid(), t.author_tenant_id, t.slug || '-kopie-' || n, t.title, t.summary, t.category, t.tags, t.license, 'public', NULL, now(), now()
FROM templates t CROSS JOIN generate_series(1, 5) AS n WHERE t.slug NOT LIKE '%-kopie-%';
INSERT INTO template_versions (id, template_id, version, major, minor, patch, content, changelog, status, deprecation_note, published_by, published_at, deprecated_at)
SELECT gen_random_uuid(), c.id, v.version, v.major, v.minor, v.patch, v.content, v.changelog, v.status, NULL, NULL, v.published_at, NULL
FROM templates c JOIN templates o ON c.slug LIKE o.slug || '-kopie-%' JOIN template_versions v ON v.template_id = o.id;
SQL

# Sanity: both sides list the same templates in the same order with the same versions (publishedAt
# and adoption are not compared). An empty page would measure nothing: the demo seeds the marketplace.
slugs_and_versions() { python3 -c 'import json,sys; print(json.dumps([[e["node"]["slug"], [v["version"] for v in e["node"]["versions"]]] for e in json.load(sys.stdin)["data"]["templates"]["edges"]]))'; }
A=$(gql -H 'X-Tenant: musterstadt' -d "{\"query\":\"$TEMPLATES_QUERY\"}" | slugs_and_versions)
B=$(curl -fs -H 'X-Tenant: musterstadt' http://127.0.0.1:18081/templates | slugs_and_versions)
[ "$A" = "$B" ] || { echo "baseline and server disagree on templates: $A vs $B"; exit 1; }
[ "$A" != "[]" ] || { echo "no templates in the marketplace of musterstadt"; exit 1; }

run() { # name, wrk args... → prints "rps p50_ms"
  local out; out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$@")
  echo "$out" > "$WORK/$(date +%s%N).txt"
  local rps p50
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}')
  echo "$out" | awk '/requests in/ {print $1}' > "$WORK/last-requests"
  local errors; errors=$(echo "$out" | awk '/Non-2xx/ {print $4}')
  [ -z "$errors" ] || { echo "non-2xx responses: $errors" >&2; exit 1; }
  echo "$rps $p50"
}

# Sanity: both sides list the same applications with the same tasks.
apps_and_tasks() { python3 -c 'import json,sys; print(json.dumps([[e["node"]["reference"], [t["department"]["key"] for t in e["node"]["tasks"]]] for e in json.load(sys.stdin)["data"]["applications"]["edges"]]))'; }
A=$(gql -H 'X-Tenant: musterstadt' -H "Authorization: Bearer $ADMIN_TOKEN" -d "{\"query\":\"$APPS_QUERY\"}" | apps_and_tasks)
B=$(curl -fs -H 'X-Tenant: musterstadt' http://127.0.0.1:18081/applications | apps_and_tasks)
[ "$A" = "$B" ] || { echo "baseline and server disagree on applications: $A vs $B"; exit 1; }

echo "== warm-up"
wrk -t1 -c4 -d3s -s "$WORK/departments.lua" http://127.0.0.1:18080/graphql >/dev/null
wrk -t1 -c4 -d3s -H 'X-Tenant: musterstadt' http://127.0.0.1:18081/departments >/dev/null
wrk -t1 -c4 -d3s -s "$WORK/templates.lua" http://127.0.0.1:18080/graphql >/dev/null
wrk -t1 -c4 -d3s -H 'X-Tenant: musterstadt' http://127.0.0.1:18081/templates >/dev/null

report() { # label, amtsplatz "rps p50", baseline "rps p50"
  python3 - "$@" <<'PY'
import sys
label, ours, base = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
r = float(ours[0]) / float(base[0])
print(f"{label:<28} amtsplatz {float(ours[0]):>9.0f} req/s p50 {float(ours[1]):6.2f} ms | baseline {float(base[0]):>9.0f} req/s p50 {float(base[1]):6.2f} ms | ratio {r:.2f}")
PY
}

echo "== $CONNS connections, $DURATION each, PostgreSQL"
D_OURS=$(run -s "$WORK/departments.lua" http://127.0.0.1:18080/graphql)
D_BASE=$(run -H 'X-Tenant: musterstadt' http://127.0.0.1:18081/departments)
M_OURS=$(run -s "$WORK/me.lua" http://127.0.0.1:18080/graphql)
M_BASE=$(run -H "X-User: $USER_ID" http://127.0.0.1:18081/me)
T_OURS=$(run -s "$WORK/templates.lua" http://127.0.0.1:18080/graphql)
T_BASE=$(run -H 'X-Tenant: musterstadt' http://127.0.0.1:18081/templates)
report "tenant { departments }" "$D_OURS" "$D_BASE"
report "me" "$M_OURS" "$M_BASE"
stored() { psql -tAq "$PG/$DB" -c "SELECT count(*) FROM applications"; }
# GraphQL answers errors with 200: a submission counts only if its application was stored.
check_stored() { # rows before, side
  local requests now; requests=$(cat "$WORK/last-requests"); now=$(stored)
  [ $((now - $1)) -ge "$requests" ] || { echo "$2: $requests submissions but $((now - $1)) stored" >&2; exit 1; }
}
BEFORE=$(stored); S_OURS=$(run -s "$WORK/submit.lua" http://127.0.0.1:18080/graphql); check_stored "$BEFORE" amtsplatz
BEFORE=$(stored); S_BASE=$(run -s "$WORK/submit-baseline.lua" http://127.0.0.1:18081/submit); check_stored "$BEFORE" baseline
psql -q "$PG/$DB" -c "ANALYZE"   # the submissions grew the tables: fresh statistics for both sides
A_OURS=$(run -s "$WORK/applications.lua" http://127.0.0.1:18080/graphql)
A_BASE=$(run -H 'X-Tenant: musterstadt' http://127.0.0.1:18081/applications)
report "templates(first: 20)" "$T_OURS" "$T_BASE"
report "submitApplication" "$S_OURS" "$S_BASE"
report "applications(first: 20)" "$A_OURS" "$A_BASE"
