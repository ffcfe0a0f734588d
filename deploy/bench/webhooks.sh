#!/usr/bin/env bash
# Benchmark of Stripe webhook handling on PostgreSQL: verified events per second, with zero
# duplicate effects.
#
# Setup: the demo server with a Stripe key, Musterstadt's Stripe account and webhook secret set
# through GraphQL, one submitted dog-tax application and EVENTS pending payments for it (inserted
# with SQL: the benchmark is about webhooks, not about creating checkouts). Then EVENTS distinct
# `checkout.session.completed` events, signed as Stripe signs them (HMAC-SHA256 over `t.body`),
# are each sent twice in a shuffled order, by CONNS connections for DURATION (wrk cycles through
# the list again if it is faster). Afterwards: every answer was 200, each payment was applied
# exactly once (one `payment_paid` timeline entry, one receipt mail, one provider_events row per
# event id), nothing else changed.
#
#   deploy/bench/webhooks.sh                   # 16 connections, 15 s, 20000 events
#   CONNS=32 EVENTS=40000 deploy/bench/webhooks.sh
#
# Needs: PostgreSQL on 127.0.0.1:5432 (trust auth), wrk (installed from Debian if missing).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
CONNS=${CONNS:-16}
EVENTS=${EVENTS:-20000}
OURS=http://127.0.0.1:18084
SECRET=whsec_bench_0123456789abcdef0123
ACCOUNT=acct_1BenchMusterstadt

bench_build
bench_db amtsplatz_bench_webhooks
start_server "${OURS#http://}" "$DB" \
  AMTSPLATZ_PAYMENTS__STRIPE_SECRET_KEY=sk_test_bench AMTSPLATZ_PAYMENTS__STRIPE_API_BASE=http://127.0.0.1:9/

gql() { # token, body
  curl -fs "$OURS/graphql" -H 'content-type: application/json' -H 'X-Tenant: musterstadt' ${1:+-H "Authorization: Bearer $1"} -d "$2"
}
TOKEN=$(gql "" '{"query":"mutation { login(input: {email: \"admin@musterstadt.example\", password: \"musterstadt-admin\"}) { accessToken } }"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["accessToken"])') || fail "login"
gql "$TOKEN" "{\"query\":\"mutation { configureStripePayments(input: {accountId: \\\"$ACCOUNT\\\", webhookSecret: \\\"$SECRET\\\", successUrl: \\\"https://musterstadt.example/ok\\\", cancelUrl: \\\"https://musterstadt.example/no\\\"}) { account { webhookSecretSet } } }\"}" \
  | grep -q '"webhookSecretSet":true' || fail "configureStripePayments"
APP=$(gql "" '{"query":"mutation($i: SubmitApplicationInput!) { submitApplication(input: $i) { application { id } } }","variables":{"i":{"serviceSlug":"hundesteuer","data":{"name":"Erika Mustermann","street":"Hauptstraße 1","postcode":"12345","city":"Musterstadt","email":"erika@example.org","dog_count":1,"breed":"Dackel","listed_breed":false,"date_acquired":"2026-10-01","iban":"DE02120300000000202051","account_holder":"Erika Mustermann"}}}}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["submitApplication"]["application"]["id"])') || fail "submit"
TENANT=$(psql -tAq "$PG/$DB" -c "SELECT id FROM tenants WHERE slug = 'musterstadt'")
psql -qtA "$PG/$DB" -c "INSERT INTO payments (id, tenant_id, application_id, provider, state, amount_cents, refunded_cents, currency, \
  checkout_session_id, provider_payment_id, checkout_url, expires_at, created_by, confirmed_by, created_at, updated_at, paid_at) \
  SELECT gen_random_uuid(), '$TENANT', '$APP', 'stripe', 'pending', 12000, 0, 'EUR', 'cs_bench_' || n, NULL, NULL, now() + interval '1 hour', \
  'bench', NULL, now(), now(), NULL FROM generate_series(1, $EVENTS) n"
psql -qtA "$PG/$DB" -c "SELECT id || ' ' || checkout_session_id FROM payments WHERE checkout_session_id LIKE 'cs_bench_%'" > "$WORK/payments.txt"

# Signed events, each twice, shuffled: "<Stripe-Signature>\t<body>" per line.
python3 - "$WORK/payments.txt" "$WORK/events.txt" "$SECRET" "$ACCOUNT" <<'PY'
import hashlib, hmac, json, random, sys, time
payments = [l.split() for l in open(sys.argv[1]) if l.strip()]
secret, account = sys.argv[3].encode(), sys.argv[4]
t = int(time.time())
lines = []
for i, (pid, session) in enumerate(payments):
    body = json.dumps({
        "id": f"evt_bench_{i}", "object": "event", "api_version": "2023-10-16", "created": t,
        "livemode": False, "pending_webhooks": 1, "type": "checkout.session.completed", "account": account,
        "data": {"object": {"id": session, "object": "checkout.session", "payment_status": "paid",
                            "payment_intent": f"pi_bench_{i}", "metadata": {"amtsplatz_payment_id": pid}}},
    }, separators=(",", ":"))
    sig = hmac.new(secret, f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    lines.append(f"t={t},v1={sig}\t{body}")
lines = lines + lines
random.seed(7)
random.shuffle(lines)
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PY

cat > "$WORK/events.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local events = {}
for line in io.lines("$WORK/events.txt") do
  local tab = string.find(line, "\t", 1, true)
  table.insert(events, { string.sub(line, 1, tab - 1), string.sub(line, tab + 1) })
end
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function init(args)
  counter, applied, duplicate, other, sample = 0, 0, 0, 0, ""
end
-- setup() runs in the main Lua state: a thread's own state sees no threads table filled.
local nthreads = $THREADS
function request()
  -- Threads take alternate events so that together they walk the list in order.
  local e = events[(counter * nthreads + tid - 1) % #events + 1]
  counter = counter + 1
  return wrk.format(nil, nil, { ["Stripe-Signature"] = e[1], ["Content-Type"] = "application/json" }, e[2])
end
function response(status, headers, body)
  if status == 200 and string.find(body, '"applied"', 1, true) then applied = applied + 1
  elseif status == 200 and string.find(body, '"duplicate"', 1, true) then duplicate = duplicate + 1
  else other = other + 1; if sample == "" then sample = status .. " " .. body end end
end
function done(summary, latency, requests)
  local a, d, x, s = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    a = a + t:get("applied"); d = d + t:get("duplicate"); x = x + t:get("other")
    if s == "" then s = t:get("sample") end
  end
  io.write(string.format("OUTCOME %d %d %d\n", a, d, x))
  if s ~= "" then io.write("SAMPLE " .. s .. "\n") end
end
LUA

echo "== $EVENTS events (x2), $CONNS connections, $DURATION"
OUT=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$WORK/events.lua" "$OURS/webhooks/stripe/musterstadt")
echo "$OUT" | grep -E "Requests/sec|50%|99%|OUTCOME|SAMPLE" || true
read -r APPLIED DUPLICATE OTHER <<< "$(echo "$OUT" | awk '/^OUTCOME/ {print $2, $3, $4}')"
[ "$OTHER" = 0 ] || fail "$OTHER answers were neither applied nor duplicate: $(echo "$OUT" | grep SAMPLE)"
q() { psql -tAq "$PG/$DB" -c "$1"; }
EVENTS_STORED=$(q "SELECT count(*) FROM provider_events")
PAID=$(q "SELECT count(*) FROM payments WHERE state = 'paid'")
TIMELINE=$(q "SELECT count(*) FROM application_events WHERE kind = 'payment_paid'")
MAILS=$(q "SELECT count(*) FROM outbox WHERE subject LIKE 'Zahlungseingang%'")
TWICE=$(q "SELECT count(*) FROM (SELECT details->>'paymentId' FROM application_events WHERE kind = 'payment_paid' GROUP BY 1 HAVING count(*) > 1) d")
echo "applied $APPLIED, duplicates answered $DUPLICATE; stored: $EVENTS_STORED events, $PAID paid, $TIMELINE timeline entries, $MAILS receipts, $TWICE payments paid twice"
# Requests still in flight when wrk stops are applied but not counted by wrk: at most CONNS.
[ "$EVENTS_STORED" = "$PAID" ] && [ "$EVENTS_STORED" = "$TIMELINE" ] && [ "$EVENTS_STORED" = "$MAILS" ] && [ "$TWICE" = 0 ] \
  && [ "$APPLIED" -le "$EVENTS_STORED" ] && [ "$EVENTS_STORED" -le $((APPLIED + CONNS)) ] \
  || fail "effects do not match the events applied"
RPS=$(echo "$OUT" | awk '/Requests\/sec/ {print $2}')
python3 -c "import sys; r=float(sys.argv[1]); print(f'verified events/s: {r:.0f} (target >= 1000): ' + ('OK' if r >= 1000 else 'BELOW TARGET'))" "$RPS"
