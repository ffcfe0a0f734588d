#!/usr/bin/env bash
# Checks deploy/ offline, no cluster and no Docker engine needed:
#  1. the Kubernetes manifests (rendered with kustomize) against the Kubernetes JSON schemas,
#     strictly (unknown fields fail), for the oldest and the newest version we support;
#  2. the manifests against the server's own code (check.py: probe routes and port, the migrate
#     subcommand, setting names, Secret keys, selectors, non-root and read-only), plus a
#     self-test that breaks them in known ways and expects each break to be caught; rollout.sh's
#     order (rollout-test.sh, against a stand-in kubectl);
#  3. deploy/Dockerfile with hadolint;
#  4. deploy/compose.yaml with `docker compose config` (or Debian's docker-compose), if present.
# The tools (deploy/ci-tools.txt, pinned) go into a venv under ~/.cache, installed once.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Oldest: the preStop `sleep` action needs 1.30. Newest: what kubernetes-validate ships.
K8S_VERSIONS=${K8S_VERSIONS:-"1.30.0 1.37.0"}
VENV=${AMTSPLATZ_TOOLS_VENV:-${HOME:-/root}/.cache/amtsplatz-deploy-tools}
if ! cmp -s deploy/ci-tools.txt "$VENV/ci-tools.txt" 2>/dev/null; then
  echo "installing deploy/ci-tools.txt into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r deploy/ci-tools.txt
  cp deploy/ci-tools.txt "$VENV/ci-tools.txt"
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
RENDERED="$WORK/rendered.yaml"
if command -v kubectl >/dev/null; then
  kubectl kustomize deploy/kubernetes > "$RENDERED"
  echo "rendered deploy/kubernetes with kubectl kustomize ($(grep -c '^kind:' "$RENDERED") resources)"
elif command -v kustomize >/dev/null; then
  kustomize build deploy/kubernetes > "$RENDERED"
  echo "rendered deploy/kubernetes with kustomize ($(grep -c '^kind:' "$RENDERED") resources)"
else
  # No kustomize here: check the resource files as they are (no namespace or image rewriting).
  "$VENV/bin/python" - "$RENDERED" <<'PY'
import sys, yaml
k = yaml.safe_load(open("deploy/kubernetes/kustomization.yaml"))
with open(sys.argv[1], "w") as out:
    out.write("\n---\n".join(open("deploy/kubernetes/" + r).read() for r in k["resources"]))
PY
  echo "no kustomize: checking the files kustomization.yaml lists, unrendered"
fi

for v in $K8S_VERSIONS; do
  "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "$RENDERED" deploy/kubernetes/secrets.example.yaml
  echo "Kubernetes $v schemas: valid (strict)"
done

"$VENV/bin/python" deploy/kubernetes/check.py --self-test "$RENDERED" deploy/kubernetes/secrets.example.yaml .

bash deploy/kubernetes/rollout-test.sh

"$VENV/bin/hadolint" deploy/Dockerfile
echo "deploy/Dockerfile: hadolint clean"

# The compose file refuses to start without this password; any value checks the file.
export AMTSPLATZ_PLATFORM_ADMIN_PASSWORD=${AMTSPLATZ_PLATFORM_ADMIN_PASSWORD:-validate-only-not-used}
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null \
  && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  # Debian's docker-compose (1.29) checks the file against the Compose schema; no engine needed.
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends docker-compose >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends docker-compose >/dev/null 2>&1; } \
    || echo "(could not install docker-compose from Debian)"
fi
if docker compose version >/dev/null 2>&1; then
  docker compose -f deploy/compose.yaml config -q
  echo "deploy/compose.yaml: valid (docker compose config)"
elif command -v docker-compose >/dev/null; then
  docker-compose -f deploy/compose.yaml config -q
  echo "deploy/compose.yaml: valid (docker-compose config)"
else
  echo "deploy/compose.yaml: not checked (no docker compose here)"
fi
