"""Issue 4: Docker manifest V2 schema 1 policy (block_schema1_push / block_schema1_pull).

The backend runs with `compatibility: schema1: enabled: true`, so it would accept every
schema1 push these tests make: only dockgate can be what refuses them. Backend state is
always read directly from the backend's plain-http URL, bypassing dockgate.
"""
import json
import re
import tomllib

import pytest
import requests

from dgtest.client import V2
from dgtest.extra import curl_request, errors_of
from dgtest.gateway import gateway_config
from dgtest.images import (ACCEPT_ALL, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST,
                           SCHEMA1, SCHEMA1_SIGNED, make_image, make_index, sha256_digest,
                           write_oci_layout)
from dgtest.ports import free_port
from dgtest.proc import run

# key -> backend prefix; all on one schema1-enabled backend.
REPOS = {
    "blocking": {"backend": "s1", "type": "local", "name_prefix": "blk/"},
    "open": {"backend": "s1", "type": "local", "name_prefix": "opn/",
             "block_schema1_push": False},
    # Three keys over one namespace (pulls/): an overlap the config has to allow.
    "hub": {"backend": "s1", "type": "remote", "name_prefix": "pulls/", "allow_overlap": True},
    "hub-legacy": {"backend": "s1", "type": "remote", "name_prefix": "pulls/",
                   "block_schema1_pull": False},
    "local-pulls": {"backend": "s1", "type": "local", "name_prefix": "pulls/",
                    "allow_overlap": True},
}
PREFIX = {k: r["name_prefix"] for k, r in REPOS.items()}
SCHEMA1_TYPES = (SCHEMA1, SCHEMA1_SIGNED)


class Env:
    def __init__(self, gw, reg, client, tmp):
        self.gw, self.reg, self.client, self.tmp = gw, reg, client, tmp
        self.backend = V2(reg.url)
        self.api = gw.api()
        self.port = gw.port("path")
        self.hostport = f"127.0.0.1:{self.port}"

    def url(self, key, name, tail):
        return f"https://{self.hostport}/v2/{key}/{name}/{tail}"

    def ref(self, key, name, tag):
        return f"docker://{self.hostport}/{key}/{name}:{tag}"

    def curl(self, method, url, **kw):
        return curl_request(self.client, method, url, self.tmp / "curl", **kw)

    def backend_manifest(self, key, name, ref, accept=ACCEPT_ALL):
        return self.backend.manifest(PREFIX[key] + name, ref, accept=accept)

    def backend_manifest_puts(self, key, name):
        """Manifest PUT lines for this repository in the backend's own log."""
        pat = re.compile(rf'"PUT /v2/{re.escape(PREFIX[key] + name)}/manifests/[^ ]* HTTP')
        return [l for l in self.reg.log_text().splitlines() if pat.search(l)]

    def push_schema1_direct(self, backend_name, tag, layout, layout_tag="v1"):
        """A real signed schema1 manifest (skopeo signs it) straight into the backend over
        plain http (setup only; this never talks to dockgate). Returns (bytes, digest).

        The digest of a signed schema1 manifest is the backend's Docker-Content-Digest
        (distribution hashes the payload without the JWS signatures), not sha256(bytes)."""
        self.client.skopeo("copy", "--retry-times", "0", "--dest-tls-verify=false",
                           "--format", "v2s1", f"oci:{layout}:{layout_tag}",
                           f"docker://{self.reg.hostport}/{backend_name}:{tag}", timeout=120)
        r = self.backend.manifest(backend_name, tag, accept=SCHEMA1_SIGNED)
        assert r.status_code == 200, (r.status_code, r.text)
        assert r.headers["Content-Type"] == SCHEMA1_SIGNED, r.headers
        body = r.content
        assert json.loads(body)["schemaVersion"] == 1 and b"signatures" in body
        digest = r.headers["Docker-Content-Digest"]
        assert self.backend.manifest(backend_name, digest).status_code == 200
        return body, digest


@pytest.fixture
def s1(registry_factory, dockgate, client_env, tmp_path):
    reg = registry_factory(schema1=True)
    cfg = gateway_config({"s1": reg.url}, REPOS, [{"method": "path"}])
    cfg["metrics"] = {"address": "off"}  # the default 127.0.0.1:9464 is shared
    gw = dockgate(cfg)
    (tmp_path / "curl").mkdir()
    return Env(gw, reg, client_env, tmp_path)


def layout(tmp_path, stem="layout", kind="oci"):
    img = make_image((700, 9000), kind=kind)
    return write_oci_layout(tmp_path / stem, {"v1": img}), img


def schema1_payload(data):
    """A signed schema1 manifest without its JWS signatures: distribution re-signs on
    every GET (the `protected` header carries a time), so only this part is stable."""
    doc = json.loads(data)
    doc.pop("signatures", None)
    return doc


def names_key(text, key):
    """The key appears quoted (\"key\" in JSON or skopeo's log line, or "key")."""
    return re.search(r'\\?["\']' + re.escape(key) + r'\\?["\']', text) is not None


def assert_refused_push(resp_or_stderr, key):
    text = resp_or_stderr if isinstance(resp_or_stderr, str) else resp_or_stderr.text
    assert "blocks pushing" in text, text
    assert names_key(text, key), f"repository key {key!r} not named:\n{text}"
    assert "--format v2s2" in text, text


def assert_absent(env, key, name, ref):
    r = env.backend_manifest(key, name, ref)
    assert r.status_code == 404, f"backend has {PREFIX[key]}{name}@{ref}: {r.status_code} {r.text[:300]}"


# push ---------------------------------------------------------------------------------------
def test_v2s1_push_refused_by_blocking_repo_allowed_when_unblocked(s1, tmp_path, unique):
    lay, _ = layout(tmp_path)
    name = unique("s1push")
    p = s1.client.skopeo_copy(f"oci:{lay}:v1", s1.ref("blocking", name, "s1"),
                              "--format", "v2s1", check=False)
    assert p.returncode != 0, p.stdout
    assert_refused_push(p.stderr, "blocking")
    assert_absent(s1, "blocking", name, "s1")
    tags = s1.backend.tags(PREFIX["blocking"] + name)
    assert tags.status_code == 404 or "s1" not in (tags.json().get("tags") or []), tags.text
    assert s1.backend_manifest_puts("blocking", name) == [], "the refused PUT reached the backend"

    df = tmp_path / "open.digest"
    s1.client.skopeo_copy(f"oci:{lay}:v1", s1.ref("open", name, "s1"), "--format", "v2s1",
                          digestfile=df)
    r = s1.backend_manifest("open", name, "s1")
    assert r.status_code == 200 and r.headers["Content-Type"] in SCHEMA1_TYPES, r.headers
    assert json.loads(r.content)["schemaVersion"] == 1
    assert s1.backend_manifest_puts("open", name), "backend log shows no manifest PUT"


def test_schema2_oci_and_lists_pass_a_blocking_repo(s1, tmp_path, unique):
    key, name = "blocking", unique("s2ok")
    bname = PREFIX[key] + name
    lay, img = layout(tmp_path)
    # skopeo: Docker schema 2 and OCI.
    df = tmp_path / "v2s2.digest"
    s1.client.skopeo_copy(f"oci:{lay}:v1", s1.ref(key, name, "v2s2"), "--format", "v2s2",
                          digestfile=df)
    r = s1.backend.manifest(bname, "v2s2")
    assert r.status_code == 200 and r.headers["Content-Type"] == DOCKER_MANIFEST
    assert sha256_digest(r.content) == df.read_text().strip()
    df = tmp_path / "oci.digest"
    s1.client.skopeo_copy(f"oci:{lay}:v1", s1.ref(key, name, "oci"), "--format", "oci",
                          digestfile=df)
    assert df.read_text().strip() == img.digest
    assert s1.backend.manifest_digest(bname, "oci") == img.digest

    # A Docker manifest list and an OCI index: children by digest, the list by curl.
    for kind, list_mt, tag in (("docker", DOCKER_LIST, "dlist"), ("oci", OCI_INDEX, "oindex")):
        children = [make_image((300,), kind=kind, arch=a) for a in ("amd64", "arm64")]
        for child in children:
            s1.api.push_image(f"{key}/{name}", child.digest, child)
        body, mt = make_index(children, kind=kind)
        assert mt == list_mt
        f = tmp_path / f"{tag}.json"
        f.write_bytes(body)
        resp = s1.curl("PUT", s1.url(key, name, f"manifests/{tag}"), data_file=f,
                       headers={"Content-Type": mt})
        assert resp.status == 201, resp
        assert resp.headers.get("docker-content-digest") == sha256_digest(body), resp
        back = s1.backend.manifest(bname, tag)
        assert back.status_code == 200 and back.content == body, (back.status_code, back.headers)
        assert back.headers["Content-Type"] == mt


def test_large_manifest_stored_intact_and_oversize_gets_413(s1, tmp_path, unique):
    key, name = "blocking", unique("big")
    bname = PREFIX[key] + name
    img = make_image((500,), kind="oci")
    for blob in img.blobs:
        s1.api.push_blob(f"{key}/{name}", blob.data)

    def manifest_of_size(size):
        base = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": img.config.descriptor(),
                "layers": [l.descriptor() for l in img.layers],
                "annotations": {"org.dockgate.test.pad": ""}}
        pad = size - len(json.dumps(base, indent=2).encode())
        base["annotations"]["org.dockgate.test.pad"] = "p" * pad
        data = json.dumps(base, indent=2).encode()
        assert len(data) == size
        return data

    # ~1 MiB: well above pingora's 64 KiB replay buffer, below the 4 MiB limit.
    big = manifest_of_size((1 << 20) + 12345)
    f = tmp_path / "big.json"
    f.write_bytes(big)
    resp = s1.curl("PUT", s1.url(key, name, "manifests/big"), data_file=f,
                   headers={"Content-Type": OCI_MANIFEST})
    assert resp.status == 201, resp
    digest = sha256_digest(big)
    assert resp.headers.get("docker-content-digest") == digest, resp
    back = s1.backend.manifest(bname, "big", accept=OCI_MANIFEST)
    assert back.status_code == 200, back.text[:300]
    assert len(back.content) == len(big) and sha256_digest(back.content) == digest
    assert back.headers.get("Docker-Content-Digest") == digest
    through = s1.api.manifest(f"{key}/{name}", digest, accept=OCI_MANIFEST)
    assert through.status_code == 200 and sha256_digest(through.content) == digest

    # > 4 MiB: 413 SIZE_INVALID, with a declared length and chunked. HTTP/1.1 because
    # curl 7.88 over h2 drops an early complete response followed by RST_STREAM(NO_ERROR)
    # (RFC 9113 8.1 allows the server exactly that) and exits 92 without a status.
    huge = manifest_of_size((4 << 20) + 4096)
    f = tmp_path / "huge.json"
    f.write_bytes(huge)
    for tag, extra, hdrs in (
            ("huge", ("--http1.1",), {}),
            ("huge-chunked", ("--http1.1",), {"Transfer-Encoding": "chunked"})):
        resp = s1.curl("PUT", s1.url(key, name, f"manifests/{tag}"), data_file=f,
                       headers={"Content-Type": OCI_MANIFEST, **hdrs}, extra=extra)
        assert resp.status == 413, resp
        if resp.body:
            assert [e["code"] for e in errors_of(resp)] == ["SIZE_INVALID"], resp
        assert_absent(s1, key, name, tag)
    assert_absent(s1, key, name, sha256_digest(huge))
    assert s1.gw.running


def test_content_type_sniffing(s1, tmp_path, unique):
    name = unique("sniff")
    lay, _ = layout(tmp_path)
    # A real signed schema1 manifest, stored in the open repo's backend namespace.
    body, digest = s1.push_schema1_direct(PREFIX["open"] + name, "orig", lay)
    manifest = schema1_payload(body)
    f = tmp_path / "schema1.json"
    f.write_bytes(body)
    # Its blobs also in the blocking repo's namespace, so the backend could accept it there.
    for blob_sum in {l["blobSum"] for l in manifest["fsLayers"]}:
        data = s1.backend.blob(PREFIX["open"] + name, blob_sum)
        assert data.status_code == 200
        s1.backend.push_blob(PREFIX["blocking"] + name, data.content)

    def put(key, tag, ct):
        # {"Content-Type": None} makes curl send no Content-Type at all.
        return s1.curl("PUT", s1.url(key, name, f"manifests/{tag}"), data_file=f,
                       headers={"Content-Type": ct})

    cases = [  # (key, tag, Content-Type sent, status, code)
        ("blocking", "no-ct", None, 403, "DENIED"),
        ("blocking", "json-ct", "application/json", 403, "DENIED"),
        ("blocking", "s2-ct", DOCKER_MANIFEST, 400, "MANIFEST_INVALID"),
        ("blocking", "oci-ct", OCI_MANIFEST, 400, "MANIFEST_INVALID"),
        ("open", "s2-ct", DOCKER_MANIFEST, 400, "MANIFEST_INVALID"),
        ("open", "no-ct", None, 201, None),
        ("open", "json-ct", "application/json", 201, None),
    ]
    failures = []
    for key, tag, ct, status, code in cases:
        resp = put(key, tag, ct)
        codes = [e.get("code") for e in errors_of(resp)]
        if resp.status != status or (code and codes != [code]):
            failures.append(f"{key}:{tag} Content-Type={ct!r}: want {status} {code}, got {resp!r}")
            continue
        if code == "DENIED":
            assert_refused_push(resp, key)
        if status == 201:
            assert resp.headers.get("docker-content-digest") == digest, resp
            back = s1.backend_manifest(key, name, tag, accept=SCHEMA1_SIGNED)
            if (back.status_code != 200 or schema1_payload(back.content) != manifest
                    or back.headers.get("Docker-Content-Digest") != digest):
                failures.append(f"{key}:{tag}: backend has {back.status_code} {back.text[:200]}")
        else:
            r = s1.backend_manifest(key, name, tag)
            if r.status_code != 404:
                failures.append(f"{key}:{tag}: refused but the backend has it ({r.status_code})")
    assert not failures, "\n".join(failures)
    assert_absent(s1, "blocking", name, digest)
    assert s1.backend_manifest_puts("blocking", name) == []

    # Control: the backend itself takes the very same request, so dockgate refused it.
    r = s1.backend.request("PUT", f"/v2/{PREFIX['blocking'] + name}/manifests/control",
                           data=body, headers={"Content-Type": ""})
    assert r.status_code == 201, (r.status_code, r.text)


# pull ---------------------------------------------------------------------------------------
def test_schema1_pull_refused_by_remote_repo_and_served_when_allowed(s1, tmp_path, unique):
    name = unique("s1pull")
    lay, img = layout(tmp_path)
    body, s1_digest = s1.push_schema1_direct(PREFIX["hub"] + name, "s1", lay)
    s1.client.skopeo("copy", "--retry-times", "0", "--dest-tls-verify=false", "--format",
                     "v2s2", f"oci:{lay}:v1",
                     f"docker://{s1.reg.hostport}/{PREFIX['hub'] + name}:s2", timeout=120)

    # hub: type remote, block_schema1_pull by default.
    for ref in ("s1", s1_digest):
        for accept in (ACCEPT_ALL, SCHEMA1_SIGNED):
            r = s1.curl("GET", s1.url("hub", name, f"manifests/{ref}"),
                        headers={"Accept": accept})
            assert r.status == 403, (ref, accept, r)
            assert [e["code"] for e in errors_of(r)] == ["DENIED"], r
            assert "blocks pulling" in r.text and names_key(r.text, "hub"), r
            h = s1.curl("HEAD", s1.url("hub", name, f"manifests/{ref}"),
                        headers={"Accept": accept})
            assert h.status == 403, (ref, accept, h)
    p = s1.client.skopeo("inspect", "--raw", "--retry-times", "0", "--cert-dir",
                         s1.client.cert_dir, s1.ref("hub", name, "s1"), check=False)
    assert p.returncode != 0 and "blocks pulling" in p.stderr, p.stderr
    p = s1.client.skopeo_copy(s1.ref("hub", name, "s1"), f"dir:{tmp_path / 'hub-pull'}",
                              check=False)
    assert p.returncode != 0 and "blocks pulling" in p.stderr, p.stderr
    # The schema 2 tag of the same image passes.
    r = s1.api.manifest(f"hub/{name}", "s2", accept=DOCKER_MANIFEST)
    assert r.status_code == 200 and r.headers["Content-Type"] == DOCKER_MANIFEST

    # hub-legacy (block_schema1_pull = false) and a local repo (default false) serve it.
    for key in ("hub-legacy", "local-pulls"):
        r = s1.curl("GET", s1.url(key, name, "manifests/s1"), headers={"Accept": ACCEPT_ALL})
        assert r.status == 200 and schema1_payload(r.body) == schema1_payload(body), (key, r)
        assert r.headers.get("docker-content-digest") == s1_digest, r
        assert r.headers.get("content-type") in SCHEMA1_TYPES, r
        h = s1.curl("HEAD", s1.url(key, name, "manifests/s1"), headers={"Accept": ACCEPT_ALL})
        assert h.status == 200 and h.headers.get("docker-content-digest") == s1_digest, h
    raw = s1.client.skopeo_inspect_raw(s1.ref("hub-legacy", name, "s1"))
    assert schema1_payload(raw) == schema1_payload(body)
    out = tmp_path / "legacy-pull"
    s1.client.skopeo_copy(s1.ref("hub-legacy", name, "s1"), f"dir:{out}")
    assert json.loads((out / "manifest.json").read_bytes())["schemaVersion"] == 1
    for layer in img.layers:
        assert (out / layer.digest.split(":", 1)[1]).read_bytes() == layer.data


# runtime switch (Artifactory-compatible admin API) ------------------------------------------
ADMIN_CONFIG = """\
# dockgate admin API test configuration.
# keep-me: this comment must survive POST /api/repositories rewriting the file.

[server]
threads = 2
grace_period_seconds = 1
graceful_shutdown_timeout_seconds = 1
runtime_dir = "{runtime}"

[tls]
cert = "server.crt"
key = "server.key"

[metrics]
address = "off"

[auth]
htpasswd = "users.htpasswd"
admins = ["admin"]

[[listen]]
address = "127.0.0.1:{port}"
method = "path"

[backends.s1]
url = "{backend}"

# The repository the test switches at runtime.
[repositories.locked]  # keep-me-too: a trailing comment
backend = "s1"
type = "local"
name_prefix = "lk/"
anonymous_read = true
read = ["reader"]
write = ["writer"]

[repositories.mirror]
backend = "s1"
type = "remote"
name_prefix = "pulls/"
anonymous_read = true
"""
USERS = {"admin": "admin-pw", "writer": "writer-pw", "reader": "reader-pw"}


def test_admin_api_switches_block_pushing_schema1_at_runtime(registry_factory, dockgate, pki,
                                                             client_env, tmp_path, unique):
    reg = registry_factory(schema1=True)
    port = free_port()
    gw = dockgate(ADMIN_CONFIG.format(runtime="run", port=port, backend=reg.url), start=False)
    pw = gw.dir / "users.htpasswd"
    for i, (user, password) in enumerate(USERS.items()):
        run(["htpasswd", "-Bbc" if i == 0 else "-Bb", pw, user, password])
    gw.start()
    base = f"https://127.0.0.1:{port}"
    s = requests.Session()
    s.verify = str(pki.ca_crt)
    s.trust_env = False
    api = f"{base}/api/repositories"
    admin = ("admin", USERS["admin"])
    writer = ("writer", USERS["writer"])

    r = s.get(f"{api}/locked", auth=admin, timeout=10)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    info = r.json()
    assert info["key"] == "locked" and info["rclass"] == "local", info
    assert info["blockPushingSchema1"] is True, info
    r = s.get(f"{api}/mirror", auth=admin, timeout=10)
    assert r.status_code == 200 and r.json()["rclass"] == "remote", r.text[:500]

    lay, _ = layout(tmp_path)
    name = unique("switch")
    ref = f"docker://127.0.0.1:{port}/locked/{name}"
    creds = ("--dest-creds", f"writer:{USERS['writer']}")
    p = client_env.skopeo_copy(f"oci:{lay}:v1", f"{ref}:before", "--format", "v2s1", *creds,
                               check=False)
    assert p.returncode != 0 and "blocks pushing" in p.stderr, p.stderr

    # Refused POSTs leave the config file byte-identical.
    original = gw.config_path.read_bytes()
    off = json.dumps({"blockPushingSchema1": False})
    refused = [
        ("no credentials", f"{api}/locked", None, off, 401),
        ("non-admin", f"{api}/locked", writer, off, 403),
        ("bad JSON", f"{api}/locked", admin, '{"blockPushingSchema1": fals', 400),
        ("unknown key", f"{api}/no-such-repo", admin, off, 404),
    ]
    for what, url, auth, data, status in refused:
        r = s.post(url, auth=auth, data=data, headers={"Content-Type": "application/json"},
                   timeout=10)
        assert r.status_code == status, (what, r.status_code, r.text[:500])
        assert gw.config_path.read_bytes() == original, f"config changed by a refused POST ({what})"
    assert s.get(f"{api}/locked", auth=admin, timeout=10).json()["blockPushingSchema1"] is True

    r = s.post(f"{api}/locked", auth=admin, data=off,
               headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    assert s.get(f"{api}/locked", auth=admin, timeout=10).json()["blockPushingSchema1"] is False
    # Applies at once: the same push now lands.
    client_env.skopeo_copy(f"oci:{lay}:v1", f"{ref}:after", "--format", "v2s1", *creds)
    r = V2(reg.url).manifest(f"lk/{name}", "after")
    assert r.status_code == 200 and r.headers["Content-Type"] in SCHEMA1_TYPES

    # The file was rewritten, comments kept, and it says what the API said.
    text = gw.config_path.read_text()
    assert text != original.decode()
    for comment in ("# keep-me: this comment must survive",
                    "# The repository the test switches at runtime.",
                    "# keep-me-too: a trailing comment"):
        assert comment in text, f"comment lost: {comment!r}\n{text}"
    parsed = tomllib.loads(text)
    locked = parsed["repositories"]["locked"]
    assert locked["block_schema1_push"] is False, text
    assert locked["write"] == ["writer"] and locked["name_prefix"] == "lk/", text
    assert "block_schema1_push" not in parsed["repositories"]["mirror"], text

    # ... and the setting holds after a restart.
    old_pid = gw.pid
    gw.stop(timeout=5)
    gw.start()
    assert gw.pid != old_pid
    assert s.get(f"{api}/locked", auth=admin, timeout=10).json()["blockPushingSchema1"] is False
    client_env.skopeo_copy(f"oci:{lay}:v1", f"{ref}:restarted", "--format", "v2s1", *creds)
    assert V2(reg.url).manifest(f"lk/{name}", "restarted").status_code == 200
