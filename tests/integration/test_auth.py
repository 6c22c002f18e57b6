"""Gateway authentication (issue 5) with real clients through TLS.

docker login, skopeo login/--creds and podman login against dockgate's token service;
roles per repository (anonymous read, read, write, groups); /v2/auth and /v1/auth docker
config entries with API keys and their revocation; passthrough of a backend's own Basic
auth; forged, altered, expired and wrong-audience tokens; login throttling; and no secret
ever written to the gateway's logs.

Every gateway here has its own metrics port or metrics off. Users' passwords are random
per test; htpasswd files use bcrypt at a low cost (one check per Basic request).
"""
import base64
import json
import shutil
import secrets
import time
from pathlib import Path

import pytest
import requests

from dgtest import images
from dgtest.client import V2, error_codes
from dgtest.gateway import gateway_config
from dgtest.ops import (access_log_lines, auth_gateway_config, basic_b64, docker_login,
                        dockgate_revoke_keys, dockgate_user_add, find_secrets, gateway_logs,
                        jwt_es256, jwt_split, jwt_unsigned, jwt_with_signature,
                        load_pem_private_key, metric, new_p256_key, podman_login, samples_of,
                        skopeo_login, write_htpasswd)
from dgtest.ports import free_port

SERVICE = "dockgate"


def pw():
    return "pw-" + secrets.token_urlsafe(12)


def refused_credentials(text):
    """A client's message for credentials the registry did not accept."""
    t = text.lower()
    return any(m in t for m in ("unauthorized", "invalid username/password",
                                "authentication required"))


class AuthSetup:
    """A started gateway with [auth] on the session backend, two repositories:

    priv: read = reader, write = writer + group devs (dora), admin = repoadmin; no anonymous;
    pub:  anonymous_read, write = writer.
    """

    def __init__(self, gw, registry, users, prefixes, access_log):
        self.gw = gw
        self.registry = registry
        self.users = users
        self.prefix = prefixes
        self.access_log = access_log
        self.api_keys = []

    @property
    def hostport(self):
        return f"127.0.0.1:{self.gw.port('path')}"

    @property
    def base(self):
        return f"https://{self.hostport}"

    def api(self, auth=None):
        return V2(self.base, verify=str(self.gw.pki.ca_crt), auth=auth)

    def creds(self, user):
        return f"{user}:{self.users[user]}"

    def ref(self, key, image, tag):
        return f"docker://{self.hostport}/{key}/{image}:{tag}"

    def backend_dir(self, key, image):
        """Where the backend keeps a repository on disk."""
        return (self.registry.storage / "docker" / "registry" / "v2" / "repositories"
                / (self.prefix[key] + image))

    def token(self, scope, user=None, password=None, **params):
        auth = (user, password if password is not None else self.users[user]) if user else None
        q = {"service": SERVICE, "scope": scope, **params}
        r = requests.get(self.base + "/v2/token", params=q, auth=auth,
                         verify=str(self.gw.pki.ca_crt), timeout=30)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def secrets(self):
        return list(self.users.values()) + list(self.api_keys)

    def assert_no_secrets_logged(self):
        text = gateway_logs(self.gw)
        if self.access_log and Path(self.access_log).exists():
            text += Path(self.access_log).read_text(errors="replace")
        assert access_log_lines(self.access_log) and gateway_logs(self.gw), \
            "empty logs: the files searched are not the gateway's"
        leaked = find_secrets(text, self.secrets())
        # Basic headers carry base64(user:secret): look for those too.
        leaked += [f"base64({u}:…)" for u, p in self.users.items()
                   if basic_b64(u, p) in text]
        assert not leaked, f"secrets found in dockgate's logs: {leaked}"


@pytest.fixture
def auth_setup(dockgate, registry, unique, dockgate_binary):
    def make(auth=None, metrics=False, env=None, repos=None):
        stem = unique("auth")
        prefixes = {"priv": f"{stem}-priv/", "pub": f"{stem}-pub/"}
        users = {u: pw() for u in ("writer", "reader", "dora", "nobody", "repoadmin")}
        repositories = repos or {
            "priv": {"name_prefix": prefixes["priv"], "read": ["reader"],
                     "write": ["writer", "devs"], "admin": ["repoadmin"]},
            "pub": {"name_prefix": prefixes["pub"], "anonymous_read": True,
                    "write": ["writer"]},
        }
        a = {"groups": {"devs": ["dora"]}, "emails": {"writer": "w@example.test"}}
        a.update(auth or {})
        cfg = auth_gateway_config(registry.url, repositories, auth=a,
                                  metrics_port=free_port() if metrics else None,
                                  log={"format": "json", "access_log": "access.log"})
        gw = dockgate(cfg, start=False, env=env)
        write_htpasswd(gw.dir / "users.htpasswd",
                       {u: p for u, p in users.items() if u != "writer"})
        # One user through the CLI, as an operator would (bcrypt at the default cost).
        dockgate_user_add(dockgate_binary, gw.config_path, "writer", users["writer"])
        gw.start()
        return AuthSetup(gw, registry, users, prefixes, gw.dir / "access.log")

    return make


def seed(setup, key, image, tag="1"):
    """An image pushed straight to the backend (bypassing dockgate)."""
    img = images.make_image((700,))
    V2(setup.registry.url).push_image(setup.prefix[key] + image, tag, img)
    return img


# Logins ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("client", ["docker", "skopeo", "podman"])
def test_login_with_right_and_wrong_password(auth_setup, client_env, tmp_path, client):
    s = auth_setup()
    user, password = "reader", s.users["reader"]
    if client == "docker":
        cfg_dir = tmp_path / "docker-config"
        ok = docker_login(cfg_dir, s.hostport, user, password)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "Login Succeeded" in ok.stdout + ok.stderr
        stored = json.loads((cfg_dir / "config.json").read_text())["auths"][s.hostport]
        if "identitytoken" in stored:
            # dockgate offered a refresh token (offline_token=true): docker keeps that
            # instead of the password. It must work as a refresh grant.
            assert base64.b64decode(stored["auth"]).decode() == f"{user}:"
            r = requests.post(s.base + "/v2/token", verify=str(s.gw.pki.ca_crt), timeout=10,
                              data={"grant_type": "refresh_token", "service": SERVICE,
                                    "refresh_token": stored["identitytoken"],
                                    "client_id": "docker", "scope": "repository:priv/x:pull"})
            assert r.status_code == 200 and r.json().get("access_token"), r.text
            s.api_keys.append(stored["identitytoken"])
        else:
            assert base64.b64decode(stored["auth"]).decode() == f"{user}:{password}"
        bad_dir = tmp_path / "docker-config-bad"
        bad = docker_login(bad_dir, s.hostport, user, password + "x")
        assert bad.returncode != 0, bad.stdout + bad.stderr
        assert "Login Succeeded" not in bad.stdout + bad.stderr
        assert refused_credentials(bad.stdout + bad.stderr), bad.stdout + bad.stderr
        stored_bad = bad_dir / "config.json"
        assert (not stored_bad.exists()
                or s.hostport not in json.loads(stored_bad.read_text()).get("auths", {}))
    else:
        login = skopeo_login if client == "skopeo" else podman_login
        authfile = tmp_path / f"{client}-auth.json"
        ok = login(client_env, authfile, s.hostport, user, password)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "Login Succeeded" in ok.stdout + ok.stderr
        entry = json.loads(authfile.read_text())["auths"][s.hostport]["auth"]
        assert base64.b64decode(entry).decode() == f"{user}:{password}"
        bad_file = tmp_path / f"{client}-auth-bad.json"
        bad = login(client_env, bad_file, s.hostport, user, password + "x")
        assert bad.returncode != 0, bad.stdout + bad.stderr
        assert refused_credentials(bad.stdout + bad.stderr), bad.stdout + bad.stderr
        assert (not bad_file.exists()
                or s.hostport not in json.loads(bad_file.read_text() or "{}").get("auths", {}))
        if client == "skopeo":
            # --creds on inspect: right works, wrong is refused.
            seed(s, "priv", "login")
            out = client_env.skopeo("inspect", "--raw", "--cert-dir", client_env.cert_dir,
                                    "--creds", f"{user}:{password}",
                                    s.ref("priv", "login", "1"))
            assert json.loads(out.stdout)["schemaVersion"] == 2
            wrong = client_env.skopeo("inspect", "--raw", "--cert-dir", client_env.cert_dir,
                                      "--creds", f"{user}:{password}x",
                                      s.ref("priv", "login", "1"), check=False)
            assert wrong.returncode != 0
            assert refused_credentials(wrong.stderr), wrong.stderr
    s.assert_no_secrets_logged()


# Token flow ------------------------------------------------------------------------------------
def test_token_flow_roles_with_skopeo(auth_setup, client_env, tmp_path):
    s = auth_setup()
    ca = str(s.gw.pki.ca_crt)
    # The challenge a client sees first.
    r = requests.get(s.base + "/v2/", verify=ca, timeout=10)
    assert r.status_code == 401 and error_codes(r) == ["UNAUTHORIZED"], r.text
    assert r.headers["WWW-Authenticate"] == (
        f'Bearer realm="https://{s.hostport}/v2/token",service="{SERVICE}"')
    r = requests.get(s.base + "/v2/priv/app/manifests/1", verify=ca, timeout=10)
    assert r.status_code == 401, r.text
    assert 'scope="repository:priv/app:pull"' in r.headers["WWW-Authenticate"]

    img = images.make_image((1500, 9000))
    layout = images.write_oci_layout(tmp_path / "src", {"1": img})
    backend = V2(s.registry.url)

    # A writer pushes to both repositories (token flow: 401 -> /v2/token with Basic -> Bearer).
    for key in ("priv", "pub"):
        client_env.skopeo_copy(f"oci:{layout}:1", s.ref(key, "app", "1"),
                               "--dest-creds", s.creds("writer"))
        assert backend.manifest_digest(s.prefix[key] + "app", "1") == img.digest
    # A member of the writing group pushes too.
    client_env.skopeo_copy(f"oci:{layout}:1", s.ref("priv", "app", "dora"),
                           "--dest-creds", s.creds("dora"))
    assert backend.manifest_digest(s.prefix["priv"] + "app", "dora") == img.digest

    # Anonymous pull from the anonymous_read repository.
    out = tmp_path / "anon"
    client_env.skopeo_copy(s.ref("pub", "app", "1"), f"dir:{out}")
    assert images.sha256_digest((out / "manifest.json").read_bytes()) == img.digest
    # ... but not from the private one, nor a push to the public one.
    anon_priv = client_env.skopeo_copy(s.ref("priv", "app", "1"), f"dir:{tmp_path / 'x'}",
                                       check=False)
    assert anon_priv.returncode != 0
    assert refused_credentials(anon_priv.stderr), anon_priv.stderr
    # The reader pulls the private one.
    out = tmp_path / "reader"
    client_env.skopeo_copy(s.ref("priv", "app", "1"), f"dir:{out}",
                           "--src-creds", s.creds("reader"))
    assert images.sha256_digest((out / "manifest.json").read_bytes()) == img.digest

    # The reader's push is refused with DENIED and the backend stores nothing.
    other = images.make_image((1200,))
    layout2 = images.write_oci_layout(tmp_path / "src2", {"1": other})
    denied = client_env.skopeo_copy(f"oci:{layout2}:1", s.ref("priv", "readerpush", "1"),
                                    "--dest-creds", s.creds("reader"), check=False)
    assert denied.returncode != 0
    assert "denied" in denied.stderr.lower(), denied.stderr
    assert not s.backend_dir("priv", "readerpush").exists(), \
        list(s.backend_dir("priv", "readerpush").rglob("*"))[:20]
    r = backend.tags(s.prefix["priv"] + "readerpush")
    assert r.status_code == 404, (r.status_code, r.text)
    for blob in other.blobs:
        assert backend.blob(s.prefix["priv"] + "readerpush", blob.digest).status_code == 404

    # The same refusal as the API shows it: 403 DENIED for a user, 401 for anonymous.
    tok = s.token("repository:priv/readerpush:pull,push", "reader")["token"]
    r = requests.post(s.base + "/v2/priv/readerpush/blobs/uploads/", verify=ca, timeout=10,
                      headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 403 and error_codes(r) == ["DENIED"], (r.status_code, r.text)
    r = requests.post(s.base + "/v2/pub/anonpush/blobs/uploads/", verify=ca, timeout=10)
    assert r.status_code == 401 and error_codes(r) == ["UNAUTHORIZED"], (r.status_code, r.text)
    assert 'scope="repository:pub/anonpush:pull,push"' in r.headers["WWW-Authenticate"]
    assert not s.backend_dir("pub", "anonpush").exists()
    # Basic works as well as tokens for API clients.
    assert s.api(("reader", s.users["reader"])).manifest_digest("priv/app", "1") == img.digest
    r = s.api(("nobody", s.users["nobody"])).manifest("priv/app", "1")
    assert r.status_code == 403 and error_codes(r) == ["DENIED"], (r.status_code, r.text)
    s.assert_no_secrets_logged()


def test_token_endpoint_shapes_and_refresh(auth_setup):
    s = auth_setup()
    ca = str(s.gw.pki.ca_crt)
    body = s.token("repository:priv/app:pull,push", "writer", offline_token="true",
                   client_id="docker")
    for k in ("token", "access_token", "expires_in", "issued_at", "refresh_token"):
        assert k in body, body
    assert body["token"] == body["access_token"]
    header, claims, _ = jwt_split(body["token"])
    assert header["alg"] == "ES256"
    assert claims["aud"] == SERVICE and claims["sub"] == "writer"
    assert claims["access"] == [{"type": "repository", "name": "priv/app",
                                 "actions": ["pull", "push"]}]
    # A reader asking for push gets pull only; anonymous gets nothing on priv.
    _, c, _ = jwt_split(s.token("repository:priv/app:pull,push", "reader")["token"])
    assert c["access"][0]["actions"] == ["pull"]
    _, c, _ = jwt_split(s.token("repository:priv/app:pull")["token"])
    assert c["access"] == [] or c["access"][0]["actions"] == []
    # OAuth2 POST: password grant, then refresh grant.
    r = requests.post(s.base + "/v2/token", verify=ca, timeout=10, data={
        "grant_type": "password", "username": "writer", "password": s.users["writer"],
        "service": SERVICE, "scope": "repository:priv/app:pull", "client_id": "test"})
    assert r.status_code == 200, r.text
    refresh = r.json()["refresh_token"]
    r = requests.post(s.base + "/v2/token", verify=ca, timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": refresh, "service": SERVICE,
        "scope": "repository:priv/app:pull", "client_id": "test"})
    assert r.status_code == 200, r.text
    assert r.json()["access_token"]
    # The refresh token is not an access token.
    r = requests.get(s.base + "/v2/priv/app/tags/list", verify=ca, timeout=10,
                     headers={"Authorization": f"Bearer {refresh}"})
    assert r.status_code == 401, r.text
    # Wrong password at the token endpoint.
    r = requests.get(s.base + "/v2/token", verify=ca, timeout=10, auth=("writer", "nope"),
                     params={"service": SERVICE, "scope": "repository:priv/app:pull"})
    assert r.status_code == 401 and error_codes(r) == ["UNAUTHORIZED"], r.text
    s.api_keys.append(refresh)
    s.assert_no_secrets_logged()


# /v2/auth, /v1/auth, API keys -------------------------------------------------------------------
def test_docker_config_entry_api_key_and_revocation(auth_setup, client_env, tmp_path,
                                                    dockgate_binary):
    s = auth_setup()
    ca = str(s.gw.pki.ca_crt)
    creds = ("writer", s.users["writer"])

    r = requests.get(s.base + "/v2/auth", auth=creds, verify=ca, timeout=30)
    assert r.status_code == 200, r.text
    entry = r.json()
    assert list(entry) == [s.hostport], entry
    user, key = base64.b64decode(entry[s.hostport]["auth"]).decode().split(":", 1)
    assert user == "writer" and key and key != s.users["writer"]
    assert entry[s.hostport]["email"] == "w@example.test"
    s.api_keys.append(key)

    r1 = requests.get(s.base + "/v1/auth", auth=creds, verify=ca, timeout=30)
    assert r1.status_code == 200 and r1.json() == entry, r1.text
    for path in ("/v2/auth", "/v1/auth"):
        r = requests.get(s.base + path, verify=ca, timeout=30)
        assert r.status_code == 401 and error_codes(r) == ["UNAUTHORIZED"], (path, r.text)
        r = requests.get(s.base + path, auth=("writer", "wrong"), verify=ca, timeout=30)
        assert r.status_code == 401, (path, r.status_code, r.text)

    # Curl, as the docs show it, gives the config.json shape.
    p = client_env.curl("-u", f"writer:{s.users['writer']}",
                        s.base + "/v2/auth?format=config.json")
    cfg = json.loads(p.stdout)
    assert cfg == {"auths": entry}, cfg
    authfile = tmp_path / "config.json"
    authfile.write_text(json.dumps(cfg))

    # The API key works as a password: with skopeo --authfile, and with Basic.
    img = images.make_image((800,))
    layout = images.write_oci_layout(tmp_path / "src", {"1": img})
    client_env.skopeo_copy(f"oci:{layout}:1", s.ref("priv", "keyed", "1"),
                           "--authfile", authfile)
    assert V2(s.registry.url).manifest_digest(s.prefix["priv"] + "keyed", "1") == img.digest
    assert s.api(("writer", key)).get("/v2/").status_code == 200
    # docker login accepts it too (where the docker client is installed).
    if shutil.which("docker"):
        d = docker_login(tmp_path / "dc", s.hostport, "writer", key)
        assert d.returncode == 0, d.stdout + d.stderr

    # Revoked: the same authfile no longer works; the password still does and gets a new key.
    dockgate_revoke_keys(dockgate_binary, s.gw.config_path, "writer")
    img2 = images.make_image((800,))
    layout2 = images.write_oci_layout(tmp_path / "src2", {"2": img2})
    res = client_env.skopeo_copy(f"oci:{layout2}:2", s.ref("priv", "keyed", "2"),
                                 "--authfile", authfile, check=False)
    assert res.returncode != 0, "a revoked API key still pushes"
    assert refused_credentials(res.stderr), res.stderr
    assert V2(s.registry.url).manifest("" + s.prefix["priv"] + "keyed", "2").status_code == 404
    r = s.api(("writer", key)).get("/v2/")
    assert r.status_code == 401, (r.status_code, r.text)
    r = requests.get(s.base + "/v2/auth", auth=creds, verify=ca, timeout=30)
    assert r.status_code == 200, r.text
    new_key = base64.b64decode(r.json()[s.hostport]["auth"]).decode().split(":", 1)[1]
    s.api_keys.append(new_key)
    assert new_key != key
    assert s.api(("writer", new_key)).get("/v2/").status_code == 200
    s.assert_no_secrets_logged()


# Passthrough -----------------------------------------------------------------------------------
def test_passthrough_backend_basic_auth_with_skopeo_creds(registry_factory, dockgate, client_env,
                                                          tmp_path, unique):
    password = pw()
    reg = registry_factory(htpasswd=("alice", password))
    cfg = gateway_config({"sec": reg.url},
                         {"secure": {"backend": "sec", "type": "local", "name_prefix": "team/"}},
                         [{"method": "path"}])
    cfg["metrics"] = {"address": "off"}
    gw = dockgate(cfg)
    hostport = f"127.0.0.1:{gw.port('path')}"
    name = unique("pt")
    ca = str(gw.pki.ca_crt)

    # Without credentials the backend's 401 (and its challenge) passes through.
    r = requests.get(f"https://{hostport}/v2/secure/{name}/manifests/1", verify=ca, timeout=10)
    assert r.status_code == 401, (r.status_code, r.text)
    assert error_codes(r) == ["UNAUTHORIZED"]
    assert r.headers.get("WWW-Authenticate", "").startswith("Basic"), r.headers

    img = images.make_image((900, 4000))
    layout = images.write_oci_layout(tmp_path / "src", {"1": img})
    ref = f"docker://{hostport}/secure/{name}:1"
    no_creds = client_env.skopeo_copy(f"oci:{layout}:1", ref, check=False)
    assert no_creds.returncode != 0
    client_env.skopeo_copy(f"oci:{layout}:1", ref, "--dest-creds", f"alice:{password}")
    direct = V2(reg.url, auth=("alice", password))
    assert direct.manifest_digest(f"team/{name}", "1") == img.digest
    out = tmp_path / "pulled"
    client_env.skopeo_copy(ref, f"dir:{out}", "--src-creds", f"alice:{password}")
    assert images.sha256_digest((out / "manifest.json").read_bytes()) == img.digest
    leaked = find_secrets(gateway_logs(gw), [password, basic_b64("alice", password)])
    assert not leaked, leaked


def test_backend_credentials_used_in_auth_mode(registry_factory, dockgate, client_env, tmp_path,
                                               unique):
    """With [auth], dockgate talks to an htpasswd backend with its own credentials; the
    client's Authorization (a dockgate token) never reaches the backend."""
    backend_pw = pw()
    reg = registry_factory(htpasswd=("gateway", backend_pw))
    users = {"writer": pw()}
    cfg = auth_gateway_config(
        reg.url, {"k": {"name_prefix": "p/", "write": ["writer"], "anonymous_read": True}},
        auth={}, backend_extra={"username": "gateway", "password_file": "backend.pw"})
    gw = dockgate(cfg, start=False)
    (gw.dir / "backend.pw").write_text(backend_pw + "\n")
    write_htpasswd(gw.dir / "users.htpasswd", users)
    gw.start()
    hostport = f"127.0.0.1:{gw.port('path')}"
    name = unique("bc")
    img = images.make_image((600,))
    layout = images.write_oci_layout(tmp_path / "src", {"1": img})
    client_env.skopeo_copy(f"oci:{layout}:1", f"docker://{hostport}/k/{name}:1",
                           "--dest-creds", f"writer:{users['writer']}")
    assert V2(reg.url, auth=("gateway", backend_pw)).manifest_digest(f"p/{name}", "1") == img.digest
    out = tmp_path / "pulled"
    client_env.skopeo_copy(f"docker://{hostport}/k/{name}:1", f"dir:{out}")
    assert images.sha256_digest((out / "manifest.json").read_bytes()) == img.digest
    leaked = find_secrets(gateway_logs(gw), [backend_pw, users["writer"]])
    assert not leaked, leaked


# Tokens that must not work -----------------------------------------------------------------------
FORGERIES = ["alg_none", "other_key", "expired", "wrong_aud", "altered_access", "garbage",
             "wrong_scheme", "malformed_basic"]


def test_forged_and_altered_tokens_are_refused(auth_setup):
    s = auth_setup()
    ca = str(s.gw.pki.ca_crt)
    img = seed(s, "priv", "secret")
    url = s.base + "/v2/priv/secret/manifests/1"

    def get(authz):
        return requests.get(url, verify=ca, timeout=10,
                            headers={"Authorization": authz, "Accept": images.OCI_MANIFEST})

    # A genuine token works; `nobody` (no role on priv) gets a token without actions: 403.
    genuine = s.token("repository:priv/secret:pull", "reader")["token"]
    r = get(f"Bearer {genuine}")
    assert r.status_code == 200 and images.sha256_digest(r.content) == img.digest, r.text
    powerless = s.token("repository:priv/secret:pull", "nobody")["token"]
    r = get(f"Bearer {powerless}")
    assert r.status_code == 403 and error_codes(r) == ["DENIED"], (r.status_code, r.text)

    header, claims, sig = jwt_split(genuine)
    # dockgate's signing key, from its state_dir (what "another dockgate with the same key"
    # would hold).
    key_files = [p for p in (s.gw.dir / "state").iterdir()
                 if "PRIVATE KEY" in p.read_text(errors="replace")]
    assert len(key_files) == 1, list((s.gw.dir / "state").iterdir())
    state_key = load_pem_private_key(key_files[0])
    # Our own ES256 signing with dockgate's key is accepted (so the refusals below are
    # about the claim that was changed, not about how the token was built).
    fresh = dict(claims, jti=secrets.token_hex(8))
    r = get(f"Bearer {jwt_es256(header, fresh, state_key)}")
    assert r.status_code == 200, ("a token signed with the state key was refused",
                                  r.status_code, r.text)

    now = int(time.time())
    _, weak_claims, weak_sig = jwt_split(powerless)
    forged = {
        "alg_none": jwt_unsigned(dict(header, alg="none"), claims) + ".",
        "other_key": jwt_es256(header, claims, new_p256_key()),
        "expired": jwt_es256(header, dict(claims, iat=now - 7200, nbf=now - 7200,
                                          exp=now - 3600), state_key),
        "wrong_aud": jwt_es256(header, dict(claims, aud="another-service"), state_key),
        # nobody's genuine token, access list edited to grant pull, signature kept.
        "altered_access": jwt_with_signature(
            jwt_split(powerless)[0],
            dict(weak_claims, access=[{"type": "repository", "name": "priv/secret",
                                       "actions": ["pull"]}]),
            weak_sig),
    }
    results = {}
    for kind, tok in forged.items():
        r = get(f"Bearer {tok}")
        results[kind] = (r.status_code, error_codes(r))
    results["garbage"] = ((r := get("Bearer not.a.jwt")).status_code, error_codes(r))
    results["wrong_scheme"] = ((r := get(f"Digest {genuine}")).status_code, error_codes(r))
    results["malformed_basic"] = ((r := get("Basic %%%not-base64")).status_code, error_codes(r))
    bad = {k: v for k, v in results.items() if v != (401, ["UNAUTHORIZED"])}
    assert not bad, f"expected 401 UNAUTHORIZED for every forged token, got {bad}"
    s.api_keys.append(genuine)
    s.assert_no_secrets_logged()


# Throttling ------------------------------------------------------------------------------------
def test_brute_force_is_throttled_and_counted(auth_setup):
    s = auth_setup(auth={"max_failures": 5, "lockout_seconds": 60}, metrics=True)
    mport = int(s.gw.config["metrics"]["address"].rsplit(":", 1)[1])
    ca = str(s.gw.pki.ca_crt)
    seed(s, "priv", "bf")
    url = s.base + "/v2/priv/bf/manifests/1"
    before = metric(samples_of(mport), "dockgate_auth_failures_total")

    statuses = []
    for i in range(6):
        r = requests.get(url, auth=("reader", f"wrong-{i}"), verify=ca, timeout=30,
                         headers={"Accept": images.OCI_MANIFEST})
        statuses.append((r.status_code, error_codes(r)))
    assert statuses[:5] == [(401, ["UNAUTHORIZED"])] * 5, statuses
    assert statuses[5] == (429, ["TOOMANYREQUESTS"]), statuses
    # Locked: even the right password is refused within the lockout, on the token endpoint too.
    r = requests.get(url, auth=("reader", s.users["reader"]), verify=ca, timeout=30,
                     headers={"Accept": images.OCI_MANIFEST})
    assert (r.status_code, error_codes(r)) == (429, ["TOOMANYREQUESTS"]), (r.status_code, r.text)
    r = requests.get(s.base + "/v2/token", auth=("reader", s.users["reader"]), verify=ca,
                     timeout=30, params={"service": SERVICE, "scope": "repository:priv/bf:pull"})
    assert r.status_code == 429, (r.status_code, r.text)

    after_samples = samples_of(mport)
    after = metric(after_samples, "dockgate_auth_failures_total")
    assert after - before >= 6, (before, after)
    assert metric(after_samples, "dockgate_auth_failures_total", repository="priv") >= 5, \
        [k for k in after_samples if k[0] == "dockgate_auth_failures_total"]
    s.assert_no_secrets_logged()


# Secrets in logs -------------------------------------------------------------------------------
def test_logs_never_contain_passwords_or_api_keys(auth_setup, client_env, tmp_path):
    """Every credential path once (right and wrong passwords, API keys, tokens, refresh
    tokens, /v2/auth, skopeo), then stdout, stderr and the access log are searched."""
    s = auth_setup(env={"DOCKGATE_LOG": "debug"})
    ca = str(s.gw.pki.ca_crt)
    w = ("writer", s.users["writer"])
    key_entry = requests.get(s.base + "/v2/auth", auth=w, verify=ca, timeout=30).json()
    key = base64.b64decode(key_entry[s.hostport]["auth"]).decode().split(":", 1)[1]
    s.api_keys.append(key)
    tokens = s.token("repository:priv/logs:pull,push", "writer", offline_token="true")
    s.api_keys += [tokens["token"], tokens["refresh_token"]]
    for user, password in [("writer", s.users["writer"]), ("writer", key),
                           ("reader", s.users["reader"] + "-wrong"), ("ghost", s.users["dora"])]:
        requests.get(s.base + "/v2/", auth=(user, password), verify=ca, timeout=30)
        requests.get(s.base + "/v2/priv/logs/tags/list", auth=(user, password), verify=ca,
                     timeout=30)
        requests.post(s.base + "/v2/token", verify=ca, timeout=30, data={
            "grant_type": "password", "username": user, "password": password,
            "service": SERVICE, "scope": "repository:priv/logs:pull"})
    requests.get(s.base + "/v2/priv/logs/tags/list", verify=ca, timeout=30,
                 headers={"Authorization": f"Bearer {tokens['token']}"})
    requests.get(s.base + "/v2/priv/logs/tags/list", verify=ca, timeout=30,
                 headers={"Authorization": f"Bearer {tokens['token']}x"})
    img = images.make_image((500,))
    layout = images.write_oci_layout(tmp_path / "src", {"1": img})
    client_env.skopeo_copy(f"oci:{layout}:1", s.ref("priv", "logs", "1"),
                           "--dest-creds", s.creds("writer"))
    client_env.skopeo_copy(f"oci:{layout}:1", s.ref("priv", "logs", "2"),
                           "--dest-creds", s.creds("reader"), check=False)
    time.sleep(0.5)  # let the last access-log lines land
    lines = access_log_lines(s.access_log)
    assert lines, "the access log is empty"
    s.assert_no_secrets_logged()
