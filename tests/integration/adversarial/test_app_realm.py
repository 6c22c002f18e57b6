"""The realm route (/_dockgate/realm/<backend>/...) forwards only a backend's own advertised
token realm, in passthrough mode, with GET/POST and the token request's own parameters
(issue 10, item 1). The backend's access log is the witness."""
import pytest
import requests

from dgtest import images
from dgtest.attack_app import BackendLog, TokenRegistry, app_setup, error_code, tls_exchange
from dgtest.gateway import gateway_config

ATTACKS = [  # (method, path after /_dockgate/realm/<backend>, body)
    ("GET", "/v2/_catalog", None),
    ("GET", "/v2/secret/app/manifests/1", None),
    ("PUT", "/v2/secret/app/manifests/1", b'{"schemaVersion":1}'),
    ("DELETE", "/v2/secret/app/manifests/sha256:" + "0" * 64, None),
    ("POST", "/v2/secret/app/blobs/uploads/", b""),
]


def assert_refused(r, status=404):
    assert r.status_code == status, (r.status_code, r.text)
    assert error_code(r.content) == ["UNSUPPORTED"], r.text


@pytest.fixture
def token_backend(tmp_path_factory, pki):
    reg = TokenRegistry(tmp_path_factory.mktemp("tokreg"), pki.ca_crt).start()
    yield reg
    reg.stop()


def test_no_realm_route_with_gateway_auth(dockgate, registry_factory, unique):
    app = app_setup(dockgate, registry_factory, unique("realm"))
    base = app.route("path", "team-a").base
    seen = BackendLog(app.one)
    # Attack: anonymous registry calls through the forwarder, with [auth] on.
    for method, path, body in ATTACKS:
        r = requests.request(method, f"{base}/_dockgate/realm/one{path}", data=body,
                             verify=app.ca, timeout=30)
        assert_refused(r)
    assert seen.requests() == [], seen.requests()


def test_passthrough_forwards_nothing_a_backend_did_not_advertise(dockgate, registry_factory):
    reg = registry_factory(htpasswd=("alice", "s3cret"))  # Basic: no token realm at all
    gw = dockgate(gateway_config({"sec": reg.url}, {"secure": {"backend": "sec"}}))
    ca = str(gw.pki.ca_crt)
    seen = BackendLog(reg)
    # Attack: anonymous manifest reads, catalog, PUT and DELETE through the forwarder.
    for method, path, body in ATTACKS:
        r = requests.request(method, f"{gw.url}/_dockgate/realm/sec{path}", data=body,
                             verify=ca, timeout=30)
        assert_refused(r)
    # ...and with a raw socket, dot segments and an unknown backend.
    port = gw.port("path")
    for target in ("/_dockgate/realm/sec/../../v2/_catalog", "/_dockgate/realm/sec/%2e%2e/v2/",
                   "/_dockgate/realm/nosuch/v2/_catalog", "/_dockgate/realm/sec"):
        status, _, body = tls_exchange(port, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                                       "Connection: close\r\n\r\n".encode(), ca)
        assert status in (400, 404), (target, status, body)
    assert seen.requests() == [], seen.requests()


def test_passthrough_forwards_only_the_advertised_token_request(dockgate, token_backend):
    gw = dockgate(gateway_config({"tok": token_backend.url},
                                 {"tk": {"backend": "tok", "name_prefix": "p/"},
                                  "other": {"backend": "tok", "name_prefix": "o/"}}))
    ca = str(gw.pki.ca_crt)
    # The client learns the realm from the backend's challenge, rewritten onto dockgate.
    r = requests.get(f"{gw.url}/v2/tk/app/manifests/1", verify=ca, timeout=30)
    assert r.status_code == 401, r.text
    realm = f"{gw.url}/_dockgate/realm/tok/auth/token"
    assert f'realm="{realm}"' in r.headers["WWW-Authenticate"], r.headers
    assert 'scope="repository:tk/app:pull"' in r.headers["WWW-Authenticate"], r.headers

    seen = BackendLog(token_backend)
    # Attack: extra parameters and a scope for a name this listener does not serve.
    r = requests.get(realm, verify=ca, timeout=30, params=[
        ("service", "reg-test"), ("scope", "repository:tk/app:pull"),
        ("scope", "repository:nosuch/x:push"), ("next", "https://evil.example/"),
        ("account", "bob"), ("%73cope", "x")])
    got = seen.uris()
    assert len(got) == 1 and got[0].startswith("/auth/token?"), got
    assert "scope=repository%3Ap%2Fapp%3Apull" in got[0], got
    assert "nosuch" not in got[0] and "next" not in got[0] and "evil" not in got[0], got
    assert "account=bob" in got[0] and "service=reg-test" in got[0], got
    # POST (the OAuth2 form) reaches the same path, rebuilt from its parsed fields.
    seen = BackendLog(token_backend)
    r = requests.post(realm, verify=ca, timeout=30, data={
        "grant_type": "password", "username": "u", "password": "p", "service": "reg-test",
        "scope": "repository:tk/app:pull", "client_id": "t", "redirect": "https://evil"})
    assert [(m, u.split("?")[0]) for m, u, _ in seen.requests()] == [("POST", "/auth/token")]
    # Attack: other methods, and other paths on the same backend.
    seen = BackendLog(token_backend)
    for method in ("PUT", "DELETE", "PATCH"):
        assert_refused(requests.request(method, realm, data=b"x", verify=ca, timeout=30), 405)
    for method, path, body in ATTACKS:
        r = requests.request(method, f"{gw.url}/_dockgate/realm/tok{path}", data=body,
                             verify=ca, timeout=30)
        assert_refused(r)
    assert seen.requests() == [], seen.requests()


def test_health_says_only_its_state_and_reaches_no_backend(dockgate, registry_factory, unique):
    """/_dockgate/health (the balancer's check, issue 13) is anonymous on every listener,
    answers only GET/HEAD, tells nothing but serving/draining, and forwards nothing."""
    app = app_setup(dockgate, registry_factory, unique("health"))
    seen = BackendLog(app.one)
    for method in ("path", "port"):
        base = app.route(method, "team-a").base
        r = requests.get(f"{base}/_dockgate/health", verify=app.ca, timeout=30)
        assert r.status_code == 200 and r.json() == {"status": "serving"}, r.text
        assert requests.head(f"{base}/_dockgate/health", verify=app.ca,
                             timeout=30).status_code == 200
        for verb in ("POST", "PUT", "DELETE", "PATCH"):
            r = requests.request(verb, f"{base}/_dockgate/health", data=b"x", verify=app.ca,
                                 timeout=30)
            assert_refused(r, 405)
        # Anything under it is not the health endpoint, and not a way through either.
        for path in ("/_dockgate/health/", "/_dockgate/health/../v2/_catalog",
                     "/_dockgate/healthz", "/_dockgate/health%2f..%2fv2%2f_catalog"):
            r = requests.get(f"{base}{path}", verify=app.ca, timeout=30)
            assert r.status_code in (400, 404), (path, r.status_code, r.text)
    assert seen.requests() == [], seen.requests()
