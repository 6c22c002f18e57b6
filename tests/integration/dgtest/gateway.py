"""Running the dockgate binary from a test: config writing, start/readiness/stop, routes."""
import copy
import os
import re
import subprocess
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import requests

from .client import V2
from .ports import free_port, wait_port_closed
from .proc import read_tail, stop_process

REPO_ROOT = Path(__file__).resolve().parents[3]  # tests/integration/dgtest -> repo root
DEFAULT_BIN = REPO_ROOT / "target" / "release" / "dockgate"
BASE_DOMAIN = "registry.localhost"


def dockgate_bin() -> Path:
    return Path(os.environ.get("DOCKGATE_BIN", str(DEFAULT_BIN)))


# TOML writing (the subset the config uses) ---------------------------------------------
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k):
    return k if _BARE.match(k) else '"' + k.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (str, Path)):
        s = str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{s}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v)} to TOML")


def _is_table_array(v):
    return isinstance(v, list) and v and all(isinstance(x, dict) for x in v)


def to_toml(data, _prefix=()):
    lines = []
    scalars = {k: v for k, v in data.items()
               if not isinstance(v, dict) and not _is_table_array(v)}
    for k, v in scalars.items():
        lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in data.items():
        path = _prefix + (k,)
        if isinstance(v, dict):
            has_scalars = any(not isinstance(x, dict) and not _is_table_array(x)
                              for x in v.values())
            if has_scalars or not v:
                lines.append("")
                lines.append("[" + ".".join(_key(p) for p in path) + "]")
            lines.append(to_toml(v, path))
        elif _is_table_array(v):
            for item in v:
                lines.append("")
                lines.append("[[" + ".".join(_key(p) for p in path) + "]]")
                lines.append(to_toml(item, path))
    return "\n".join(l for l in lines if l is not None).strip("\n") + "\n"


# Config building -----------------------------------------------------------------------
def gateway_config(backends, repositories, listeners=None, server=None, tls=None):
    """A config dict in dockgate's format.

    backends:     {"name": "http://127.0.0.1:5000"} or {"name": {"url": ..., ...}}
    repositories: {"key": {"backend": "name", "type": "local", "name_prefix": "team-a/"}}
    listeners:    [{"method": "path"}, {"method": "subdomain"},
                   {"method": "port", "repository": "docker-local"}]; addresses are
                  filled in with free loopback ports by the Gateway.
    """
    listeners = listeners or [{"method": "path"}]
    cfg = {
        "server": {"threads": 2, "grace_period_seconds": 1,
                   "graceful_shutdown_timeout_seconds": 1},
        "tls": {"cert": "server.crt", "key": "server.key"},
        "listen": [dict(l) for l in listeners],
        "backends": {n: (dict(b) if isinstance(b, dict) else {"url": b})
                     for n, b in backends.items()},
        "repositories": {k: dict(r) for k, r in repositories.items()},
    }
    if server:
        cfg["server"].update(server)
    if tls:
        cfg["tls"].update(tls)
    return cfg


@dataclass
class Route:
    """How a client addresses one repository key through one listener."""
    method: str
    key: str
    host: str          # host as the client writes it (IP or <key>.<base_domain>)
    port: int
    scheme: str = "https"

    @property
    def hostport(self):
        return f"{self.host}:{self.port}"

    @property
    def base(self):
        return f"{self.scheme}://{self.hostport}"

    def name(self, image):
        """The repository name a client uses for `image` on this route."""
        return f"{self.key}/{image}" if self.method == "path" else image

    def ref(self, image, tag=None):
        r = f"{self.hostport}/{self.name(image)}"
        return r + (f":{tag}" if tag else "")

    def docker(self, image, tag):
        return "docker://" + self.ref(image, tag)


class Gateway:
    def __init__(self, config, workdir, pki, binary=None, env=None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pki = pki
        self.binary = Path(binary or dockgate_bin())
        self.stdout_path = self.dir / "dockgate.stdout.log"
        self.stderr_path = self.dir / "dockgate.stderr.log"
        self.config_path = self.dir / "dockgate.toml"
        self.proc = None
        self.extra_env = env or {}
        pki.install(self.dir)  # server.crt/server.key next to the config (relative paths)
        if isinstance(config, str):
            self.config_text = config
            self.config = tomllib.loads(config)
        else:
            self.config = copy.deepcopy(config)
            self.config.setdefault("server", {}).setdefault("runtime_dir",
                                                            str(self.dir / "run"))
            # The default metrics address (127.0.0.1:9464) would be shared by every
            # gateway a test run starts; tests that scrape set their own port.
            self.config.setdefault("metrics", {}).setdefault("address", "off")
            for l in self.config.get("listen", []):
                if not l.get("address"):
                    l["address"] = f"127.0.0.1:{free_port()}"
                if l.get("method") == "subdomain":
                    l.setdefault("base_domain", BASE_DOMAIN)
            self.config_text = to_toml(self.config)
        self.config_path.write_text(self.config_text)

    # listeners ----------------------------------------------------------------------------
    @property
    def listeners(self):
        return self.config.get("listen", [])

    def ports(self, method=None):
        return [int(l["address"].rsplit(":", 1)[1]) for l in self.listeners
                if method is None or l.get("method") == method]

    def port(self, method="path", repository=None):
        for l in self.listeners:
            if l.get("method") == method and (repository is None
                                              or l.get("repository") == repository):
                return int(l["address"].rsplit(":", 1)[1])
        raise KeyError(f"no {method} listener" + (f" for {repository}" if repository else ""))

    @property
    def url(self):
        """Base URL of the first path listener (or the first listener)."""
        try:
            return f"https://127.0.0.1:{self.port('path')}"
        except KeyError:
            return f"https://127.0.0.1:{self.ports()[0]}"

    def route(self, method, key):
        if method == "path":
            return Route("path", key, "127.0.0.1", self.port("path"))
        if method == "subdomain":
            l = next(l for l in self.listeners if l.get("method") == "subdomain")
            return Route("subdomain", key, f"{key}.{l['base_domain']}",
                         int(l["address"].rsplit(":", 1)[1]))
        if method == "port":
            return Route("port", key, "127.0.0.1", self.port("port", repository=key))
        raise ValueError(method)

    def api(self, route_or_base=None):
        """A V2 client verifying TLS with the test CA."""
        base = route_or_base.base if isinstance(route_or_base, Route) else (route_or_base or self.url)
        return V2(base, verify=str(self.pki.ca_crt))

    # process ------------------------------------------------------------------------------
    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=30.0):
        out = open(self.stdout_path, "ab")
        err = open(self.stderr_path, "ab")
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        env.update(self.extra_env)
        self.proc = subprocess.Popen([str(self.binary), "serve", "--config", str(self.config_path)],
                                     stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                     cwd=self.dir, env=env)
        out.close()
        err.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=30.0):
        """Every listener answers GET https://127.0.0.1:PORT/v2/ with some HTTP status."""
        deadline = time.monotonic() + timeout
        pending = list(self.ports())
        last_error = None
        while pending and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockgate exited with {self.proc.returncode} during startup\n"
                                   f"{self.log_text()}")
            port = pending[0]
            try:
                requests.get(f"https://127.0.0.1:{port}/v2/", verify=str(self.pki.ca_crt),
                             timeout=2)
                pending.pop(0)
                continue
            except requests.RequestException as e:
                last_error = e
            time.sleep(0.1)
        if pending:
            raise RuntimeError(f"dockgate listeners {pending} not ready after {timeout}s "
                               f"(last error: {last_error})\n{self.log_text()}")

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        if self.proc is None:
            return None
        rc = stop_process(self.proc, timeout)
        for p in self.ports():
            wait_port_closed(p, timeout=5)
        return rc

    def rss_peak_kib(self):
        """VmHWM (peak resident set size) of the running gateway, in KiB."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise RuntimeError("VmHWM not found")

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("VmRSS not found")

    def log_size(self):
        return sum(p.stat().st_size if p.exists() else 0
                   for p in (self.stdout_path, self.stderr_path))

    def log_text(self, limit=30000):
        return (f"--- dockgate config {self.config_path} ---\n{self.config_text}\n"
                f"--- dockgate stdout ---\n{read_tail(self.stdout_path, limit)}\n"
                f"--- dockgate stderr ---\n{read_tail(self.stderr_path, limit)}")

    def log_since(self, marks, limit=30000):
        """Log text written after `marks` = (stdout_size, stderr_size)."""
        out = []
        for path, mark in zip((self.stdout_path, self.stderr_path), marks):
            try:
                with open(path, "rb") as f:
                    f.seek(mark)
                    out.append(f.read()[-limit:].decode("utf-8", "replace"))
            except FileNotFoundError:
                out.append("")
        return f"--- dockgate stdout (this test) ---\n{out[0]}\n--- dockgate stderr (this test) ---\n{out[1]}"

    def log_marks(self):
        return tuple(p.stat().st_size if p.exists() else 0
                     for p in (self.stdout_path, self.stderr_path))
