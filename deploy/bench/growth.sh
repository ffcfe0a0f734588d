#!/usr/bin/env bash
# Growth benchmark: APPS applications (default 100,000) of Musterstadt's dog tax, each with a
# task (departments in turn), its first event and, for every third, a second task, inserted
# with SQL into one tenant. Then a clerk's (sachbearbeitung@musterstadt.example) first page
#
#   applications(first: 20) { edges { node { reference state tasks { state department { key name } } } } }
#
# is measured at 1 connection (p50, target <= 3 ms), beside the same page without the department
# level and without both nested levels, and the administrator's page (who sees every application).
#
#   deploy/bench/growth.sh                     # 100,000 applications, 10 s per run
#   APPS=200000 DURATION=20s deploy/bench/growth.sh
#   STATEMENTS=1 deploy/bench/growth.sh        # also prints the statements of one clerk's request
#                                              # with their durations (log_min_duration_statement=0)
#
# Needs: PostgreSQL on 127.0.0.1:5432 (trust auth), wrk (installed from Debian if missing).
set -euo pipefail
DURATION=${DURATION:-10s}
source "$(dirname "$0")/lib.sh"
APPS=${APPS:-100000}
OURS=127.0.0.1:18098

bench_build
bench_db amtsplatz_bench_growth
start_server "$OURS" "$DB"

# One real submission first: the generated rows copy its shape (service, revision, state, fees, data).
FORM='{"name":"Erika Mustermann","street":"Hauptstraße 1","postcode":"12345","city":"Musterstadt","email":"erika@example.org","dog_count":1,"breed":"Pudel","listed_breed":false,"date_acquired":"2026-10-01","iban":"DE02120300000000202051","account_holder":"Erika Mustermann"}'
SUBMIT=$(gql_body 'mutation Submit($i: SubmitApplicationInput!) { submitApplication(input: $i) { application { reference } } }' \
  "{\"i\":{\"serviceSlug\":\"hundesteuer\",\"data\":$FORM}}")
REF=$(gql_ok "http://$OURS/graphql" "$SUBMIT" -H 'X-Tenant: musterstadt' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["submitApplication"]["application"]["reference"])')

echo "== inserting $APPS applications into musterstadt"
START=$(date +%s)
psql -q -v ON_ERROR_STOP=1 -v ref="$REF" -v apps="$APPS" "$PG/$DB" <<'SQL'
BEGIN;
-- The sample and the tenant's departments, numbered: application n has a task in department
-- n mod (number of departments); every third one also in the next (as listed breeds go to two).
CREATE TEMP TABLE sample ON COMMIT DROP AS
  SELECT a.*, k.department_id, k.rule_key FROM applications a JOIN application_tasks k ON k.application_id = a.id
  WHERE a.reference = :'ref' LIMIT 1;
CREATE TEMP TABLE depts ON COMMIT DROP AS
  SELECT d.id, row_number() OVER (ORDER BY d.id) - 1 AS i, count(*) OVER () AS n FROM departments d
  WHERE d.tenant_id = (SELECT tenant_id FROM sample);
-- Submitted over the past year, one after another; ids are UUIDv7 of that time like the server's.
CREATE TEMP TABLE gen ON COMMIT DROP AS
  SELECT n, at, encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING
           substring(int8send(floor(extract(epoch FROM at) * 1000)::bigint) FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid AS id
  FROM (SELECT n, now() - interval '1 year' + (interval '1 year' - interval '1 day') * n / :apps AS at
        FROM generate_series(1, :apps) n) t;
INSERT INTO applications (id, tenant_id, service_id, service_slug, revision, seq, reference, state, data, fees,
  citizen_issuer, citizen_subject, access_hash, contact_email, search_text, submitted_at, updated_at)
SELECT g.id, s.tenant_id, s.service_id, s.service_slug, s.revision, 1000000 + g.n,
  'MUSTERSTADT-2025-' || lpad(g.n::text, 7, '0'), s.state, s.data, s.fees, NULL, NULL, s.access_hash, s.contact_email,
  'musterstadt-2025-' || lpad(g.n::text, 7, '0') || substring(s.search_text FROM position(' ' IN s.search_text)), g.at, g.at
FROM gen g CROSS JOIN sample s;
INSERT INTO application_tasks (id, tenant_id, application_id, department_id, rule_key, state, created_at, completed_at)
SELECT g.id, s.tenant_id, g.id, d.id, s.rule_key, CASE WHEN g.n % 4 = 0 THEN 'done' ELSE 'open' END, g.at,
  CASE WHEN g.n % 4 = 0 THEN g.at END
FROM gen g CROSS JOIN sample s JOIN depts d ON d.i = g.n % d.n;
INSERT INTO application_tasks (id, tenant_id, application_id, department_id, rule_key, state, created_at)
SELECT gen_random_uuid(), s.tenant_id, g.id, d.id, 'zweite', 'open', g.at
FROM gen g CROSS JOIN sample s JOIN depts d ON d.i = (g.n + 1) % d.n
WHERE g.n % 3 = 0 AND d.n > 1;
INSERT INTO application_events (id, tenant_id, application_id, kind, actor, to_state, internal, at)
SELECT g.id, s.tenant_id, g.id, 'submitted', 'anonymous', s.state, false, g.at FROM gen g CROSS JOIN sample s;
UPDATE application_counters SET last_seq = last_seq + 1000000 + :apps
  WHERE tenant_id = (SELECT tenant_id FROM sample);
COMMIT;
VACUUM ANALYZE applications;
VACUUM ANALYZE application_tasks;
VACUUM ANALYZE application_events;
SQL
echo "   $(( $(date +%s) - START )) s"

CLERK=$(login "$OURS" musterstadt sachbearbeitung@musterstadt.example musterstadt-staff) || fail "clerk login"
ADMIN=$(login "$OURS" musterstadt admin@musterstadt.example musterstadt-admin) || fail "admin login"

Q_NESTED='query Apps { applications(first: 20) { edges { node { reference state tasks { state department { key name } } } } } }'
Q_TASKS='query Apps { applications(first: 20) { edges { node { reference state tasks { state } } } } }'
Q_FLAT='query Apps { applications(first: 20) { edges { node { reference state } } } }'
post_lua "$WORK/nested.lua" "$(gql_body "$Q_NESTED")" "X-Tenant: musterstadt" "Authorization: Bearer $CLERK"
post_lua "$WORK/tasks.lua" "$(gql_body "$Q_TASKS")" "X-Tenant: musterstadt" "Authorization: Bearer $CLERK"
post_lua "$WORK/flat.lua" "$(gql_body "$Q_FLAT")" "X-Tenant: musterstadt" "Authorization: Bearer $CLERK"
post_lua "$WORK/admin.lua" "$(gql_body "$Q_NESTED")" "X-Tenant: musterstadt" "Authorization: Bearer $ADMIN"

# Sanity: a full page with tasks and departments, and how many applications the clerk sees.
PAGE=$(gql_ok "http://$OURS/graphql" "$(gql_body "$Q_NESTED")" -H 'X-Tenant: musterstadt' -H "Authorization: Bearer $CLERK")
echo "$PAGE" | python3 -c 'import json,sys
e = json.load(sys.stdin)["data"]["applications"]["edges"]
assert len(e) == 20 and all(n["node"]["tasks"] and n["node"]["tasks"][0]["department"]["key"] for n in e), e
print("   clerk page: " + ", ".join(n["node"]["reference"] for n in e[:3]) + ", …; tasks " + str(sum(len(n["node"]["tasks"]) for n in e)))' \
  || fail "clerk page: $PAGE"
psql -tAq "$PG/$DB" <<'SQL' || true
SELECT '   ' || (SELECT count(*) FROM applications) || ' applications, ' || (SELECT count(*) FROM application_tasks) || ' tasks; '
  || 'the clerk sees ' || count(DISTINCT k.application_id) || ' (departments ' || string_agg(DISTINCT d.key, ', ') || ')'
FROM staff_users u JOIN staff_memberships m ON m.user_id = u.id JOIN departments d ON d.id = m.department_id
JOIN application_tasks k ON k.department_id = d.id WHERE u.email = 'sachbearbeitung@musterstadt.example';
SQL

if [ -n "${STATEMENTS:-}" ]; then
  # The statements of one clerk's request with their durations, from the server's log.
  LOG=/var/log/postgresql/postgresql-15-main.log
  psql -q "$PG/$DB" -c "ALTER DATABASE $DB SET log_min_duration_statement = 0"
  sleep 1; FROM_LINE=$(($(wc -l < "$LOG") + 1))
  # New connections see the setting: restart the server's pool by restarting the server.
  kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true; PIDS=("${PIDS[@]:1}")
  start_server "$OURS" "$DB"
  gql_ok "http://$OURS/graphql" "$(gql_body "$Q_NESTED")" -H 'X-Tenant: musterstadt' -H "Authorization: Bearer $CLERK" >/dev/null
  sleep 1
  psql -q "$PG/$DB" -c "ALTER DATABASE $DB RESET log_min_duration_statement"
  # Lines of this database, with their continuation lines (other databases share the log).
  tail -n +"$FROM_LINE" "$LOG" | awk -v db="@$DB " '/^[0-9][0-9][0-9][0-9]-/ {keep = index($0, db) > 0} keep' > "$WORK/statements.log"
  echo "== statements of one clerk's request (log_min_duration_statement=0)"
  cat "$WORK/statements.log"
fi

echo "== warm-up"
for f in nested tasks flat admin; do wrk -t1 -c1 -d3s -s "$WORK/$f.lua" "http://$OURS/graphql" >/dev/null; done

echo "== load: $(uptime)"
declare -A R
for f in nested tasks flat admin; do R[$f]=$(run 1 -s "$WORK/$f.lua" "http://$OURS/graphql"); done
echo "== load: $(uptime)"
echo
echo "$APPS applications in musterstadt, 1 connection, $DURATION per run"
for f in nested tasks flat admin; do
  read -r rps p50 <<< "${R[$f]}"
  case $f in
    nested) label="clerk: tasks { state department { key name } }"; target=" (target <= 3 ms: $(python3 -c "print('met' if $p50 <= 3 else 'MISSED')"))" ;;
    tasks) label="clerk: tasks { state }"; target="" ;;
    flat) label="clerk: reference state only"; target="" ;;
    admin) label="administrator: with tasks and departments"; target="" ;;
  esac
  printf '  %-44s p50 %6.2f ms  %7.0f req/s%s\n' "$label" "$p50" "$rps" "$target"
done
