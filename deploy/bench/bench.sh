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
source "$(dirname "$0")/lib.sh"
CONNS=${CONNS:-16}

bench_build baseline
bench_db amtsplatz_bench
start_server 127.0.0.1:18080 "$DB"
start_baseline 127.0.0.1:18081 "$DB"

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

fill_marketplace "$DB"

# Sanity: both sides list the same templates in the same order with the same versions (publishedAt
# and adoption are not compared). An empty page would measure nothing: the demo seeds the marketplace.
slugs_and_versions() { python3 -c 'import json,sys; print(json.dumps([[e["node"]["slug"], [v["version"] for v in e["node"]["versions"]]] for e in json.load(sys.stdin)["data"]["templates"]["edges"]]))'; }
A=$(gql -H 'X-Tenant: musterstadt' -d "{\"query\":\"$TEMPLATES_QUERY\"}" | slugs_and_versions)
B=$(curl -fs -H 'X-Tenant: musterstadt' http://127.0.0.1:18081/templates | slugs_and_versions)
[ "$A" = "$B" ] || { echo "baseline and server disagree on templates: $A vs $B"; exit 1; }
[ "$A" != "[]" ] || { echo "no templates in the marketplace of musterstadt"; exit 1; }


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
D_OURS=$(run "$CONNS" -s "$WORK/departments.lua" http://127.0.0.1:18080/graphql)
D_BASE=$(run "$CONNS" -H 'X-Tenant: musterstadt' http://127.0.0.1:18081/departments)
M_OURS=$(run "$CONNS" -s "$WORK/me.lua" http://127.0.0.1:18080/graphql)
M_BASE=$(run "$CONNS" -H "X-User: $USER_ID" http://127.0.0.1:18081/me)
T_OURS=$(run "$CONNS" -s "$WORK/templates.lua" http://127.0.0.1:18080/graphql)
T_BASE=$(run "$CONNS" -H 'X-Tenant: musterstadt' http://127.0.0.1:18081/templates)
report "tenant { departments }" "$D_OURS" "$D_BASE"
report "me" "$M_OURS" "$M_BASE"
stored() { psql -tAq "$PG/$DB" -c "SELECT count(*) FROM applications"; }
# GraphQL answers errors with 200: a submission counts only if its application was stored.
check_stored() { # rows before, side
  local requests now; requests=$(cat "$WORK/last-requests"); now=$(stored)
  [ $((now - $1)) -ge "$requests" ] || { echo "$2: $requests submissions but $((now - $1)) stored" >&2; exit 1; }
}
BEFORE=$(stored); S_OURS=$(run "$CONNS" -s "$WORK/submit.lua" http://127.0.0.1:18080/graphql); check_stored "$BEFORE" amtsplatz
BEFORE=$(stored); S_BASE=$(run "$CONNS" -s "$WORK/submit-baseline.lua" http://127.0.0.1:18081/submit); check_stored "$BEFORE" baseline
psql -q "$PG/$DB" -c "ANALYZE"   # the submissions grew the tables: fresh statistics for both sides
A_OURS=$(run "$CONNS" -s "$WORK/applications.lua" http://127.0.0.1:18080/graphql)
A_BASE=$(run "$CONNS" -H 'X-Tenant: musterstadt' http://127.0.0.1:18081/applications)
report "templates(first: 20)" "$T_OURS" "$T_BASE"
report "submitApplication" "$S_OURS" "$S_BASE"
report "applications(first: 20)" "$A_OURS" "$A_BASE"
