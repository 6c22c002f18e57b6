"""Raw-socket and raw-h2 attackers for the transport tests, and a small gateway setup with
short downstream deadlines.

Everything goes over TLS verified with the test CA; h2 is spoken with the `h2` package
(or frame by frame where a client library would refuse to misbehave)."""
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import hpack

from . import images
from .backend import Registry
from .client import V2
from .gateway import Gateway, gateway_config
from .ops import write_htpasswd

# Short deadlines so the slow-client tests run in seconds.
LIMITS = {
    "header_timeout_seconds": 2,
    "keepalive_timeout_seconds": 2,
    "body_timeout_seconds": 2,
    "send_timeout_seconds": 2,
    "max_connections_per_client": 12,
}


def start_pair(tmp_path_factory, pki, binary, server=None, log=None, users=None):
    """A fresh registry and a one-key (`docker-local`) gateway in front of it, with LIMITS.
    users={"name": "password"} turns [auth] on (docker-local: anonymous read, `writer` writes)."""
    reg = Registry(tmp_path_factory.mktemp("registry-transport")).start()
    repo = {"backend": "main", "type": "local"}
    if users:
        repo.update({"anonymous_read": True, "write": ["writer"]})
    cfg = gateway_config({"main": reg.url}, {"docker-local": repo},
                         [{"method": "path"}], server={**LIMITS, **(server or {})})
    if log:
        cfg["log"] = dict(log)
    if users:
        cfg["auth"] = {"htpasswd": "users.htpasswd", "state_dir": "state",
                       "max_failures": 1000, "lockout_seconds": 60}
    gw = Gateway(cfg, tmp_path_factory.mktemp("dockgate-transport"), pki, binary=binary)
    if users:
        write_htpasswd(gw.dir / "users.htpasswd", users)
    try:
        gw.start()
    except Exception:
        reg.stop()
        raise
    return reg, gw


def stop_pair(reg, gw):
    """Stop a `start_pair` gateway and its registry, and drop the registry's storage."""
    gw.stop(timeout=5)
    reg.stop()
    reg.remove_storage()


def push_small_image(reg, name, tag):
    """A one-layer docker image pushed straight to the registry, for reads through dockgate."""
    img = images.make_image((64,), kind="docker")
    V2(reg.url).push_image(name, tag, img)
    return img


def backend_requests(reg, needle):
    """Lines of the registry's own access log whose request line contains `needle`."""
    return [l for l in reg.log_text().splitlines() if needle in l and "HTTP/1.1\"" in l]


# TLS sockets ---------------------------------------------------------------------------
def tls_connect(port, ca_file, alpn=("http/1.1",), timeout=10):
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.set_alpn_protocols(list(alpn))
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def closed_within(sock, seconds):
    """Seconds until the peer closed `sock` (reading and dropping whatever comes), or None
    if it was still open after `seconds`."""
    start = time.monotonic()
    deadline = start + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return None
        except (ConnectionError, ssl.SSLError, OSError):
            return time.monotonic() - start
        if not data:
            return time.monotonic() - start


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes

    def header(self, name):
        return self.headers.get(name.lower())


def read_responses(sock, n, timeout=10):
    """Parse up to `n` HTTP/1.1 responses (Content-Length bodies) from `sock`; fewer if the
    connection closes first."""
    buf = b""
    out = []
    deadline = time.monotonic() + timeout
    closed = False

    def fill():
        nonlocal buf, closed
        left = deadline - time.monotonic()
        if left <= 0 or closed:
            closed = True
            return
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except (socket.timeout, ConnectionError, ssl.SSLError, OSError):
            data = b""
        if not data:
            closed = True
        buf += data

    while len(out) < n:
        while b"\r\n\r\n" not in buf and not closed:
            fill()
        if b"\r\n\r\n" not in buf:
            break
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        while len(rest) < length and not closed:
            buf = head + b"\r\n\r\n" + rest
            fill()
            head, rest = buf.split(b"\r\n\r\n", 1)
        out.append(Response(status, headers, rest[:length]))
        buf = rest[length:]
    return out


def request_bytes(method, path, port, headers=None, body=b""):
    h = {"Host": f"127.0.0.1:{port}", **(headers or {})}
    if body and "Content-Length" not in h and "Transfer-Encoding" not in h:
        h["Content-Length"] = str(len(body))
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in h.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# HTTP/2 -------------------------------------------------------------------------------
@dataclass
class H2Stream:
    status: int = 0
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    ended: bool = False
    reset: int = None


class H2Client:
    """A minimal h2 client over a verified TLS socket."""

    def __init__(self, port, ca_file, timeout=10):
        self.port = port
        self.sock = tls_connect(port, ca_file, alpn=("h2",), timeout=timeout)
        assert self.sock.selected_alpn_protocol() == "h2"
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.streams = {}
        self.closed = False
        self.goaway = None
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def headers(self, method, path, extra=(), end=True):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "https"),
                (":authority", f"127.0.0.1:{self.port}"), (":path", path), *extra]
        self.conn.send_headers(sid, hdrs, end_stream=end)
        self.streams[sid] = H2Stream()
        return sid

    def reset(self, sid):
        self.conn.reset_stream(sid)

    def pump(self, until, timeout=10):
        """Read and handle frames until `until()` is true, the connection closes, or timeout."""
        deadline = time.monotonic() + timeout
        while not until() and not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionError, ssl.SSLError, OSError):
                data = b""
            if not data:
                self.closed = True
                break
            try:
                events = self.conn.receive_data(data)
            except Exception:  # noqa: BLE001 - a protocol error ends this client
                self.closed = True
                break
            for e in events:
                self._on(e)
            try:
                self.flush()
            except OSError:
                self.closed = True
        return until()

    def _on(self, e):
        s = self.streams.get(getattr(e, "stream_id", None))
        if isinstance(e, h2.events.ResponseReceived) and s:
            s.headers = dict(e.headers)
            s.status = int(s.headers.get(":status", 0))
        elif isinstance(e, h2.events.DataReceived) and s:
            s.body += e.data
            self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        elif isinstance(e, h2.events.StreamEnded) and s:
            s.ended = True
        elif isinstance(e, h2.events.StreamReset) and s:
            s.reset = e.error_code
        elif isinstance(e, h2.events.ConnectionTerminated):
            self.goaway = e.error_code
            self.closed = True

    def get(self, path, timeout=10):
        sid = self.headers("GET", path)
        self.flush()
        self.pump(lambda: self.streams[sid].ended or self.streams[sid].reset is not None,
                  timeout)
        return self.streams[sid]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def frame(kind, flags, sid, payload):
    """One raw h2 frame."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + \
        struct.pack(">I", sid) + payload


DATA, HEADERS, RST_STREAM, SETTINGS, CONTINUATION = 0x0, 0x1, 0x3, 0x4, 0x9
END_STREAM, END_HEADERS = 0x1, 0x4
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def raw_h2(port, ca_file, timeout=10):
    """A TLS socket that negotiated h2, the client preface and an empty SETTINGS sent."""
    s = tls_connect(port, ca_file, alpn=("h2",), timeout=timeout)
    assert s.selected_alpn_protocol() == "h2"
    s.sendall(PREFACE + frame(SETTINGS, 0, 0, b""))
    return s


def request_block(port, path, method="GET", extra=()):
    return hpack.Encoder().encode([(":method", method), (":scheme", "https"),
                                   (":authority", f"127.0.0.1:{port}"), (":path", path),
                                   *extra])


def error_codes(body):
    try:
        import json
        return [e.get("code") for e in json.loads(body).get("errors", [])]
    except ValueError:
        return []


def gateway_pid_fds(gw):
    """Open file descriptors of the gateway process (a count of what it holds)."""
    import os
    return len(os.listdir(f"/proc/{gw.pid}/fd"))


def established_to(port):
    """TCP connections in ESTABLISHED state whose remote end is 127.0.0.1:`port`."""
    n = 0
    target = f"0100007F:{port:04X}"
    for table in ("/proc/net/tcp",):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[2] == target and cols[3] == "01":
                    n += 1
    return n


def wait_for(pred, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()

