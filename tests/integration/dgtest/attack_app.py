"""Helpers for the application-level adversarial tests (tests/integration/adversarial/test_app_*).

The witness of what got through is always the real registry: its own access log
(`BackendLog`) and its storage, or a direct `V2` client.
"""
import json
import re
import secrets
import socket
import ssl
import subprocess
import time

import requests

from .backend import REGISTRY_BIN, Registry
from .client import V2
from .gateway import gateway_config
from .ops import write_htpasswd
from .proc import read_tail

SERVICE = "dockgate"
_ACCESS = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3})')


class BackendLog:
    """The registry's access log from the moment this object was made."""

    def __init__(self, registry):
        self.path = registry.log_path
        self.mark = self.path.stat().st_size if self.path.exists() else 0

    def requests(self):
        """[(method, uri, status)] the backend answered since the mark."""
        time.sleep(0.2)  # the registry writes its access line after answering
        with open(self.path, "rb") as f:
            f.seek(self.mark)
            text = f.read().decode("utf-8", "replace")
        return [(m, u, int(s)) for m, u, s in _ACCESS.findall(text)]

    def uris(self, method=None):
        return [u for m, u, _ in self.requests() if method is None or m == method]


class TokenRegistry(Registry):
    """docker-registry with its own token auth: it advertises a Bearer realm on itself
    (`/auth/token`, which it does not serve: distribution has no token server), as
    Artifactory or Harbor advertise a realm on their own host."""

    def __init__(self, workdir, ca_crt, realm_path="/auth/token"):
        super().__init__(workdir)
        cfg = json.loads(self.config_path.read_text())
        cfg["auth"] = {"token": {"realm": f"{self.url}{realm_path}", "service": "reg-test",
                                 "issuer": "test-issuer", "rootcertbundle": str(ca_crt)}}
        self.config_path.write_text(json.dumps(cfg, indent=2))

    def start(self, timeout=20.0):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(self.config_path)],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/v2/", timeout=1).status_code == 401:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"token registry not up:\n{read_tail(self.log_path)}")


def tls_exchange(port, raw: bytes, ca_file, server_hostname="127.0.0.1", timeout=15):
    """One request written byte for byte on a verified TLS socket (HTTP/1.1).
    Returns (status, {lowercased header: value}, body)."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.set_alpn_protocols(["http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with ctx.wrap_socket(sock, server_hostname=server_hostname) as s:
            s.sendall(raw)
            data = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except (ssl.SSLError, ConnectionResetError):
                    break
                if not chunk:
                    break
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def error_code(body: bytes):
    try:
        return [e["code"] for e in json.loads(body)["errors"]]
    except (ValueError, KeyError, TypeError):
        return None


def pw():
    return "pw-" + secrets.token_urlsafe(10)


class AppSetup:
    """An [auth] gateway over two real registries.

    one: team-a (prefix <stem>-a/), docker-local (prefix <stem>-w/, allow_overlap) and
         live (prefix <stem>-w/team/, inside docker-local's namespace);
    two: team-b (prefix <stem>-b/).
    Roles: alice writes team-a, docker-local and live; bob writes team-b and reads team-a;
    carol reads team-a only; wally writes docker-local but has no role on live.
    Listeners: path, subdomain (*.registry.localhost), port->team-a, port->team-b.
    """

    def __init__(self, gw, one, two, users, prefix):
        self.gw, self.one, self.two, self.users, self.prefix = gw, one, two, users, prefix
        self.ca = str(gw.pki.ca_crt)

    def backend_of(self, key):
        return self.two if key == "team-b" else self.one

    def route(self, method, key):
        return self.gw.route(method, key)

    def api(self, route, user=None):
        return V2(route.base, verify=self.ca, auth=(user, self.users[user]) if user else None)

    def token(self, route, scope, user=None):
        auth = (user, self.users[user]) if user else None
        r = requests.get(route.base + "/v2/token", params={"service": SERVICE, "scope": scope},
                         auth=auth, verify=self.ca, timeout=30)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()["token"]

    def seed(self, key, image, img, tag="1"):
        V2(self.backend_of(key).url).push_image(self.prefix[key] + image, tag, img)


def app_setup(dockgate, registry_factory, stem, auth_extra=None, listeners=None):
    one, two = registry_factory(), registry_factory()
    prefix = {"team-a": f"{stem}-a/", "team-b": f"{stem}-b/", "docker-local": f"{stem}-w/",
              "live": f"{stem}-w/team/"}
    users = {u: pw() for u in ("alice", "bob", "carol", "wally")}
    repos = {
        "team-a": {"backend": "one", "name_prefix": prefix["team-a"], "read": ["bob", "carol"],
                   "write": ["alice"]},
        "team-b": {"backend": "two", "name_prefix": prefix["team-b"], "write": ["bob"]},
        "docker-local": {"backend": "one", "name_prefix": prefix["docker-local"],
                         "allow_overlap": True, "read": ["*"], "write": ["wally", "alice"]},
        "live": {"backend": "one", "name_prefix": prefix["live"], "write": ["alice"]},
    }
    repos = {k: {"type": "local", **r} for k, r in repos.items()}
    cfg = gateway_config({"one": one.url, "two": two.url}, repos, listeners or [
        {"method": "path"}, {"method": "subdomain"},
        {"method": "port", "repository": "team-a"}, {"method": "port", "repository": "team-b"}])
    a = {"htpasswd": "users.htpasswd", "state_dir": "state", "max_failures": 1000,
         "lockout_seconds": 60}
    a.update(auth_extra or {})
    cfg["auth"] = a
    gw = dockgate(cfg, start=False)
    write_htpasswd(gw.dir / "users.htpasswd", users)
    gw.start()
    return AppSetup(gw, one, two, users, prefix)
