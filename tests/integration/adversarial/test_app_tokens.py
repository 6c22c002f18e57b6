"""Tokens are bound to the canonical target (repository key, image): a token granted on
one listener or repository is not replayable on another (issue 10, item 2), and a token
that lacks a scope its user's roles allow gets a challenge with error="insufficient_scope"
and the scope (403 per RFC 6750 3.1, which oras-py needs), a user without the role a plain
403 DENIED (item 6)."""
import os

import pytest
import requests

from dgtest import images
from dgtest.attack_app import BackendLog, app_setup, error_code
from dgtest.client import error_codes
from dgtest.ops import jwt_split


@pytest.fixture
def app(dockgate, registry_factory, etc_hosts, unique):
    return app_setup(dockgate, registry_factory, unique("tok"))


def bearer_get(route, path, token, ca):
    return requests.get(route.base + path, headers={"Authorization": f"Bearer {token}",
                                                    "Accept": images.OCI_MANIFEST},
                        verify=ca, timeout=30)


def test_tokens_are_not_replayable_across_listeners_or_repositories(app):
    img_a, img_b = images.make_image((300,)), images.make_image((300,))
    app.seed("team-a", "app", img_a)
    app.seed("team-b", "app", img_b)
    app.seed("team-a", "team-b/app", img_a)
    sub_a, sub_b = app.route("subdomain", "team-a"), app.route("subdomain", "team-b")
    port_a, port_b = app.route("port", "team-a"), app.route("port", "team-b")
    path = app.route("path", "team-a")

    # The token's access names the canonical <key>/<image>, whatever the listener.
    for route in (sub_a, port_a, path):
        tok = app.token(route, f"repository:{route.name('app')}:pull", "carol")
        _, claims, _ = jwt_split(tok)
        assert claims["access"] == [{"type": "repository", "name": "team-a/app",
                                     "actions": ["pull"]}], (route.method, claims)
        # ...and so it reads team-a/app through every listener that addresses it.
        for other in (sub_a, port_a, path):
            r = bearer_get(other, f"/v2/{other.name('app')}/manifests/1", tok, app.ca)
            assert r.status_code == 200, (route.method, other.method, r.status_code, r.text)

    seen = BackendLog(app.two)
    # Attack: carol's token for `app` on team-a's subdomain, replayed on team-b's subdomain.
    tok = app.token(sub_a, "repository:app:pull", "carol")
    r = bearer_get(sub_b, "/v2/app/manifests/1", tok, app.ca)
    assert (r.status_code, error_code(r.content)) == (403, ["DENIED"]), r.text
    # Attack: a port-listener token replayed on another port listener.
    tok = app.token(port_a, "repository:app:pull", "carol")
    r = bearer_get(port_b, "/v2/app/manifests/1", tok, app.ca)
    assert (r.status_code, error_code(r.content)) == (403, ["DENIED"]), r.text
    # Attack: on team-a's subdomain, `team-b/app` is an image inside team-a; its token
    # replayed on the path listener, where /v2/team-b/app is team-b's image.
    tok = app.token(sub_a, "repository:team-b/app:pull", "carol")
    assert bearer_get(sub_a, "/v2/team-b/app/manifests/1", tok, app.ca).status_code == 200
    r = bearer_get(app.route("path", "team-b"), "/v2/team-b/app/manifests/1", tok, app.ca)
    assert (r.status_code, error_code(r.content)) == (403, ["DENIED"]), r.text
    # team-b's backend saw none of these reads.
    assert not [u for u in seen.uris() if "/manifests/" in u], seen.requests()

    # bob may read both: his team-a token replayed on team-b is told which scope to ask for.
    tok = app.token(sub_a, "repository:app:pull", "bob")
    r = bearer_get(sub_b, "/v2/app/manifests/1", tok, app.ca)
    assert r.status_code == 403 and error_code(r.content) == ["DENIED"], r.text
    ch = r.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in ch and 'scope="repository:app:pull"' in ch, ch
    assert f'realm="https://{sub_b.hostport}/v2/token"' in ch, ch


def test_real_clients_read_through_every_listener_and_not_across(app, client_env, tmp_path):
    img = images.make_image((400,))
    app.seed("team-a", "app", img)
    creds = f"carol:{app.users['carol']}"
    for method in ("path", "subdomain", "port"):
        route = app.route(method, "team-a")
        p = client_env.skopeo("inspect", "--raw", "--cert-dir", client_env.cert_dir,
                              "--creds", creds, route.docker("app", "1"))
        assert images.sha256_digest(p.stdout.encode()) == img.digest, method
    seen = BackendLog(app.two)
    for method in ("subdomain", "port"):
        p = client_env.skopeo("inspect", "--raw", "--cert-dir", client_env.cert_dir,
                              "--creds", creds, app.route(method, "team-b").docker("app", "1"),
                              check=False)
        assert p.returncode != 0 and "denied" in p.stderr.lower(), (method, p.stderr)
    # curl with a token from team-a's port listener against team-b's.
    tok = app.token(app.route("port", "team-a"), "repository:app:pull", "carol")
    p = client_env.curl("-o", "/dev/null", "-w", "%{http_code}", "-H",
                        f"Authorization: Bearer {tok}",
                        app.route("port", "team-b").base + "/v2/app/manifests/1", check=False)
    assert p.stdout.strip() == "403", p
    assert not [u for u in seen.uris() if "/manifests/" in u], seen.requests()


def test_missing_scope_is_insufficient_scope_and_missing_role_is_403(app):
    route = app.route("path", "team-a")
    one = BackendLog(app.one)
    # Attack: push with a pull-only token. alice may push: a challenge with
    # error="insufficient_scope" and the scope to ask for; carol may not: 403 DENIED and no
    # challenge. Neither upload reaches the backend.
    for user, challenged in (("alice", True), ("carol", False)):
        tok = app.token(route, "repository:team-a/up:pull", user)
        r = requests.post(route.base + "/v2/team-a/up/blobs/uploads/", verify=app.ca,
                          timeout=30, headers={"Authorization": f"Bearer {tok}"})
        assert (r.status_code, error_codes(r)) == (403, ["DENIED"]), (user, r.text)
        if challenged:
            ch = r.headers["WWW-Authenticate"]
            assert 'error="insufficient_scope"' in ch, ch
            assert 'scope="repository:team-a/up:pull,push"' in ch, ch
        else:
            assert "WWW-Authenticate" not in r.headers, r.headers
    assert not one.uris("POST"), one.requests()


def test_oras_push_after_login(app, tmp_path, monkeypatch):
    """oras-py asks for a pull token first and push later: it needs insufficient_scope."""
    import oras.client
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", app.ca)
    monkeypatch.chdir(tmp_path)
    data = b"oras through dockgate " + os.urandom(16)
    (tmp_path / "artifact.txt").write_bytes(data)
    route = app.route("path", "team-a")
    client = oras.client.OrasClient(hostname=route.hostport)
    client.login(username="alice", password=app.users["alice"], hostname=route.hostport)
    client.push(target=f"{route.hostport}/team-a/oras:v1", files=["artifact.txt"])
    direct = app.one
    r = requests.get(f"{direct.url}/v2/{app.prefix['team-a']}oras/manifests/v1",
                     headers={"Accept": images.OCI_MANIFEST}, timeout=10)
    assert r.status_code == 200, r.text
    files = client.pull(target=f"{route.hostport}/team-a/oras:v1", outdir=str(tmp_path / "o"))
    assert [open(f, "rb").read() for f in files] == [data]
