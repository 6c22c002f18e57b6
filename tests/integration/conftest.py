"""Fixtures for the dockgate integration tests.

Backends are real docker-registry 2.8 processes on loopback; clients are skopeo, buildah,
curl, requests and oras-py, all verifying TLS against a CA made for this session.
"""
import os
import re
import secrets
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dgtest.backend import Registry  # noqa: E402
from dgtest.gateway import BASE_DOMAIN, Gateway, dockgate_bin, gateway_config  # noqa: E402
from dgtest.pki import make_pki, make_pki_dockgate  # noqa: E402
from dgtest.tools import ClientEnv  # noqa: E402
from dgtest.standard import (HOSTS_MARK, STANDARD_LISTENERS, STANDARD_REPOSITORIES,  # noqa: E402
                             SUBDOMAIN_KEYS)

@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request):
    for when in ("setup", "call"):
        rep = getattr(request.node, "rep_" + when, None)
        if rep is not None and rep.failed:
            return True
    return False


# PKI, hosts ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pki(tmp_path_factory, request):
    """CA + server cert (SANs 127.0.0.1, ::1, localhost, *.registry.localhost).

    The one place the session's certificates are made: by `dockgate cert generate`, so
    every client verifies dockgate with the CA dockgate made (DOCKGATE_TEST_PKI=openssl
    uses the openssl CLI instead). Without a dockgate binary (the harness self-check
    alone) the openssl CLI makes them.
    """
    choice = os.environ.get("DOCKGATE_TEST_PKI", "dockgate")
    if choice == "dockgate" and dockgate_bin().exists():
        binary = request.getfixturevalue("dockgate_binary")
        return make_pki_dockgate(tmp_path_factory.mktemp("pki"), binary)
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def etc_hosts():
    """<key>.registry.localhost -> 127.0.0.1 in /etc/hosts (Go's resolver reads it)."""
    wanted = [f"127.0.0.1 {k}.{BASE_DOMAIN} {HOSTS_MARK}" for k in SUBDOMAIN_KEYS]
    try:
        current = Path("/etc/hosts").read_text().splitlines()
    except FileNotFoundError:
        current = []
    missing = [l for l in wanted if l not in current]
    if missing:
        try:
            with open("/etc/hosts", "a") as f:
                if current and current[-1] != "":
                    f.write("\n")
                f.write("\n".join(missing) + "\n")
        except OSError as e:
            pytest.skip(f"cannot add *.{BASE_DOMAIN} entries to /etc/hosts: {e}")
    return {k: "127.0.0.1" for k in SUBDOMAIN_KEYS}


# Backends ----------------------------------------------------------------------------------
@pytest.fixture
def registry_factory(tmp_path_factory, request):
    """registry_factory(schema1=False, htpasswd=None) -> started Registry, stopped on teardown."""
    started = []

    def make(schema1=False, htpasswd=None, start=True):
        reg = Registry(tmp_path_factory.mktemp("registry"), schema1=schema1, htpasswd=htpasswd)
        started.append(reg)
        return reg.start() if start else reg

    yield make
    for reg in started:
        reg.stop()
        if _failed(request):
            print(f"--- docker-registry log ({reg.url}) ---\n{reg.log_text()[-8000:]}")
    for reg in started:
        reg.remove_storage()


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """The session's default backend (isolation between tests by unique image names)."""
    reg = Registry(tmp_path_factory.mktemp("registry-session")).start()
    yield reg
    reg.stop()


# The gateway -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def dockgate_binary():
    path = dockgate_bin()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"dockgate binary not found at {path} "
                    "(build it with `cargo build --release` or set DOCKGATE_BIN)")
    return path


@pytest.fixture
def dockgate(dockgate_binary, pki, tmp_path_factory, request):
    """dockgate(config_dict_or_toml_text, start=True, env=None, pki_override=None) -> Gateway,
    stopped (SIGTERM, then SIGKILL) on teardown.

    The config is written to a fresh directory next to server.crt/server.key; listener
    addresses left empty get free loopback ports. Logs are printed if the test failed.
    """
    made = []

    def make(config, start=True, env=None, pki_override=None):
        gw = Gateway(config, tmp_path_factory.mktemp("dockgate"), pki_override or pki,
                     binary=dockgate_binary, env=env)
        made.append(gw)
        return gw.start() if start else gw

    yield make
    for gw in made:
        gw.stop(timeout=5)
        if _failed(request):
            print(gw.log_text())


@pytest.fixture(scope="session")
def session_gateway(dockgate_binary, pki, registry, etc_hosts, tmp_path_factory):
    cfg = gateway_config({"main": registry.url}, STANDARD_REPOSITORIES, STANDARD_LISTENERS)
    gw = Gateway(cfg, tmp_path_factory.mktemp("dockgate-session"), pki, binary=dockgate_binary)
    gw.start()
    yield gw
    gw.stop(timeout=5)


@pytest.fixture
def gateway(session_gateway, request):
    """The shared gateway (keys docker-local, team-a -> alpha/, team-b -> beta/ on `registry`; listeners
    path, subdomain, port->docker-local, port->team-a). Prints this test's log on failure."""
    if not session_gateway.running:
        pytest.fail("the session dockgate is not running any more (crashed in an earlier "
                    f"test?)\n{session_gateway.log_text()}")
    marks = session_gateway.log_marks()
    yield session_gateway
    if _failed(request):
        print(session_gateway.log_since(marks))
        if not session_gateway.running:
            print(f"dockgate exited with {session_gateway.proc.returncode}")


# Clients -----------------------------------------------------------------------------------
@pytest.fixture
def backend(registry):
    """A V2 client talking to the session backend directly (bypassing dockgate)."""
    from dgtest.client import V2
    return V2(registry.url)


@pytest.fixture
def client_env(tmp_path, pki):
    """Isolated HOME/TMPDIR/auth for skopeo, buildah and curl; TLS verified with the test CA."""
    return ClientEnv(tmp_path / "client", pki.cert_dir)


@pytest.fixture
def unique(request):
    """unique("app") -> a repository-name-safe, test-unique image name."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")

    def make(stem="img"):
        return f"{stem}-{base}-{secrets.token_hex(3)}"

    return make


@pytest.fixture
def big_tmp(tmp_path):
    """A directory removed at teardown even when pytest keeps tmp dirs (for GiB files)."""
    d = tmp_path / "big"
    d.mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)
