"""Watching dockgate (issue 17): the alert rules under promtool, every PromQL expression of
the Grafana dashboard against a real Prometheus that scraped dockgate during pushes, pulls
and a schema 1 refusal, and the status page on the metrics listener.

One gateway for the module: backends "main" (a real docker-registry) and "spare" (a real
docker-registry, stopped once the gateway is up, so it is down).
"""
import json
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from dgtest import images
from dgtest.backend import Registry
from dgtest.extra import wait_for
from dgtest.gateway import REPO_ROOT, Gateway, gateway_config
from dgtest.ops import Prometheus, metric, samples_of
from dgtest.ports import free_port
from dgtest.tools import ClientEnv

RULES = REPO_ROOT / "contrib" / "prometheus" / "dockgate-rules.yml"
RULE_TESTS = REPO_ROOT / "contrib" / "prometheus" / "dockgate-rules.test.yml"
DASHBOARD = REPO_ROOT / "contrib" / "grafana" / "dockgate.json"
ALERTS = {"DockgateBackendDown", "DockgateCertificateExpiringSoon", "DockgateHigh5xxRatio",
          "DockgateSchema1RefusalSpike", "DockgateLoginLockouts"}


# Alert rules -------------------------------------------------------------------------------------
def test_alert_rules_check_and_unit_tests():
    p = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in p.stdout, p.stdout
    p = subprocess.run(["promtool", "test", "rules", str(RULE_TESTS)], capture_output=True,
                       text=True, timeout=60, cwd=RULE_TESTS.parent)
    assert p.returncode == 0 and "SUCCESS" in p.stdout, p.stdout + p.stderr
    # Each alert has a unit test that expects it to fire.
    tests = RULE_TESTS.read_text()
    fired = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels", tests))
    assert fired == ALERTS, fired


# The observed gateway ------------------------------------------------------------------------------
class Observed:
    pass


SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"


def schema1_manifest(name):
    return json.dumps({"schemaVersion": 1, "name": name, "tag": "1", "architecture": "amd64",
                       "fsLayers": [], "history": []}).encode()


@pytest.fixture(scope="module")
def observed(dockgate_binary, pki, tmp_path_factory):
    """A gateway with Prometheus scraping it, after skopeo pushes and pulls, one refused
    schema 1 push, and with backend "spare" stopped."""
    o = Observed()
    o.main = Registry(tmp_path_factory.mktemp("obs-main")).start()
    o.spare = Registry(tmp_path_factory.mktemp("obs-spare")).start()
    o.mport = free_port()
    stem = "obs-" + secrets.token_hex(3)
    cfg = gateway_config({"main": o.main.url, "spare": o.spare.url},
                         {"obs-app": {"backend": "main", "type": "local",
                                      "name_prefix": f"{stem}/"},
                          "obs-legacy": {"backend": "spare", "type": "remote"}},
                         [{"method": "path"}])
    cfg["metrics"] = {"address": f"127.0.0.1:{o.mport}", "health_check_interval_seconds": 1}
    o.gw = Gateway(cfg, tmp_path_factory.mktemp("obs-gw"), pki, binary=dockgate_binary)
    o.prom = Prometheus(tmp_path_factory.mktemp("obs-prom"), [f"127.0.0.1:{o.mport}"])
    o.artifacts = tmp_path_factory.mktemp("obs-artifacts")
    try:
        o.gw.start()
        o.prom.start()
        wait_for(lambda: o.prom.targets_up(), timeout=30, what="prometheus scrapes dockgate")
        client = ClientEnv(tmp_path_factory.mktemp("obs-client"), pki.cert_dir)
        host = f"127.0.0.1:{o.gw.port('path')}"
        # Two rounds, Prometheus scraping in between: counters appear at their first
        # increment, so only the second round shows up in rate().
        for n in (1, 2):
            img = images.make_image((3000, 20000))
            layout = images.write_oci_layout(o.artifacts / f"layout-{n}", {"t": img})
            client.skopeo_copy(f"oci:{layout}:t", f"docker://{host}/obs-app/app:{n}")
            client.skopeo_copy(f"docker://{host}/obs-app/app:{n}",
                               f"dir:{o.artifacts / f'pulled-{n}'}")
            r = o.gw.api().request("PUT", f"/v2/obs-app/old/manifests/{n}",
                                   data=schema1_manifest("obs-app/old"),
                                   headers={"Content-Type": SCHEMA1})
            assert 400 <= r.status_code < 500, (r.status_code, r.text)
            assert metric(samples_of(o.mport), "dockgate_schema1_refused_total",
                          repository="obs-app", direction="push") == n
            wait_for(lambda: o.prom.by_label("dockgate_schema1_refused_total", "repository")
                     .get("obs-app") == n, timeout=30, what=f"prometheus saw round {n}")
        o.spare.stop()
        wait_for(lambda: metric(samples_of(o.mport), "dockgate_backend_up",
                                backend="spare") == 0, timeout=20, what="spare seen down")
        yield o
    finally:
        o.prom.stop()
        o.gw.stop(timeout=5)
        o.main.stop()
        o.spare.stop()


# Dashboard ---------------------------------------------------------------------------------------
def dashboard_exprs(dash):
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            yield panel["title"], t["expr"]


def test_dashboard_is_grafana_39_and_covers_the_metrics():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["schemaVersion"] >= 39 and dash["uid"] == "dockgate"
    text = " ".join(e for _, e in dashboard_exprs(dash))
    for family in ("dockgate_image_pulls_total", "dockgate_image_pushes_total",
                   "dockgate_requests_total", "dockgate_request_duration_seconds_bucket",
                   "dockgate_received_bytes_total", "dockgate_sent_bytes_total",
                   "dockgate_schema1_refused_total", "dockgate_backend_up",
                   "dockgate_tls_certificate_expiry_timestamp_seconds",
                   "dockgate_upstream_errors_total"):
        assert family in text, family
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]


def test_every_dashboard_query_returns_data(observed):
    """Grafana's variables replaced as Grafana would (All repositories, a 1m interval),
    each expression returns at least one series from the real Prometheus."""
    dash = json.loads(DASHBOARD.read_text())
    exprs = [(title, e.replace("$repository", ".*").replace("$__rate_interval", "1m"))
             for title, e in dashboard_exprs(dash)]
    assert len(exprs) >= 12, exprs

    def empty():
        missing = [(t, e) for t, e in exprs if not observed.prom.query(e)]
        return not missing or print("no data yet:", missing)
    wait_for(empty, timeout=60, interval=1, what="every dashboard query returns data")
    for title, e in exprs:
        result = observed.prom.query(e)
        print(f"{title}: {e} -> {[(s['metric'], s['value'][1]) for s in result][:4]}")
    # The second round of pushes, pulls and refusals happened within the last minute.
    for title, e in exprs:
        if any(m in e for m in ("pulls", "pushes", "schema1", "received_bytes")):
            values = [float(s["value"][1]) for s in observed.prom.query(e)]
            assert max(values) > 0, (title, e, values)
    down = observed.prom.by_label("dockgate_backend_up", "backend")
    assert down == {"main": 1.0, "spare": 0.0}, down


# Status page -------------------------------------------------------------------------------------
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium(args, profile, timeout=90):
    exe = shutil.which("chromium")
    if not exe:
        pytest.fail("chromium is not installed (scripts/install-deps.sh installs it)")
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=timeout)


def status_json(o):
    r = requests.get(f"http://127.0.0.1:{o.mport}/status.json", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    return r.json()


def test_status_json_shows_the_stopped_backend_down(observed):
    s = status_json(observed)
    backends = {b["name"]: b for b in s["backends"]}
    assert backends["spare"]["up"] is False and backends["main"]["up"] is True, backends
    repos = {r["key"]: r for r in s["repositories"]}
    assert repos["obs-legacy"]["backend"] == "spare" and repos["obs-legacy"]["backend_up"] is False
    assert repos["obs-app"]["block_schema1_push"] is True
    assert repos["obs-legacy"]["block_schema1_pull"] is True  # remote: blocked by default
    assert [l["method"] for l in s["listeners"]] == ["path"]
    cert = s["certificates"][0]
    assert "127.0.0.1" in cert["ip_sans"] and "localhost" in cert["dns_sans"], cert
    assert 0 < cert["days_left"] <= 400, cert
    assert s["version"] and s["auth"] == "passthrough"
    # The schema 1 refusals and the traffic are in the window once two samples exist.
    def refused():
        r = status_json(observed)["repositories"]
        return next(x for x in r if x["key"] == "obs-app")["rates"]["schema1_refused"] == 2
    wait_for(refused, timeout=15, what="schema 1 refusals in the status window")
    # Nothing the metrics audience should not see.
    text = json.dumps(s)
    assert "password" not in text.lower() and "htpasswd" not in text.lower()


def test_status_page_in_headless_chromium(observed):
    url = f"http://127.0.0.1:{observed.mport}/"
    shot = observed.artifacts / "status-page.png"
    p = chromium([f"--screenshot={shot}", "--window-size=1280,1400", url],
                 observed.artifacts / "chromium-shot")
    assert shot.is_file() and shot.stat().st_size > 10_000, p.stdout + p.stderr
    keep = REPO_ROOT / "target" / "test-artifacts"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / "status-page.png")
    print(f"status page screenshot: {keep / 'status-page.png'} (and {shot})")
    # What Chromium rendered, as a DOM: the stopped backend's row says down.
    p = chromium(["--dump-dom", url], observed.artifacts / "chromium-dom")
    dom = p.stdout
    assert "<title>DOWN · dockgate status</title>" in dom, dom[:2000]
    row = re.search(r'<tr id="backend-spare" class="down">(.*?)</tr>', dom, re.S)
    assert row and 'data-state="down"' in row.group(1), dom
    row = re.search(r'<tr id="backend-main" class="up">(.*?)</tr>', dom, re.S)
    assert row and 'data-state="up"' in row.group(1), dom
    assert re.search(r'<tr id="repo-obs-legacy" class="down">', dom), dom
    assert "backends up<b>1 / 2</b>" in dom
    assert 'http-equiv="refresh"' in dom
    # The JSON agrees with the page.
    s = status_json(observed)
    for b in s["backends"]:
        state = "up" if b["up"] else "down"
        assert f'<tr id="backend-{b["name"]}" class="{state}">' in dom, b
