"""HTTP/2 attacks: early answers to uploads, rapid reset spread over connections,
CONTINUATION floods, HPACK bombs, and path tricks. Each test states the attack, checks what
the client got, that the gateway still serves, and what the backend's own log saw."""
import json
import subprocess
import time

import hpack
import pytest

from dgtest.attack_transport import (CONTINUATION, END_HEADERS, END_STREAM, HEADERS,
                                     RST_STREAM, H2Client, backend_requests, closed_within,
                                     error_codes, frame, raw_h2, request_block, start_pair)


@pytest.fixture(scope="module")
def pair(tmp_path_factory, pki, dockgate_binary):
    reg, gw = start_pair(tmp_path_factory, pki, dockgate_binary,
                         users={"writer": "writer-pw"})
    yield reg, gw
    gw.stop(timeout=5)
    reg.stop()
    reg.remove_storage()


def still_serves_h2(gw, pki):
    c = H2Client(gw.port(), pki.ca_crt)
    r = c.get("/v2/docker-local/none/tags/list")
    c.close()
    assert r.status == 404 and "NAME_UNKNOWN" in error_codes(r.body), r


EARLY = [
    # (id, method, path, body bytes, user, status, code)
    ("anonymous-push-401", "PUT", "/v2/docker-local/{name}/manifests/v1", 256 << 10, None,
     401, "UNAUTHORIZED"),
    ("unknown-key-404", "PATCH", "/v2/no-such-key/{name}/blobs/uploads/x", 1 << 20, None,
     404, "NAME_UNKNOWN"),
    ("bad-name-400", "PUT", "/v2/docker-local/A..B/manifests/v1", 256 << 10, None, 400,
     "NAME_INVALID"),
    ("oversized-manifest-413", "PUT", "/v2/docker-local/{name}/manifests/v1", 5 << 20,
     "writer:writer-pw", 413, None),
]


@pytest.mark.parametrize("proto", ["--http2", "--http1.1"])
@pytest.mark.parametrize("case", EARLY, ids=[c[0] for c in EARLY])
def test_early_answers_reach_clients(pair, pki, unique, tmp_path, case, proto):
    """Attack/mistake: an upload refused before its body is read; the refusal must arrive
    every time, never a stream reset (curl over h2: `(92) Stream error`) or a broken pipe."""
    reg, gw = pair
    _, method, path, size, user, status, code = case
    name = unique("early")
    body = tmp_path / "body"
    body.write_bytes(b"{" + b" " * (size - 1))
    url = f"https://127.0.0.1:{gw.port()}" + path.format(name=name)
    failures = []
    for i in range(20):
        out = tmp_path / f"out{i}"
        p = subprocess.run(
            ["curl", proto, "--silent", "--show-error", "--cacert", str(pki.ca_crt),
             "-X", method, "-H", "Content-Type: application/vnd.oci.image.manifest.v1+json",
             "--data-binary", f"@{body}", "-o", str(out), "-w", "%{http_code}", url,
             *(["-u", user] if user else [])],
            capture_output=True, text=True, timeout=60)
        got = p.stdout.strip()
        if p.returncode != 0 or got != str(status):
            failures.append(f"try {i}: exit {p.returncode} status {got} {p.stderr.strip()}")
        elif code and code not in error_codes(out.read_bytes()):
            failures.append(f"try {i}: body {out.read_bytes()[:200]!r}")
    assert not failures, f"{len(failures)}/20 without the answer:\n" + "\n".join(failures)
    assert not backend_requests(reg, name), "a refused upload reached the backend"
    still_serves_h2(gw, pki)


def test_rapid_reset_spread_over_connections(pair, pki, unique):
    """Attack: streams opened and at once reset, a few per connection (under h2's own
    per-connection reset limits), over many connections; none may cost a backend request."""
    reg, gw = pair
    name = unique("reset")
    conns, per_conn = 25, 4
    for _ in range(conns):
        s = raw_h2(gw.port(), pki.ca_crt)
        out = b""
        for i in range(per_conn):
            sid = 1 + 2 * i
            block = request_block(gw.port(), f"/v2/docker-local/{name}/manifests/t{i}")
            out += frame(HEADERS, END_STREAM | END_HEADERS, sid, block)
            out += frame(RST_STREAM, 0, sid, (8).to_bytes(4, "big"))  # CANCEL
        s.sendall(out)
        time.sleep(0.02)
        s.close()
    time.sleep(1.0)
    seen = backend_requests(reg, name)
    print(f"{len(seen)} of {conns * per_conn} reset streams reached the backend")
    assert len(seen) <= conns * per_conn // 20, \
        f"{len(seen)} of {conns * per_conn} reset streams reached the backend"
    still_serves_h2(gw, pki)


def test_continuation_flood(pair, pki, unique):
    """Attack: one HEADERS frame followed by an endless run of CONTINUATION frames."""
    reg, gw = pair
    name = unique("cont")
    s = raw_h2(gw.port(), pki.ca_crt)
    block = request_block(gw.port(), f"/v2/docker-local/{name}/manifests/x")
    s.sendall(frame(HEADERS, END_STREAM, 1, block))
    filler = hpack.Encoder().encode([("x-pad", "a" * 1000)])
    try:
        for _ in range(400):  # ~400 KB of header block, far past the 64 KiB list limit
            s.sendall(frame(CONTINUATION, 0, 1, filler))
    except OSError:
        pass
    assert closed_within(s, 10) is not None, "the flooding connection stayed open"
    s.close()
    assert not backend_requests(reg, name)
    still_serves_h2(gw, pki)


def test_hpack_bomb(pair, pki, unique):
    """Attack: one 4 KiB header put in the HPACK table, then referenced 200 times (a few
    bytes on the wire, 800 KiB decoded)."""
    reg, gw = pair
    name = unique("bomb")
    enc = hpack.Encoder()
    block = request_block(gw.port(), f"/v2/docker-local/{name}/manifests/x")
    block += enc.encode([("x-bomb", "b" * 4096)])  # literal with incremental indexing
    # Index 62 is the newest dynamic-table entry: 0x80 | 62 = one byte per copy.
    block += bytes([0x80 | 62]) * 200
    s = raw_h2(gw.port(), pki.ca_crt)
    s.sendall(frame(HEADERS, END_STREAM | END_HEADERS, 1, block))
    data = b""
    s.settimeout(5)
    try:
        while len(data) < 1 << 16:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except OSError:
        pass
    s.close()
    assert b"200" not in data or not backend_requests(reg, name)
    assert not backend_requests(reg, name), "the bombed request reached the backend"
    still_serves_h2(gw, pki)


TRICKS = [
    "/v2/docker-local/../../etc/passwd/manifests/latest",
    "/v2/docker-local/%2e%2e/%2e%2e/etc/passwd/manifests/latest",
    "/v2/docker-local/app%2f..%2fpasswd/manifests/latest",
    "/v2/docker-local/app/manifests/..%2f..%2fpasswd",
    "/v2/docker-local//etc/passwd/manifests/latest",
]


@pytest.mark.parametrize("path", TRICKS)
def test_path_tricks_over_h2(pair, pki, path):
    """Attack: traversal and encoded separators in an h2 :path (no client-side cleanup)."""
    reg, gw = pair
    c = H2Client(gw.port(), pki.ca_crt)
    r = c.get(path)
    c.close()
    assert r.status in (400, 404), r
    assert error_codes(r.body), r.body
    assert not backend_requests(reg, "passwd")
    still_serves_h2(gw, pki)
