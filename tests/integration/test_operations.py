"""Operations (issue 6): Prometheus metrics scraped by a real Prometheus, promtool, bounded
series under random paths, the systemd unit, SIGHUP reloads (during a 500 MiB pull, and
with broken configs), SIGTERM draining an in-flight upload, and the JSON access log.

Every gateway here gets its own metrics port (or metrics off): the default 127.0.0.1:9464
would collide between gateways.
"""
import copy
import os
import random
import re
import secrets
import shutil
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from dgtest import images
from dgtest.client import V2, error_codes
from dgtest.extra import wait_for
from dgtest.gateway import REPO_ROOT, gateway_config
from dgtest.ops import (SIGHUP, SIGTERM, Prometheus, access_log_lines, auth_gateway_config,
                        find_secrets, gateway_logs, metric, parse_metrics, push_blob_file,
                        rewrite_config, samples_of, scrape, send, series_without_buckets,
                        sha256_file, wait_exit, write_htpasswd)
from dgtest.ports import free_port, port_open
from dgtest.proc import run

ACCESS_FIELDS = ["time", "client", "user", "repository", "image", "operation", "method",
                 "status", "bytes_in", "bytes_out", "duration_ms", "backend", "backend_status"]


def ops_config(backend_url, repos, metrics_port=None, log=None, server=None):
    """gateway_config with one backend "main", a path listener, and metrics on its own port
    (metrics_port=None: off)."""
    cfg = gateway_config({"main": backend_url},
                         {k: {"backend": "main", "type": "local", **r} for k, r in repos.items()},
                         [{"method": "path"}], server=server)
    cfg["metrics"] = {"address": f"127.0.0.1:{metrics_port}" if metrics_port else "off"}
    if log:
        cfg["log"] = dict(log)
    return cfg


def push(client_env, tmp_path, ref, img, *extra):
    layout = images.write_oci_layout(tmp_path / f"layout-{secrets.token_hex(4)}", {"t": img})
    client_env.skopeo_copy(f"oci:{layout}:t", ref, *extra)


def pull(client_env, tmp_path, ref, *extra):
    out = tmp_path / f"pull-{secrets.token_hex(4)}"
    client_env.skopeo_copy(ref, f"dir:{out}", *extra)
    return images.sha256_digest((out / "manifest.json").read_bytes())


# Metrics ---------------------------------------------------------------------------------------
def test_prometheus_scrapes_per_repository_pushes_and_pulls(dockgate, registry, client_env,
                                                            tmp_path, unique):
    mport = free_port()
    stem = unique("prom")
    cfg = ops_config(registry.url, {"ops-a": {"name_prefix": f"{stem}-a/"},
                                    "ops-b": {"name_prefix": f"{stem}-b/"}},
                     metrics_port=mport, log={"format": "json", "access_log": "access.log"})
    gw = dockgate(cfg)
    prom = Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{mport}"]).start()
    try:
        wait_for(lambda: prom.targets_up(), timeout=30, what="prometheus scrapes dockgate")
        host = f"127.0.0.1:{gw.port('path')}"
        a1, a2, b1 = (images.make_image((1000,)) for _ in range(3))
        push(client_env, tmp_path, f"docker://{host}/ops-a/app:1", a1)
        push(client_env, tmp_path, f"docker://{host}/ops-a/app:2", a2)
        push(client_env, tmp_path, f"docker://{host}/ops-b/app:1", b1)
        assert pull(client_env, tmp_path, f"docker://{host}/ops-a/app:1") == a1.digest
        assert pull(client_env, tmp_path, f"docker://{host}/ops-a/app:2") == a2.digest
        assert pull(client_env, tmp_path, f"docker://{host}/ops-a/app:1") == a1.digest
        assert pull(client_env, tmp_path, f"docker://{host}/ops-b/app:1") == b1.digest

        # What skopeo did, from the access log: successful manifest GETs and PUTs.
        lines = wait_for(lambda: access_log_lines(gw.dir / "access.log"), what="access log")
        def count(op, status, repo):
            return sum(1 for l in access_log_lines(gw.dir / "access.log")
                       if l.get("operation") == op and l.get("status") == status
                       and l.get("repository") == repo)
        expected_pushes = {"ops-a": 2, "ops-b": 1}
        for repo, n in expected_pushes.items():
            assert count("manifest_put", 201, repo) == n, lines
        expected_pulls = {r: count("manifest_get", 200, r) for r in ("ops-a", "ops-b")}
        assert expected_pulls["ops-a"] >= 3 and expected_pulls["ops-b"] >= 1, expected_pulls
        print(f"skopeo: pushes {expected_pushes}, successful manifest GETs {expected_pulls}")

        own = samples_of(mport)
        for repo in ("ops-a", "ops-b"):
            assert metric(own, "dockgate_image_pushes_total", repository=repo) == \
                expected_pushes[repo], repo
            assert metric(own, "dockgate_image_pulls_total", repository=repo) == \
                expected_pulls[repo], repo
            assert metric(own, "dockgate_requests_total", repository=repo,
                          operation="manifest_put", method="PUT", code="201") == \
                expected_pushes[repo]

        def prom_matches():
            pushes = prom.by_label("dockgate_image_pushes_total", "repository")
            pulls = prom.by_label("dockgate_image_pulls_total", "repository")
            got = ({r: pushes.get(r) for r in expected_pushes},
                   {r: pulls.get(r) for r in expected_pulls})
            want = ({r: float(n) for r, n in expected_pushes.items()},
                    {r: float(n) for r, n in expected_pulls.items()})
            return got == want or print("prometheus:", got, "want", want)
        wait_for(prom_matches, timeout=30, interval=0.5,
                 what="prometheus shows the pushes and pulls")
        # A PromQL aggregation over the scraped series agrees too.
        total = prom.query('sum(dockgate_image_pushes_total{repository=~"ops-.*"})')
        assert float(total[0]["value"][1]) == 3.0, total
        up = prom.query('dockgate_build_info')
        assert up and up[0]["value"][1] == "1", up
    finally:
        prom.stop()
        if os.environ.get("KEEP_PROM_LOG"):
            print(prom.log_text())


def test_promtool_check_metrics_is_clean(dockgate, registry, unique):
    mport = free_port()
    cfg = ops_config(registry.url, {"lint": {"name_prefix": unique("lint") + "/"}},
                     metrics_port=mport)
    gw = dockgate(cfg)
    api = gw.api()
    api.push_image("lint/app", "1", images.make_image((300,)))
    api.manifest("lint/app", "1")
    api.get("/v2/lint/missing/manifests/1")
    api.get("/nope")
    text = scrape(mport)
    for family in ("dockgate_requests_total", "dockgate_request_duration_seconds",
                   "dockgate_image_pulls_total", "dockgate_image_pushes_total",
                   "dockgate_received_bytes_total", "dockgate_sent_bytes_total",
                   "dockgate_backend_up", "dockgate_tls_certificate_expiry_timestamp_seconds",
                   "dockgate_open_connections", "dockgate_build_info", "process_"):
        assert family in text, family
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=60)
    out = (p.stdout + p.stderr).decode()
    assert p.returncode == 0 and not out.strip(), f"promtool: exit {p.returncode}\n{out}"


def _random_requests(session, base, known_key, n, rng):
    """n requests to paths that do not exist: random keys, random non-/v2 paths, random
    images under a known key, the realm and repository APIs with random names."""
    tokens = []
    for i in range(n):
        t = secrets.token_hex(5)
        tokens.append(t)
        kind = i % 8
        if kind == 0:
            method, path = "GET", f"/v2/{t}/img/manifests/{t}"
        elif kind == 1:
            method, path = "HEAD", f"/v2/{t}/blobs/sha256:{secrets.token_hex(32)}"
        elif kind == 2:
            method, path = "GET", f"/{t}/{secrets.token_hex(3)}"
        elif kind == 3:
            method, path = "POST", f"/v2/{t}/x/blobs/uploads/"
        elif kind == 4:
            method, path = "GET", f"/v2/{known_key}/{t}/manifests/latest"
        elif kind == 5:
            method, path = "GET", f"/api/repositories/{t}"
        elif kind == 6:
            method, path = "GET", f"/_dockgate/realm/{t}/token"
        else:
            method, path = rng.choice(["GET", "DELETE", "PATCH"]), f"/v3/{t}/{t}"
        r = session.request(method, base + path, timeout=30, allow_redirects=False)
        assert r.status_code >= 400, (method, path, r.status_code)
    return tokens


def test_random_paths_add_no_series(dockgate, registry, unique):
    mport = free_port()
    cfg = ops_config(registry.url, {"known": {"name_prefix": unique("card") + "/"}},
                     metrics_port=mport)
    gw = dockgate(cfg)
    s = requests.Session()
    s.verify = str(gw.pki.ca_crt)
    s.trust_env = False
    rng = random.Random(7)
    _random_requests(s, gw.url, "known", 40, rng)  # warm up: one series per kind of refusal
    before = samples_of(mport)
    tokens = _random_requests(s, gw.url, "known", 1000, rng)
    after_text = scrape(mport)
    after = parse_metrics(after_text)
    new = series_without_buckets(after) - series_without_buckets(before)
    print(f"series (buckets folded): {len(series_without_buckets(before))} -> "
          f"{len(series_without_buckets(after))}; samples {len(before)} -> {len(after)}; "
          f"new: {sorted(new)}")
    assert len(new) <= 5, sorted(new)
    assert len(after) - len(before) <= 60, (len(before), len(after))
    leaked = [t for t in tokens if t in after_text]
    assert not leaked, f"random path parts became label values: {leaked[:10]}"
    assert metric(after, "dockgate_requests_total", repository="_unknown") >= 500


# systemd -----------------------------------------------------------------------------------------
def test_systemd_unit_verifies_and_is_hardened(dockgate_binary, tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    unit = REPO_ROOT / "systemd" / "dockgate.service"
    text = unit.read_text()
    assert "/usr/local/bin/dockgate" in text
    copy_dir = tmp_path / "unit"
    copy_dir.mkdir()
    (copy_dir / "dockgate.service").write_text(
        text.replace("/usr/local/bin/dockgate", str(Path(dockgate_binary).resolve())))
    p = run(["systemd-analyze", "verify", copy_dir / "dockgate.service"], check=False,
            timeout=120)
    out = (p.stdout + p.stderr).strip()
    assert p.returncode == 0 and not out, f"systemd-analyze verify: exit {p.returncode}\n{out}"

    p = run(["systemd-analyze", "security", "--offline=true", unit], check=False, timeout=120)
    out = p.stdout + p.stderr
    m = re.search(r"Overall exposure level for dockgate\.service:\s*([0-9.]+)", out)
    assert m, out[-2000:]
    exposure = float(m.group(1))
    print(f"systemd-analyze security --offline=true: exposure {exposure}")
    assert exposure <= 2.0, out[-3000:]


# SIGHUP ------------------------------------------------------------------------------------------
BIG = 500 << 20


def test_sighup_adds_repository_during_500mib_pull(registry_factory, dockgate, client_env,
                                                   big_tmp, unique):
    reg = registry_factory()
    stem = unique("hup")
    cfg = ops_config(reg.url, {"base": {"name_prefix": f"{stem}-base/"}})
    gw = dockgate(cfg)
    pid = gw.pid
    backend = V2(reg.url)
    new_img = images.make_image((600,))
    backend.push_image(f"{stem}-new/app", "1", new_img)
    r = gw.api().manifest("new/app", "1")
    assert r.status_code == 404 and error_codes(r) == ["NAME_UNKNOWN"], (r.status_code, r.text)

    src = big_tmp / "big.bin"
    digest = images.random_file(src, BIG)
    push_blob_file(reg.url, f"{stem}-base/big", src, digest)
    src.unlink()
    out = big_tmp / "pulled.bin"
    curl = subprocess.Popen(
        ["curl", "--silent", "--show-error", "--fail", "--cacert", str(gw.pki.ca_crt),
         "--limit-rate", "50M", "-o", str(out),
         f"{gw.url}/v2/base/big/blobs/{digest}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: out.exists() and out.stat().st_size > (8 << 20), timeout=60,
                 what="the 500 MiB pull has started")
        assert curl.poll() is None, "the pull finished before the reload could overlap it"

        cfg2 = copy.deepcopy(gw.config)
        cfg2["repositories"]["new"] = {"backend": "main", "type": "local",
                                       "name_prefix": f"{stem}-new/"}
        rewrite_config(gw, cfg2)
        marks = gw.log_marks()
        send(gw, SIGHUP)
        wait_for(lambda: gw.api().manifest("new/app", "1").status_code == 200, timeout=20,
                 what="the new repository is routable after SIGHUP")
        in_flight = curl.poll() is None
        assert gw.api().manifest_digest("new/app", "1") == new_img.digest
        assert "reloaded" in gw.log_since(marks)
        stdout, stderr = curl.communicate(timeout=300)
    finally:
        if curl.poll() is None:
            curl.kill()
            curl.wait()
    assert curl.returncode == 0, stderr.decode()
    assert in_flight, "the pull was not in flight when the reload took effect"
    assert out.stat().st_size == BIG
    assert sha256_file(out) == digest
    assert gw.running and gw.pid == pid, "dockgate restarted instead of reloading"
    assert gw.api().manifest("base/nothing", "1").status_code == 404  # old key still routed


BREAKAGES = {
    "syntax_error": lambda cfg_text, stem: cfg_text + "\n[[listen]\naddress = \n",
    "unknown_backend": lambda cfg_text, stem: cfg_text + (
        f'\n[repositories.new]\nbackend = "nope"\ntype = "local"\nname_prefix = "{stem}-new/"\n'),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_sighup_with_broken_config_keeps_old_one(dockgate, registry, unique, breakage):
    stem = unique("broken")
    cfg = ops_config(registry.url, {"base": {"name_prefix": f"{stem}-base/"}})
    gw = dockgate(cfg)
    pid = gw.pid
    backend = V2(registry.url)
    img = images.make_image((400,))
    backend.push_image(f"{stem}-base/app", "1", img)
    backend.push_image(f"{stem}-new/app", "1", img)
    assert gw.api().manifest_digest("base/app", "1") == img.digest

    good_text = gw.config_text
    rewrite_config(gw, text=BREAKAGES[breakage](good_text, stem))
    marks = gw.log_marks()
    send(gw, SIGHUP)
    log = wait_for(lambda: (lambda t: t if "reload refused" in t else None)(
        gw.log_since(marks)), timeout=20, what="the refusal is logged")
    if breakage == "unknown_backend":
        assert "nope" in log, log
    # The old config keeps serving: same process, old key works, the new key is unknown.
    for _ in range(5):
        assert gw.api().manifest_digest("base/app", "1") == img.digest
    r = gw.api().manifest("new/app", "1")
    assert r.status_code == 404 and error_codes(r) == ["NAME_UNKNOWN"], (r.status_code, r.text)
    assert gw.running and gw.pid == pid

    # A good config after the refusal is taken.
    cfg2 = copy.deepcopy(gw.config)
    cfg2["repositories"]["new"] = {"backend": "main", "type": "local",
                                   "name_prefix": f"{stem}-new/"}
    rewrite_config(gw, cfg2)
    send(gw, SIGHUP)
    wait_for(lambda: gw.api().manifest("new/app", "1").status_code == 200, timeout=20,
             what="a good config after a refused one is loaded")
    assert gw.pid == pid


# SIGTERM -----------------------------------------------------------------------------------------
def test_sigterm_lets_inflight_chunked_upload_finish(dockgate, registry, unique):
    grace, shutdown_timeout = 20, 2
    stem = unique("term")
    cfg = ops_config(registry.url, {"up": {"name_prefix": f"{stem}/"}},
                     server={"grace_period_seconds": grace,
                             "graceful_shutdown_timeout_seconds": shutdown_timeout})
    gw = dockgate(cfg)
    port = gw.port("path")
    s = requests.Session()
    s.verify = str(gw.pki.ca_crt)
    s.trust_env = False
    r = s.post(f"{gw.url}/v2/up/app/blobs/uploads/", timeout=30)
    assert r.status_code == 202, r.text
    loc = urljoin(r.url, r.headers["Location"])

    chunks = [os.urandom(64 << 10) for _ in range(40)]  # 2.5 MiB over ~4 s
    data = b"".join(chunks)
    started = threading.Event()
    result = {}

    def body():
        for i, c in enumerate(chunks):
            if i == 5:
                started.set()
            time.sleep(0.1)
            yield c

    def patch():
        try:
            result["resp"] = s.patch(loc, data=body(), timeout=120,
                                     headers={"Content-Type": "application/octet-stream"})
        except Exception as e:  # noqa: BLE001
            result["error"] = e
        result["done"] = time.monotonic()

    t = threading.Thread(target=patch)
    t.start()
    assert started.wait(30), "the PATCH did not start"
    t_term = time.monotonic()
    send(gw, SIGTERM)
    # Listeners close at once: new connections are refused while the upload runs on.
    wait_for(lambda: not port_open(port), timeout=10, what="listener closed after SIGTERM")
    t.join(120)
    assert "error" not in result, f"in-flight PATCH failed after SIGTERM: {result['error']!r}"
    resp = result["resp"]
    assert resp.status_code == 202, (resp.status_code, resp.text)
    assert resp.headers.get("Range") == f"0-{len(data) - 1}", resp.headers
    rc, waited = wait_exit(gw.proc, grace + shutdown_timeout + 15)
    assert rc is not None, "dockgate did not exit after the upload finished"
    elapsed = time.monotonic() - t_term
    print(f"exit {rc}, {elapsed:.1f}s after SIGTERM (grace {grace}s)")
    assert elapsed <= grace + shutdown_timeout + 3, elapsed
    # Every byte reached the backend: finish the same upload there directly.
    new_loc = resp.headers["Location"]
    path = urljoin(resp.url, new_loc).split("://", 1)[1].split("/", 1)[1]
    assert path.startswith("v2/up/app/blobs/uploads/"), path
    backend_path = "/v2/" + f"{stem}/app" + path[len("v2/up/app"):]
    digest = images.sha256_digest(data)
    sep = "&" if "?" in backend_path else "?"
    r = requests.put(f"{registry.url}{backend_path}{sep}digest={digest}", timeout=30)
    assert r.status_code == 201, (r.status_code, r.text)
    assert V2(registry.url).blob(f"{stem}/app", digest).content == data


def test_sigterm_idle_exits_at_once(dockgate, registry, unique):
    cfg = ops_config(registry.url, {"idle": {"name_prefix": unique("idle") + "/"}},
                     server={"grace_period_seconds": 30,
                             "graceful_shutdown_timeout_seconds": 5})
    gw = dockgate(cfg)
    assert gw.api().get("/v2/").status_code == 200  # a finished keep-alive request
    t0 = time.monotonic()
    send(gw, SIGTERM)
    rc, waited = wait_exit(gw.proc, 40)
    print(f"idle gateway: exit {rc} {waited:.1f}s after SIGTERM (grace 30s)")
    assert rc is not None and waited < 15, (rc, waited)
    assert rc == 0, rc


# Access log --------------------------------------------------------------------------------------
def test_access_log_manifest_push_line(dockgate, registry, client_env, tmp_path, unique):
    password = "pw-" + secrets.token_urlsafe(12)
    stem = unique("alog")
    cfg = auth_gateway_config(registry.url,
                              {"logs": {"name_prefix": f"{stem}/", "write": ["writer"]}},
                              auth={}, log={"format": "json", "access_log": "access.log"})
    gw = dockgate(cfg, start=False)
    write_htpasswd(gw.dir / "users.htpasswd", {"writer": password})
    gw.start()
    host = f"127.0.0.1:{gw.port('path')}"
    img = images.make_image((700, 1500))
    push(client_env, tmp_path, f"docker://{host}/logs/app:1", img,
         "--dest-creds", f"writer:{password}")
    log_path = gw.dir / "access.log"

    def put_lines():
        return [l for l in access_log_lines(log_path)
                if l.get("operation") == "manifest_put" and l.get("method") == "PUT"]
    lines = wait_for(put_lines, timeout=10, what="a manifest_put line")
    assert len(lines) == 1, lines
    line = lines[0]
    missing = [f for f in ACCESS_FIELDS if f not in line]
    assert not missing, (missing, line)
    assert line["user"] == "writer", line
    assert line["repository"] == "logs", line
    assert line["image"] == "app", line
    assert line["status"] == 201 and line["backend_status"] == 201, line
    assert line["backend"] == "main", line
    assert line["bytes_in"] == len(img.manifest), (line, len(img.manifest))
    assert isinstance(line["bytes_out"], int) and line["bytes_out"] >= 0, line
    assert isinstance(line["duration_ms"], (int, float)) and line["duration_ms"] >= 0, line
    assert line["client"].startswith("127.0.0.1:"), line
    datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
    # Every line of the push is attributed, and nothing carries the password.
    text = log_path.read_text()
    assert all(set(ACCESS_FIELDS) <= set(l) for l in access_log_lines(log_path))
    assert not find_secrets(text + gateway_logs(gw), [password]), "password in a log"
    # The manifest stored on the backend is the pushed one.
    assert V2(registry.url).manifest_digest(f"{stem}/app", "1") == img.digest
