#!/usr/bin/env bash
# Benchmark of appointments: Amtsplatz GraphQL vs. the hand-written actix-web + tokio-postgres
# baseline (deploy/bench/baseline), side by side in one run on PostgreSQL.
#
# 1. Hot-slot booking: CONNS clients book 4 slots of the demo location (3 counters of capacity 1:
#    12 places per side); almost every answer is SLOT_FULL. Each side gets its own 4 slots. After
#    each run: no (resource, start) holds more bookings than its capacity, every place is taken,
#    and each booking queued its 2 outbox rows.
# 2. availableSlots over 31 days for the demo location at 1 and 8 connections (no baseline).
#
#   deploy/bench/appointments.sh               # 32 connections for booking, 15 s per run
#   CONNS=64 DURATION=30s deploy/bench/appointments.sh
#
# Needs: PostgreSQL on 127.0.0.1:5432 (trust auth), wrk (installed from Debian if missing).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
CONNS=${CONNS:-32}
SLOT_CONNS=${SLOT_CONNS:-1 8}
OURS=http://127.0.0.1:18082
BASE=http://127.0.0.1:18083

bench_build baseline
bench_db amtsplatz_bench_appointments
# A fresh contact per request: lift the per-IP and per-contact limits.
start_server "${OURS#http://}" "$DB" \
  AMTSPLATZ_APPOINTMENTS__BOOKINGS_PER_IP_PER_MINUTE=4000000000 \
  AMTSPLATZ_APPOINTMENTS__BOOKINGS_PER_CONTACT_PER_HOUR=4000000000
start_baseline "${BASE#http://}" "$DB"
SERVER_PID=${PIDS[0]} BASE_PID=${PIDS[1]}

gql() { curl -fs "$OURS/graphql" -H 'content-type: application/json' -H 'X-Tenant: musterstadt' -d "$1"; }
LOCATION=$(gql '{"query":"{ locations { id key } }"}' \
  | python3 -c 'import json,sys; print(next(l["id"] for l in json.load(sys.stdin)["data"]["locations"] if l["key"] == "buergerbuero"))')
PLACES=$(psql -tAq "$PG/$DB" -c "SELECT sum(capacity) FROM booking_resources WHERE location_id = '$LOCATION' AND active")
echo "location buergerbuero $LOCATION, $PLACES places per slot"

# 12 free slots 3 to 10 days ahead: 4 per side, 2 per side for the sanity booking and warm-up.
FROM=$(date -u -d '+3 days' +%Y-%m-%dT%H:%M:%SZ)
TO=$(date -u -d '+10 days' +%Y-%m-%dT%H:%M:%SZ)
SLOTS_QUERY='query Slots($l: ID!, $f: DateTime!, $t: DateTime!) { availableSlots(serviceSlug: "meldebescheinigung", locationId: $l, from: $f, to: $t) { start remaining } }'
slots_body() { python3 -c 'import json,sys; print(json.dumps({"query": sys.argv[1], "operationName": "Slots", "variables": {"l": sys.argv[2], "f": sys.argv[3], "t": sys.argv[4]}}))' "$SLOTS_QUERY" "$LOCATION" "$1" "$2"; }
mapfile -t SLOTS < <(gql "$(slots_body "$FROM" "$TO")" \
  | python3 -c 'import json,sys; print("\n".join([s["start"] for s in json.load(sys.stdin)["data"]["availableSlots"] if s["remaining"] == int(sys.argv[1])][:12]))' "$PLACES")
[ "${#SLOTS[@]}" -eq 12 ] || fail "expected 12 free slots, found ${#SLOTS[@]}"
lua_list() { printf '"%s",' "$@"; }
OURS_SLOTS=$(lua_list "${SLOTS[@]:0:4}"); BASE_SLOTS=$(lua_list "${SLOTS[@]:4:4}")
OURS_WARM=$(lua_list "${SLOTS[@]:8:2}"); BASE_WARM=$(lua_list "${SLOTS[@]:10:2}")
echo "amtsplatz slots ${SLOTS[*]:0:4}"
echo "baseline  slots ${SLOTS[*]:4:4}"

# Booking: a fresh contact per request (thread id, counter, random number), the slots in turn.
# Counts bookings, SLOT_FULL and anything else (printed) per run.
BOOK_QUERY='mutation Book($i: BookAppointmentInput!) { bookAppointment(input: $i) { booking { id } } }'
INPUT="{\"serviceSlug\":\"meldebescheinigung\",\"locationId\":\"$LOCATION\",\"start\":\"%s\",\"contact\":{\"name\":\"Erika Mustermann\",\"email\":\"%s\"}}"
OURS_BODY="{\"query\":\"$BOOK_QUERY\",\"operationName\":\"Book\",\"variables\":{\"i\":$INPUT}}"
book_lua() { # file, body template, slots, mail domain
  cat > "$1" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Tenant"] = "musterstadt"
local slots = { $3 }
local template = '$2'
local domain = "$4"
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function init(args)
  counter, ok, full, other, sample = 0, 0, 0, 0, ""
  math.randomseed(os.time() * 1000 + tid)
end
function request()
  counter = counter + 1
  local email = string.format("c%d-%d-%d@%s", tid, counter, math.random(1, 2147483647), domain)
  return wrk.format(nil, nil, nil, string.format(template, slots[counter % #slots + 1], email))
end
function response(status, headers, body)
  if string.find(body, '"code":"SLOT_FULL"', 1, true) then
    full = full + 1
  elseif string.find(body, '"booking":{"id":', 1, true) and not string.find(body, '"errors"', 1, true) then
    ok = ok + 1
  else
    other = other + 1
    if sample == "" then sample = status .. " " .. body end
  end
end
function done(summary, latency, requests)
  local o, f, x, s = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); f = f + t:get("full"); x = x + t:get("other")
    if s == "" then s = t:get("sample") end
  end
  io.write(string.format("OUTCOME %d %d %d\n", o, f, x))
  if s ~= "" then io.write("SAMPLE " .. s .. "\n") end
end
LUA
}
book_lua "$WORK/book.lua" "$OURS_BODY" "$OURS_SLOTS" amtsplatz.example
book_lua "$WORK/book-baseline.lua" "$INPUT" "$BASE_SLOTS" baseline.example
book_lua "$WORK/warm.lua" "$OURS_BODY" "$OURS_WARM" warm.example
book_lua "$WORK/warm-baseline.lua" "$INPUT" "$BASE_WARM" warm.example

# Sanity: one booking on each side (on the warm-up slots) succeeds.
one() { printf "$1" "$2" "sanity-$3@warm.example"; }
A=$(gql "$(one "$OURS_BODY" "${SLOTS[8]}" amtsplatz.example)")
echo "$A" | grep -q '"booking":{"id":' || fail "amtsplatz did not book: $A"
B=$(curl -fs "$BASE/book" -H 'content-type: application/json' -H 'X-Tenant: musterstadt' -d "$(one "$INPUT" "${SLOTS[10]}" baseline.example)") \
  || fail "baseline /book failed"
echo "$B" | grep -q '"booking":{"id":' || fail "baseline did not book: $B"

# availableSlots for a month from tomorrow.
M_FROM=$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:00Z)
M_TO=$(date -u -d '+32 days' +%Y-%m-%dT%H:%M:00Z)
MONTH_BODY=$(slots_body "$M_FROM" "$M_TO")
MONTH_SLOTS=$(gql "$MONTH_BODY" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]["availableSlots"]))') \
  || fail "availableSlots for a month: $(gql "$MONTH_BODY")"
cat > "$WORK/month.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Tenant"] = "musterstadt"
wrk.body = [[$MONTH_BODY]]
LUA

booked() { psql -tAq "$PG/$DB" -c "SELECT count(*) FROM bookings WHERE state = 'booked' AND contact_email LIKE '%@$1'"; }
queued() { psql -tAq "$PG/$DB" -c "SELECT count(*) FROM outbox WHERE recipient LIKE '%@$1'"; }
# No (resource, start) among booked rows holds more than the resource's capacity.
overbooked() {
  psql -tAq "$PG/$DB" -c "SELECT count(*) FROM (SELECT 1 FROM bookings b JOIN booking_resources r ON r.id = b.resource_id \
    WHERE b.state = 'booked' GROUP BY b.resource_id, b.start_at, r.capacity HAVING count(*) > r.capacity) o"
}
check_booking_run() { # side, mail domain → "bookings requests slot_full"
  local outcome ok full other n over mails
  outcome=$(awk '/^OUTCOME/ {print $2, $3, $4}' "$WORK/last.txt")
  read -r ok full other <<< "$outcome"
  [ "$other" = 0 ] || { grep '^SAMPLE' "$WORK/last.txt" >&2; fail "$1: $other answers neither a booking nor SLOT_FULL"; }
  over=$(overbooked); n=$(booked "$2"); mails=$(queued "$2")
  [ "$over" = 0 ] || fail "$1: $over (resource, start) pairs over capacity"
  [ "$n" -eq $((4 * PLACES)) ] || fail "$1: $n bookings, expected every one of the $((4 * PLACES)) places taken"
  [ "$ok" -le "$n" ] || fail "$1: $ok bookings answered but only $n stored"
  [ "$mails" -eq $((2 * n)) ] || fail "$1: $mails outbox rows for $n bookings (expected 2 each)"
  echo "$n $((ok + full)) $full"
}

echo "== warm-up"
wrk -t1 -c4 -d3s -s "$WORK/warm.lua" "$OURS/graphql" >/dev/null
wrk -t1 -c4 -d3s -s "$WORK/warm-baseline.lua" "$BASE/book" >/dev/null
wrk -t1 -c1 -d3s -s "$WORK/month.lua" "$OURS/graphql" >/dev/null

report() { # label, amtsplatz "rps p50", baseline "rps p50"
  python3 - "$@" <<'PY'
import sys
label, ours, base = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
r = float(ours[0]) / float(base[0])
print(f"{label:<28} amtsplatz {float(ours[0]):>9.0f} req/s p50 {float(ours[1]):6.2f} ms | baseline {float(base[0]):>9.0f} req/s p50 {float(base[1]):6.2f} ms | ratio {r:.2f} (target >= 0.80)")
PY
}

echo "== hot-slot booking: $CONNS connections, $DURATION each, 4 slots x $PLACES places per side"
# PERF=<file>: profile the server (perf record -g) during its booking run; with PERF_ALL=1 the
# whole machine during both booking runs (<file> and <file>.base), to compare CPU per process.
perf_during() { # output file, pid (empty: the whole machine)
  [ -n "${PERF:-}" ] || return 0
  local target=(-a); [ -n "${PERF_ALL:-}" ] || target=(-p "$2")
  perf record -F 999 -g "${target[@]}" -o "$1" -- sleep 10 >/dev/null 2>&1 &
}
perf_during "${PERF:-}" "$SERVER_PID"
B_OURS=$(run "$CONNS" -s "$WORK/book.lua" "$OURS/graphql"); C_OURS=$(check_booking_run amtsplatz amtsplatz.example)
[ -z "${PERF_ALL:-}" ] || perf_during "$PERF.base" "$BASE_PID"
B_BASE=$(run "$CONNS" -s "$WORK/book-baseline.lua" "$BASE/book"); C_BASE=$(check_booking_run baseline baseline.example)

echo "== availableSlots, 31 days ($MONTH_SLOTS slots), $DURATION each"
MONTH=()
for c in $SLOT_CONNS; do MONTH+=("$c $(run "$c" -s "$WORK/month.lua" "$OURS/graphql")"); done

echo
report "bookAppointment (hot slots)" "$B_OURS" "$B_BASE"
read -r n total full <<< "$C_OURS"; echo "  amtsplatz: $n bookings, $full SLOT_FULL of $total answers"
read -r n total full <<< "$C_BASE"; echo "  baseline:  $n bookings, $full SLOT_FULL of $total answers"
echo "  overbooking check: no (resource, start) over capacity on either side; 2 outbox rows per booking"
for m in "${MONTH[@]}"; do
  read -r c rps p50 <<< "$m"
  python3 - "$c" "$rps" "$p50" <<'PY'
import sys
c, r, p = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
met = "met" if p <= 5 else "MISSED"
print(f"{'availableSlots (31 days)':<28} amtsplatz {r:>9.0f} req/s p50 {p:6.2f} ms at {c} connection(s), target p50 <= 5 ms: {met} (no baseline)")
PY
done
