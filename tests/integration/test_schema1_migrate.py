"""Issue 15: find (`dockgate schema1 scan`) and convert (`dockgate schema1 convert`) the
schema1 images already stored, and the seed's AQL query (`POST /api/search/aql`).

Backends are real `docker-registry` 2.8 processes with schema1 compatibility on; schema1
images are pushed with `skopeo copy --format v2s1` or hand-signed (libtrust-style JWS).
"""
import json
import shutil
import tempfile
import time
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from dgtest.backend import Registry
from dgtest.client import V2
from dgtest.gateway import gateway_config
from dgtest.images import (ACCEPT_ALL, DOCKER_LIST, DOCKER_MANIFEST, SCHEMA1_SIGNED,
                           make_image, write_oci_layout)
from dgtest.ports import free_port
from dgtest.ops import auth_gateway_config, write_htpasswd
from dgtest.proc import run
from dgtest.schema1 import (edge_case_image, push_v2s1, schema2_tags, source_image,
                            upload_blob)

pytestmark = pytest.mark.usefixtures("dockgate_binary")


class Env:
    """Two schema1-enabled backends (the second wants Basic credentials) behind a config."""

    def __init__(self, a, b, gw, client, tmp):
        self.a, self.b, self.gw, self.client, self.tmp = a, b, gw, client, tmp
        self.config = gw.config_path

    def dockgate(self, *args, check=False, timeout=300):
        return run([self.gw.binary, *args], check=check, timeout=timeout)

    def scan(self, *args):
        r = self.dockgate("schema1", "scan", "--config", self.config, "--format", "json",
                          *args)
        try:
            body = json.loads(r.stdout)
        except ValueError:
            raise AssertionError(f"scan output is not JSON: {r.stdout!r}\n{r.stderr}")
        return r.returncode, body, r.stderr


@pytest.fixture
def env(registry_factory, dockgate, client_env, tmp_path):
    a = registry_factory(schema1=True)
    b = registry_factory(schema1=True, htpasswd=("scanner", "s3cret"))
    pw = tmp_path / "b.password"
    pw.write_text("s3cret\n")
    dead = f"http://127.0.0.1:{free_port()}"
    cfg = gateway_config(
        backends={"a": a.url,
                  "b": {"url": b.url, "username": "scanner", "password_file": str(pw)},
                  "dead": {"url": dead, "connect_timeout_seconds": 2}},
        repositories={
            "legacy": {"backend": "a", "type": "local", "name_prefix": "legacy/",
                       "block_schema1_push": False},
            "hub": {"backend": "a", "type": "remote", "name_prefix": "hub/",
                    "block_schema1_pull": False},
            "other": {"backend": "b", "type": "local"},
            "gone": {"backend": "dead", "type": "local"},
        })
    gw = dockgate(cfg, start=False)
    return Env(a, b, gw, client_env, tmp_path)


def copy_tag(base, name, src, dst, auth=None):
    """Re-tag by GET + PUT of the same bytes (same digest)."""
    r = requests.get(f"{base}/v2/{name}/manifests/{src}", headers={"Accept": SCHEMA1_SIGNED},
                     auth=auth)
    assert r.status_code == 200, r.text
    p = requests.put(f"{base}/v2/{name}/manifests/{dst}", data=r.content,
                     headers={"Content-Type": r.headers["Content-Type"]}, auth=auth)
    assert p.status_code == 201, p.text
    return r.headers["Docker-Content-Digest"]


def seed(env):
    """legacy/app:v1,v1-alias (skopeo v2s1; skopeo gzips the uncompressed layer on the way),
    legacy/modern:latest (schema2),
    legacy/multi:latest (a list with a schema1 child), hub/edge:old (hand-signed)."""
    img, diff_ids = source_image()
    layout = write_oci_layout(env.tmp / "src", {"v1": img})
    push_v2s1(env.client, layout, "v1", env.a.hostport, "legacy/app", "v1")
    app = copy_tag(env.a.url, "legacy/app", "v1", "v1-alias")
    modern = make_image(kind="docker")
    for blob in modern.blobs:
        upload_blob(env.a.url, "legacy/modern", blob.data)
    r = requests.put(f"{env.a.url}/v2/legacy/modern/manifests/latest", data=modern.manifest,
                     headers={"Content-Type": DOCKER_MANIFEST})
    assert r.status_code == 201, r.text
    push_v2s1(env.client, layout, "v1", env.a.hostport, "legacy/multi", "s1")
    child = V2(env.a.url).manifest("legacy/multi", "s1", accept=SCHEMA1_SIGNED)
    child_digest = child.headers["Docker-Content-Digest"]
    lst = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {"mediaType": SCHEMA1_SIGNED, "digest": child_digest, "size": len(child.content),
         "platform": {"architecture": "amd64", "os": "linux"}}]}
    r = requests.put(f"{env.a.url}/v2/legacy/multi/manifests/latest",
                     data=json.dumps(lst).encode(), headers={"Content-Type": DOCKER_LIST})
    assert r.status_code == 201, r.text
    edge, edge_diff_ids = edge_case_image(env.a.url, "hub/edge", "old")
    schema2_tags(env.b.url, "clean", ["1", "2"], auth=("scanner", "s3cret"))
    return {"app": app, "diff_ids": diff_ids, "child": child_digest,
            "list": r.headers["Docker-Content-Digest"], "edge": edge,
            "edge_diff_ids": edge_diff_ids, "layout": layout, "image": img}


def rows_by_image(body):
    return {(r["repository"], r["image"], tuple(r["tags"])): r for r in body["schema1"]}


def test_scan_finds_schema1_and_reports_failing_backends(env):
    s = seed(env)
    code, body, err = env.scan("--repository", "legacy", "--repository", "hub",
                               "--repository", "other")
    assert code == 1, err
    rows = rows_by_image(body)
    assert set(rows) == {("legacy", "app", ("v1", "v1-alias")),
                         ("legacy", "multi", ("s1",)),
                         ("legacy", "multi", ("latest",)),
                         ("hub", "edge", ("old",))}, body
    app = rows[("legacy", "app", ("v1", "v1-alias"))]
    assert app["digest"] == s["app"] and app["media_type"] == SCHEMA1_SIGNED
    assert not app["remote"] and app["note"] == ""
    child = rows[("legacy", "multi", ("latest",))]
    assert child["digest"] == s["child"] and child["list"] == s["list"]
    edge = rows[("hub", "edge", ("old",))]
    assert edge["digest"] == s["edge"] and edge["remote"]
    assert "cache needs cleaning" in edge["note"]
    summary = body["summary"]
    assert summary["repositories"] == 3 and summary["errors"] == []
    # legacy: app, modern, multi; hub: edge; other: clean
    assert summary["images"] == 5 and summary["tags"] == 8 and summary["schema1"] == 4
    assert "4 schema1 manifests" in err

    # Nothing in `other` (credentials are the backend's own): exit 0.
    code, body, err = env.scan("--repository", "other")
    assert (code, body["schema1"], body["summary"]["errors"]) == (0, [], []), err

    # A dead backend is reported and the others are still scanned: exit 2.
    code, body, err = env.scan()
    assert code == 2, err
    assert len(body["schema1"]) == 4
    assert any("gone" in e for e in body["summary"]["errors"]), body["summary"]
    assert "error: repository gone" in err

    # Table and CSV name the same rows.
    r = env.dockgate("schema1", "scan", "--config", env.config, "--repository", "hub")
    assert r.returncode == 1 and "hub" in r.stdout and s["edge"] in r.stdout, r.stdout
    r = env.dockgate("schema1", "scan", "--config", env.config, "--repository", "hub",
                     "--format", "csv")
    assert r.stdout.splitlines()[0] == "repository,image,tags,digest,media_type,note"
    assert r.stdout.splitlines()[1].startswith(f"hub,edge,old,{s['edge']},")

    # Unknown repository key: named in the error.
    r = env.dockgate("schema1", "scan", "--config", env.config, "--repository", "nope")
    assert r.returncode == 2 and "repositories.nope" in r.stderr


@pytest.fixture
def ram_registries():
    """Two plain backends with storage in RAM: 5,000 tag directories on this disk take
    over a minute just to delete (and a bcrypt check per request would dominate)."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    made = []
    try:
        for _ in range(2):
            made.append(Registry(Path(tempfile.mkdtemp(prefix="dg-s1-", dir=base)),
                                 schema1=True).start())
        yield made
    finally:
        for r in made:
            r.stop()
            shutil.rmtree(r.dir, ignore_errors=True)


def test_scan_of_5000_tags_on_two_backends(ram_registries, dockgate, client_env, tmp_path):
    a, b = ram_registries
    cfg = gateway_config(backends={"a": a.url, "b": b.url},
                         repositories={"ra": {"backend": "a", "type": "local"},
                                       "rb": {"backend": "b", "type": "remote"}})
    env = Env(a, b, dockgate(cfg, start=False), client_env, tmp_path)
    n = 2500
    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(schema2_tags, reg.url, f"bulk{part}",
                               [f"t{i}" for i in range(n // 4)])
                   for reg in (a, b) for part in range(4)]
        for f in futures:
            f.result()
    made = time.monotonic() - t0
    t0 = time.monotonic()
    code, body, err = env.scan("--concurrency", "16")
    took = time.monotonic() - t0
    print(f"made {2 * n} tags in {made:.1f}s; scanned in {took:.1f}s "
          f"({2 * n / took:.0f} tags/s)")
    assert code == 0, err
    assert body["summary"]["tags"] == 2 * n and body["schema1"] == []
    assert body["summary"]["images"] == 8


# convert ------------------------------------------------------------------------------------
def head(base, name, ref, auth=None):
    r = requests.head(f"{base}/v2/{name}/manifests/{ref}", headers={"Accept": ACCEPT_ALL},
                      auth=auth)
    return r.headers.get("Content-Type", ""), r.headers.get("Docker-Content-Digest", "")


def config_of(base, name, ref):
    m = requests.get(f"{base}/v2/{name}/manifests/{ref}",
                     headers={"Accept": DOCKER_MANIFEST}).json()
    cfg = requests.get(f"{base}/v2/{name}/blobs/{m['config']['digest']}")
    assert cfg.status_code == 200
    return m, m["config"]["digest"], cfg.json()


def skopeo_v2s2(env, name, tag):
    """Ground truth: skopeo's own schema1 → schema2 conversion into truth/<name>."""
    env.client.skopeo("copy", "--retry-times", "0", "--src-tls-verify=false",
                      "--dest-tls-verify=false", "--format", "v2s2",
                      f"docker://{env.a.hostport}/{name}:{tag}",
                      f"docker://{env.a.hostport}/truth/{name}:{tag}", timeout=120)
    return config_of(env.a.url, f"truth/{name}", tag)


def journal_tags(path):
    lines = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
    return [(l["repository"], l["image"], l["tag"]) for l in lines if l["event"] == "tag"]


def test_convert_matches_skopeo_and_real_clients_pull(env):
    s = seed(env)
    gz_img, gz_diff_ids = source_image(uncompressed=False)
    gz_layout = write_oci_layout(env.tmp / "gz", {"v1": gz_img})
    push_v2s1(env.client, gz_layout, "v1", env.a.hostport, "legacy/gz", "v1")
    truth = {n: skopeo_v2s2(env, n, t)
             for n, t in [("legacy/app", "v1"), ("legacy/gz", "v1"), ("hub/edge", "old")]}
    journal = env.tmp / "journal.jsonl"
    conv = ["schema1", "convert", "--config", env.config, "--journal", journal]

    # Dry run: the plan, nothing written.
    r = env.dockgate(*conv, "--repository", "legacy", "--dry-run")
    assert "would convert legacy/app@" + s["app"] in r.stdout, r.stdout + r.stderr
    assert not journal.exists()
    assert head(env.a.url, "legacy/app", "v1")[0] == SCHEMA1_SIGNED

    r = env.dockgate(*conv, "--repository", "legacy")
    # The list's child is skipped with its reason; everything else converts.
    assert r.returncode == 1, r.stdout + r.stderr
    assert "child of a manifest list" in r.stderr
    assert f"converted legacy/app@{s['app']}" in r.stdout, r.stdout
    r = env.dockgate(*conv, "--repository", "hub", "--image", "edge:old")
    assert r.returncode == 0, r.stdout + r.stderr

    ct, app = head(env.a.url, "legacy/app", "v1")
    assert ct == DOCKER_MANIFEST
    assert head(env.a.url, "legacy/app", "v1-alias") == (ct, app)
    m, cfg_digest, cfg = config_of(env.a.url, "legacy/app", "v1")
    assert cfg["rootfs"]["diff_ids"] == s["diff_ids"]
    assert cfg_digest == truth["legacy/app"][1]            # byte-identical config
    assert [l["digest"] for l in m["layers"]] == [l["digest"] for l in truth["legacy/app"][0]["layers"]]
    _, gz_cfg, gz_c = config_of(env.a.url, "legacy/gz", "v1")
    assert gz_c["rootfs"]["diff_ids"] == gz_diff_ids and gz_cfg == truth["legacy/gz"][1]
    # All gzip: the manifest is byte-identical too.
    truth_gz = head(env.a.url, "truth/legacy/gz", "v1")[1]
    assert head(env.a.url, "legacy/gz", "v1") == (DOCKER_MANIFEST, truth_gz)
    edge_m, edge_cfg, edge = config_of(env.a.url, "hub/edge", "old")
    # The raw blobs are labelled from their bytes, not the blob-info cache (c/image#1270).
    assert [l["mediaType"].rsplit(".", 1)[1] for l in edge_m["layers"]] == \
        ["gzip", "tar", "tar", "tar"], edge_m
    assert edge["rootfs"]["diff_ids"] == s["edge_diff_ids"]
    assert edge_cfg == truth["hub/edge"][1], (edge, truth["hub/edge"][2])

    # Every tag once in the journal.
    tags = journal_tags(journal)
    assert sorted(tags) == sorted([("legacy", "app", "v1"), ("legacy", "app", "v1-alias"),
                                   ("legacy", "gz", "v1"), ("legacy", "multi", "s1"),
                                   ("hub", "edge", "old")]), tags

    # Real consumers.
    store = env.tmp / "store"
    env.client.skopeo("copy", "--retry-times", "0", "--src-tls-verify=false",
                      f"docker://{env.a.hostport}/legacy/app:v1",
                      f"containers-storage:[vfs@{store}/root+{store}/run]legacy/app:v1",
                      timeout=120)
    short = Path(tempfile.mkdtemp(prefix="dgp"))  # podman wants a runroot under 50 chars
    try:
        run(["podman", "--root", short / "root", "--runroot", short / "run",
             "--storage-driver", "vfs", "pull", "--tls-verify=false",
             f"{env.a.hostport}/legacy/gz:v1"], env=env.client.env, timeout=120)
    finally:
        shutil.rmtree(short, ignore_errors=True)

    # Only the list's child is left.
    code, body, err = env.scan("--repository", "legacy", "--repository", "hub")
    assert [(r["image"], r["list"]) for r in body["schema1"]] == [("multi", s["list"])], body


def test_convert_killed_midway_resumes_without_converting_twice(env):
    import signal
    import subprocess
    img, _ = source_image(uncompressed=False)
    layout = write_oci_layout(env.tmp / "src", {"v1": img})
    push_v2s1(env.client, layout, "v1", env.a.hostport, "legacy/many", "t0")
    tags = [f"t{i}" for i in range(40)]
    for t in tags[1:]:
        copy_tag(env.a.url, "legacy/many", "t0", t)
    journal = env.tmp / "journal.jsonl"
    args = [env.gw.binary, "schema1", "convert", "--config", env.config, "--repository",
            "legacy", "--journal", journal]
    p = subprocess.Popen([str(a) for a in args], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= 3:
            break
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.wait()
    first = len(journal_tags(journal))
    assert 0 < first < len(tags), "the kill came too late to test anything"
    r = env.dockgate(*args[1:])
    assert r.returncode == 0, r.stdout + r.stderr
    done = journal_tags(journal)
    assert sorted(t for _, _, t in done) == sorted(tags), (journal.read_text(), r.stdout, r.stderr)  # each tag once
    digests = {head(env.a.url, "legacy/many", t) for t in tags}
    assert len(digests) == 1 and next(iter(digests))[0] == DOCKER_MANIFEST
    # One manifest PUT per tag by dockgate in the backend's own log, across both runs.
    lines = [l for l in env.a.log_path.read_text().splitlines()
             if l.endswith('"dockgate-schema1"') and '"PUT /v2/legacy/many/manifests/' in l]
    for t in tags:
        assert sum(f"/manifests/{t} HTTP" in l for l in lines) == 1, t


# AQL ----------------------------------------------------------------------------------------
SEED_AQL = ('items.find({"$and": [{"name":{"$eq":"manifest.json"}}, {"type":"file"}, '
            '{"repo":"legacy"}, {"@docker.manifest.type":{"$ne":'
            '"application/vnd.docker.distribution.manifest.v2+json"}}]})'
            '.include("repo","path","@docker.manifest","@docker.repoName")')


def test_aql_endpoint_answers_the_seed_query_for_admins(registry_factory, dockgate, client_env,
                                                        tmp_path):
    a = registry_factory(schema1=True)
    cfg = auth_gateway_config(a.url, {"legacy": {"name_prefix": "legacy/", "read": ["dev"],
                                                 "block_schema1_push": False}},
                              auth={"admins": ["root"]})
    gw = dockgate(cfg, start=False)
    write_htpasswd(gw.dir / "users.htpasswd", {"root": "rootpw", "dev": "devpw"})
    gw.start()
    env = Env(a, a, gw, client_env, tmp_path)
    img, _ = source_image()
    layout = write_oci_layout(tmp_path / "src", {"v1": img})
    push_v2s1(client_env, layout, "v1", a.hostport, "legacy/app", "v1")
    schema2_tags(a.url, "legacy/app", ["v2"])
    url = f"https://127.0.0.1:{gw.port('path')}/api/search/aql"

    def curl(user, body):
        args = ["-sS", "--cacert", str(env.client.cert_dir / "ca.crt"), "-X", "POST",
                "-H", "Content-Type: text/plain", "--data-binary", body,
                "-o", str(tmp_path / "out"), "-w", "%{http_code}", url]
        if user:
            args[:0] = ["-u", user]
        code = int(run(["curl", *args], env=client_env.env).stdout)
        return code, (tmp_path / "out").read_text()

    code, body = curl("root:rootpw", SEED_AQL)
    assert code == 200, body
    doc = json.loads(body)
    assert doc["results"] == [{"repo": "legacy", "path": "app/v1", "properties": [
        {"key": "docker.manifest", "value": "v1"},
        {"key": "docker.repoName", "value": "app"}]}], doc
    assert doc["range"]["total"] == 1
    code, body = curl("root:rootpw", 'items.find({"name":"manifest.json"}).sort({"$asc":["name"]})')
    assert code == 400 and "supported:" in body, body
    code, body = curl("dev:devpw", SEED_AQL)
    assert code == 403, body
    code, body = curl(None, SEED_AQL)
    assert code == 401, body
