"""A real etcd cluster (Debian's etcd-server) with TLS on loopback, and HAProxy in TCP mode
in front of several gateways: the parts the `[cluster]` tests run on.

The certificates are made here with the openssl CLI: one CA, one member certificate
(serverAuth + clientAuth: members also dial each other with it) and one client
certificate for dockgate and etcdctl.
"""
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .ports import free_port, port_open
from .proc import read_tail, run, stop_process


def _sign(d, name, ca_crt, ca_key, eku, sans=None, cn=None):
    key, csr, crt, ext = (d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt",
                          d / f"{name}.ext")
    run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", csr, "-subj", f"/O=dockgate tests/CN={cn or name}"])
    lines = ["basicConstraints=critical,CA:FALSE",
             "keyUsage=critical,digitalSignature,keyEncipherment",
             f"extendedKeyUsage={eku}"]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
         "-CAcreateserial", "-out", crt, "-days", "2", "-sha256", "-extfile", ext])
    os.chmod(key, 0o600)
    return crt, key


class EtcdPKI:
    def __init__(self, directory):
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.dir = d
        self.ca_key, self.ca_crt = d / "etcd-ca.key", d / "etcd-ca.crt"
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", self.ca_key,
             "-out", self.ca_crt, "-days", "2", "-subj", "/O=dockgate tests/CN=etcd test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        self.member_crt, self.member_key = _sign(
            d, "member", self.ca_crt, self.ca_key, "serverAuth,clientAuth",
            sans=["IP:127.0.0.1", "DNS:localhost"])
        self.client_crt, self.client_key = _sign(
            d, "client", self.ca_crt, self.ca_key, "clientAuth", cn="dockgate")


class EtcdMember:
    def __init__(self, name, directory, client_port, peer_port):
        self.name = name
        self.dir = Path(directory)
        self.client_port = client_port
        self.peer_port = peer_port
        self.proc = None
        self.log_path = self.dir / f"{name}.log"

    @property
    def client_url(self):
        return f"https://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self):
        return f"https://127.0.0.1:{self.peer_port}"


class EtcdCluster:
    """Three members; `start()` waits (polling) until every member reports healthy."""

    def __init__(self, directory, size=3):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pki = EtcdPKI(self.dir / "pki")
        self.members = [EtcdMember(f"m{i}", self.dir, free_port(), free_port())
                        for i in range(size)]
        self.started_once = set()

    @property
    def urls(self):
        return [m.client_url for m in self.members]

    def _args(self, m):
        initial = ",".join(f"{x.name}={x.peer_url}" for x in self.members)
        p = self.pki
        return ["etcd", "--name", m.name, "--data-dir", str(self.dir / f"{m.name}.data"),
                "--listen-client-urls", m.client_url, "--advertise-client-urls", m.client_url,
                "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
                "--initial-cluster", initial, "--initial-cluster-token", "dockgate-tests",
                "--initial-cluster-state",
                "existing" if m.name in self.started_once else "new",
                "--cert-file", p.member_crt, "--key-file", p.member_key,
                "--trusted-ca-file", p.ca_crt, "--client-cert-auth",
                "--peer-cert-file", p.member_crt, "--peer-key-file", p.member_key,
                "--peer-trusted-ca-file", p.ca_crt, "--peer-client-cert-auth",
                # Loopback: short heartbeats, but an election that tolerates a busy machine.
                "--heartbeat-interval", "100", "--election-timeout", "1500",
                "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"]

    def start_member(self, m):
        log = open(m.log_path, "ab")
        m.proc = subprocess.Popen([str(a) for a in self._args(m)], stdout=log, stderr=log,
                                  stdin=subprocess.DEVNULL)
        log.close()
        self.started_once.add(m.name)

    def start(self, timeout=90):
        for m in self.members:
            self.start_member(m)
        self.wait_healthy(timeout)
        return self

    def stop_member(self, m, sig=signal.SIGTERM):
        if m.proc and m.proc.poll() is None:
            m.proc.send_signal(sig)
            try:
                m.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait()
        m.proc = None

    def stop(self):
        for m in self.members:
            self.stop_member(m)

    def etcdctl(self, *args, endpoints=None, timeout=20, check=True):
        p = self.pki
        env = dict(os.environ, ETCDCTL_API="3")
        return run(["etcdctl", "--endpoints", ",".join(endpoints or self.urls),
                    "--cacert", p.ca_crt, "--cert", p.client_crt, "--key", p.client_key,
                    "--dial-timeout", "2s", "--command-timeout", "5s", *args],
                   env=env, timeout=timeout, check=check)

    def running(self):
        return [m for m in self.members if m.proc and m.proc.poll() is None]

    def wait_healthy(self, timeout=90):
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for m in self.members:
                if m.proc and m.proc.poll() is not None:
                    raise RuntimeError(f"etcd {m.name} exited:\n{read_tail(m.log_path)}")
            r = self.etcdctl("endpoint", "health", endpoints=[m.client_url for m in
                                                             self.running()], check=False)
            last = r.stdout + r.stderr
            if r.returncode == 0:
                return
            time.sleep(0.3)
        raise RuntimeError(f"etcd not healthy within {timeout}s:\n{last}\n" +
                           "\n".join(read_tail(m.log_path, 3000) for m in self.members))

    def leader(self):
        r = self.etcdctl("endpoint", "status", "-w", "json",
                         endpoints=[m.client_url for m in self.running()])
        for s in json.loads(r.stdout):
            if s["Status"]["leader"] == s["Status"]["header"]["member_id"]:
                return next(m for m in self.members if m.client_url == s["Endpoint"])
        raise RuntimeError(f"no leader: {r.stdout}")


class HAProxy:
    """TCP mode, round robin, an HTTPS check of /_dockgate/health every 300 ms (the
    README's example): a draining instance answers 503 while it still accepts."""

    def __init__(self, directory, backends):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.cfg = self.dir / "haproxy.cfg"
        servers = "\n".join(
            f"    server {name} 127.0.0.1:{port} check check-ssl verify none "
            f"inter 300ms fall 1 rise 2"
            for name, port in backends.items())
        self.sock = self.dir / "admin.sock"
        self.cfg.write_text(f"""global
    maxconn 256
    stats socket {self.sock} mode 600 level admin

defaults
    mode tcp
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    retries 3
    option redispatch 1

frontend registry
    bind 127.0.0.1:{self.port}
    default_backend gateways

backend gateways
    balance roundrobin
    option httpchk
    http-check send meth GET uri /_dockgate/health ver HTTP/1.1 hdr Host 127.0.0.1
    http-check expect status 200
{servers}
""")
        self.log_path = self.dir / "haproxy.log"
        self.proc = None

    @property
    def hostport(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=20):
        run(["haproxy", "-c", "-f", self.cfg])
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(self.cfg)], stdout=log,
                                     stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited:\n{read_tail(self.log_path)}")
            if port_open(self.port):
                return self
            time.sleep(0.1)
        raise RuntimeError(f"haproxy not listening:\n{read_tail(self.log_path)}")

    def stop(self):
        if self.proc:
            stop_process(self.proc, 5)
            self.proc = None

    def command(self, line):
        """One command on HAProxy's runtime API (e.g. "set server gateways/b state maint")."""
        import socket
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(self.sock))
            s.sendall(line.encode() + b"\n")
            out = b""
            while chunk := s.recv(4096):
                out += chunk
        return out.decode()

    def only(self, name, names):
        """Send new connections to `name` alone (the others in maintenance)."""
        for n in names:
            self.command(f"set server gateways/{n} state {'ready' if n == name else 'maint'}")

    def all_ready(self, names):
        for n in names:
            self.command(f"set server gateways/{n} state ready")


def have_cluster_tools():
    return all(shutil.which(b) for b in ("etcd", "etcdctl", "haproxy"))
