#!/usr/bin/env bash
# Tests rollout.sh's order against a stand-in kubectl (no cluster here): configuration, then the
# Job replaced and waited for, then the server; a failed migration must leave the server alone.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
REAL_KUBECTL=$(command -v kubectl || true)
mkdir -p "$WORK/bin"
cat > "$WORK/bin/kubectl" <<STUB
#!/usr/bin/env bash
# Stand-in: renders with the real kubectl when there is one, records what would change the cluster.
args="\$*"
case "\$args" in
  kustomize*) if [ -n "$REAL_KUBECTL" ]; then exec "$REAL_KUBECTL" "\$@"; else cat "\$2"/namespace.yaml; fi ;;
  *"get secret"*) [ -z "\${FAKE_NO_SECRET:-}" ] ;;
  *'type=="Complete"'*) [ "\${FAKE_JOB:-}" = complete ] && echo True || true ;;
  *'type=="Failed"'*) [ "\${FAKE_JOB:-}" = failed ] && echo True || true ;;
  apply*) echo "apply \${args##*-l }" >> "$WORK/calls" ;;
  *"delete job"*) echo "delete job" >> "$WORK/calls" ;;
  *"rollout status"*) echo "rollout status" >> "$WORK/calls" ;;
  *logs*) echo "(logs)" ;;
  *) echo "unexpected kubectl \$args" >&2; exit 99 ;;
esac
STUB
chmod +x "$WORK/bin/kubectl"
export PATH="$WORK/bin:$PATH"
# The stand-in answers at once; rollout.sh polls every 3 s, which a completed Job skips.

run() { rm -f "$WORK/calls"; env "$@" bash "$HERE/rollout.sh" > "$WORK/out" 2>&1; }
expect_calls() {
  local want=$1 got
  got=$(tr '\n' ';' < "$WORK/calls" 2>/dev/null || true)
  if [ "$got" != "$want" ]; then
    echo "rollout-test: $2: expected [$want], got [$got]" >&2; cat "$WORK/out" >&2; exit 1
  fi
}

run FAKE_JOB=complete
expect_calls "apply amtsplatz/phase=config;delete job;apply amtsplatz/phase=migrate;apply amtsplatz/phase=app;rollout status;" "a good migration"

if run FAKE_JOB=failed; then echo "rollout-test: a failed migration exited 0" >&2; exit 1; fi
expect_calls "apply amtsplatz/phase=config;delete job;apply amtsplatz/phase=migrate;" "a failed migration"
grep -q "the server was not rolled out" "$WORK/out"

if run FAKE_JOB=complete FAKE_NO_SECRET=1; then echo "rollout-test: missing Secrets went unnoticed" >&2; exit 1; fi
expect_calls "apply amtsplatz/phase=config;" "missing Secrets"

echo "rollout.sh: order checked (good migration, failed migration, missing Secrets)"
