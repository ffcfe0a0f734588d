#!/usr/bin/env bash
# Benchmark of the citizen portal's pages (issue: render ≤ 20 ms p50, ≤ 150 KB without fonts),
# release build on PostgreSQL: the server-side render time of the start page, a service page and a
# form step (one connection: p50 of wrk is the time one page takes), each beside the GraphQL query
# the page runs in-process (same data through the API over HTTP: the page's own cost is the
# difference), then under load (CONNS connections). Page weight: HTML plus every stylesheet and
# script it links, as served (gzip), fonts left out.
#
#   deploy/bench/pages.sh                  # 15 s per run
#   DURATION=5s CONNS=8 deploy/bench/pages.sh
#
# Needs: PostgreSQL on 127.0.0.1:5432 (trust auth), wrk (installed from Debian if missing).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
CONNS=${CONNS:-16}
URL=http://127.0.0.1:18095

bench_build
bench_db amtsplatz_bench_pages
start_server 127.0.0.1:18095 "$DB"

# A draft of the dog tax, as an anonymous citizen's browser holds it (token in the cookie).
DRAFT=$(gql_ok "$URL/graphql" "$(gql_body 'mutation { saveDraft(input: {serviceSlug: "hundesteuer", data: {name: "Erika Mustermann"}}) { draft { id } accessToken } }')" -H 'X-Tenant: musterstadt')
DRAFT_ID=$(echo "$DRAFT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["saveDraft"]["draft"]["id"])')
DRAFT_TOKEN=$(echo "$DRAFT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["saveDraft"]["accessToken"])')
START=/t/musterstadt/
SERVICE=/t/musterstadt/services/hundesteuer
STEP=/t/musterstadt/drafts/$DRAFT_ID/steps/halter
COOKIE="ap_draft=$DRAFT_TOKEN; ap_csrf=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
for p in "$START" "$SERVICE" "$STEP"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "$URL$p")
  [ "$code" = 200 ] || fail "$p answered $code"
done

# The API side of each page: the query the page runs, over HTTP.
post_lua "$WORK/start-api.lua" "$(gql_body 'query($search: String) { tenant { name branding { primaryColor logoUrl } citizenLoginIssuer } services(filter: {search: $search}, first: 100) { nodes { slug title summary category } } }')" "X-Tenant: musterstadt"
SERVICE_QUERY='query($slug: String!) { tenant { name branding { primaryColor logoUrl } citizenLoginIssuer departments(first: 100) { nodes { key name email } } } service(slug: $slug) { slug resolvedContent } }'
post_lua "$WORK/service-api.lua" "$(gql_body "$SERVICE_QUERY" '{"slug":"hundesteuer"}')" "X-Tenant: musterstadt"
gql_ok "$URL/graphql" "$(gql_body "$SERVICE_QUERY" '{"slug":"hundesteuer"}')" -H 'X-Tenant: musterstadt' >/dev/null
gql_ok "$URL/graphql" "$(gql_body 'query($search: String) { tenant { name } services(filter: {search: $search}, first: 100) { nodes { slug } } }')" -H 'X-Tenant: musterstadt' >/dev/null
cat > "$WORK/page.lua" <<LUA
wrk.headers["Cookie"] = "$COOKIE"
wrk.headers["Accept-Encoding"] = "gzip"
LUA

echo "== page weight (gzip as served, without fonts)"
python3 - "$URL" "$COOKIE" "$START" "$SERVICE" "$STEP" <<'PY'
import gzip, re, sys, urllib.request
base, cookie, pages = sys.argv[1], sys.argv[2], sys.argv[3:]
def fetch(path):
    req = urllib.request.Request(base + path, headers={"Accept-Encoding": "gzip", "Cookie": cookie})
    with urllib.request.urlopen(req) as r:
        body = r.read()
        wire = len(body)
        if r.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return wire, len(body), body.decode("utf-8", "replace")
worst = 0
for page in pages:
    wire, raw, html = fetch(page)
    total_wire, total_raw = wire, raw
    assets = re.findall(r'<(?:link[^>]+rel="stylesheet"[^>]+href|script[^>]+src)="([^"]+)"', html)
    for a in assets:
        if "fonts" in a:
            continue
        w, r_, _ = fetch(a)
        total_wire += w; total_raw += r_
    worst = max(worst, total_wire)
    print(f"{page:<60} {total_wire/1024:7.1f} KB gzip ({total_raw/1024:6.1f} KB uncompressed, {len(assets)} assets)")
print(f"heaviest page: {worst/1024:.1f} KB (target ≤ 150 KB): {'ok' if worst <= 150*1024 else 'OVER'}")
PY

echo "== warm-up"
for p in "$START" "$SERVICE" "$STEP"; do wrk -t1 -c2 -d2s -s "$WORK/page.lua" "$URL$p" >/dev/null; done

line() { # label, page "rps p50", api "rps p50"
  python3 - "$@" <<'PY'
import sys
label, page, api = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
print(f"{label:<26} page p50 {float(page[1]):6.2f} ms {float(page[0]):>8.0f} req/s | its GraphQL p50 {float(api[1]):6.2f} ms {float(api[0]):>8.0f} req/s")
PY
}
for conns in 1 "$CONNS"; do
  echo "== $conns connection(s), $DURATION each, PostgreSQL, release build"
  P=$(run "$conns" -s "$WORK/page.lua" "$URL$START"); A=$(run "$conns" -s "$WORK/start-api.lua" "$URL/graphql"); line "start page" "$P" "$A"
  P=$(run "$conns" -s "$WORK/page.lua" "$URL$SERVICE"); A=$(run "$conns" -s "$WORK/service-api.lua" "$URL/graphql"); line "service page" "$P" "$A"
  P=$(run "$conns" -s "$WORK/page.lua" "$URL$STEP"); line "form step" "$P" "$A"
done
echo "(render target: ≤ 20 ms p50 with one connection)"
