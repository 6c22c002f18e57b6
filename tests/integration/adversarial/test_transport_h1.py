"""HTTP/1.1 attacks over raw TLS sockets: pipelining, request smuggling (CL+TE, duplicate
Content-Length, obs-fold, bad chunk sizes) and an upload whose backend dies mid-body. Each
test states the attack, checks what the client got, that the gateway still serves, and what
the backend's own log saw."""
import json
import time

import pytest

from dgtest import images
from dgtest.attack_transport import (backend_requests, error_codes, push_small_image,
                                     read_responses, request_bytes, start_pair, stop_pair,
                                     tls_connect, wait_for)
from dgtest.client import V2
from dgtest.ops import access_log_lines


@pytest.fixture(scope="module")
def pair(tmp_path_factory, pki, dockgate_binary):
    reg, gw = start_pair(tmp_path_factory, pki, dockgate_binary)
    yield reg, gw
    stop_pair(reg, gw)


@pytest.fixture(scope="module")
def known(pair):
    return push_small_image(pair[0], "known", "ok")


def still_serves(gw, pki):
    r = V2(gw.url, verify=str(pki.ca_crt)).get("/v2/")
    assert r.status_code == 200, r.text


def test_pipelined_requests_answered_in_order(pair, pki, known):
    """Attack/old client: three requests pipelined in one write on one connection."""
    _, gw = pair
    port = gw.port()
    paths = ["/v2/", "/v2/docker-local/known/manifests/ok", "/v2/docker-local/nope/tags/list"]
    s = tls_connect(port, pki.ca_crt)
    accept = {"Accept": known.media_type}
    s.sendall(b"".join(request_bytes("GET", p, port, accept) for p in paths))
    got = read_responses(s, 3)
    s.close()
    assert got, "no answer at all"
    if len(got) < 3:
        # Allowed: the answers given say the connection closes, so clients retry the rest.
        assert got[-1].header("connection") == "close", [r.status for r in got]
    else:
        assert [r.status for r in got] == [200, 200, 404]
        assert images.sha256_digest(got[1].body) == known.digest
        assert "NAME_UNKNOWN" in error_codes(got[2].body)
    still_serves(gw, pki)


def test_pipelined_after_a_body(pair, pki, unique):
    """Attack/old client: a request with a body, then another, in one write."""
    reg, gw = pair
    port = gw.port()
    name = unique("pipebody")
    first = request_bytes("POST", f"/v2/docker-local/{name}/blobs/uploads/", port,
                          {"Content-Length": "0"})
    second = request_bytes("GET", "/v2/", port)
    s = tls_connect(port, pki.ca_crt)
    s.sendall(first + second)
    got = read_responses(s, 2)
    s.close()
    assert got and got[0].status == 202, got
    if len(got) == 2:
        assert got[1].status == 200
    else:
        assert got[0].header("connection") == "close"
    assert len(backend_requests(reg, name)) == 1


def test_smuggling_cl_te(pair, pki, unique):
    """Attack: Content-Length and Transfer-Encoding together, a second request hidden where
    one reading would see body and the other a new request."""
    reg, gw = pair
    port = gw.port()
    name, hidden = unique("smug"), unique("hidden")
    inner = request_bytes("GET", f"/v2/docker-local/{hidden}/manifests/x", port)
    body = b"0\r\n\r\n" + inner
    req = request_bytes("POST", f"/v2/docker-local/{name}/blobs/uploads/", port,
                        {"Content-Length": str(len(body)), "Transfer-Encoding": "chunked"},
                        body)
    s = tls_connect(port, pki.ca_crt)
    s.sendall(req)
    got = read_responses(s, 2, timeout=5)
    s.close()
    assert len(got) <= 1 or got[0].header("connection") == "close" or got[1].status != 200
    assert not backend_requests(reg, hidden), "the hidden request reached the backend"
    still_serves(gw, pki)


def test_duplicate_content_length(pair, pki, unique):
    """Attack: two different Content-Length headers."""
    reg, gw = pair
    port = gw.port()
    name = unique("dupcl")
    head = (f"PUT /v2/docker-local/{name}/manifests/v1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n"
            "Content-Length: 5\r\nContent-Length: 50\r\n\r\n").encode()
    s = tls_connect(port, pki.ca_crt)
    s.sendall(head + b"{" * 50)
    got = read_responses(s, 1, timeout=5)
    s.close()
    assert not got or got[0].status == 400, got
    assert not backend_requests(reg, name)
    still_serves(gw, pki)


def test_obs_fold_header(pair, pki, unique):
    """Attack: a header continued on the next line (obsolete line folding)."""
    reg, gw = pair
    port = gw.port()
    name = unique("fold")
    head = (f"GET /v2/docker-local/{name}/manifests/v1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "X-Folded: a\r\n Transfer-Encoding: chunked\r\n\r\n").encode()
    s = tls_connect(port, pki.ca_crt)
    s.sendall(head)
    got = read_responses(s, 1, timeout=5)
    s.close()
    assert not got or got[0].status == 400, got
    assert not backend_requests(reg, name)
    still_serves(gw, pki)


def test_bad_chunk_size(pair, pki, unique):
    """Attack: a chunked manifest body whose chunk size is not hex."""
    reg, gw = pair
    port = gw.port()
    name = unique("chunk")
    req = request_bytes("PUT", f"/v2/docker-local/{name}/manifests/v1", port,
                        {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                         "Transfer-Encoding": "chunked"}, b"zz\r\n{}\r\n0\r\n\r\n")
    s = tls_connect(port, pki.ca_crt)
    s.sendall(req)
    got = read_responses(s, 1, timeout=5)
    s.close()
    assert got and got[0].status == 400, got
    assert error_codes(got[0].body)
    assert not backend_requests(reg, name)
    still_serves(gw, pki)


def test_upload_whose_backend_dies(tmp_path_factory, pki, dockgate_binary, unique):
    """Failure: the backend dies while a blob PATCH body is being streamed to it; the client
    gets a registry-format 502 and the access log records 502, not 100."""
    log = tmp_path_factory.mktemp("transport-log") / "access.log"
    reg, gw = start_pair(tmp_path_factory, pki, dockgate_binary,
                         log={"format": "json", "access_log": str(log)})
    try:
        name = unique("dying")
        api = V2(gw.url, verify=str(pki.ca_crt))
        r = api.start_upload(f"docker-local/{name}")
        assert r.status_code == 202, r.text
        loc = r.headers["Location"]
        path = loc[loc.index("/v2/"):] if "://" in loc else loc
        port = gw.port()
        s = tls_connect(port, pki.ca_crt)
        s.sendall(request_bytes("PATCH", path, port,
                                {"Content-Type": "application/octet-stream",
                                 "Content-Length": str(64 << 20),
                                 "Expect": "100-continue"}))
        first = read_responses(s, 1, timeout=5)
        assert first and first[0].status == 100, first
        sent = 0
        chunk = b"x" * (256 << 10)
        while sent < 4 << 20:
            s.sendall(chunk)
            sent += len(chunk)
        reg.proc.kill()
        reg.proc.wait()
        try:
            while sent < 64 << 20:
                s.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        got = read_responses(s, 1, timeout=10)
        s.close()
        assert got and got[0].status == 502, (got, sent)
        assert "UNAVAILABLE" in error_codes(got[0].body)

        def patch_lines():
            return [l for l in access_log_lines(log) if l.get("method") == "PATCH"]
        assert wait_for(lambda: patch_lines(), 3), "no access-log line for the PATCH"
        assert [l["status"] for l in patch_lines()] == [502], patch_lines()
    finally:
        gw.stop(timeout=5)
        reg.stop()
        reg.remove_storage()
