#!/usr/bin/env bash
# Benchmark against a peer users would pick instead: Amtsplatz (release), PostGraphile v4 and the
# hand-written baseline (deploy/bench/baseline, the limit) on the same PostgreSQL database, in one
# run, for three equal operations:
#
#   templates   the marketplace page as an anonymous visitor of Musterstadt: 20 templates with
#               their versions (newest first);
#   tenant      Musterstadt with its departments;
#   submit      a created application: Musterstadt's dog tax form. PostGraphile calls a SQL function
#               (schema bench_peer, created here, not a migration) that does the same inserts as
#               our submitApplication: counter, application, its routed tasks, the first event,
#               the acknowledgement and department mails in the outbox.
#
# PostGraphile connects as a login role that is a non-superuser member of amtsplatz_app, with
# app.tenant_id fixed for that role in this database (ALTER ROLE … IN DATABASE … SET), so row-level
# security binds it as it binds our requests. The baseline connects as the owner (no RLS).
#
# Prints req/s and p50 of each side at CONNS connections, p50 at 1 connection, ours/PostGraphile
# and ours/baseline (ratios of req/s at CONNS connections), with the targets of issue 19.
#
#   deploy/bench/peer.sh                      # 16 connections, 15 s per run
#   PEER_WORKERS=2 deploy/bench/peer.sh       # PostGraphile with --cluster-workers 2 (both cores)
#   OPS="templates tenant" DURATION=10s deploy/bench/peer.sh
#
# Needs: PostgreSQL on 127.0.0.1:5432 (trust auth), wrk (Debian), node 20 and npm (PostGraphile is
# installed from the npm registry with `npm ci` into deploy/bench/peer/node_modules, pinned by its
# package-lock.json).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
CONNS=${CONNS:-16}
OPS=${OPS:-templates tenant submit}
PEER_WORKERS=${PEER_WORKERS:-1}
OURS=127.0.0.1:18095
BASE=127.0.0.1:18096
PEER=127.0.0.1:18097
PEER_ROLE=amtsplatz_bench_peer

bench_build baseline
echo "== installing PostGraphile (npm ci)"
(cd deploy/bench/peer && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

bench_db amtsplatz_bench_peer
start_server "$OURS" "$DB"
start_baseline "$BASE" "$DB"
TENANT=$(psql -tAq "$PG/$DB" -c "SELECT id FROM tenants WHERE slug = 'musterstadt'")
fill_marketplace "$DB"

# ---- the three operations on each side --------------------------------------------------------

FORM='{"name":"Erika Mustermann","street":"Hauptstraße 1","postcode":"12345","city":"Musterstadt","email":"erika@example.org","dog_count":1,"breed":"Pudel","listed_breed":false,"date_acquired":"2026-10-01","iban":"DE02120300000000202051","account_holder":"Erika Mustermann"}'
SUBMIT=$(gql_body 'mutation Submit($i: SubmitApplicationInput!) { submitApplication(input: $i) { application { reference } } }' \
  "{\"i\":{\"serviceSlug\":\"hundesteuer\",\"data\":$FORM}}")

# Ours: the tenant comes from X-Tenant, the visitor is anonymous.
OURS_TEMPLATES=$(gql_body 'query Templates { templates(first: 20) { edges { node { slug title category versions { version changelog publishedAt } } } } }')
OURS_TENANT=$(gql_body 'query TenantDepartments { tenant { departments { edges { node { id key name email } } } } }')
# PostGraphile: the tenant is the role's; the same fields in PostGraphile's naming and order.
PEER_TEMPLATES=$(gql_body 'query Templates { allTemplates(first: 20, orderBy: PRIMARY_KEY_ASC) { edges { node { slug title category versions: templateVersionsByTemplateId(orderBy: [MAJOR_DESC, MINOR_DESC, PATCH_DESC]) { nodes { version changelog publishedAt } } } } } }')
PEER_TENANT=$(gql_body 'query TenantDepartments { tenantBySlug(slug: "musterstadt") { departments: departmentsByTenantId(first: 20, orderBy: PRIMARY_KEY_ASC) { edges { node { id key name email } } } } }')

post_lua "$WORK/ours-templates.lua" "$OURS_TEMPLATES" "X-Tenant: musterstadt"
post_lua "$WORK/ours-tenant.lua" "$OURS_TENANT" "X-Tenant: musterstadt"
post_lua "$WORK/ours-submit.lua" "$SUBMIT" "X-Tenant: musterstadt"
post_lua "$WORK/peer-templates.lua" "$PEER_TEMPLATES"
post_lua "$WORK/peer-tenant.lua" "$PEER_TENANT"
post_lua "$WORK/peer-submit.lua" "$SUBMIT"
post_lua "$WORK/base-submit.lua" "$FORM" "X-Tenant: musterstadt"

# One submission of ours first: the peer's function routes and charges as it did.
OURS_APP=$(gql_ok "http://$OURS/graphql" "$SUBMIT" -H 'X-Tenant: musterstadt' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["submitApplication"]["application"]["reference"])')

# ---- PostGraphile's role, its submission function, the server ---------------------------------

psql -q -v ON_ERROR_STOP=1 "$PG/$DB" <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PEER_ROLE') THEN
    CREATE ROLE $PEER_ROLE LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
END \$\$;
GRANT amtsplatz_app TO $PEER_ROLE;
ALTER ROLE $PEER_ROLE IN DATABASE $DB SET app.tenant_id = '$TENANT';

CREATE SCHEMA bench_peer;
GRANT USAGE ON SCHEMA bench_peer TO $PEER_ROLE;

-- UUIDv7 like the server's ids (time-ordered: pages ordered by id stay comparable).
CREATE FUNCTION bench_peer.uuid7() RETURNS uuid LANGUAGE sql VOLATILE AS \$\$
  SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING
    substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
    52, 1), 53, 1), 'hex')::uuid
\$\$;

-- What our rules decided for the benchmark's form (tasks, fees, initial state), taken from the
-- submission our server just stored: the function does the same inserts, not the same rules.
CREATE TABLE bench_peer.routes (service_slug text, department_key text, rule_key text);
CREATE TABLE bench_peer.outcome (service_slug text PRIMARY KEY, state text, fees jsonb, title text, state_label text);
INSERT INTO bench_peer.routes
  SELECT a.service_slug, d.key, k.rule_key FROM applications a
  JOIN application_tasks k ON k.application_id = a.id JOIN departments d ON d.id = k.department_id
  WHERE a.reference = '$OURS_APP' ORDER BY k.id;
INSERT INTO bench_peer.outcome
  SELECT a.service_slug, a.state, a.fees,
    substring(m.body FROM 'Ihr Antrag „(.*)“ ist bei'),
    substring(m.body FROM 'Status: ([^\n]*)')
  FROM applications a
  JOIN outbox m ON m.subject = 'Ihr Antrag ' || a.reference || ' ist eingegangen'
  WHERE a.reference = '$OURS_APP' LIMIT 1;
GRANT SELECT ON bench_peer.routes, bench_peer.outcome TO $PEER_ROLE;
COMMENT ON TABLE bench_peer.routes IS '@omit';
COMMENT ON TABLE bench_peer.outcome IS '@omit';

-- submitApplication as a SQL function: runs as the caller (RLS binds it); the tenant is the role's.
CREATE FUNCTION bench_peer.submit_application(service_slug text, data jsonb) RETURNS public.applications
LANGUAGE plpgsql VOLATILE AS \$\$
DECLARE
  tid uuid := NULLIF(current_setting('app.tenant_id', true), '')::uuid;
  t public.tenants;
  s public.tenant_services;
  r bench_peer.outcome;
  app public.applications;
  app_id uuid := bench_peer.uuid7();
  contact text := data->>'email';
  routed text[];
  y int; n bigint; q bigint; ref text;
BEGIN
  SELECT * INTO STRICT t FROM public.tenants WHERE id = tid;
  SELECT * INTO s FROM public.tenant_services ts WHERE ts.slug = submit_application.service_slug AND ts.status = 'live';
  IF NOT FOUND THEN RAISE EXCEPTION 'no live service %', service_slug; END IF;
  SELECT * INTO STRICT r FROM bench_peer.outcome o WHERE o.service_slug = s.slug;
  IF contact IS NOT NULL AND (length(contact) > 254 OR position('@' IN contact) = 0) THEN contact := NULL; END IF;

  -- Tasks and the first event before the counter, as the server does (their keys are deferred).
  WITH tasks AS (
    INSERT INTO public.application_tasks (id, tenant_id, application_id, department_id, rule_key, state, created_at)
    SELECT bench_peer.uuid7(), tid, app_id, d.id, x.rule_key, 'open', now()
    FROM bench_peer.routes x JOIN public.departments d ON d.key = x.department_key
    WHERE x.service_slug = s.slug
    RETURNING department_id)
  SELECT array_agg(d.name ORDER BY d.name) INTO routed FROM tasks JOIN public.departments d ON d.id = tasks.department_id;
  INSERT INTO public.application_events (id, tenant_id, application_id, kind, actor, actor_name, from_state, to_state, comment, details, internal, at)
  VALUES (bench_peer.uuid7(), tid, app_id, 'submitted', 'anonymous', NULL, NULL, r.state, NULL,
          jsonb_build_object('departments', to_jsonb(coalesce(routed, '{}')), 'revision', s.current_revision), false, now());

  y := extract(year FROM now() AT TIME ZONE t.time_zone);
  INSERT INTO public.application_counters AS c (tenant_id, year, last_number, last_seq) VALUES (tid, y, 1, 1)
  ON CONFLICT (tenant_id) DO UPDATE SET
    last_number = CASE WHEN excluded.year > c.year THEN 1 ELSE c.last_number + 1 END,
    year = CASE WHEN excluded.year > c.year THEN excluded.year ELSE c.year END,
    last_seq = c.last_seq + 1
  RETURNING c.year, c.last_number, c.last_seq INTO y, n, q;
  ref := upper(t.slug) || '-' || y || '-' || lpad(n::text, 6, '0');

  INSERT INTO public.applications (id, tenant_id, service_id, service_slug, revision, seq, reference, state, search_text,
    data, fees, citizen_issuer, citizen_subject, access_hash, contact_email, submitted_at, updated_at)
  VALUES (app_id, tid, s.id, s.slug, s.current_revision, q, ref, r.state,
    lower(ref) || coalesce((SELECT string_agg(' ' || lower(v #>> '{}'), '')
                            FROM jsonb_path_query(data, 'strict \$.** ? (@.type() == "string" || @.type() == "number")') v), ''),
    data, r.fees, NULL, NULL,
    encode(sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())), 'hex'), contact, now(), now())
  RETURNING * INTO app;

  INSERT INTO public.outbox (id, tenant_id, kind, recipient, subject, body, attempts, next_attempt_at, created_at)
  SELECT bench_peer.uuid7(), tid, 'email', contact, 'Ihr Antrag ' || ref || ' ist eingegangen',
    'Guten Tag,' || E'\n\n' || 'Ihr Antrag „' || r.title || '“ ist bei ' || t.name || ' eingegangen.' || E'\n' ||
    'Aktenzeichen: ' || ref || E'\n' || 'Status: ' || r.state_label || E'\n\n' || 'Sie werden über jede Änderung informiert.' || E'\n',
    0, now(), now()
  WHERE contact IS NOT NULL
  UNION ALL
  SELECT bench_peer.uuid7(), tid, 'email', d.email, 'Neuer Antrag ' || ref || ': ' || r.title,
    'Ein neuer Antrag „' || r.title || '“ (' || ref || ') wartet auf die Bearbeitung durch ' || d.name || '.' || E'\n',
    0, now(), now()
  FROM bench_peer.routes x JOIN public.departments d ON d.key = x.department_key
  WHERE x.service_slug = s.slug AND d.email IS NOT NULL;
  RETURN app;
END
\$\$;
GRANT EXECUTE ON FUNCTION bench_peer.submit_application(text, jsonb), bench_peer.uuid7() TO $PEER_ROLE;
COMMENT ON FUNCTION bench_peer.uuid7() IS '@omit';
SQL

CLUSTER=(); [ "$PEER_WORKERS" -le 1 ] || CLUSTER=(--cluster-workers "$PEER_WORKERS")
node deploy/bench/peer/node_modules/postgraphile/cli.js \
  -c "postgres://$PEER_ROLE@127.0.0.1:5432/$DB" -s public,bench_peer -n "${PEER%:*}" -p "${PEER#*:}" \
  --max-pool-size 16 --dynamic-json --disable-graphiql --disable-query-log --no-setof-functions-contain-nulls \
  "${CLUSTER[@]}" > "$WORK/postgraphile.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 120); do curl -fs -o /dev/null "http://$PEER/graphql" -H 'content-type: application/json' -d '{"query":"{__typename}"}' && break; sleep 0.5; done
gql_ok "http://$PEER/graphql" '{"query":"{__typename}"}' >/dev/null

# ---- sanity: the three sides answer and store the same ----------------------------------------

templates_of() { python3 -c 'import json,sys
d = json.load(sys.stdin)["data"]
edges = (d.get("templates") or d.get("allTemplates"))["edges"]
vs = lambda v: v["nodes"] if isinstance(v, dict) else v
print(json.dumps([[e["node"]["slug"], [(v["version"], v["changelog"]) for v in vs(e["node"]["versions"])]] for e in edges]))'; }
A=$(gql_ok "http://$OURS/graphql" "$OURS_TEMPLATES" -H 'X-Tenant: musterstadt' | templates_of)
P=$(gql_ok "http://$PEER/graphql" "$PEER_TEMPLATES" | templates_of)
B=$(curl -fs -H 'X-Tenant: musterstadt' "http://$BASE/template-versions" | templates_of)
[ "$A" = "$P" ] || fail "PostGraphile lists other templates: $A vs $P"
[ "$A" = "$B" ] || fail "the baseline lists other templates: $A vs $B"
[ "$(echo "$A" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 20 ] || fail "not a full page of templates: $A"

departments_of() { python3 -c 'import json,sys
d = json.load(sys.stdin)["data"]
t = d.get("tenant") or d.get("tenantBySlug")
print(json.dumps([[e["node"]["key"], e["node"]["name"], e["node"]["email"]] for e in t["departments"]["edges"]]))'; }
A=$(gql_ok "http://$OURS/graphql" "$OURS_TENANT" -H 'X-Tenant: musterstadt' | departments_of)
P=$(gql_ok "http://$PEER/graphql" "$PEER_TENANT" | departments_of)
B=$(curl -fs -H 'X-Tenant: musterstadt' "http://$BASE/departments" | departments_of)
[ "$A" = "$P" ] || fail "PostGraphile lists other departments: $A vs $P"
[ "$A" = "$B" ] || fail "the baseline lists other departments: $A vs $B"
[ "$A" != "[]" ] || fail "no departments"

# Row-level security binds PostGraphile's role: with another tenant set, it sees no departments.
OTHER=$(psql -tAq "$PG/$DB" -c "SELECT id FROM tenants WHERE slug <> 'musterstadt' LIMIT 1")
SEEN=$(psql -tAq "postgres://$PEER_ROLE@127.0.0.1:5432/$DB" -c "SET app.tenant_id = '$OTHER'; SELECT count(*) FROM departments WHERE tenant_id = '$TENANT'")
[ "$SEEN" = 0 ] || fail "PostGraphile's role sees $SEEN departments of another tenant: RLS does not bind it"

# The same rows for a submission of each side: reference, state, fees, tasks, event, mails.
PEER_APP=$(gql_ok "http://$PEER/graphql" "$SUBMIT" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["submitApplication"]["application"]["reference"])')
shape() { # reference → what the submission stored, without ids, times and the reference itself
  psql -tAq "$PG/$DB" -v ref="$1" <<'SQL'
SELECT json_build_object(
  'app', (SELECT json_build_object('service', service_slug, 'revision', revision, 'state', state, 'fees', fees, 'data', data,
            'contact', contact_email, 'hash', length(access_hash),
            'search', (SELECT string_agg(w, ' ' ORDER BY w) FROM regexp_split_to_table(replace(search_text, lower(reference), ''), ' ') w),
            'issuer', citizen_issuer) FROM applications WHERE reference = :'ref'),
  'tasks', (SELECT json_agg(json_build_object('dept', d.key, 'rule', k.rule_key, 'state', k.state) ORDER BY d.key)
            FROM applications a JOIN application_tasks k ON k.application_id = a.id JOIN departments d ON d.id = k.department_id
            WHERE a.reference = :'ref'),
  'events', (SELECT json_agg(json_build_object('kind', e.kind, 'actor', e.actor, 'to', e.to_state, 'details', e.details, 'internal', e.internal))
             FROM applications a JOIN application_events e ON e.application_id = a.id WHERE a.reference = :'ref'),
  'mails', (SELECT json_agg(json_build_object('to', recipient, 'subject', replace(subject, :'ref', 'REF'), 'body', replace(body, :'ref', 'REF'))
            ORDER BY recipient) FROM outbox WHERE subject LIKE '%' || :'ref' || '%'))
SQL
}
A=$(shape "$OURS_APP"); P=$(shape "$PEER_APP")
[ "$A" = "$P" ] || { echo "WARNING: PostGraphile's submission stored other rows than ours:"; echo "ours $A"; echo "peer $P"; }
B=$(curl -fs -H 'X-Tenant: musterstadt' -H 'content-type: application/json' -d "$FORM" "http://$BASE/submit" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["submitApplication"]["application"]["reference"])')
[ "$A" != "$P" ] || echo "submitted $OURS_APP (amtsplatz), $PEER_APP (PostGraphile), $B (baseline); the first two stored the same rows"

# ---- measurements ----------------------------------------------------------------------------

url() { case $1 in ours) echo "http://$OURS/graphql" ;; peer) echo "http://$PEER/graphql" ;; base) echo "http://$BASE/$2" ;; esac; }
side_args() { # side, operation → wrk arguments
  case $1/$2 in
    base/templates) echo "-H X-Tenant:musterstadt $(url base template-versions)" ;;
    base/tenant) echo "-H X-Tenant:musterstadt $(url base departments)" ;;
    base/submit) echo "-s $WORK/base-submit.lua $(url base submit)" ;;
    *) echo "-s $WORK/$1-$2.lua $(url "$1")" ;;
  esac
}
stored() { psql -tAq "$PG/$DB" -c "SELECT count(*) FROM applications"; }
measure() { # connections, side, operation → "req/s p50"; a submission counts only if it was stored
  local before; before=$(stored)
  # shellcheck disable=SC2046
  local r; r=$(run "$1" $(side_args "$2" "$3"))
  if [ "$3" = submit ]; then
    local requests now; requests=$(cat "$WORK/last-requests"); now=$(stored)
    [ $((now - before)) -ge "$requests" ] || fail "$2: $requests submissions but $((now - before)) stored"
  fi
  echo "$r"
}

echo "== warm-up"
for op in $OPS; do for side in ours peer base; do
  # shellcheck disable=SC2046
  wrk -t1 -c4 -d3s $(side_args "$side" "$op") >/dev/null
done; done
psql -q "$PG/$DB" -c "ANALYZE"

echo "== load: $(uptime)"
declare -A R
for op in $OPS; do
  for side in ours peer base; do
    R[$op/$side/n]=$(measure "$CONNS" "$side" "$op")
    R[$op/$side/1]=$(measure 1 "$side" "$op")
  done
done
echo "== load: $(uptime)"

echo
echo "PostGraphile $(node -p 'require("./deploy/bench/peer/node_modules/postgraphile/package.json").version') ($PEER_WORKERS process(es)), $CONNS connections and 1 connection, $DURATION per run"
for op in $OPS; do
  python3 - "$op" "$CONNS" "${R[$op/ours/n]}" "${R[$op/ours/1]}" "${R[$op/peer/n]}" "${R[$op/peer/1]}" "${R[$op/base/n]}" "${R[$op/base/1]}" <<'PY'
import sys
op, conns = sys.argv[1], sys.argv[2]
(on, o1, pn, p1, bn, b1) = [list(map(float, a.split())) for a in sys.argv[3:9]]
label = {"templates": "templates(first: 20) with versions", "tenant": "tenant with departments", "submit": "a created application"}[op]
target = {"templates": (2.0, 1.5), "tenant": (3.0, 1.5), "submit": (1.2, None)}[op]
print(f"{label}")
for name, n, one in (("amtsplatz", on, o1), ("PostGraphile", pn, p1), ("baseline", bn, b1)):
    print(f"  {name:<13} {n[0]:>8.0f} req/s  p50 {n[1]:6.2f} ms at {conns}  |  p50 {one[1]:6.2f} ms at 1 ({one[0]:.0f} req/s)")
ratio = on[0] / pn[0]
line = f"  ours/PostGraphile {ratio:.2f} (target >= {target[0]}: {'met' if ratio >= target[0] else 'MISSED'})"
if target[1] is not None:
    line += f"; p50 at 1 connection {o1[1]:.2f} ms (target <= {target[1]} ms: {'met' if o1[1] <= target[1] else 'MISSED'})"
print(line)
print(f"  ours/baseline {on[0] / bn[0]:.2f} (p50 at 1: {o1[1] / b1[1]:.2f}x the baseline's)")
PY
done
