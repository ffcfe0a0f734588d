#!/usr/bin/env bash
# Rolls out deploy/kubernetes in order: configuration, then the migration Job (waited for), then
# the server. The Secrets amtsplatz-env and amtsplatz-keys must exist (secrets.example.yaml).
#
#   deploy/kubernetes/rollout.sh                 # kubectl's current context
#   KUSTOMIZE_DIR=my-overlay deploy/kubernetes/rollout.sh
#
# A failed migration stops here: the running pods keep serving the old version.
set -euo pipefail
DIR=${KUSTOMIZE_DIR:-$(dirname "$0")}
NS=${NAMESPACE:-amtsplatz}
TIMEOUT=${MIGRATE_TIMEOUT:-900s}

RENDERED=$(mktemp)
trap 'rm -f "$RENDERED"' EXIT
kubectl kustomize "$DIR" > "$RENDERED"

echo "== configuration"
kubectl apply -f "$RENDERED" -l amtsplatz/phase=config
for s in amtsplatz-env amtsplatz-keys; do
  kubectl -n "$NS" get secret "$s" >/dev/null \
    || { echo "Secret $NS/$s is missing: see deploy/kubernetes/secrets.example.yaml" >&2; exit 1; }
done

echo "== migrations"
# A Job's pod template cannot change: replace last release's Job with this release's.
kubectl -n "$NS" delete job amtsplatz-migrate --ignore-not-found --wait=true
kubectl apply -f "$RENDERED" -l amtsplatz/phase=migrate
# Wait for either outcome; `kubectl wait` on one condition alone would sit out a failure.
deadline=$(( $(date +%s) + ${TIMEOUT%s} ))
while :; do
  complete=$(kubectl -n "$NS" get job amtsplatz-migrate -o jsonpath='{.status.conditions[?(@.type=="Complete")].status}')
  failed=$(kubectl -n "$NS" get job amtsplatz-migrate -o jsonpath='{.status.conditions[?(@.type=="Failed")].status}')
  [ "$complete" = "True" ] && break
  if [ "$failed" = "True" ] || [ "$(date +%s)" -ge "$deadline" ]; then
    kubectl -n "$NS" logs job/amtsplatz-migrate --tail=50 >&2 || true
    echo "migration failed or timed out: the server was not rolled out" >&2
    exit 1
  fi
  sleep 3
done
kubectl -n "$NS" logs job/amtsplatz-migrate --tail=5 || true

echo "== server"
kubectl apply -f "$RENDERED" -l amtsplatz/phase=app
kubectl -n "$NS" rollout status deployment/amtsplatz --timeout=600s
