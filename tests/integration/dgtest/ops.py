"""Helpers for test_auth.py and test_operations.py (auth, metrics, signals, real clients).

- gateways with [auth] (htpasswd written by `htpasswd -B` at a low cost, or `dockgate user add`),
  each with its own metrics port (or metrics off);
- JWTs built and edited by hand (base64 + json), ES256 signatures with `cryptography`;
- the Prometheus text format parsed into series, a real Prometheus server;
- docker / skopeo / podman logins in throwaway config dirs;
- streaming blob uploads and downloads (nothing large is held in memory).
"""
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from .gateway import gateway_config, to_toml
from .ports import free_port
from .proc import read_tail, run, stop_process

# Users ---------------------------------------------------------------------------------------
def write_htpasswd(path, users: dict, cost=5):
    """bcrypt htpasswd file with a low cost (every Basic request pays one bcrypt check)."""
    path = Path(path)
    first = True
    for user, password in users.items():
        run(["htpasswd", "-B", "-C", str(cost), "-b" + ("c" if first else ""), path, user,
             password])
        first = False
    return path


def dockgate_user_add(binary, config_path, user, password):
    """`dockgate user add USER --config F --password-stdin`."""
    return run([binary, "user", "add", user, "--config", config_path, "--password-stdin"],
               input=(password + "\n").encode(), timeout=120)


def dockgate_revoke_keys(binary, config_path, user):
    return run([binary, "user", "revoke-keys", user, "--config", config_path], timeout=60)


def auth_gateway_config(backend_url, repositories, auth=None, metrics_port=None, log=None,
                        listeners=None, server=None, backend_extra=None):
    """A one-backend ("main") gateway config with an [auth] section.

    repositories: {"key": {"name_prefix": ..., "anonymous_read": ..., "read": [...], ...}};
    "backend" defaults to "main". metrics_port None -> metrics "off".
    """
    backend = {"url": backend_url, **(backend_extra or {})}
    repos = {k: {"backend": "main", "type": "local", **r} for k, r in repositories.items()}
    cfg = gateway_config({"main": backend}, repos, listeners or [{"method": "path"}],
                         server=server)
    cfg["metrics"] = {"address": f"127.0.0.1:{metrics_port}" if metrics_port else "off"}
    if log:
        cfg["log"] = dict(log)
    if auth is not None:
        a = {"htpasswd": "users.htpasswd", "state_dir": "state", "max_failures": 1000,
             "lockout_seconds": 60}
        a.update(auth)
        cfg["auth"] = a
    return cfg


def rewrite_config(gw, cfg=None, text=None):
    """Replace the gateway's config file (for SIGHUP); returns the new text."""
    if text is None:
        text = to_toml(cfg)
    tmp = gw.config_path.with_suffix(".staged")
    tmp.write_text(text)
    os.replace(tmp, gw.config_path)
    if cfg is not None:
        gw.config = cfg
    gw.config_text = text
    return text


# JWTs ----------------------------------------------------------------------------------------
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_split(token):
    """(header dict, payload dict, signature bytes) of a compact JWS."""
    h, p, s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p)), b64url_decode(s)


def jwt_unsigned(header: dict, payload: dict) -> str:
    """header.payload (the signing input)."""
    return (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
            + b64url(json.dumps(payload, separators=(",", ":")).encode()))


def jwt_with_signature(header, payload, signature: bytes) -> str:
    return jwt_unsigned(header, payload) + "." + b64url(signature)


def es256_sign(private_key, signing_input: str) -> bytes:
    """JWS ES256 signature (raw r||s, 64 bytes) with a cryptography EC private key."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    der = private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def jwt_es256(header, payload, private_key) -> str:
    signing_input = jwt_unsigned(header, payload)
    return signing_input + "." + b64url(es256_sign(private_key, signing_input))


def new_p256_key():
    from cryptography.hazmat.primitives.asymmetric import ec
    return ec.generate_private_key(ec.SECP256R1())


def load_pem_private_key(path):
    from cryptography.hazmat.primitives.serialization import load_pem_private_key as load
    return load(Path(path).read_bytes(), password=None)


# Prometheus text format ----------------------------------------------------------------------
_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, ((label, value), ...sorted)): float} for every sample line."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            raise AssertionError(f"unparsable metrics line: {line!r}")
        labels = tuple(sorted(_LABEL_RE.findall(m.group(3) or "")))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def series_without_buckets(samples):
    """Series identities with histogram buckets folded (the `le` label dropped)."""
    return {(name[:-len("_bucket")] if name.endswith("_bucket") else name,
             tuple(l for l in labels if l[0] != "le"))
            for name, labels in samples}


def metric(samples, name, **labels):
    """Sum of `name` over the series whose labels include `labels` (0 when none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def scrape(port, timeout=10):
    r = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=timeout)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r.text


def samples_of(port):
    return parse_metrics(scrape(port))


# A real Prometheus ---------------------------------------------------------------------------
class Prometheus:
    """`prometheus` scraping the given targets every second, storage in `workdir`."""

    def __init__(self, workdir, targets, interval="1s"):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config_path = self.dir / "prometheus.yml"
        self.log_path = self.dir / "prometheus.log"
        cfg = {  # JSON is YAML
            "global": {"scrape_interval": interval, "evaluation_interval": interval,
                       "scrape_timeout": interval},
            "scrape_configs": [{"job_name": "dockgate",
                                "static_configs": [{"targets": list(targets)}]}],
        }
        self.config_path.write_text(json.dumps(cfg, indent=2))
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=60):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={self.config_path}",
             f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=info"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n"
                                   f"{read_tail(self.log_path)}")
            try:
                if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready within {timeout}s:\n{read_tail(self.log_path)}")

    def query(self, expr):
        r = requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body.get("status") == "success", body
        return body["data"]["result"]

    def by_label(self, expr, label):
        """{label value: float} of an instant vector query."""
        return {s["metric"].get(label): float(s["value"][1]) for s in self.query(expr)}

    def targets_up(self):
        r = requests.get(self.url + "/api/v1/targets", timeout=10).json()
        return [t for t in r["data"]["activeTargets"] if t.get("health") == "up"]

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, timeout=10)

    def log_text(self):
        return read_tail(self.log_path, 20000)


# Logins with real clients ---------------------------------------------------------------------
def docker_login(config_dir, hostport, user, password, timeout=60):
    """`docker login` (client side) with DOCKER_CONFIG=config_dir. Returns CompletedProcess.

    The docker client ships with the machine image, not with a Debian package that installs
    the client alone, so tests using it skip where it is absent."""
    if shutil.which("docker") is None:
        pytest.skip("docker CLI not installed on this machine")
    Path(config_dir).mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(config_dir),
           "DOCKER_CONFIG": str(config_dir)}
    return run(["docker", "login", "--username", user, "--password-stdin", hostport],
               env=env, input=password.encode(), timeout=timeout, check=False)


def skopeo_login(client_env, authfile, hostport, user, password, timeout=60):
    return run(["skopeo", "login", "--cert-dir", client_env.cert_dir, "--authfile", authfile,
                "--username", user, "--password-stdin", hostport],
               env=client_env.env, input=password.encode(), timeout=timeout, check=False)


def podman_login(client_env, authfile, hostport, user, password, timeout=90):
    """`podman login` with private storage dirs (nothing touches the machine's storage)."""
    short = tempfile.mkdtemp(prefix="pm-", dir="/tmp")  # podman wants a runroot <= 50 chars
    try:
        args = ["podman", "--root", f"{short}/root", "--runroot", f"{short}/run",
                "--tmpdir", f"{short}/tmp",
                "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
                "--events-backend", "file",
                "login", "--cert-dir", client_env.cert_dir, "--authfile", authfile,
                "--username", user, "--password-stdin", hostport]
        return run(args, env=client_env.env, input=password.encode(), timeout=timeout,
                   check=False)
    finally:
        shutil.rmtree(short, ignore_errors=True)


# Streaming blobs -----------------------------------------------------------------------------
def push_blob_file(base_url, name, path, digest, auth=None, verify=True, timeout=600):
    """POST + monolithic PUT of a file, streamed from disk. Returns the final response."""
    s = requests.Session()
    s.trust_env = False
    s.verify = verify
    s.auth = auth
    r = s.post(f"{base_url}/v2/{name}/blobs/uploads/", timeout=60)
    assert r.status_code == 202, (r.status_code, r.text)
    loc = requests.compat.urljoin(r.url, r.headers["Location"])
    sep = "&" if "?" in loc else "?"
    with open(path, "rb") as f:
        r = s.put(f"{loc}{sep}digest={digest}", data=f, timeout=timeout,
                  headers={"Content-Type": "application/octet-stream",
                           "Content-Length": str(os.path.getsize(path))})
    assert r.status_code == 201, (r.status_code, r.text)
    return r


def sha256_file(path, bufsize=8 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(bufsize)
            if not b:
                break
            h.update(b)
    return "sha256:" + h.hexdigest()


# Processes -----------------------------------------------------------------------------------
def wait_exit(proc, timeout):
    """Wait for a Popen to exit; returns (returncode or None, seconds waited)."""
    t0 = time.monotonic()
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        rc = None
    return rc, time.monotonic() - t0


def send(gw, sig):
    os.kill(gw.proc.pid, sig)


SIGHUP, SIGTERM = signal.SIGHUP, signal.SIGTERM


def gateway_logs(gw):
    """stdout + stderr of a gateway, whole."""
    return "".join(Path(p).read_text(errors="replace") if Path(p).exists() else ""
                   for p in (gw.stdout_path, gw.stderr_path))


def find_secrets(text, secrets):
    """The secrets that occur verbatim in text (callers add base64 Basic forms themselves)."""
    found = []
    for s in secrets:
        if not s:
            continue
        if s in text:
            found.append(s)
    return found


def basic_b64(user, password):
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def access_log_lines(path):
    lines = []
    p = Path(path)
    if not p.exists():
        return lines
    for raw in p.read_text(errors="replace").splitlines():
        raw = raw.strip()
        if raw.startswith("{"):
            try:
                lines.append(json.loads(raw))
            except ValueError:
                pass
    return lines


def which(binary):
    return shutil.which(binary)
