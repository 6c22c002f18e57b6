"""Queries are decoded once and forwarded rebuilt from the decoded values (issue 10,
item 3): encoded or repeated `from`/`mount` never mount a blob across repositories."""
import os
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from dgtest.attack_app import BackendLog, app_setup
from dgtest.client import raw_request
from dgtest.standard import PREFIX

# Each: the attack's query, with {d} = the digest and {src} = a name in another key.
ATTACKS = {
    "encoded key": "mount={d}&%66rom={src}",
    "repeated from": "mount={d}&from=team-a%2Fharmless&from={src}",
    "from after ;": "mount={d}&x=1;from={src}",
    "mount without from": "mount={d}",
    "repeated mount": "mount={d}&mount={d}&from={src}",
    "encoded mount and from": "%6Dount={d}&%66%72%6F%6D={src}",
}


def mount_keys(uri):
    """`mount`/`from` as the backend (Go's url.ParseQuery) reads the forwarded query."""
    query = urlsplit(uri).query
    pairs = [] if ";" in query else parse_qsl(query, keep_blank_values=True)
    assert ";" not in query, f"a raw ';' reached the backend: {uri}"
    return [k for k, _ in pairs if k in ("mount", "from")]


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_encoded_mount_parameters_never_cross_keys(gateway, registry, backend, unique, attack):
    # The secret blob lives in team-b; the attacker uploads into team-a (passthrough mode).
    secret, dst = unique("secret"), unique("dst")
    digest = backend.push_blob(PREFIX["team-b"] + secret, os.urandom(4000))
    route = gateway.route("path", "team-a")
    q = ATTACKS[attack].format(d=digest, src=f"team-b%2F{secret}")
    seen = BackendLog(registry)
    r = raw_request(f"{route.base}/v2/team-a/{dst}/blobs/uploads/?{q}", method="POST",
                    body=b"", ca_file=gateway.pki.ca_crt)
    assert r.status == 202, (r.status, r.text)  # an ordinary upload, never a mount (201)
    posts = [u for m, u, _ in seen.requests() if m == "POST"]
    assert len(posts) == 1 and not mount_keys(posts[0]), posts
    assert backend.head(f"/v2/{PREFIX['team-a']}{dst}/blobs/{digest}").status_code == 404
    # The client cannot read the secret blob through its own repository.
    got = requests.get(f"{route.base}/v2/team-a/{dst}/blobs/{digest}",
                       verify=str(gateway.pki.ca_crt), timeout=30)
    assert got.status_code == 404, got.status_code


def test_user_of_another_repository_cannot_mount_its_blobs(dockgate, registry_factory, unique):
    """[auth] on: alice writes team-a and may not read team-b; team-b lives on another backend."""
    app = app_setup(dockgate, registry_factory, unique("qm"))
    from dgtest.client import V2
    d = V2(app.two.url).push_blob(app.prefix["team-b"] + "secret", os.urandom(3000))
    route = app.route("path", "team-a")
    seen = BackendLog(app.one)
    for attack, q in sorted(ATTACKS.items()):
        r = raw_request(f"{route.base}/v2/team-a/dst/blobs/uploads/?"
                        + q.format(d=d, src="team-b%2Fsecret"), method="POST", body=b"",
                        headers={"Authorization": "Basic " + __import__("base64").b64encode(
                            f"alice:{app.users['alice']}".encode()).decode()},
                        ca_file=app.ca)
        assert r.status == 202, (attack, r.status, r.text)
    posts = [u for m, u, _ in seen.requests() if m == "POST"]
    assert len(posts) == len(ATTACKS) and not [u for u in posts if mount_keys(u)], posts
    assert V2(app.one.url).head(f"/v2/{app.prefix['team-a']}dst/blobs/{d}").status_code == 404
