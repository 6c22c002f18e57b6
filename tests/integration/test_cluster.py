"""Several dockgate instances as one (issue 13): runtime state in a real 3-member etcd
cluster with TLS (Debian's etcd-server, certificates made here), two gateways behind a
real HAProxy in TCP mode, the real registry behind them, real clients through HAProxy.

One etcd cluster, one HAProxy and two gateways per module; the tests run in file order
and leave the cluster whole for the next one (the etcd outage tests restart what they
stop). Timing claims ("within 1 s") are asserted with a margin for a loaded machine.
"""
import base64
import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest
import requests

from dgtest import images
from dgtest.client import error_codes
from dgtest.cluster import EtcdCluster, HAProxy, have_cluster_tools
from dgtest.gateway import Gateway
from dgtest.ops import (auth_gateway_config, docker_login, metric, podman_login, samples_of,
                        skopeo_login, write_htpasswd)
from dgtest.ports import free_port
from dgtest.proc import run

pytestmark = pytest.mark.skipif(not have_cluster_tools(),
                                reason="etcd, etcdctl or haproxy not installed "
                                       "(scripts/install-deps.sh installs them)")

USERS = {"admin": "admin-pw-1", "alice": "alice-pw-1", "bob": "bob-pw-1",
         "eve": "eve-pw-1"}  # eve is locked out by the lockout test
SERVICE = "dockgate"
# The layer pushed while an instance is killed or drained (bench/cluster.sh KILL=1: 200).
PUSH_MIB = int(os.environ.get("DOCKGATE_CLUSTER_PUSH_MIB", "30"))
# Within 1 s, plus room for a loaded 2-core machine.
PROPAGATION = 2.5
# Slow refill, so what a test sees is the burst (`limited` repository).
LIMIT = {"requests_per_second": 0.1, "burst": 5}


def poll(fn, timeout, every=0.05):
    """fn() until truthy; returns (value, seconds) or raises with the last value."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        last = fn()
        if last:
            return last, time.monotonic() - t0
        time.sleep(every)
    raise AssertionError(f"not within {timeout}s; last: {last!r}")


class Setup:
    def __init__(self, etcd, gws, haproxy, registry, binary, ca):
        self.etcd = etcd
        self.gws = gws
        self.haproxy = haproxy
        self.registry = registry
        self.binary = binary
        self.ca = ca

    def base(self, gw):
        return f"https://127.0.0.1:{gw.port('path')}"

    def session(self):
        s = requests.Session()
        s.verify = self.ca
        s.trust_env = False
        return s

    def token(self, gw, user, scope):
        r = self.session().get(f"{self.base(gw)}/v2/token",
                               params={"service": SERVICE, "scope": scope},
                               auth=(user, USERS[user]), timeout=10)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()["token"]

    def settings(self, gw, key):
        r = self.session().get(f"{self.base(gw)}/api/repositories/{key}",
                               auth=("admin", USERS["admin"]), timeout=10)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def set(self, gw, key, body, timeout=10):
        return self.session().post(f"{self.base(gw)}/api/repositories/{key}", json=body,
                                   auth=("admin", USERS["admin"]), timeout=timeout)

    def cli(self, gw, *args, check=True):
        return run([self.binary, *args, "--config", gw.config_path], timeout=60, check=check)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, dockgate_binary, pki, registry):
    d = tmp_path_factory.mktemp("cluster")
    etcd = EtcdCluster(d / "etcd").start()
    htpasswd = write_htpasswd(d / "users.htpasswd", USERS)
    gws = []
    try:
        for name in ("a", "b"):
            cfg = auth_gateway_config(
                registry.url,
                {"shared": {"name_prefix": "cluster/", "read": ["alice", "bob"],
                            "write": ["alice", "bob"], "admin": ["admin"],
                            "block_schema1_push": True},
                 "limited": {"name_prefix": "limited/", "read": ["alice", "bob"],
                             "rate_limit": LIMIT}},
                auth={"htpasswd": str(htpasswd), "admins": ["admin"], "max_failures": 3,
                      "lockout_seconds": 30, "token_ttl_seconds": 300},
                metrics_port=free_port(),
                server={"grace_period_seconds": 60, "drain_delay_seconds": 2})
            cfg["cluster"] = {"etcd": etcd.urls, "ca": str(etcd.pki.ca_crt),
                              "cert": str(etcd.pki.client_crt),
                              "key": str(etcd.pki.client_key), "prefix": "/dockgate-tests/"}
            gws.append(Gateway(cfg, d / f"gw-{name}", pki, binary=dockgate_binary).start())
        haproxy = HAProxy(d / "haproxy", {"a": gws[0].port("path"),
                                          "b": gws[1].port("path")}).start()
    except Exception:
        for g in gws:
            g.stop()
        etcd.stop()
        raise
    s = Setup(etcd, gws, haproxy, registry, dockgate_binary, str(pki.ca_crt))
    yield s
    haproxy.stop()
    for g in s.gws:
        g.stop()
    etcd.stop()


def test_check_and_status_name_members(cluster, tmp_path):
    a = cluster.gws[0]
    r = cluster.cli(a, "check")
    assert "ok" in r.stdout, r.stdout + r.stderr
    st = cluster.cli(a, "cluster", "status").stdout
    assert "leader" in st and st.count("raft index") == 3, st
    # A member that is not there: `check` names the key and the URL.
    bad = a.config_text.replace(cluster.etcd.members[1].client_url,
                                f"https://127.0.0.1:{free_port()}")
    path = tmp_path / "bad.toml"
    path.write_text(bad)
    shutil.copy(a.dir / "server.crt", tmp_path / "server.crt")
    shutil.copy(a.dir / "server.key", tmp_path / "server.key")
    r = run([cluster.binary, "check", "--config", path], check=False, timeout=60)
    assert r.returncode != 0
    assert "cluster.etcd[1]" in r.stderr and "127.0.0.1" in r.stderr, r.stderr
    # A client certificate the members do not trust.
    wrong = a.config_text.replace(str(cluster.etcd.pki.client_crt), str(a.dir / "server.crt")) \
        .replace(str(cluster.etcd.pki.client_key), str(a.dir / "server.key"))
    path.write_text(wrong)
    r = run([cluster.binary, "check", "--config", path], check=False, timeout=60)
    assert r.returncode != 0 and "cluster.etcd[0]" in r.stderr, r.stderr


def test_logins_and_tokens_work_on_either_instance(cluster, client_env, tmp_path):
    a, b = cluster.gws
    hp = cluster.haproxy.hostport
    # Real clients log in through HAProxy (each connection may reach either instance).
    r = skopeo_login(client_env, tmp_path / "auth.json", hp, "alice", USERS["alice"])
    assert r.returncode == 0, r.stdout + r.stderr
    r = podman_login(client_env, tmp_path / "auth-pm.json", hp, "alice", USERS["alice"])
    assert r.returncode == 0, r.stdout + r.stderr
    if shutil.which("docker"):
        r = docker_login(tmp_path / "docker", hp, "alice", USERS["alice"])
        assert r.returncode == 0, r.stdout + r.stderr
    img = images.make_image((3000,))
    layout = images.write_oci_layout(tmp_path / "src", {"1": img})
    for _ in range(3):  # several connections: both instances serve the same session
        client_env.skopeo_copy(f"oci:{layout}:1", f"docker://{hp}/shared/tok:1",
                               "--authfile", tmp_path / "auth.json")
    # A token issued by A is accepted by B, and the other way round.
    scope = "repository:shared/tok:pull"
    for issuer, other in ((a, b), (b, a)):
        t = cluster.token(issuer, "alice", scope)
        r = cluster.session().get(f"{cluster.base(other)}/v2/shared/tok/manifests/1",
                                  headers={"Authorization": f"Bearer {t}",
                                           "Accept": img.media_type}, timeout=10)
        assert r.status_code == 200, (r.status_code, r.text)


def test_schema1_toggle_on_a_is_seen_on_b_within_a_second(cluster):
    a, b = cluster.gws
    assert cluster.settings(b, "shared")["blockPushingSchema1"] is True
    for value in (False, True):
        r = cluster.set(a, "shared", {"blockPushingSchema1": value})
        assert r.status_code == 200, (r.status_code, r.text)
        _, took = poll(lambda: cluster.settings(b, "shared")["blockPushingSchema1"] is value,
                       PROPAGATION)
        print(f"schema1 toggle to {value} seen on B after {took:.3f}s")
    # The config file stays the static part: A's file is untouched.
    assert "block_schema1_push = true" in a.config_path.read_text()


def test_revoked_api_key_is_refused_on_b_within_a_second(cluster):
    a, b = cluster.gws
    r = cluster.session().get(f"{cluster.base(a)}/v2/auth", auth=("bob", USERS["bob"]),
                              timeout=10)
    assert r.status_code == 200, r.text
    entry = next(iter(r.json().values()))
    key = base64.b64decode(entry["auth"]).decode().split(":", 1)[1]
    ok = lambda gw: cluster.session().get(f"{cluster.base(gw)}/v2/", auth=("bob", key),
                                          timeout=10).status_code
    assert ok(a) == 200 and ok(b) == 200
    cluster.cli(a, "user", "revoke-keys", "bob")
    _, took = poll(lambda: ok(b) == 401, PROPAGATION)
    print(f"revoked key refused on B after {took:.3f}s")
    assert ok(a) == 401
    # The password still works and gets the new key, on both.
    r = cluster.session().get(f"{cluster.base(b)}/v2/auth", auth=("bob", USERS["bob"]),
                              timeout=10)
    new = base64.b64decode(next(iter(r.json().values()))["auth"]).decode().split(":", 1)[1]
    assert new != key
    assert cluster.session().get(f"{cluster.base(a)}/v2/", auth=("bob", new),
                                 timeout=10).status_code == 200


def test_rotated_keys_keep_old_tokens_working(cluster):
    a, b = cluster.gws
    scope = "repository:shared/tok:pull"
    old = cluster.token(a, "alice", scope)
    kid = lambda t: json.loads(base64.urlsafe_b64decode(t.split(".")[0] + "=="))["kid"]
    r = cluster.cli(a, "cluster", "rotate-keys")
    assert "rotated" in r.stdout, r.stdout

    def new_kid():
        return kid(cluster.token(b, "alice", scope)) != kid(old)
    poll(new_kid, PROPAGATION)
    new = cluster.token(b, "alice", scope)
    for t in (old, new):
        for gw in (a, b):
            r = cluster.session().get(f"{cluster.base(gw)}/v2/shared/tok/tags/list",
                                      headers={"Authorization": f"Bearer {t}"}, timeout=10)
            assert r.status_code == 200, (kid(t), r.status_code, r.text)


def test_lockout_counts_across_instances(cluster):
    a, b = cluster.gws
    s = cluster.session()
    get = lambda gw, pw: s.get(f"{cluster.base(gw)}/v2/", auth=("eve", pw), timeout=10)
    # Two failures on A, one on B: three in all (max_failures = 3).
    assert get(a, "wrong-1").status_code == 401
    assert get(a, "wrong-2").status_code == 401
    assert get(b, "wrong-3").status_code == 401
    # A right password would clear a count that is not complete yet, so give the
    # failures their second to travel before asking with it.
    time.sleep(1.5)
    for gw in (b, a):
        r = get(gw, USERS["eve"])
        assert r.status_code == 429 and "too many" in r.text, (r.status_code, r.text)


def test_two_admins_writing_at_once_lose_nothing(cluster):
    a, b = cluster.gws
    for round_ in range(3):
        push, pull = bool(round_ % 2), not bool(round_ % 2)
        results = []
        bodies = [(a, {"blockSchema1Push": push}), (b, {"blockSchema1Pull": pull})]
        threads = [threading.Thread(target=lambda gw=gw, body=body: results.append(
            cluster.set(gw, "shared", body).status_code)) for gw, body in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200, 200], results
        want = lambda gw: (cluster.settings(gw, "shared")["blockSchema1Push"] == push and
                           cluster.settings(gw, "shared")["blockSchema1Pull"] == pull)
        poll(lambda: want(a) and want(b), PROPAGATION)


def test_rate_limit_is_one_limit_across_instances(cluster):
    """Issue 12 item 5: a client alternating between A and B directly (no balancer)
    gets one burst in all, not one per instance; a client that stays on A gets the
    whole burst there, and B then knows it is spent."""
    a, b = cluster.gws
    s = cluster.session()
    ports = {gw: gw.config["metrics"]["address"].rsplit(":", 1)[1] for gw in (a, b)}
    before = {gw: samples_of(p) for gw, p in ports.items()}

    def get(gw, user):
        return s.get(f"{cluster.base(gw)}/v2/limited/app/tags/list",
                     auth=(user, USERS[user]), timeout=10)

    # Alternating, a request every 0.3 s: longer than one exchange (0.25 s at most).
    answers = []
    t0 = time.monotonic()
    for i in range(12):
        answers.append(get((a, b)[i % 2], "alice"))
        time.sleep(0.3)
    codes = [r.status_code for r in answers]
    admitted = sum(c != 429 for c in codes)
    print(f"alternating A/B over {time.monotonic() - t0:.1f}s: {codes}")
    # The burst (5), plus at most one refill (0.1/s over ~4-10 s) and one of slack;
    # per instance it would be 10 or more.
    assert 5 <= admitted <= 7, codes
    assert codes[:5].count(429) == 0, codes
    limited = [r for r in answers if r.status_code == 429]
    assert {r.url.split("/v2/")[0] for r in limited} == {cluster.base(a), cluster.base(b)}
    for r in limited:
        assert error_codes(r) == ["TOOMANYREQUESTS"] and int(r.headers["Retry-After"]) >= 1

    # Sticky: bob only on A, back to back, gets the whole burst there (not half).
    codes = [get(a, "bob").status_code for _ in range(7)]
    assert codes.count(429) == 2 and 429 not in codes[:5], codes
    # ... and B has been told: bob's first request there is refused too.
    _, took = poll(lambda: get(b, "bob").status_code == 429, PROPAGATION, every=0.1)
    print(f"B refused bob {took:.2f}s after his burst on A")
    # Measured, not asserted: back to back, the slack of one exchange interval shows
    # (admin has no role here; the limit is decided before roles).
    codes = [get((a, b)[i % 2], "admin").status_code for i in range(16)]
    print(f"back to back A/B (burst 5): {sum(c != 429 for c in codes)} admitted: {codes}")

    after = {gw: samples_of(p) for gw, p in ports.items()}
    for gw in (a, b):
        delta = lambda name, **l: (metric(after[gw], name, **l) -
                                   metric(before[gw], name, **l))
        assert delta("dockgate_rate_limit_shared_keys_total", direction="published") > 0
        assert delta("dockgate_rate_limit_shared_keys_total", direction="received") > 0
        assert delta("dockgate_policy_refused_total", repository="limited",
                     rule="rate_limit") > 0


def test_leader_loss_writes_resume_reads_never_stop(cluster, client_env, tmp_path):
    a, b = cluster.gws
    hp = cluster.haproxy.hostport
    img = images.make_image((2000,))
    layout = images.write_oci_layout(tmp_path / "src", {"1": img})
    auth = tmp_path / "auth.json"
    assert skopeo_login(client_env, auth, hp, "bob", USERS["bob"]).returncode == 0
    client_env.skopeo_copy(f"oci:{layout}:1", f"docker://{hp}/shared/leader:1", "--authfile", auth)
    leader = cluster.etcd.leader()
    cluster.etcd.stop_member(leader, signal.SIGKILL)
    try:
        # Reads go on at once, through both instances.
        for gw in (a, b):
            r = cluster.session().get(f"{cluster.base(gw)}/v2/shared/leader/manifests/1",
                                      auth=("bob", USERS["bob"]),
                                      headers={"Accept": img.media_type}, timeout=10)
            assert r.status_code == 200, r.text
        # Writes resume after the election.
        _, took = poll(lambda: cluster.set(a, "shared", {"blockSchema1Pull": True})
                       .status_code == 200, 30, every=0.3)
        print(f"writes resumed {took:.2f}s after the leader was killed")
        poll(lambda: cluster.settings(b, "shared")["blockSchema1Pull"] is True, PROPAGATION)
    finally:
        cluster.etcd.start_member(leader)
        cluster.etcd.wait_healthy(60)


def test_etcd_down_serving_goes_on_admin_answers_503(cluster, client_env, tmp_path):
    a, b = cluster.gws
    hp = cluster.haproxy.hostport
    auth = tmp_path / "auth.json"
    assert skopeo_login(client_env, auth, hp, "alice", USERS["alice"]).returncode == 0
    marks = a.log_marks()
    limited = lambda gw: cluster.session().get(f"{cluster.base(gw)}/v2/limited/app/tags/list",
                                               auth=("alice", USERS["alice"]), timeout=10)
    for m in cluster.etcd.members:
        cluster.etcd.stop_member(m)
    try:
        img = images.make_image((2500,))
        layout = images.write_oci_layout(tmp_path / "src", {"1": img})
        client_env.skopeo_copy(f"oci:{layout}:1", f"docker://{hp}/shared/down:1",
                               "--authfile", auth)
        client_env.skopeo_copy(f"docker://{hp}/shared/down:1", f"oci:{tmp_path / 'back'}:1",
                               "--authfile", auth)
        # (a Response is falsy for an error status: poll on a list holding it)
        (r,), took = poll(lambda: (lambda r: [r] if r.status_code == 503 else None)(
            cluster.set(a, "shared", {"blockSchema1Pull": False})), 15, every=0.3)
        print(f"admin API answered 503 {took:.2f}s after etcd stopped")
        assert "cluster store unreachable" in r.text, r.text
        # Rate limits fall back to per instance, and say so once per outage seen (the
        # members stop one by one, so A may see a short one first), not per request.
        assert limited(a).status_code in (404, 429)
        assert limited(b).status_code in (404, 429)

        def said_once():
            log = a.log_since(marks)
            n = log.count("rate limits are per instance")
            return n >= 1 and n == log.count("cluster store unreachable; serving")
        poll(said_once, 10)
        samples = samples_of(a.config["metrics"]["address"].rsplit(":", 1)[1])
        assert metric(samples, "dockgate_cluster_connected") == 0
        poll(lambda: metric(samples_of(a.config["metrics"]["address"].rsplit(":", 1)[1]),
                            "dockgate_cluster_state_age_seconds") > 0, 10)
    finally:
        for m in cluster.etcd.members:
            cluster.etcd.start_member(m)
        cluster.etcd.wait_healthy(90)
    # Everything catches up: writes work again and both instances see them.
    poll(lambda: cluster.set(a, "shared", {"blockSchema1Pull": False}).status_code == 200,
         30, every=0.5)
    poll(lambda: cluster.settings(b, "shared")["blockSchema1Pull"] is False, 10)
    port = a.config["metrics"]["address"].rsplit(":", 1)[1]
    poll(lambda: metric(samples_of(port), "dockgate_cluster_connected") == 1, 10)
    # ... and rate-limit consumption travels again: B hears of A's next admitted request.
    b_port = b.config["metrics"]["address"].rsplit(":", 1)[1]
    received = lambda: metric(samples_of(b_port), "dockgate_rate_limit_shared_keys_total",
                              direction="received")
    seen = received()
    poll(lambda: limited(a).status_code == 404 and received() > seen, 30, every=1)
    assert "rate limits shared by the cluster again" in a.log_since(marks)


def _push_through(cluster, client_env, tmp_path, image, on):
    """Starts a skopeo push of a 30 MB layer through HAProxy with every connection on
    gateway `on`, and returns once the backend holds the upload; all gateways take new
    connections again from then on."""
    hp = cluster.haproxy.hostport
    auth = tmp_path / "auth.json"
    assert skopeo_login(client_env, auth, hp, "alice", USERS["alice"]).returncode == 0
    img = images.make_image((PUSH_MIB << 20,))
    layout = images.write_oci_layout(tmp_path / "src", {"1": img})
    names = ["a", "b"]
    cluster.haproxy.only(on, names)
    args = ["skopeo", "copy", "--retry-times", "5", "--dest-cert-dir", str(client_env.cert_dir),
            "--authfile", str(auth), f"oci:{layout}:1", f"docker://{hp}/shared/{image}:1"]
    p = subprocess.Popen(args, env=client_env.env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    uploads = (cluster.registry.storage / "docker" / "registry" / "v2" / "repositories" /
               "cluster" / image / "_uploads")
    try:
        poll(lambda: uploads.exists() and any(uploads.iterdir()), 60, every=0.02)
    finally:
        cluster.haproxy.all_ready(names)
    return p, img, auth


def _complete(cluster, client_env, tmp_path, p, img, auth, image, via, retry=False):
    out, err = p.communicate(timeout=240)
    if retry and p.returncode != 0:
        # skopeo's own --retry-times does not count "use of closed network connection"
        # as retryable; the job that ran it retries the push, as CI jobs do.
        print(f"first push failed as expected: {err.decode()[-200:]}")
        client_env.skopeo_copy(f"oci:{tmp_path / 'src'}:1",
                               f"docker://{cluster.haproxy.hostport}/shared/{image}:1",
                               "--authfile", auth)
    else:
        assert p.returncode == 0, err.decode()
    client_env.skopeo_copy(f"docker://{cluster.haproxy.hostport}/shared/{image}:1",
                           f"oci:{tmp_path / 'back'}:1", "--authfile", auth)
    r = cluster.session().get(f"{cluster.base(via)}/v2/shared/{image}/manifests/1",
                              auth=("alice", USERS["alice"]),
                              headers={"Accept": img.media_type}, timeout=10)
    assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == img.digest


def _restart_if_stopping(gw, signalled):
    """Leaves the cluster whole for the next test, whatever this one did."""
    if signalled:
        gw.proc.wait(timeout=90)
    if gw.proc.poll() is not None:
        gw.start()


def test_sigterm_drains_while_new_connections_go_elsewhere(cluster, client_env, tmp_path):
    """SIGTERM on B during an upload through it: B's health check answers 503 at once
    while B still accepts for drain_delay_seconds, so no new connection is reset; the
    upload finishes, B exits, and new connections land on A."""
    a, b = cluster.gws
    signalled = False
    try:
        p, img, auth = _push_through(cluster, client_env, tmp_path, "drained", "b")
        b.proc.send_signal(signal.SIGTERM)
        signalled = True
        s = cluster.session()
        health = s.get(f"{cluster.base(b)}/_dockgate/health", timeout=10)
        assert health.status_code == 503 and health.json() == {"status": "draining"}
        assert s.get(f"{cluster.base(a)}/_dockgate/health", timeout=10).status_code == 200
        # Every new connection through the balancer is served, before and after the
        # listeners close (the balancer has moved off B by then).
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3.5:
            r = cluster.session().get(f"https://{cluster.haproxy.hostport}/v2/",
                                      auth=("alice", USERS["alice"]), timeout=10)
            assert r.status_code == 200, r.text
            time.sleep(0.1)
        _complete(cluster, client_env, tmp_path, p, img, auth, "drained", a)
        assert b.proc.wait(timeout=60) == 0
    finally:
        _restart_if_stopping(b, signalled)


def test_sigkill_during_a_push_the_retry_lands_on_the_other(cluster, client_env, tmp_path):
    """The 200 MB variant of this is `KILL=1 bench/cluster.sh`; here a 30 MB layer."""
    a, b = cluster.gws
    try:
        p, img, auth = _push_through(cluster, client_env, tmp_path, "killed", "a")
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        _complete(cluster, client_env, tmp_path, p, img, auth, "killed", b, retry=True)
    finally:
        _restart_if_stopping(a, True)
