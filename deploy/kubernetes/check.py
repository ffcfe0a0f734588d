#!/usr/bin/env python3
"""What the Kubernetes schemas cannot see: the manifests against the server's own code.

    check.py RENDERED.yaml SECRETS.yaml REPO_ROOT        # prints problems, exits 1 on any
    check.py --self-test RENDERED.yaml SECRETS.yaml REPO_ROOT

Checks that every resource carries the rollout phase rollout.sh applies it by, that the probes use the routes the server has and the port it listens on, that the Job
runs a subcommand the CLI has, that every AMTSPLATZ_* variable is a setting (settings.rs), that
every Secret key used is one secrets.example.yaml names, that Service, Ingress, HPA and PDB point
at the Deployment's pods, and that every pod is non-root with a read-only root filesystem and
resource requests. --self-test breaks the manifests in known ways and expects each to be caught.
"""

import copy
import re
import sys
from pathlib import Path

import yaml


def load(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def settings_env_names(root):
    """The environment variables server/src/settings/ documents (`AMTSPLATZ_X` / `__Y` names
    both)."""
    text = "\n".join(p.read_text() for p in sorted((root / "server/src/settings").glob("*.rs")))
    names = set()
    for m in re.finditer(r"`(AMTSPLATZ_[A-Z0-9_]+)`((?:\s*/\s*`__[A-Z0-9_]+`)*)", text):
        full = m.group(1)
        names.add(full)
        for tail in re.findall(r"`__([A-Z0-9_]+)`", m.group(2)):
            names.add(full.rsplit("__", 1)[0] + "__" + tail)
    return names


def routes(root):
    text = (root / "server/src/http/mod.rs").read_text()
    return set(re.findall(r'\.route\("([^"]+)"', text))


def cli_subcommands(root):
    text = (root / "server/src/cli.rs").read_text()
    body = re.search(r"enum Command \{(.*?)\n\}", text, re.S).group(1)
    variants = re.findall(r"^    ([A-Z][A-Za-z]*)\b", body, re.M)
    return {re.sub(r"(?<!^)([A-Z])", r"-\1", v).lower() for v in variants}


def pod_templates(docs):
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            yield d, d["spec"]["template"]


def check(docs, secrets, root):
    errors = []
    err = errors.append
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    one = lambda kind: (by_kind.get(kind) or [None])[0]  # noqa: E731

    config = one("ConfigMap")
    deployment = one("Deployment")
    job = one("Job")
    for kind, d in (("ConfigMap", config), ("Deployment", deployment), ("Job", job)):
        if d is None:
            err(f"no {kind}")
    for kind in ("Service", "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        if one(kind) is None:
            err(f"no {kind}")
    if errors:
        return errors
    env = config.get("data", {})
    # rollout.sh applies by this label, in order; a resource without one would never be applied.
    for d in docs:
        phase = d["metadata"].get("labels", {}).get("amtsplatz/phase")
        if phase not in ("config", "migrate", "app"):
            err(f"{d['kind']} {d['metadata']['name']}: label amtsplatz/phase is {phase!r}, not config, migrate or app")
        if d["kind"] == "Job" and phase != "migrate" or d["kind"] == "Deployment" and phase != "app":
            err(f"{d['kind']} {d['metadata']['name']}: in rollout phase {phase!r}")
    secret_keys = {s["metadata"]["name"]: set(s.get("stringData", {})) for s in secrets}
    known_env = settings_env_names(root) | {"DATABASE_URL", "RUST_LOG"}

    for name in env:
        if name not in known_env:
            err(f"ConfigMap {config['metadata']['name']}: {name} is no setting in settings.rs")

    # Every pod: non-root, read-only root, no privilege escalation, requests, known env, secrets.
    for owner, tpl in pod_templates(docs):
        where = f"{owner['kind']} {owner['metadata']['name']}"
        spec = tpl["spec"]
        psc = spec.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True:
            err(f"{where}: runAsNonRoot is not true")
        if not psc.get("runAsUser"):
            err(f"{where}: no non-root runAsUser")
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            err(f"{where}: seccompProfile is not RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            err(f"{where}: mounts a service account token it does not need")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            cw = f"{where}, container {c['name']}"
            sc = c.get("securityContext", {})
            if sc.get("readOnlyRootFilesystem") is not True:
                err(f"{cw}: root filesystem is writable")
            if sc.get("allowPrivilegeEscalation") is not False:
                err(f"{cw}: allowPrivilegeEscalation is not false")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                err(f"{cw}: capabilities not dropped")
            res = c.get("resources", {})
            for r in ("cpu", "memory"):
                if r not in res.get("requests", {}):
                    err(f"{cw}: no {r} request")
            if "memory" not in res.get("limits", {}):
                err(f"{cw}: no memory limit")
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            if "/tmp" not in mounts:
                err(f"{cw}: no writable /tmp (emptyDir) under a read-only root")
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes:
                    err(f"{cw}: mounts unknown volume {m['name']}")
            for e in c.get("env", []):
                if e["name"] not in known_env:
                    err(f"{cw}: {e['name']} is no setting in settings.rs")
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["key"] not in secret_keys.get(ref["name"], set()):
                    err(f"{cw}: Secret {ref['name']} has no key {ref['key']} in secrets.example.yaml")
            for ef in c.get("envFrom", []):
                cm = ef.get("configMapRef", {}).get("name")
                if cm and cm != config["metadata"]["name"]:
                    err(f"{cw}: envFrom names unknown ConfigMap {cm}")
        for v in volumes.values():
            if "secret" in v and v["secret"]["secretName"] not in secret_keys:
                err(f"{where}: volume {v['name']}: no Secret {v['secret']['secretName']} in secrets.example.yaml")

    # The server: probes on its routes and port, keys where the settings look for them.
    dspec = deployment["spec"]
    pod = dspec["template"]["spec"]
    server = pod["containers"][0]
    port = int(env.get("AMTSPLATZ_BIND", "127.0.0.1:8080").rsplit(":", 1)[1])
    ports = {p.get("name"): p["containerPort"] for p in server.get("ports", [])}
    if port not in ports.values():
        err(f"Deployment: containerPort is not the port of AMTSPLATZ_BIND ({port})")
    if not env.get("AMTSPLATZ_BIND", "").startswith("0.0.0.0:"):
        err("ConfigMap: AMTSPLATZ_BIND must listen on 0.0.0.0 in a pod")
    have_routes = routes(root)
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = server.get(probe, {}).get("httpGet")
        if not get:
            err(f"Deployment: no HTTP {probe}")
            continue
        if get["path"] != path:
            err(f"Deployment: {probe} is on {get['path']}, expected {path}")
        if get["path"] not in have_routes:
            err(f"Deployment: {probe} path {get['path']} is no route of server/src/http/mod.rs")
        if ports.get(get["port"], get["port"]) != port:
            err(f"Deployment: {probe} port {get['port']} is not {port}")
    mounts = {m["name"]: m["mountPath"] for m in server.get("volumeMounts", [])}
    key_volume = next((v for v in pod.get("volumes", []) if "secret" in v), None)
    for setting in ("AMTSPLATZ_AUTH__SIGNING_KEY_FILE", "AMTSPLATZ_PAYMENTS__SECRETS_KEY_FILE"):
        path = env.get(setting)
        if not path:
            err(f"ConfigMap: {setting} unset: each replica would generate a key of its own")
            continue
        if key_volume is None:
            err(f"Deployment: no Secret volume for {setting}")
            continue
        folder, name = path.rsplit("/", 1)
        if mounts.get(key_volume["name"]) != folder or name not in secret_keys.get(
            key_volume["secret"]["secretName"], set()
        ):
            err(f"{setting}={path} is not a key of the Secret mounted at {mounts.get(key_volume['name'])}")
    if env.get("AMTSPLATZ_DATABASE__MIGRATE_ON_START") != "false":
        err("ConfigMap: replicas migrate on start (the Job does that)")
    if "replicas" in dspec:
        err("Deployment: sets replicas, which every apply would reset under the HPA")
    if dspec.get("strategy", {}).get("rollingUpdate", {}).get("maxUnavailable") != 0:
        err("Deployment: maxUnavailable must be 0 (a rollout whose pods never get ready must stall)")

    # The Job: the CLI's migrate command, the same image as the server.
    jc = job["spec"]["template"]["spec"]["containers"][0]
    cmd = (jc.get("args") or jc.get("command") or [None])[0]
    if cmd != "migrate" or "migrate" not in cli_subcommands(root):
        err(f"Job: runs {cmd!r}; expected the CLI's `migrate` subcommand")
    if jc["image"] != server["image"]:
        err(f"Job image {jc['image']} is not the Deployment's {server['image']}")

    # Everything else points at the Deployment's pods.
    pod_labels = dspec["template"]["metadata"]["labels"]
    matches = lambda sel: sel and all(pod_labels.get(k) == v for k, v in sel.items())  # noqa: E731
    if not matches(dspec["selector"]["matchLabels"]):
        err("Deployment: selector does not match its pods")
    svc = one("Service")
    if not matches(svc["spec"].get("selector")):
        err("Service: selector does not match the Deployment's pods")
    for p in svc["spec"]["ports"]:
        t = p.get("targetPort")
        if t not in ports and t not in ports.values():
            err(f"Service: targetPort {t} is no container port")
    pdb = one("PodDisruptionBudget")
    if not matches(pdb["spec"]["selector"].get("matchLabels")):
        err("PodDisruptionBudget: selector does not match the Deployment's pods")
    hpa = one("HorizontalPodAutoscaler")
    ref = hpa["spec"]["scaleTargetRef"]
    if (ref["kind"], ref["name"]) != ("Deployment", deployment["metadata"]["name"]):
        err("HorizontalPodAutoscaler: does not scale the Deployment")
    if hpa["spec"].get("minReplicas", 1) < 2:
        err("HorizontalPodAutoscaler: minReplicas < 2 (the PDB would block every drain)")
    ing = one("Ingress")
    base = env.get("AMTSPLATZ_BASE_DOMAIN")
    hosts = {r.get("host") for r in ing["spec"]["rules"]}
    if not base or {base, "*." + base} - hosts:
        err(f"Ingress: hosts {sorted(h for h in hosts if h)} are not {base} and *.{base}")
    for r in ing["spec"]["rules"]:
        for p in r["http"]["paths"]:
            s = p["backend"]["service"]
            if s["name"] != svc["metadata"]["name"] or s["port"].get("name", s["port"].get("number")) not in {
                q.get("name") for q in svc["spec"]["ports"]
            } | {q["port"] for q in svc["spec"]["ports"]}:
                err(f"Ingress: backend {s} is not the Service's port")
    return errors


def container(docs, kind):
    return next(d for d in docs if d["kind"] == kind)["spec"]["template"]["spec"]["containers"][0]


def config_data(docs):
    return next(d for d in docs if d["kind"] == "ConfigMap")["data"]


# Each breaks the manifests in one way that the schemas accept; check() must object.
MUTATIONS = {
    "readiness on a route the server lacks": lambda d: container(d, "Deployment")["readinessProbe"]["httpGet"].update(path="/ready"),
    "liveness on another port": lambda d: container(d, "Deployment")["livenessProbe"]["httpGet"].update(port=9090),
    "a writable root filesystem": lambda d: container(d, "Deployment")["securityContext"].update(readOnlyRootFilesystem=False),
    "root allowed in the Job": lambda d: next(x for x in d if x["kind"] == "Job")["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot"),
    "a misspelt setting": lambda d: config_data(d).update(AMTSPLATZ_AUTH__SIGNING_KEY="x"),
    "the Job runs no migration": lambda d: container(d, "Job").update(args=["migrations"]),
    "an unknown Secret key": lambda d: container(d, "Deployment")["env"][0]["valueFrom"]["secretKeyRef"].update(key="db-url"),
    "a Service selecting nothing": lambda d: next(x for x in d if x["kind"] == "Service")["spec"]["selector"].update({"app.kubernetes.io/component": "web"}),
    "no wildcard host": lambda d: next(x for x in d if x["kind"] == "Ingress")["spec"]["rules"].pop(),
    "no memory request": lambda d: container(d, "Deployment")["resources"]["requests"].pop("memory"),
    "replicas migrating on start": lambda d: config_data(d).update(AMTSPLATZ_DATABASE__MIGRATE_ON_START="true"),
    "the Job on another image": lambda d: container(d, "Job").update(image="other"),
    "replicas fighting the HPA": lambda d: next(x for x in d if x["kind"] == "Deployment")["spec"].update(replicas=2),
    "a resource rollout.sh never applies": lambda d: next(x for x in d if x["kind"] == "PodDisruptionBudget")["metadata"]["labels"].pop("amtsplatz/phase"),
    "the Job applied with the server": lambda d: next(x for x in d if x["kind"] == "Job")["metadata"]["labels"].update({"amtsplatz/phase": "app"}),
}


def main(argv):
    self_test = argv[:1] == ["--self-test"]
    if self_test:
        argv = argv[1:]
    rendered, secrets_file, root = argv
    docs, secrets, root = load(rendered), load(secrets_file), Path(root)
    errors = check(docs, secrets, root)
    for e in errors:
        print(f"ERROR {e}")
    if errors:
        return 1
    if self_test:
        missed = []
        for name, mutate in MUTATIONS.items():
            broken = copy.deepcopy(docs)
            mutate(broken)
            if not check(broken, secrets, root):
                missed.append(name)
        for name in missed:
            print(f"ERROR self-test: not caught: {name}")
        if missed:
            return 1
        print(f"self-test: {len(MUTATIONS)} broken variants, each caught")
    print(f"checked {len(docs)} resources against the server's routes, CLI and settings")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
