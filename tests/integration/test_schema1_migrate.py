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
    """legacy/app:v1,v1-alias (skopeo v2s1), legacy/modern:latest (schema2),
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
