"""The fast lane (`proxy/fast`): manifest GETs and HEADs on a keep-alive HTTP/1.1 connection
are answered by dockgate's own loop; any other head, and the rest of that connection, go to
pingora's proxy. On h2, such streams are answered by the lane and the others by pingora, on
the same connection. Raw TLS sockets (ALPN http/1.1) against the real registry. Each test checks
the answers, what the registry's own log saw, and that the gateway still serves: a hand-off
mid-connection with pipelined bytes, a head trickled byte by byte, the keep-alive deadlines
between requests, a registry restarted under pooled connections or down, and refusals
(a foreign Host, wrong credentials) answered as the proxied path answers them."""
import json
import time

import pytest

from dgtest import images
from dgtest.attack_transport import (H2Client, backend_requests, closed_within,
                                     error_codes, push_small_image, read_responses,
                                     request_bytes, start_pair, stop_pair, tls_connect,
                                     wait_for)
from dgtest.client import V2
from dgtest.ops import access_log_lines


@pytest.fixture(scope="module")
def pair(tmp_path_factory, pki, dockgate_binary):
    log = tmp_path_factory.mktemp("fast-log") / "access.log"
    reg, gw = start_pair(tmp_path_factory, pki, dockgate_binary, users={"writer": "pw"},
                         log={"format": "json", "access_log": str(log)})
    gw.access_log = log
    yield reg, gw
    stop_pair(reg, gw)


@pytest.fixture(scope="module")
def known(pair):
    return push_small_image(pair[0], "fast", "one")


MANIFEST = "/v2/docker-local/fast/manifests/one"


def accept(img):
    return {"Accept": img.media_type}


def still_serves(gw, pki):
    r = V2(gw.url, verify=str(pki.ca_crt)).get("/v2/docker-local/fast/tags/list")
    assert r.status_code == 200, r.text


def manifest_gets(reg):
    return [l for l in backend_requests(reg, "/v2/fast/manifests/one") if '"GET ' in l]


def test_keep_alive_then_hand_off_mid_connection(pair, pki, known):
    """Three pipelined heads on one connection: a manifest GET (the lane), a blob GET (handed
    to pingora with the bytes already read), then a manifest GET (pingora's now)."""
    reg, gw = pair
    port = gw.port()
    before = len(manifest_gets(reg))
    blob = f"/v2/docker-local/fast/blobs/{known.config.digest}"
    paths = [MANIFEST, blob, MANIFEST]
    s = tls_connect(port, pki.ca_crt)
    s.sendall(b"".join(request_bytes("GET", p, port, accept(known)) for p in paths))
    got = read_responses(s, 3)
    s.close()
    assert [r.status for r in got] == [200, 200, 200], [(r.status, r.body[:200]) for r in got]
    assert images.sha256_digest(got[1].body) == known.config.digest
    for r in (got[0], got[2]):
        assert images.sha256_digest(r.body) == known.digest
        assert r.header("docker-content-digest") == known.digest
        assert r.header("content-type") == known.media_type
        assert r.header("x-request-id"), r.headers
    assert got[0].header("x-request-id") != got[2].header("x-request-id")
    assert wait_for(lambda: len(manifest_gets(reg)) == before + 2, 3), manifest_gets(reg)


def test_head_has_the_length_and_no_body(pair, pki, known):
    """A manifest HEAD: Content-Length of the manifest, no body; the connection goes on."""
    _, gw = pair
    port = gw.port()
    s = tls_connect(port, pki.ca_crt)
    s.sendall(request_bytes("HEAD", MANIFEST, port, accept(known)))
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, buf
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    assert rest == b"", "a HEAD answer carries no body"
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 200"), lines
    # The lane writes header names lowercase (pingora keeps the registry's case): this
    # answer came from the lane, not from a silent fallback.
    assert "docker-content-digest: " in lines[1:] or any(
        l.startswith("docker-content-digest:") for l in lines[1:]), lines
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    assert int(hdrs["content-length"]) == len(known.manifest)
    assert hdrs["docker-content-digest"] == known.digest
    s.sendall(request_bytes("GET", MANIFEST, port, accept(known)))
    got = read_responses(s, 1)
    s.close()
    assert got and got[0].status == 200 and images.sha256_digest(got[0].body) == known.digest


def test_head_trickled_byte_by_byte(pair, pki, known):
    """A client that writes its head one byte at a time, within the head deadline."""
    _, gw = pair
    port = gw.port()
    s = tls_connect(port, pki.ca_crt)
    for b in request_bytes("GET", MANIFEST, port, accept(known)):
        s.sendall(bytes([b]))
        time.sleep(0.005)
    got = read_responses(s, 1)
    s.close()
    assert got and got[0].status == 200 and images.sha256_digest(got[0].body) == known.digest


def test_deadlines_between_requests(pair, pki, known):
    """After an answer from the lane: an idle connection, and one whose next head never
    completes, are both closed by keepalive_timeout_seconds (2 s here)."""
    _, gw = pair
    port = gw.port()
    for partial in (b"", b"GET /v2/docker-local/fast/manif"):
        s = tls_connect(port, pki.ca_crt)
        s.sendall(request_bytes("GET", MANIFEST, port, accept(known)))
        got = read_responses(s, 1)
        assert got and got[0].status == 200
        if partial:
            s.sendall(partial)
        took = closed_within(s, 8)
        s.close()
        assert took is not None, f"still open after 8 s ({partial!r})"
        assert took < 5, took
    still_serves(gw, pki)


def test_foreign_host_refused_as_elsewhere(pair, pki, known):
    """A Host that is not one of dockgate's names: the lane refuses it as pingora's path does
    for a tags list, and the registry is never asked."""
    reg, gw = pair
    port = gw.port()
    before = len(manifest_gets(reg))
    answers = []
    for path in (MANIFEST, "/v2/docker-local/fast/tags/list"):
        s = tls_connect(port, pki.ca_crt)
        s.sendall(request_bytes("GET", path, port, {**accept(known), "Host": "evil.example"}))
        got = read_responses(s, 1)
        s.close()
        assert got, path
        answers.append((got[0].status, error_codes(got[0].body)))
    assert answers[0] == answers[1], answers
    assert answers[0][0] in (400, 421), answers
    time.sleep(0.3)
    assert len(manifest_gets(reg)) == before


def test_wrong_credentials_refused_before_the_backend(pair, pki, known):
    """Basic credentials that do not match: 401 with a challenge, nothing reaches the
    registry, and the access log records the request and the user who tried."""
    reg, gw = pair
    port = gw.port()
    before = len(manifest_gets(reg))
    s = tls_connect(port, pki.ca_crt)
    s.sendall(request_bytes("GET", MANIFEST, port, {
        **accept(known), "Authorization": "Basic d3JpdGVyOm5vcGU="}))  # writer:nope
    got = read_responses(s, 1)
    s.close()
    assert got and got[0].status == 401, got
    assert got[0].header("www-authenticate"), got[0].headers
    assert "UNAUTHORIZED" in error_codes(got[0].body)
    time.sleep(0.3)
    assert len(manifest_gets(reg)) == before

    def refused():
        return [l for l in access_log_lines(gw.access_log)
                if l.get("status") == 401 and l.get("attempted_user") == "writer"]
    assert wait_for(refused, 3), access_log_lines(gw.access_log)[-3:]


def test_heads_the_lane_leaves_to_pingora(pair, pki, known):
    """HTTP/1.0 and `Connection: close` manifest GETs: answered (by pingora), and the
    connection is closed after the answer."""
    _, gw = pair
    port = gw.port()
    for raw in (
        f"GET {MANIFEST} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: {known.media_type}\r\n\r\n",
        f"GET {MANIFEST} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: {known.media_type}\r\n"
        "Connection: close\r\n\r\n",
    ):
        s = tls_connect(port, pki.ca_crt)
        s.sendall(raw.encode())
        got = read_responses(s, 1)
        assert got and got[0].status == 200, raw
        assert images.sha256_digest(got[0].body) == known.digest
        assert closed_within(s, 5) is not None, raw
        s.close()


def test_registry_restart_under_pooled_connections(pair, pki, known):
    """The lane keeps backend connections alive; a registry restart closes them. The next
    request finds its pooled connection dead and goes again on a new one: 200, not 502."""
    reg, gw = pair
    port = gw.port()
    s = tls_connect(port, pki.ca_crt)
    s.sendall(request_bytes("GET", MANIFEST, port, accept(known)))
    assert read_responses(s, 1)[0].status == 200
    reg.restart()
    s.sendall(request_bytes("GET", MANIFEST, port, accept(known)))
    got = read_responses(s, 1)
    s.close()
    assert got and got[0].status == 200, got
    assert images.sha256_digest(got[0].body) == known.digest


def test_registry_down_then_back(pair, pki, known):
    """Registry stopped: 503 in registry JSON naming the backend, the connection closed;
    started again: served again."""
    reg, gw = pair
    port = gw.port()
    reg.stop()
    try:
        s = tls_connect(port, pki.ca_crt)
        s.sendall(request_bytes("GET", MANIFEST, port, accept(known)))
        got = read_responses(s, 1)
        assert got and got[0].status == 503, got
        body = json.loads(got[0].body)
        assert body["errors"][0]["code"] == "UNAVAILABLE"
        assert "main" in body["errors"][0]["message"]
        assert closed_within(s, 5) is not None
        s.close()
    finally:
        reg.start()
    s = tls_connect(port, pki.ca_crt)
    s.sendall(request_bytes("GET", MANIFEST, port, accept(known)))
    got = read_responses(s, 1)
    s.close()
    assert got and got[0].status == 200
    still_serves(gw, pki)


def test_h2_streams_split_between_lane_and_pingora(pair, pki, known):
    """One h2 connection, four concurrent streams: manifest GET and HEAD (the lane), a blob GET
    and a manifest GET with a body (pingora). Every answer right; the HEAD has no body."""
    reg, gw = pair
    before = len(manifest_gets(reg))
    c = H2Client(gw.port(), pki.ca_crt)
    acc = [("accept", known.media_type)]
    get = c.headers("GET", MANIFEST, acc)
    head = c.headers("HEAD", MANIFEST, acc)
    blob = c.headers("GET", f"/v2/docker-local/fast/blobs/{known.config.digest}")
    with_body = c.headers("GET", MANIFEST, acc, end=False)
    c.conn.send_data(with_body, b"x", end_stream=True)
    c.flush()
    ids = (get, head, blob, with_body)
    assert c.pump(lambda: all(c.streams[i].ended for i in ids)), {
        i: (c.streams[i].status, c.streams[i].reset) for i in ids}
    c.close()
    g, h, b, w = (c.streams[i] for i in ids)
    assert g.status == 200 and images.sha256_digest(g.body) == known.digest
    assert g.headers.get("docker-content-digest") == known.digest
    assert h.status == 200 and h.body == b""
    assert int(h.headers["content-length"]) == len(known.manifest)
    assert b.status == 200 and images.sha256_digest(b.body) == known.config.digest
    assert w.status == 200 and images.sha256_digest(w.body) == known.digest
    assert wait_for(lambda: len(manifest_gets(reg)) >= before + 2, 3)


def test_h2_refusal_and_down_backend(pair, pki, known):
    """h2 through the lane: wrong credentials get 401 and never reach the registry; a
    stopped registry gets 503 UNAVAILABLE and the connection keeps serving other streams."""
    reg, gw = pair
    before = len(manifest_gets(reg))
    c = H2Client(gw.port(), pki.ca_crt)
    sid = c.headers("GET", MANIFEST, [("accept", known.media_type),
                                      ("authorization", "Basic d3JpdGVyOm5vcGU=")])
    c.flush()
    assert c.pump(lambda: c.streams[sid].ended)
    assert c.streams[sid].status == 401
    assert "UNAUTHORIZED" in error_codes(c.streams[sid].body)
    time.sleep(0.3)
    assert len(manifest_gets(reg)) == before

    def get():
        sid = c.headers("GET", MANIFEST, [("accept", known.media_type)])
        c.flush()
        c.pump(lambda: c.streams[sid].ended or c.streams[sid].reset is not None)
        return c.streams[sid]
    reg.stop()
    try:
        r = get()
        assert r.status == 503 and "UNAVAILABLE" in error_codes(r.body), r
    finally:
        reg.start()
    r = get()
    c.close()
    assert r.status == 200 and images.sha256_digest(r.body) == known.digest
