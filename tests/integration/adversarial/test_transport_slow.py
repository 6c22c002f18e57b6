"""Slow and idle clients: the downstream deadlines and the per-client connection cap
(`[server]` header/keepalive/body/send timeouts, max_connections_per_client), set to a
few seconds here. Each test states the attack, checks what the client got, that the
gateway still serves, and what the backend's own log saw."""
import hashlib
import os
import time

import pytest

from dgtest.attack_transport import (LIMITS, H2Client, backend_requests, closed_within,
                                     established_to, read_responses, request_bytes,
                                     start_pair, tls_connect, wait_for, error_codes)
from dgtest.client import V2


@pytest.fixture(scope="module")
def pair(tmp_path_factory, pki, dockgate_binary):
    reg, gw = start_pair(tmp_path_factory, pki, dockgate_binary)
    yield reg, gw
    gw.stop(timeout=5)
    reg.stop()
    reg.remove_storage()


def still_serves(gw, pki):
    r = V2(gw.url, verify=str(pki.ca_crt)).get("/v2/")
    assert r.status_code == 200, r.text


def test_header_trickle_is_cut(pair, pki):
    """Attack: a request head trickled a byte at a time (a reader's timer restarts on
    every byte); the whole head must arrive within header_timeout_seconds."""
    reg, gw = pair
    s = tls_connect(gw.port(), pki.ca_crt)
    head = request_bytes("GET", "/v2/docker-local/trickle/manifests/latest", gw.port())
    start = time.monotonic()
    cut = None
    for b in head:
        try:
            s.sendall(bytes([b]))
        except OSError:
            cut = time.monotonic() - start
            break
        if closed_within(s, 0.5) is not None:
            cut = time.monotonic() - start
            break
    s.close()
    assert cut is not None, "a trickled head kept its connection"
    assert cut < LIMITS["header_timeout_seconds"] + 2, f"cut only after {cut:.1f} s"
    assert not backend_requests(reg, "/trickle/")
    still_serves(gw, pki)


def test_silent_connection_is_closed(pair, pki):
    """Attack: a TLS connection that never sends a request."""
    _, gw = pair
    s = tls_connect(gw.port(), pki.ca_crt)
    took = closed_within(s, LIMITS["header_timeout_seconds"] + 3)
    s.close()
    assert took is not None, "a silent connection stayed open"
    still_serves(gw, pki)


def test_idle_keepalive_http1_is_closed(pair, pki):
    """Attack: an HTTP/1.1 keep-alive connection left idle after one request."""
    _, gw = pair
    s = tls_connect(gw.port(), pki.ca_crt)
    s.sendall(request_bytes("GET", "/v2/", gw.port()))
    [r] = read_responses(s, 1)
    assert r.status == 200
    took = closed_within(s, LIMITS["keepalive_timeout_seconds"] + 3)
    s.close()
    assert took is not None, "an idle keep-alive connection stayed open"
    assert took >= LIMITS["keepalive_timeout_seconds"] - 0.5, f"closed after {took:.1f} s"
    still_serves(gw, pki)


def test_idle_h2_connection_is_closed(pair, pki):
    """Attack: an h2 connection left idle after one request."""
    _, gw = pair
    c = H2Client(gw.port(), pki.ca_crt)
    assert c.get("/v2/").status == 200
    start = time.monotonic()
    c.pump(lambda: False, timeout=LIMITS["keepalive_timeout_seconds"] + 3)
    c.close()
    assert c.closed, "an idle h2 connection stayed open"
    assert time.monotonic() - start < LIMITS["keepalive_timeout_seconds"] + 3
    still_serves(gw, pki)


def test_stalled_manifest_body_gets_408_http1(pair, pki, unique):
    """Attack: a manifest PUT that announces 500 bytes, sends 20 and stalls."""
    reg, gw = pair
    name = unique("stall")
    s = tls_connect(gw.port(), pki.ca_crt)
    s.sendall(request_bytes("PUT", f"/v2/docker-local/{name}/manifests/v1", gw.port(),
                            {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                             "Content-Length": "500"}) + b"{" * 20)
    start = time.monotonic()
    [r] = read_responses(s, 1, timeout=LIMITS["body_timeout_seconds"] + 5)
    s.close()
    assert r.status == 408, r
    assert error_codes(r.body), r.body
    assert time.monotonic() - start < LIMITS["body_timeout_seconds"] + 3
    assert not backend_requests(reg, name), "a stalled manifest reached the backend"
    still_serves(gw, pki)


def test_stalled_manifest_body_gets_408_h2(pair, pki, unique):
    """Attack: the same stalled manifest PUT over h2 (pingora has no h2 body deadline)."""
    reg, gw = pair
    name = unique("stall2")
    c = H2Client(gw.port(), pki.ca_crt)
    sid = c.headers("PUT", f"/v2/docker-local/{name}/manifests/v1",
                    [("content-type", "application/vnd.oci.image.manifest.v1+json"),
                     ("content-length", "500")], end=False)
    c.conn.send_data(sid, b"{" * 20)
    c.flush()
    st = c.streams[sid]
    c.pump(lambda: st.ended or st.reset is not None,
           timeout=LIMITS["body_timeout_seconds"] + 5)
    c.close()
    assert st.status == 408, st
    assert error_codes(st.body), st.body
    assert not backend_requests(reg, name)
    still_serves(gw, pki)


def test_stalled_blob_upload_gets_408(pair, pki, unique):
    """Attack: a streamed blob PATCH that sends part of its body and stalls."""
    reg, gw = pair
    name = unique("stallblob")
    api = V2(gw.url, verify=str(pki.ca_crt))
    r = api.start_upload(f"docker-local/{name}")
    assert r.status_code == 202, r.text
    loc = r.headers["Location"]
    path = loc[loc.index("/v2/"):] if "://" in loc else loc
    s = tls_connect(gw.port(), pki.ca_crt)
    s.sendall(request_bytes("PATCH", path, gw.port(),
                            {"Content-Type": "application/octet-stream",
                             "Content-Length": str(1 << 20)}) + b"x" * 4096)
    [r] = read_responses(s, 1, timeout=LIMITS["body_timeout_seconds"] + 6)
    s.close()
    assert r.status == 408, r
    assert error_codes(r.body)
    still_serves(gw, pki)


def test_connections_per_client_are_capped(pair, pki):
    """Attack: one address opens more connections than max_connections_per_client."""
    _, gw = pair
    cap = LIMITS["max_connections_per_client"]
    held = [tls_connect(gw.port(), pki.ca_crt) for _ in range(cap)]
    try:
        extra = tls_connect(gw.port(), pki.ca_crt)
        took = closed_within(extra, 1.5)
        extra.close()
        assert took is not None, f"connection {cap + 1} from one address was kept"
    finally:
        for s in held:
            s.close()
    # The slots are given back as the held connections go.
    assert wait_for(lambda: _serves(gw, pki), 5)


def _serves(gw, pki):
    try:
        return V2(gw.url, verify=str(pki.ca_crt), timeout=3).get("/v2/").status_code == 200
    except Exception:  # noqa: BLE001
        return False


def test_client_that_stops_reading_releases_backend(pair, pki, unique):
    """Attack: clients GET a large blob and never read; each pins a backend connection
    until send_timeout_seconds passes without progress."""
    reg, gw = pair
    name = unique("noread")
    data = os.urandom(32 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    backend = V2(reg.url)
    backend.push_blob(name, data)
    baseline = established_to(reg.port)
    clients = []
    for _ in range(4):
        s = tls_connect(gw.port(), pki.ca_crt)
        s.sendall(request_bytes("GET", f"/v2/docker-local/{name}/blobs/{digest}", gw.port()))
        clients.append(s)
    try:
        assert wait_for(lambda: established_to(reg.port) >= baseline + 4, 5), \
            "the stalled downloads never reached the backend"
        released = wait_for(lambda: established_to(reg.port) <= baseline,
                            LIMITS["send_timeout_seconds"] + 8)
        assert released, (f"{established_to(reg.port)} backend connections still open "
                          f"(baseline {baseline})")
    finally:
        for s in clients:
            s.close()
    assert len(backend_requests(reg, digest)) >= 4
    still_serves(gw, pki)


def test_stalled_blob_upload_gets_408_h2(pair, pki, unique):
    """Attack: a streamed blob PATCH over h2 that sends part of its body and stalls."""
    reg, gw = pair
    name = unique("stallblob2")
    api = V2(gw.url, verify=str(pki.ca_crt))
    r = api.start_upload(f"docker-local/{name}")
    assert r.status_code == 202, r.text
    loc = r.headers["Location"]
    path = loc[loc.index("/v2/"):] if "://" in loc else loc
    c = H2Client(gw.port(), pki.ca_crt)
    sid = c.headers("PATCH", path, [("content-type", "application/octet-stream"),
                                    ("content-length", str(1 << 20))], end=False)
    c.conn.send_data(sid, b"x" * 4096)
    c.flush()
    st = c.streams[sid]
    start = time.monotonic()
    c.pump(lambda: st.ended or st.reset is not None,
           timeout=LIMITS["body_timeout_seconds"] + 6)
    c.close()
    assert st.status == 408, (st, time.monotonic() - start)
    assert error_codes(st.body), st.body
    still_serves(gw, pki)


def test_h2_client_that_stops_reading_releases_backend(pair, pki, unique):
    """Attack: h2 clients GET a large blob and never read (nor open their flow-control
    window); each pins a backend connection until send_timeout_seconds passes."""
    reg, gw = pair
    name = unique("noread2")
    data = os.urandom(8 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    V2(reg.url).push_blob(name, data)
    baseline = established_to(reg.port)
    clients = []
    for _ in range(4):
        c = H2Client(gw.port(), pki.ca_crt)
        c.headers("GET", f"/v2/docker-local/{name}/blobs/{digest}")
        c.flush()
        clients.append(c)
    try:
        assert wait_for(lambda: established_to(reg.port) >= baseline + 4, 5), \
            "the stalled downloads never reached the backend"
        released = wait_for(lambda: established_to(reg.port) <= baseline,
                            LIMITS["send_timeout_seconds"] + 8)
        assert released, (f"{established_to(reg.port)} backend connections still open "
                          f"(baseline {baseline})")
    finally:
        for c in clients:
            c.close()
    still_serves(gw, pki)
