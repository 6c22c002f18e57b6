"""Helpers shared by test_certs.py and test_schema1.py (not part of the core harness).

- certificates made by `dockgate cert generate` / `dockgate cert inspect` and by openssl
  (CN-only and SNI leaves signed by a generated CA);
- TLSGateway: the harness Gateway serving a certificate that the test made, with a
  readiness probe that verifies the chain against that CA (hostnames are what the tests
  themselves check, so the probe does not depend on the SANs under test);
- TLS probes (peer certificate, serial, SANs) with Python's verifier;
- curl requests that return status, headers and body;
- a `tls_gateway` fixture factory (import it into the test module).
"""
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import time
from pathlib import Path

import pytest

from .gateway import Gateway
from .pki import PKI
from .proc import run

ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
GO_ERROR_RE = re.compile(r"^\s*(x509: .+?)\s*$", re.M)


# dockgate cert ---------------------------------------------------------------------------
def cert_generate(binary, out_dir, ips=(), dns=(), port=None, days=None, check=True):
    """Run `dockgate cert generate`; returns the CompletedProcess."""
    cmd = [binary, "cert", "generate", "--out", out_dir]
    for ip in ips:
        cmd += ["--ip", ip]
    for name in dns:
        cmd += ["--dns", name]
    if port is not None:
        cmd += ["--port", str(port)]
    if days is not None:
        cmd += ["--days", str(days)]
    return run(cmd, check=check, timeout=60)


def cert_inspect(binary, cert_file, host=None):
    """`dockgate cert inspect FILE [--host HOST]` -> (exit code, stdout + stderr)."""
    cmd = [binary, "cert", "inspect", cert_file]
    if host:
        cmd += ["--host", host]
    p = run(cmd, check=False, timeout=60)
    return p.returncode, p.stdout + p.stderr


def predicted_go_error(inspect_output):
    """The Go error text a `cert inspect --host` verdict predicts (first `x509: ...` line
    that is not the generic 'signed by unknown authority' caveat), or None."""
    for m in GO_ERROR_RE.finditer(inspect_output):
        text = m.group(1).rstrip(").")
        if "signed by unknown authority" not in text:
            return text
    return None


def ca_only_dir(ca_crt, directory):
    """A directory holding only ca.crt (for --cert-dir / --src-cert-dir / --dest-cert-dir)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ca_crt, d / "ca.crt")
    return d


def install_certs_d(home, hostport, ca_crt):
    """$HOME/.config/containers/certs.d/<host:port>/ca.crt (containers/image per-user)."""
    d = Path(home) / ".config" / "containers" / "certs.d" / hostport
    d.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ca_crt, d / "ca.crt")
    return d


# openssl leaves ------------------------------------------------------------------------------
def openssl_leaf(ca_crt, ca_key, out_dir, stem, cn, sans=None, days=30, chain=True):
    """A CA-signed EC P-256 server cert. sans=None: no subjectAltName extension at all.
    Returns (cert path, key path); the cert file holds leaf + CA when chain=True."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    key, csr, crt, ext = (d / f"{stem}.key", d / f"{stem}.csr", d / f"{stem}.crt",
                          d / f"{stem}.ext")
    run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", csr, "-subj", f"/O=dockgate tests/CN={cn}"])
    lines = ["basicConstraints=critical,CA:FALSE",
             "keyUsage=critical,digitalSignature",
             "extendedKeyUsage=serverAuth",
             "subjectKeyIdentifier=hash",
             "authorityKeyIdentifier=keyid"]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    leaf = d / f"{stem}.leaf.crt"
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
         "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-out", leaf,
         "-days", str(days), "-sha256", "-extfile", ext])
    data = leaf.read_bytes()
    if chain:
        data += Path(ca_crt).read_bytes()
    crt.write_bytes(data)
    os.chmod(key, 0o600)
    return crt, key


def file_serial(cert_file):
    """Serial number (int) of the first certificate in a PEM file."""
    out = run(["openssl", "x509", "-in", cert_file, "-noout", "-serial"]).stdout
    return int(out.strip().split("=", 1)[1], 16)


def file_sans(cert_file):
    out = run(["openssl", "x509", "-in", cert_file, "-noout", "-ext", "subjectAltName"],
              check=False).stdout
    return out


def pem_count(cert_file):
    return Path(cert_file).read_text().count("-----BEGIN CERTIFICATE-----")


# TLS probes ----------------------------------------------------------------------------------
def verifying_context(ca_file, check_hostname=True):
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.check_hostname = check_hostname
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def peer_cert(port, ca_file, server_hostname=None, connect_ip="127.0.0.1",
              check_hostname=True, timeout=10):
    """Handshake (verified against ca_file) and return getpeercert() of the leaf.

    server_hostname is sent as SNI unless it is an IP literal (CPython never sends IPs
    as SNI), and checked against the cert's SANs when check_hostname is true.
    """
    ctx = verifying_context(ca_file, check_hostname=check_hostname)
    with socket.create_connection((connect_ip, port), timeout=timeout) as s:
        with ctx.wrap_socket(s, server_hostname=server_hostname) as tls:
            return tls.getpeercert()


def cert_serial_of(peercert):
    return int(peercert["serialNumber"], 16)


def cert_sans(peercert):
    return sorted(v for _, v in peercert.get("subjectAltName", ()))


def wait_for(predicate, timeout=20.0, interval=0.2, what="condition"):
    """Poll predicate() until it returns a truthy value; that value is returned.
    Exceptions from predicate count as 'not yet'. Raises AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except Exception as e:  # noqa: BLE001 - report the last one
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout}s (last: {last!r})")
        time.sleep(interval)


def strip_ansi(text):
    return ANSI_RE.sub("", text)


# Gateways serving test-made certificates ------------------------------------------------------
class CertPKI(PKI):
    """A PKI record for a CA the test made; install() does nothing, because the config
    points at the test's certificate files itself (or lets dockgate generate them)."""

    def install(self, dest_dir, cert_name="server.crt", key_name="server.key"):
        return None


def cert_pki(ca_crt, server_crt=None, server_key=None, cert_dir=None):
    ca_crt = Path(ca_crt)
    return CertPKI(dir=ca_crt.parent, ca_crt=ca_crt, ca_key=ca_crt.parent / "ca.key",
                   server_crt=Path(server_crt or ca_crt.parent / "server.crt"),
                   server_key=Path(server_key or ca_crt.parent / "server.key"),
                   cert_dir=Path(cert_dir or ca_crt.parent))


class TLSGateway(Gateway):
    """A Gateway whose readiness probe verifies the served chain with pki.ca_crt (read at
    each attempt, so a CA that dockgate generates at start-up works) without checking the
    host name: the tests check names with skopeo and Python themselves."""

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        pending = list(dict.fromkeys(self.ports()))
        last_error = None
        while pending and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockgate exited with {self.proc.returncode} during startup\n"
                                   f"{self.log_text()}")
            port = pending[0]
            try:
                if not Path(self.pki.ca_crt).exists():
                    raise FileNotFoundError(self.pki.ca_crt)
                ctx = verifying_context(self.pki.ca_crt, check_hostname=False)
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    with ctx.wrap_socket(s) as tls:
                        tls.sendall(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                    b"Connection: close\r\n\r\n")
                        if tls.recv(16).startswith(b"HTTP/1."):
                            pending.pop(0)
                            continue
            except (OSError, ssl.SSLError) as e:
                last_error = e
            time.sleep(0.1)
        if pending:
            raise RuntimeError(f"dockgate listeners {pending} not ready after {timeout}s "
                               f"(last error: {last_error})\n{self.log_text()}")

    def log_all(self):
        return strip_ansi(self.log_text(limit=200000))

    def log_since_plain(self, marks):
        return strip_ansi(self.log_since(marks, limit=200000))


def _failed(request):
    for when in ("setup", "call"):
        rep = getattr(request.node, "rep_" + when, None)
        if rep is not None and rep.failed:
            return True
    return False


@pytest.fixture
def tls_gateway(dockgate_binary, tmp_path_factory, request):
    """tls_gateway(config, ca_crt, start=True) -> TLSGateway; stopped on teardown, logs
    printed if the test failed. `config` is a gateway_config() dict or TOML text."""
    made = []

    def make(config, ca_crt, start=True, env=None):
        gw = TLSGateway(config, tmp_path_factory.mktemp("dockgate-tls"), cert_pki(ca_crt),
                        binary=dockgate_binary, env=env)
        made.append(gw)
        return gw.start() if start else gw

    yield make
    for gw in made:
        gw.stop(timeout=5)
        if _failed(request):
            print(gw.log_text())


# curl ------------------------------------------------------------------------------------
class CurlResponse:
    def __init__(self, status, headers, body, proc):
        self.status = status
        self.headers = headers
        self.body = body
        self.proc = proc

    @property
    def status_code(self):
        return self.status

    @property
    def content(self):
        return self.body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return (f"<curl {self.status} {dict(self.headers)} {self.text[:600]!r} "
                f"exit={self.proc.returncode} stderr={self.proc.stderr[-300:]!r}>")


def _parse_headers(raw):
    """The last header block of a curl -D dump (after 100 Continue etc.), lower-case keys."""
    blocks = [b for b in re.split(r"\r?\n\r?\n", raw) if b.strip()]
    headers = {}
    if not blocks:
        return headers
    for line in blocks[-1].splitlines()[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return headers


def curl_request(client_env, method, url, workdir, headers=None, data_file=None,
                 extra=(), timeout=120):
    """curl (TLS verified with client_env's CA) -> CurlResponse. A header given with value
    None is removed (e.g. {"Content-Type": None} stops curl adding its form type)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha1(f"{method}{url}{time.monotonic_ns()}".encode()).hexdigest()[:10]
    hdr_file, body_file = workdir / f"h-{tag}", workdir / f"b-{tag}"
    args = ["-X", method, "-D", hdr_file, "-o", body_file, "-w", "%{http_code}"]
    if method == "HEAD":
        args = ["--head", "-D", hdr_file, "-o", body_file, "-w", "%{http_code}"]
    for k, v in (headers or {}).items():
        args += ["-H", f"{k}:" if v is None else f"{k}: {v}"]
    if data_file is not None:
        args += ["--data-binary", f"@{data_file}"]
    args += list(extra)
    p = client_env.curl(*args, url, timeout=timeout, check=False)
    status = int(p.stdout.strip() or 0)
    raw = hdr_file.read_text(errors="replace") if hdr_file.exists() else ""
    body = body_file.read_bytes() if body_file.exists() else b""
    return CurlResponse(status, _parse_headers(raw), body, p)


def errors_of(resp):
    try:
        return resp.json().get("errors", [])
    except (ValueError, AttributeError):
        return []
