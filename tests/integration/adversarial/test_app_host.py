"""The Host header is not trusted (issue 10, item 11): absolute URLs (Location, the
challenge realm, Link) come only from configured names; any other Host or :authority gets
421 Misdirected Request in the registry format, and nothing reaches the backend."""
import pytest

from dgtest.attack_app import BackendLog, app_setup, error_code, tls_exchange
from dgtest.standard import PREFIX

EVIL = "evil.example"


def upload_start(port, host, name, request_target=None):
    target = request_target or f"/v2/{name}/blobs/uploads/"
    return (f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n").encode()


@pytest.mark.parametrize("method", ["path", "subdomain", "port"])
def test_foreign_host_is_refused_on_every_listener(gateway, registry, unique, method):
    route = gateway.route(method, "team-a")
    name = route.name(unique("host"))
    seen = BackendLog(registry)
    sni = route.host if method == "subdomain" else "127.0.0.1"
    cases = {
        # Attack: a foreign Host, with and without the listener's port.
        "host": upload_start(route.port, EVIL, name),
        "host with port": upload_start(route.port, f"{EVIL}:{route.port}", name),
        # Attack: an absolute-form request line naming another authority.
        "absolute form": upload_start(route.port, route.hostport, name,
                                      f"https://{EVIL}/v2/{name}/blobs/uploads/"),
        # Attack: two Host headers, ours first.
        "second host": upload_start(route.port, route.hostport, name).replace(
            b"Content-Length", f"Host: {EVIL}\r\nContent-Length".encode()),
    }
    for case, raw in cases.items():
        status, headers, body = tls_exchange(route.port, raw, gateway.pki.ca_crt, sni)
        assert status in (400, 421), (case, status, body)
        if status == 421:
            assert error_code(body) == ["DENIED"], (case, body)
        assert EVIL not in headers.get("location", ""), (case, headers)
    assert seen.requests() == [], seen.requests()
    # Our own name still works, and its Location is built from it.
    status, headers, _ = tls_exchange(route.port, upload_start(route.port, route.hostport, name),
                                      gateway.pki.ca_crt, sni)
    assert status == 202, status
    assert headers["location"].startswith(f"https://{route.hostport}/")
    posts = [u for m, u, _ in seen.requests() if m == "POST"]
    assert len(posts) == 1 and posts[0].startswith(f"/v2/{PREFIX['team-a']}"), posts


def test_foreign_authority_over_h2_and_in_challenges(dockgate, registry_factory, client_env,
                                                     unique):
    app = app_setup(dockgate, registry_factory, unique("h2host"))
    route = app.route("path", "team-a")
    seen = BackendLog(app.one)
    # Attack: h2 with a foreign :authority (curl sends -H Host as :authority).
    p = client_env.curl("--http2", "-s", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                        "-H", f"Host: {EVIL}", f"{route.base}/v2/", check=False)
    assert p.stdout.split() == ["421", "2"], p
    # Attack: a challenge's realm must not be reflected from Host.
    status, headers, body = tls_exchange(route.port, (
        f"GET /v2/team-a/x/manifests/1 HTTP/1.1\r\nHost: {EVIL}\r\nConnection: close\r\n\r\n"
    ).encode(), app.ca)
    assert status == 421 and EVIL not in headers.get("www-authenticate", ""), (status, headers)
    status, headers, _ = tls_exchange(route.port, (
        f"GET /v2/team-a/x/manifests/1 HTTP/1.1\r\nHost: {route.hostport}\r\n"
        "Connection: close\r\n\r\n").encode(), app.ca)
    assert status == 401
    assert f'realm="https://{route.hostport}/v2/token"' in headers["www-authenticate"], headers
    assert seen.requests() == [], seen.requests()
