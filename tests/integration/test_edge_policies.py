"""Edge policies against the real registry with real clients: immutable tags (skopeo,
podman), read-only with an upload draining through the switch, network allowlists (clients
bound to 127.0.0.2 vs 127.0.0.1, and HAProxy sending PROXY v2 as a trusted proxy), rate
limits (429 + Retry-After, then skopeo's retry). Every refusal is checked against the
backend's own access log: a refused request never reaches it."""
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest
import requests

from dgtest import images
from dgtest.client import V2, error_codes
from dgtest.ops import auth_gateway_config, write_htpasswd
from dgtest.ports import free_port


def backend_requests(reg, method, path_part, since=0):
    """Lines of the backend's access log for `method` on a URI containing `path_part`."""
    text = reg.log_path.read_text(errors="replace")[since:]
    return [l for l in text.splitlines()
            if f"http.request.method={method} " in l and path_part in l
            and "http.request.uri=" in l]


def log_mark(reg):
    return len(reg.log_path.read_text(errors="replace"))


def gateway(dockgate, reg, repos, policy=None, users=None, server=None):
    cfg = auth_gateway_config(reg.url, repos, auth={} if users else None, server=server)
    if policy:
        cfg["policy"] = policy
    gw = dockgate(cfg, start=False)
    if users:
        write_htpasswd(gw.dir / "users.htpasswd", users)
    return gw.start()


def layout(tmp_path, name, img, tag):
    return images.write_oci_layout(tmp_path / name, {tag: img})


# Immutable tags ------------------------------------------------------------------------
def test_immutable_tag_keeps_its_digest(dockgate, registry_factory, client_env, tmp_path,
                                        unique):
    reg = registry_factory()
    gw = gateway(dockgate, reg, {"rel": {"immutable_tags": ["v*", "release-*"]}})
    name = unique("app")
    ref = f"docker://127.0.0.1:{gw.port('path')}/rel/{name}"
    first, second = images.make_image((900,)), images.make_image((901,))
    client_env.skopeo_copy(f"oci:{layout(tmp_path, 'a', first, 'x')}:x", f"{ref}:v1.0")

    mark = log_mark(reg)
    p = client_env.skopeo_copy(f"oci:{layout(tmp_path, 'b', second, 'x')}:x", f"{ref}:v1.0",
                               check=False)
    assert p.returncode != 0, p.stdout
    assert "immutable" in p.stderr and first.digest in p.stderr, p.stderr
    assert not backend_requests(reg, "PUT", "/manifests/v1.0", mark), \
        "the refused manifest PUT reached the backend"
    assert V2(reg.url).manifest_digest(name, "v1.0") == first.digest

    # The same image again: an idempotent re-push.
    client_env.skopeo_copy(f"oci:{layout(tmp_path, 'c', first, 'x')}:x", f"{ref}:v1.0")
    # podman: an image pulled from the gateway, pushed over another protected tag.
    client_env.skopeo_copy(f"oci:{layout(tmp_path, 'd', second, 'x')}:x", f"{ref}:release-2")
    host = f"127.0.0.1:{gw.port('path')}"
    conf = tmp_path / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{tmp_path}/pg"\n'
                    f'runroot = "{tmp_path}/pr"\n')
    penv = dict(client_env.env, CONTAINERS_STORAGE_CONF=str(conf))

    def podman(*args):
        return subprocess.run(["podman", *args], env=penv, capture_output=True, text=True,
                              timeout=180)

    p = podman("pull", "--cert-dir", str(client_env.cert_dir), f"{host}/rel/{name}:v1.0")
    assert p.returncode == 0, p.stderr
    mark = log_mark(reg)
    p = podman("push", "--cert-dir", str(client_env.cert_dir), f"{host}/rel/{name}:v1.0",
               f"{host}/rel/{name}:release-2")
    assert p.returncode != 0 and "immutable" in p.stderr, p.stderr
    assert not backend_requests(reg, "PUT", "/manifests/release-2", mark)
    assert V2(reg.url).manifest_digest(name, "release-2") == second.digest
    assert V2(reg.url).manifest_digest(name, "v1.0") == first.digest

    # Other tags move freely; a protected tag cannot be deleted.
    client_env.skopeo_copy(f"oci:{layout(tmp_path, 'e', second, 'x')}:x", f"{ref}:latest")
    api = gw.api()
    r = api.request("DELETE", f"/v2/rel/{name}/manifests/v1.0")
    assert r.status_code == 403 and error_codes(r) == ["DENIED"], r.text
    assert "immutable" in r.json()["errors"][0]["message"]


# Read-only -----------------------------------------------------------------------------
def test_read_only_drains_open_uploads(dockgate, registry_factory, client_env, tmp_path,
                                       unique):
    reg = registry_factory()
    users = {"admin": "pw-admin-1", "dev": "pw-dev-1"}
    gw = gateway(dockgate, reg, {"ro": {"write": ["dev"], "admin": ["admin"]}},
                 policy={"drain_seconds": 20}, users=users)
    dev = ("dev", users["dev"])
    api = V2(gw.url, verify=str(gw.pki.ca_crt), auth=dev)
    name = unique("app")
    kept = images.make_image((800,))
    api.push_image(f"ro/{name}", "kept", kept)

    # A ~30 MB upload is half sent when read-only is switched on.
    data = os.urandom(30 << 20)
    digest = images.sha256_digest(data)
    r = api.start_upload(f"ro/{name}")
    assert r.status_code == 202, r.text
    loc = requests.compat.urljoin(r.url, r.headers["Location"])
    r = api.request("PATCH", loc, data=data[:15 << 20],
                    headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 202, r.text
    loc = requests.compat.urljoin(r.url, r.headers["Location"])

    admin = V2(gw.url, verify=str(gw.pki.ca_crt), auth=("admin", users["admin"]))
    r = admin.request("POST", "/api/repositories/ro",
                      json={"readOnly": True, "readOnlyReason": "garbage collection until 02:00"})
    assert r.status_code == 200 and r.json()["readOnly"] is True, r.text

    mark = log_mark(reg)
    fresh = unique("new")
    p = client_env.skopeo_copy(
        f"oci:{layout(tmp_path, 'n', images.make_image((700,)), 'x')}:x",
        f"docker://127.0.0.1:{gw.port('path')}/ro/{fresh}:1", "--dest-creds", "dev:pw-dev-1",
        check=False)
    assert p.returncode != 0 and "garbage collection until 02:00" in p.stderr, p.stderr
    r = api.start_upload(f"ro/{fresh}")
    assert r.status_code == 405 and error_codes(r) == ["UNSUPPORTED"], r.text
    assert "repository ro is read-only: garbage collection until 02:00" in r.text
    assert not backend_requests(reg, "POST", fresh, mark), "a refused upload reached the backend"
    # Pulls go on.
    assert api.manifest_digest(f"ro/{name}", "kept") == kept.digest

    # The upload open before the switch finishes, and its manifest lands.
    r = api.request("PATCH", loc, data=data[15 << 20:],
                    headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 202, r.text
    loc = requests.compat.urljoin(r.url, r.headers["Location"])
    sep = "&" if "?" in loc else "?"
    r = api.request("PUT", f"{loc}{sep}digest={digest}")
    assert r.status_code == 201, r.text
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": kept.config.descriptor(),
        "layers": [{"mediaType": "application/octet-stream", "digest": digest,
                    "size": len(data)}]}).encode()
    r = api.request("PUT", f"/v2/ro/{name}/manifests/drained", data=manifest,
                    headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 201, r.text
    assert V2(reg.url).manifest_digest(name, "drained") == images.sha256_digest(manifest)

    # Switched back: pushes work again.
    r = admin.request("POST", "/api/repositories/ro", json={"readOnly": False})
    assert r.status_code == 200 and r.json()["readOnly"] is False, r.text
    client_env.skopeo_copy(
        f"oci:{layout(tmp_path, 'm', images.make_image((600,)), 'x')}:x",
        f"docker://127.0.0.1:{gw.port('path')}/ro/{fresh}:1", "--dest-creds", "dev:pw-dev-1")


# Network allowlists --------------------------------------------------------------------
def _get_from(source, port, path, ca):
    ctx = ssl.create_default_context(cafile=ca)
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30,
                                    source_address=(source, 0))
    c.request("GET", path, headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def test_allowlists_by_client_address(dockgate, registry_factory, client_env, unique):
    reg = registry_factory()
    gw = gateway(dockgate, reg, {
        "inner": {"allow_networks": ["127.0.0.1/32"], "name_prefix": "inner/"},
        "shared": {"push_networks": ["127.0.0.1"], "name_prefix": "shared/"},
    })
    name = unique("app")
    img = images.make_image((500,))
    V2(reg.url).push_image(f"inner/{name}", "1", img)
    V2(reg.url).push_image(f"shared/{name}", "1", img)
    port, ca = gw.port("path"), str(gw.pki.ca_crt)
    mark = log_mark(reg)
    status, _ = _get_from("127.0.0.1", port, f"/v2/inner/{name}/manifests/1", ca)
    assert status == 200
    status, body = _get_from("127.0.0.2", port, f"/v2/inner/{name}/tags/list", ca)
    assert status == 403 and b"127.0.0.2" in body and b"allow_networks" in body, body
    assert not backend_requests(reg, "GET", f"/{name}/tags/list", mark)
    # curl bound to 127.0.0.2: pulls from `shared`, but no push.
    base = f"https://127.0.0.1:{port}"
    p = client_env.curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "--interface",
                        "127.0.0.2", "--cacert", ca, f"{base}/v2/shared/{name}/manifests/1",
                        "-H", "Accept: application/vnd.oci.image.manifest.v1+json")
    assert p.stdout.strip() == "200", p.stdout
    p = client_env.curl("-s", "-w", "\n%{http_code}", "--interface", "127.0.0.2", "--cacert",
                        ca, "-X", "POST", f"{base}/v2/shared/{name}/blobs/uploads/")
    assert p.stdout.strip().endswith("403") and "push_networks" in p.stdout, p.stdout
    assert not backend_requests(reg, "POST", f"/{name}/blobs/uploads", mark)
    p = client_env.curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "--interface",
                        "127.0.0.1", "--cacert", ca, "-X", "POST",
                        f"{base}/v2/shared/{name}/blobs/uploads/")
    assert p.stdout.strip() == "202", p.stdout


def _haproxy(tmp_path, listen_port, backend_port):
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(f"""
global
    log stderr format raw local0
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend in
    bind 127.0.0.2:{listen_port}
    default_backend gw
backend gw
    server dockgate 127.0.0.1:{backend_port} send-proxy-v2
""")
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.2", listen_port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("haproxy did not start: " + proc.stderr.read().decode(errors="replace"))


@pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy not installed")
def test_allowlist_behind_haproxy_proxy_v2(dockgate, registry_factory, tmp_path, unique):
    reg = registry_factory()
    gw = gateway(dockgate, reg, {"inner": {"allow_networks": ["127.0.0.3"]}},
                 policy={"trusted_proxies": ["127.0.0.1/32"]})
    name = unique("app")
    V2(reg.url).push_image(name, "1", images.make_image((500,)))
    hport = free_port()
    proc = _haproxy(tmp_path, hport, gw.port("path"))
    try:
        ca = str(gw.pki.ca_crt)
        ctx = ssl.create_default_context(cafile=ca)
        ctx.check_hostname = False  # the cert names 127.0.0.1, haproxy listens on .2

        def get(source):
            c = http.client.HTTPSConnection("127.0.0.2", hport, context=ctx, timeout=30,
                                            source_address=(source, 0))
            c.request("GET", f"/v2/inner/{name}/manifests/1",
                      headers={"Host": f"127.0.0.1:{gw.port('path')}",
                               "Accept": "application/vnd.oci.image.manifest.v1+json"})
            r = c.getresponse()
            body = r.read()
            c.close()
            return r.status, body

        # The client address is the one HAProxy saw, not HAProxy's own (127.0.0.1).
        assert get("127.0.0.3")[0] == 200
        status, body = get("127.0.0.4")
        assert status == 403 and b"127.0.0.4" in body, body
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # An untrusted peer's PROXY header is not believed: the connection is just TLS-broken.
    ctx = ssl.create_default_context(cafile=str(gw.pki.ca_crt))
    s = socket.create_connection(("127.0.0.1", gw.port("path")), source_address=("127.0.0.5", 0))
    s.sendall(b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11, 0, 12]) + bytes([127, 0, 0, 3]) * 2
              + b"\x00\x50\x00\x50")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        ctx.wrap_socket(s, server_hostname="127.0.0.1").do_handshake()


# Rate limits ---------------------------------------------------------------------------
def test_rate_limit_answers_429_and_skopeo_retries(dockgate, registry_factory, client_env,
                                                   tmp_path, unique):
    reg = registry_factory()
    gw = gateway(dockgate, reg, {"rl": {"rate_limit": {"requests_per_second": 2, "burst": 4}}})
    name = unique("app")
    img = images.make_image((500,))
    V2(reg.url).push_image(name, "1", img)
    api = gw.api()
    mark = log_mark(reg)
    answers = [api.get(f"/v2/rl/{name}/tags/list") for _ in range(12)]
    limited = [r for r in answers if r.status_code == 429]
    assert limited, [r.status_code for r in answers]
    r = limited[0]
    assert error_codes(r) == ["TOOMANYREQUESTS"] and int(r.headers["Retry-After"]) >= 1, r.text
    passed = len(answers) - len(limited)
    seen = backend_requests(reg, "GET", f"/{name}/tags/list", mark)
    assert len(seen) == passed, (len(seen), passed)
    # skopeo, out of budget from the loop, retries after the 429 and gets the image.
    out = tmp_path / "out"
    p = client_env.skopeo("copy", "--retry-times", "5", "--src-cert-dir", client_env.cert_dir,
                          f"docker://127.0.0.1:{gw.port('path')}/rl/{name}:1", f"dir:{out}",
                          timeout=120)
    assert (out / "manifest.json").exists(), p.stderr
