#!/usr/bin/env python3
"""Upload sink for the benchmark backend: the registry's blob-upload verbs.

nginx (the backend) serves every read itself and hands only
`/v2/<name>/blobs/uploads/...` here. This server reads each request body to
the end -- Content-Length or chunked -- throws it away, and only then answers
the way a distribution registry does:

  POST  /v2/<name>/blobs/uploads/          -> 202, Location: .../uploads/<uuid>
  PATCH /v2/<name>/blobs/uploads/<uuid>    -> 202, Range: 0-<n-1>
  PUT   /v2/<name>/blobs/uploads/<uuid>?digest=<d> -> 201, Location: .../blobs/<d>

Answering only after the whole body is read matters: a sink that answers
early (nginx's `return 202` does) lets a proxy finish before the bytes went
through it. One thread per connection, blocking sockets, a 1 MiB receive
buffer: loopback copies dominate, not Python.

Usage: sink.py PORT
"""
import socket
import sys
import threading
import uuid

BUF = 1 << 20
MAX_HEAD = 64 * 1024


class Closed(Exception):
    pass


class Reader:
    """Buffered reader over a socket with line reads and cheap skips."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray(BUF)
        self.mv = memoryview(self.buf)
        self.start = 0
        self.end = 0

    def fill(self):
        if self.start == self.end:
            self.start = self.end = 0
        elif self.end == len(self.buf):
            n = self.end - self.start
            self.buf[0:n] = self.buf[self.start : self.end]
            self.start, self.end = 0, n
        r = self.sock.recv_into(self.mv[self.end :])
        if r == 0:
            raise Closed()
        self.end += r

    def readline(self):
        while True:
            i = self.buf.find(b"\n", self.start, self.end)
            if i >= 0:
                line = bytes(self.buf[self.start : i + 1])
                self.start = i + 1
                return line
            if self.end - self.start > MAX_HEAD:
                raise ValueError("line too long")
            self.fill()

    def skip(self, n):
        while n > 0:
            if self.start == self.end:
                self.fill()
            take = min(self.end - self.start, n)
            self.start += take
            n -= take


def read_head(r):
    first = r.readline()
    while first in (b"\r\n", b"\n"):  # tolerate stray CRLF between requests
        first = r.readline()
    parts = first.decode("latin-1").split()
    if len(parts) != 3:
        raise ValueError(f"bad request line {first!r}")
    headers = {}
    size = len(first)
    while True:
        line = r.readline()
        size += len(line)
        if size > MAX_HEAD:
            raise ValueError("head too large")
        if line in (b"\r\n", b"\n"):
            break
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    return parts[0], parts[1], parts[2], headers


def read_body(r, headers):
    """Consumes the body; returns its length in bytes."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        total = 0
        while True:
            line = r.readline()
            n = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if n == 0:
                while r.readline() not in (b"\r\n", b"\n"):  # trailers
                    pass
                return total
            r.skip(n)
            total += n
            if r.readline() not in (b"\r\n", b"\n"):
                raise ValueError("chunk not followed by CRLF")
    n = int(headers.get("content-length", "0") or 0)
    r.skip(n)
    return n


def respond(sock, status, reason, headers):
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines += ["Content-Length: 0", "Docker-Distribution-Api-Version: registry/2.0", "", ""]
    sock.sendall("\r\n".join(lines).encode("latin-1"))


def handle(sock):
    r = Reader(sock)
    try:
        while True:
            method, target, version, headers = read_head(r)
            if headers.get("expect", "").lower() == "100-continue":
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            n = read_body(r, headers)
            path, _, query = target.partition("?")
            base = path.split("/blobs/uploads", 1)[0]
            if method == "POST":
                u = str(uuid.uuid4())
                respond(sock, 202, "Accepted", [
                    ("Location", f"{base}/blobs/uploads/{u}"),
                    ("Docker-Upload-UUID", u),
                    ("Range", "0-0"),
                ])
            elif method == "PATCH":
                u = path.rstrip("/").rsplit("/", 1)[-1]
                respond(sock, 202, "Accepted", [
                    ("Location", path),
                    ("Docker-Upload-UUID", u),
                    ("Range", f"0-{max(n - 1, 0)}"),
                ])
            elif method == "PUT":
                digest = ""
                for kv in query.split("&"):
                    if kv.startswith("digest="):
                        digest = kv[len("digest="):].replace("%3A", ":").replace("%3a", ":")
                respond(sock, 201, "Created", [
                    ("Location", f"{base}/blobs/{digest}"),
                    ("Docker-Content-Digest", digest),
                ])
            else:
                respond(sock, 405, "Method Not Allowed", [("Allow", "POST, PATCH, PUT")])
            if headers.get("connection", "").lower() == "close" or version == "HTTP/1.0":
                return
    except (Closed, ConnectionError):
        return
    except Exception as e:  # a malformed request ends its connection only
        print(f"sink: {e}", file=sys.stderr, flush=True)
    finally:
        sock.close()


def main():
    port = int(sys.argv[1])
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(1024)
    print(f"sink listening on 127.0.0.1:{port}", flush=True)
    while True:
        c, _ = ls.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=handle, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()
