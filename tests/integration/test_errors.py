"""Documented errors: status, JSON error code, and a gateway that keeps serving.

Requests are sent with http.client so paths reach the gateway exactly as written
(requests/urllib3 would normalise "..", "//" and percent-encodings)."""
import http.client
import json

import pytest

from dgtest import images
from dgtest.client import V2, error_codes, error_messages, raw_request, tls_context
from dgtest.gateway import BASE_DOMAIN, gateway_config
from dgtest.ports import free_port
from dgtest.standard import PREFIX

BAD_REQUESTS = [
    # (id, path, status, code)
    ("unknown-key", "/v2/no-such-key/app/manifests/latest", 404, "NAME_UNKNOWN"),
    ("unknown-key-blob", "/v2/no-such-key/app/blobs/sha256:" + "a" * 64, 404, "NAME_UNKNOWN"),
    ("unknown-key-tags", "/v2/no-such-key/app/tags/list", 404, "NAME_UNKNOWN"),
    ("uppercase", "/v2/docker-local/App/manifests/latest", 400, "NAME_INVALID"),
    ("dotdot", "/v2/docker-local/a/../b/manifests/latest", 400, "NAME_INVALID"),
    ("dotdot-escape-key", "/v2/team-a/../docker-local/x/manifests/latest", 400, "NAME_INVALID"),
    ("encoded-slash", "/v2/docker-local/a%2Fb/manifests/latest", 400, "NAME_INVALID"),
    ("encoded-slash-lower", "/v2/docker-local/a%2fb/manifests/latest", 400, "NAME_INVALID"),
    ("empty-segment", "/v2/docker-local/a//b/manifests/latest", 400, "NAME_INVALID"),
    ("bad-digest-alg", "/v2/docker-local/app/blobs/sha256:xyz", 400, "DIGEST_INVALID"),
    ("bad-digest-nocolon", "/v2/docker-local/app/blobs/notadigest", 400, "DIGEST_INVALID"),
    ("bad-digest-short", "/v2/docker-local/app/blobs/sha256:" + "0" * 63, 400, "DIGEST_INVALID"),
    ("bad-tag-dot", "/v2/docker-local/app/manifests/.bad", 400, "TAG_INVALID"),
    ("bad-tag-dash", "/v2/docker-local/app/manifests/-bad", 400, "TAG_INVALID"),
    ("bad-tag-char", "/v2/docker-local/app/manifests/bad!tag", 400, "TAG_INVALID"),
    ("bad-tag-long", "/v2/docker-local/app/manifests/" + "a" * 129, 400, "TAG_INVALID"),
    ("root", "/", 404, "UNSUPPORTED"),
    ("outside-v2", "/foo/bar", 404, "UNSUPPORTED"),
    ("v1", "/v1/_ping", 404, "UNSUPPORTED"),
    ("v3", "/v3/", 404, "UNSUPPORTED"),
]


@pytest.fixture
def known_image(gateway, backend, unique):
    name = unique("known")
    img = images.make_image((64,), kind="docker")
    backend.push_image(name, "ok", img)
    return name, img


def assert_error(resp, status, code, what):
    assert resp.status == status, f"{what}: got {resp.status} {resp.body[:300]!r}, want {status}"
    assert code in error_codes(resp.body), f"{what}: codes {error_codes(resp.body)}, want {code}"
    ctype = resp.headers.get("Content-Type", "")
    assert "json" in ctype, f"{what}: Content-Type {ctype!r}"


def assert_normal(gateway, name, img, conn=None):
    """GET /v2/ and a real manifest GET both work (on `conn` if given)."""
    for path, check in (("/v2/", lambda r: json.loads(r.body) == {}),
                        (f"/v2/docker-local/{name}/manifests/ok",
                         lambda r: images.sha256_digest(r.body) == img.digest)):
        if conn is None:
            r = raw_request(gateway.url + path, headers={"Accept": images.ACCEPT_ALL},
                            ca_file=gateway.pki.ca_crt)
        else:
            r = send(conn, "GET", path, {"Accept": images.ACCEPT_ALL})
        assert r.status == 200 and check(r), f"after an error, {path}: {r.status} {r.body[:300]!r}"
    r = raw_request(gateway.url + "/v2/", ca_file=gateway.pki.ca_crt)
    assert r.headers.get("Docker-Distribution-API-Version") == "registry/2.0"


class _R:
    def __init__(self, resp):
        self.status, self.headers, self.body = resp.status, resp.headers, resp.read()


def send(conn, method, path, headers=None):
    conn.putrequest(method, path, skip_accept_encoding=True)
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    conn.endheaders()
    return _R(conn.getresponse())


@pytest.mark.parametrize("path,status,code", [b[1:] for b in BAD_REQUESTS],
                         ids=[b[0] for b in BAD_REQUESTS])
def test_bad_request_path_listener(gateway, known_image, path, status, code):
    r = raw_request(gateway.url + path, ca_file=gateway.pki.ca_crt)
    assert_error(r, status, code, path)
    assert_normal(gateway, *known_image)


def test_errors_then_normal_requests_on_one_keepalive_connection(gateway, known_image):
    name, img = known_image
    conn = http.client.HTTPSConnection("127.0.0.1", gateway.port("path"),
                                       context=tls_context(gateway.pki.ca_crt), timeout=30)
    try:
        for _, path, status, code in BAD_REQUESTS:
            r = send(conn, "GET", path)
            assert_error(r, status, code, path)
            assert_normal(gateway, name, img, conn=conn)
    finally:
        conn.close()


SUBDOMAIN_BAD = [
    ("unknown-key", "no-such-key", "/v2/app/manifests/latest", 404, "NAME_UNKNOWN"),
    ("uppercase", "docker-local", "/v2/App/manifests/latest", 400, "NAME_INVALID"),
    ("dotdot", "docker-local", "/v2/a/../b/manifests/latest", 400, "NAME_INVALID"),
    ("encoded-slash", "docker-local", "/v2/a%2Fb/manifests/latest", 400, "NAME_INVALID"),
    ("bad-digest", "docker-local", "/v2/app/blobs/sha256:xyz", 400, "DIGEST_INVALID"),
    ("bad-tag", "docker-local", "/v2/app/manifests/.bad", 400, "TAG_INVALID"),
    ("outside-v2", "docker-local", "/foo", 404, "UNSUPPORTED"),
]


@pytest.mark.parametrize("key,path,status,code", [b[1:] for b in SUBDOMAIN_BAD],
                         ids=[b[0] for b in SUBDOMAIN_BAD])
def test_bad_request_subdomain_listener(gateway, known_image, key, path, status, code):
    port = gateway.port("subdomain")
    # Connect to 127.0.0.1 whatever the name; SNI and Host carry <key>.registry.localhost.
    r = raw_request(f"https://{key}.{BASE_DOMAIN}:{port}{path}", ca_file=gateway.pki.ca_crt)
    assert_error(r, status, code, f"{key}: {path}")
    name, img = known_image
    ok = raw_request(f"https://docker-local.{BASE_DOMAIN}:{port}/v2/{name}/manifests/ok",
                     headers={"Accept": images.ACCEPT_ALL}, ca_file=gateway.pki.ca_crt)
    assert ok.status == 200 and images.sha256_digest(ok.body) == img.digest


@pytest.mark.parametrize("path,status,code", [
    ("/v2/a/../b/manifests/latest", 400, "NAME_INVALID"),
    ("/v2/a//b/manifests/latest", 400, "NAME_INVALID"),
    ("/v2/app/blobs/sha256:xyz", 400, "DIGEST_INVALID"),
    ("/v2/app/manifests/-bad", 400, "TAG_INVALID"),
    ("/nope", 404, "UNSUPPORTED"),
], ids=["dotdot", "empty-segment", "bad-digest", "bad-tag", "outside-v2"])
def test_bad_request_port_listener(gateway, known_image, path, status, code):
    base = f"https://127.0.0.1:{gateway.port('port', 'docker-local')}"
    r = raw_request(base + path, ca_file=gateway.pki.ca_crt)
    assert_error(r, status, code, path)
    name, img = known_image
    ok = raw_request(f"{base}/v2/{name}/manifests/ok", headers={"Accept": images.ACCEPT_ALL},
                     ca_file=gateway.pki.ca_crt)
    assert ok.status == 200 and images.sha256_digest(ok.body) == img.digest


# Backends that are down ---------------------------------------------------------------------
def assert_unavailable(resp, key, statuses, what):
    assert resp.status in statuses, f"{what}: got {resp.status} {resp.body[:300]!r}, want {statuses}"
    assert "UNAVAILABLE" in error_codes(resp.body), f"{what}: {resp.body[:300]!r}"
    assert any(key in m for m in error_messages(resp.body)), \
        f"{what}: message should name repository {key!r}: {error_messages(resp.body)}"


def test_backend_never_started_gives_503(dockgate, registry_factory, etc_hosts):
    live = registry_factory()
    img = images.make_image((64,), kind="docker")
    V2(live.url).push_image("app", "1", img)
    dead_url = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    gw = dockgate(gateway_config({"up": live.url, "down": dead_url},
                                 {"live": {"backend": "up", "type": "local"},
                                  "dead": {"backend": "down", "type": "local"}},
                                 [{"method": "path"}, {"method": "subdomain"},
                                  {"method": "port", "repository": "dead"}]))
    ca = gw.pki.ca_crt
    accept = {"Accept": images.ACCEPT_ALL}
    sub = gw.port("subdomain")
    for attempt in range(2):  # the same answer again: no poisoned state
        r = raw_request(f"{gw.url}/v2/dead/app/manifests/1", headers=accept, ca_file=ca)
        assert_unavailable(r, "dead", {503}, "path listener")
        r = raw_request(f"https://dead.{BASE_DOMAIN}:{sub}/v2/app/manifests/1", headers=accept,
                        ca_file=ca)
        assert_unavailable(r, "dead", {503}, "subdomain listener")
        r = raw_request(f"https://127.0.0.1:{gw.port('port', 'dead')}/v2/app/blobs/sha256:{'a' * 64}",
                        ca_file=ca)
        assert_unavailable(r, "dead", {503}, "port listener")
        r = raw_request(f"{gw.url}/v2/live/app/manifests/1", headers=accept, ca_file=ca)
        assert r.status == 200 and images.sha256_digest(r.body) == img.digest
        r = raw_request(f"{gw.url}/v2/", ca_file=ca)
        assert r.status == 200 and json.loads(r.body) == {}


def test_backend_stopped_then_restarted(dockgate, registry_factory):
    reg = registry_factory()
    img = images.make_image((64,), kind="docker")
    V2(reg.url).push_image("app", "1", img)
    gw = dockgate(gateway_config({"b": reg.url}, {"flaky": {"backend": "b", "type": "local"}}))
    ca = gw.pki.ca_crt
    accept = {"Accept": images.ACCEPT_ALL}
    url = f"{gw.url}/v2/flaky/app/manifests/1"
    # Warm the gateway's upstream connection pool first.
    for _ in range(3):
        r = raw_request(url, headers=accept, ca_file=ca)
        assert r.status == 200 and images.sha256_digest(r.body) == img.digest

    reg.stop()
    for _ in range(3):
        r = raw_request(url, headers=accept, ca_file=ca)
        assert_unavailable(r, "flaky", {502, 503}, "stopped backend")
        r = raw_request(f"{gw.url}/v2/", ca_file=ca)
        assert r.status == 200

    reg.start()
    r = raw_request(url, headers=accept, ca_file=ca)
    assert r.status == 200 and images.sha256_digest(r.body) == img.digest
    r = gw.api().get("/v2/flaky/app/manifests/1", headers=accept)
    assert r.status_code == 200 and images.sha256_digest(r.content) == img.digest


@pytest.mark.parametrize("host_form", ["no-port", "upper-case"])
def test_subdomain_host_header_variants(gateway, known_image, host_form):
    """Host without the port (what clients send on :443) and in another case still route."""
    name, img = known_image
    port = gateway.port("subdomain")
    host = f"docker-local.{BASE_DOMAIN}" if host_form == "no-port" \
        else f"Docker-Local.{BASE_DOMAIN.title()}:{port}"
    r = raw_request(f"https://docker-local.{BASE_DOMAIN}:{port}/v2/{name}/manifests/ok",
                    headers={"Host": host, "Accept": images.ACCEPT_ALL}, ca_file=gateway.pki.ca_crt)
    assert r.status == 200 and images.sha256_digest(r.body) == img.digest, (r.status, r.body[:200])


def test_head_errors_have_no_body_and_right_status(gateway, known_image):
    for path, status in (("/v2/no-such-key/app/manifests/latest", 404),
                         ("/v2/docker-local/a/../b/manifests/latest", 400),
                         ("/v2/docker-local/app/blobs/sha256:xyz", 400)):
        r = raw_request(gateway.url + path, method="HEAD", ca_file=gateway.pki.ca_crt)
        assert r.status == status and r.body == b"", (path, r.status, r.body[:100])
    assert_normal(gateway, *known_image)
