"""Drives presigned uploads against a running server and samples its resident memory.

Publishes a test service that allows large files (as Musterstadt's author and administrator),
then for each size: saveDraft → requestUpload → streamed PUT → confirmUpload, sampling
/proc/<pid>/status (VmRSS) every 20 ms. Prints the baseline, the peak during PUT and confirm,
the growth, and the growth of each size relative to the first.
"""

import argparse
import hashlib
import http.client
import json
import os
import threading
import time
import urllib.parse
import urllib.request

CHUNK = 1024 * 1024


def gql(url, query, variables=None, tenant="musterstadt", token=None):
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(url + "/graphql", data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("X-Tenant", tenant)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req) as resp:
        out = json.load(resp)
    if out.get("errors"):
        raise SystemExit(f"{query[:60]}…: {out['errors']}")
    return out["data"]


def login(url, email, password):
    q = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { accessToken } }"
    return gql(url, q, {"e": email, "p": password})["login"]["accessToken"]


def publish_service(url):
    author = login(url, "autorin@musterstadt.example", "musterstadt-author")
    admin = login(url, "admin@musterstadt.example", "musterstadt-admin")
    content = {
        "title": {"de": "Großer Nachweis"},
        "summary": {"de": "Benchmark: große Dateien"},
        "category": "steuern",
        "form": {
            "schema": {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {"name": {"type": "string"}},
            },
            "steps": [{"key": "s", "title": {"de": "Angaben"}, "fields": [{"key": "name", "label": {"de": "Name"}}]}],
        },
        "routing": [{"key": "r", "department": "ordnungsamt"}],
        "attachments": {"maxFileBytes": 1024 * 1024 * 1024, "maxFiles": 100},
    }
    t = gql(url, "mutation($i: CreateTemplateInput!) { createTemplate(input: $i) { template { id } } }",
            {"i": {"slug": "bench-gross", "title": "Bench", "category": "steuern", "visibility": "PRIVATE"}},
            token=author)["createTemplate"]["template"]["id"]
    v = gql(url, "mutation($i: PublishTemplateVersionInput!) { publishTemplateVersion(input: $i) { version { id } } }",
            {"i": {"templateId": t, "version": "1.0.0", "content": content, "changelog": "bench"}},
            token=author)["publishTemplateVersion"]["version"]["id"]
    s = gql(url, "mutation($i: ForkTemplateInput!) { forkTemplate(input: $i) { service { id } } }",
            {"i": {"templateVersionId": v, "slug": "bench-gross"}}, token=admin)["forkTemplate"]["service"]["id"]
    gql(url, "mutation($i: ServiceIdInput!) { publishService(input: $i) { service { status } } }",
        {"i": {"serviceId": s}}, token=admin)
    return "bench-gross"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self):
        while self.running:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.02)

    def stop(self):
        self.running = False
        self.join()
        return self.peak


def make_file(path, size):
    digest = hashlib.sha256()
    block = (b"%PDF-1.7\n" + os.urandom(CHUNK))[:CHUNK]
    with open(path, "wb") as f:
        left = size
        while left:
            part = block[: min(CHUNK, left)]
            f.write(part)
            digest.update(part)
            left -= len(part)
            block = os.urandom(CHUNK)
    return digest.hexdigest()


def upload(url, pid, slug, path, size, sha):
    d = gql(url, "mutation($i: SaveDraftInput!) { saveDraft(input: $i) { accessToken draft { id } } }",
            {"i": {"serviceSlug": slug, "data": {"name": "Bench"}}})["saveDraft"]
    grant = gql(url, "mutation($i: RequestUploadInput!) { requestUpload(input: $i) { uploadUrl attachment { id } } }",
                {"i": {"draftId": d["draft"]["id"], "accessToken": d["accessToken"], "filename": "gross.pdf",
                       "contentType": "application/pdf", "sizeBytes": size, "sha256": sha}})["requestUpload"]
    target = urllib.parse.urlsplit(grant["uploadUrl"])
    base = rss_kib(pid)
    sampler = Sampler(pid)
    sampler.start()
    started = time.monotonic()
    conn = http.client.HTTPConnection(target.hostname, target.port)
    conn.putrequest("PUT", target.path + "?" + target.query)
    conn.putheader("Content-Type", "application/pdf")
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            conn.send(chunk)
    status = conn.getresponse().status
    put_secs = time.monotonic() - started
    if status != 200:
        raise SystemExit(f"PUT answered {status}")
    put_peak = sampler.peak
    started = time.monotonic()
    gql(url, "mutation($i: AttachmentRefInput!) { confirmUpload(input: $i) { attachment { state sha256 } } }",
        {"i": {"id": grant["attachment"]["id"], "accessToken": d["accessToken"]}})
    confirm_secs = time.monotonic() - started
    peak = sampler.stop()
    return base, put_peak, peak, put_secs, confirm_secs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--work", required=True)
    p.add_argument("sizes_mb", nargs="+", type=int)
    a = p.parse_args()
    slug = publish_service(a.url)
    # Warm-up: first requests allocate pools and caches that stay.
    warm = os.path.join(a.work, "warm.bin")
    upload(a.url, a.pid, slug, warm, 1024 * 1024, make_file(warm, 1024 * 1024))
    rows = []
    for mb in a.sizes_mb:
        size = mb * 1000 * 1000
        path = os.path.join(a.work, f"{mb}.bin")
        sha = make_file(path, size)
        base, put_peak, peak, put_s, confirm_s = upload(a.url, a.pid, slug, path, size, sha)
        os.remove(path)
        rows.append((mb, base, put_peak, peak, peak - base, put_s, confirm_s))
    print(f"{'size':>8} {'RSS before':>11} {'peak PUT':>10} {'peak all':>10} {'growth':>10} "
          f"{'growth/size':>12} {'PUT MB/s':>9} {'confirm MB/s':>13}")
    for mb, base, put_peak, peak, growth, put_s, confirm_s in rows:
        print(f"{mb:>6}MB {base/1024:>9.1f}MB {put_peak/1024:>8.1f}MB {peak/1024:>8.1f}MB {growth:>7}KiB "
              f"{growth / (mb * 1000 * 1000 / 1024):>12.4f} {mb / max(put_s, 1e-9):>9.0f} {mb / max(confirm_s, 1e-9):>13.0f}")


if __name__ == "__main__":
    main()
