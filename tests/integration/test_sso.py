"""Single sign-on (issue 14) with real parts.

- OpenID Connect against a real provider: npm `oidc-provider` on loopback (dgtest/oidc.py),
  with accounts, passwords and groups; the browser flow driven by a cookie-keeping HTTP
  client that posts the provider's login form; the device flow `dockgate login` runs.
- GitHub against a stand-in (github.com cannot be reached here) serving GitHub's documented
  OAuth and REST shapes: GET /login/oauth/authorize (redirects back with code and state,
  as after the user approves), POST /login/oauth/access_token (form in, JSON out with
  `Accept: application/json`; errors as 200 with an `error` field; PKCE S256 checked),
  GET /user, /user/orgs, /user/teams (Bearer token). The device flow (POST
  /login/device/code, then the device_code grant at /login/oauth/access_token, answering
  `authorization_pending` until the user enters the code) only for the OAuth app that has it
  enabled, as on GitHub; for the other app /login/device/code is a 404, as on an Enterprise
  host without it.
- Real clients afterwards: docker login with the CLI secret; skopeo and podman with the
  credential helper (docker-credential-dockgate, a link to dockgate) in their auth file;
  skopeo with a workload JWT minted here as the password.
"""
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests

from dgtest import images
from dgtest.gateway import REPO_ROOT, Gateway
from dgtest.oidc import Browser, OidcProvider, device_approve, forms_of, text_of
from dgtest.ops import (access_log_lines, auth_gateway_config, b64url, docker_login,
                        find_secrets, gateway_logs, jwt_es256, new_p256_key, write_htpasswd)
from dgtest.ports import free_port
from dgtest.proc import run, stop_process

SERVICE = "dockgate"
PREFIX = "ssot/"
WORKLOAD_ISSUER = "https://ci.example.test"
WORKLOAD_AUD = "dockgate-test"


# GitHub stand-in --------------------------------------------------------------------------
class GithubStandIn:
    """GitHub's OAuth app endpoints and the REST calls dockgate makes: `octo` signs in
    through the browser app, `hubot` through the device-flow app."""

    DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

    def __init__(self, client_id, client_secret, device_client_id):
        self.client_id, self.client_secret = client_id, client_secret
        self.device_client_id = device_client_id
        self.codes = {}      # code -> (redirect_uri, code_challenge)
        self.devices = {}    # device_code -> {"user_code", "approved"}
        self.polls = 0
        self.tokens = {}     # token -> user
        self.user = {"login": "octo", "id": 583231, "email": "octo@example.test"}
        self.device_user = {"login": "hubot", "id": 480938, "email": "hubot@example.test"}
        self.orgs = [{"login": "acme"}]
        self.teams = [{"slug": "platform", "organization": {"login": "acme"}}]
        stand_in = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _json(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                u = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(u.query).items()}
                if u.path == "/login/oauth/authorize":
                    code = base64.urlsafe_b64encode(os.urandom(15)).decode()
                    stand_in.codes[code] = (q.get("redirect_uri"), q.get("code_challenge"))
                    loc = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]})
                    self.send_response(302)
                    self.send_header("Location", loc)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                auth = self.headers.get("Authorization", "")
                user = stand_in.tokens.get(auth.split(" ", 1)[-1])
                if not user:
                    return self._json(401, {"message": "Bad credentials",
                                            "documentation_url": "https://docs.github.com/rest"})
                if u.path == "/api/v3/user":
                    return self._json(200, user)
                if u.path == "/api/v3/user/orgs":
                    return self._json(200, stand_in.orgs)
                if u.path == "/api/v3/user/teams":
                    return self._json(200, stand_in.teams)
                self._json(404, {"message": "Not Found"})

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                f = {k: v[0] for k, v in parse_qs(self.rfile.read(n).decode()).items()}
                device_app = f.get("client_id") == stand_in.device_client_id
                if self.path == "/login/device/code" and device_app:
                    code = os.urandom(20).hex()
                    user_code = os.urandom(2).hex().upper() + "-" + os.urandom(2).hex().upper()
                    stand_in.devices[code] = {"user_code": user_code, "approved": False}
                    return self._json(200, {"device_code": code, "user_code": user_code,
                                            "verification_uri": stand_in.url + "/login/device",
                                            "expires_in": 900, "interval": 1})
                if self.path != "/login/oauth/access_token":
                    return self._json(404, {"message": "Not Found"})
                if f.get("grant_type") == stand_in.DEVICE_GRANT:
                    stand_in.polls += 1
                    d = stand_in.devices.get(f.get("device_code")) if device_app else None
                    if not d:
                        return self._json(200, {"error": "incorrect_device_code"})
                    if not d["approved"]:
                        return self._json(200, {"error": "authorization_pending"})
                    del stand_in.devices[f["device_code"]]
                    token = "gho_" + base64.urlsafe_b64encode(os.urandom(18)).decode()
                    stand_in.tokens[token] = stand_in.device_user
                    return self._json(200, {"access_token": token, "token_type": "bearer",
                                            "scope": "read:org,read:user,user:email"})
                if (f.get("client_id"), f.get("client_secret")) != (stand_in.client_id,
                                                                   stand_in.client_secret):
                    return self._json(200, {"error": "incorrect_client_credentials"})
                got = stand_in.codes.pop(f.get("code"), None)
                verifier = f.get("code_verifier", "")
                challenge = b64url(hashlib.sha256(verifier.encode()).digest())
                if not got or got[0] != f.get("redirect_uri") or got[1] != challenge:
                    return self._json(200, {"error": "bad_verification_code",
                                            "error_description": "The code passed is "
                                            "incorrect or expired."})
                token = "gho_" + base64.urlsafe_b64encode(os.urandom(18)).decode()
                stand_in.tokens[token] = stand_in.user
                self._json(200, {"access_token": token, "token_type": "bearer",
                                 "scope": "read:org,read:user,user:email"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def approve(self, user_code):
        """The user enters the code on GitHub's device page and authorises the app."""
        for d in self.devices.values():
            if d["user_code"] == user_code:
                d["approved"] = True
                return
        raise AssertionError(f"no device code {user_code}")

    def stop(self):
        self.server.shutdown()


# Setup ------------------------------------------------------------------------------------
class Sso:
    def __init__(self, gw, idp, gh, port, workload_key, access_log):
        self.gw, self.idp, self.gh, self.port = gw, idp, gh, port
        self.workload_key = workload_key
        self.access_log = access_log
        self.secrets = [idp.client_secret, gh.client_secret]

    @property
    def hostport(self):
        return f"127.0.0.1:{self.port}"

    @property
    def base(self):
        return f"https://{self.hostport}"

    @property
    def ca(self):
        return str(self.gw.pki.ca_crt)

    def browser(self):
        return Browser(self.ca)

    def users_file(self):
        """The runtime-state store's `sso-users` area (files: state_dir/areas/)."""
        p = self.gw.dir / "state" / "areas" / "sso-users.json"
        raw = json.loads(p.read_text()) if p.exists() else {}
        return {k: json.loads(v["value"]) for k, v in raw.items()}

    def token(self, auth=None, scope=None, **extra):
        params = {"service": SERVICE, **({"scope": scope} if scope else {}), **extra}
        return requests.get(self.base + "/v2/token", params=params, auth=auth,
                            verify=self.ca, timeout=30)

    def sign_in(self, user, password, provider="corp"):
        b = self.browser()
        page = b.sign_in(self.base + f"/login/{provider}", user, password)
        return b, page


def jwk_of(key, kid):
    n = key.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": b64url(n.x.to_bytes(32, "big")), "y": b64url(n.y.to_bytes(32, "big"))}


@pytest.fixture(scope="module")
def sso(dockgate_binary, pki, registry, tmp_path_factory):
    work = tmp_path_factory.mktemp("sso")
    port = free_port()
    accounts = {
        "ann": {"password": "ann-pw-1", "email": "ann@example.test", "groups": ["eng"]},
        "ben": {"password": "ben-pw-1", "email": "ben@example.test", "groups": ["staff"]},
        "cid": {"password": "cid-pw-1", "email": "cid@example.test", "groups": ["eng"]},
        "local": {"password": "x", "email": "", "groups": ["eng"]},
    }
    idp = OidcProvider(work / "idp", accounts,
                       [f"https://127.0.0.1:{port}/login/corp/callback"],
                       client_secret="idp-secret-" + os.urandom(6).hex())
    gh = GithubStandIn("Iv1.standin", "gh-secret-" + os.urandom(6).hex(), "Iv1.device")
    wkey = new_p256_key()
    auth = {
        "sso": {
            "corp": {"kind": "oidc", "issuer": idp.issuer, "client_id": idp.client_id,
                     "client_secret_file": "corp.secret", "display_name": "Corp IdP",
                     "scopes": ["openid", "profile", "email", "groups"],
                     "groups": {"eng": "devs", "staff": "readers"},
                     "recheck_seconds": 1, "max_key_age_seconds": 3600},
            "gh": {"kind": "github", "base_url": gh.url, "api_url": gh.url + "/api/v3",
                   "client_id": gh.client_id, "client_secret_file": "gh.secret",
                   "display_name": "GitHub Enterprise",
                   "groups": {"acme/platform": "devs"}},
            "ghd": {"kind": "github", "base_url": gh.url, "api_url": gh.url + "/api/v3",
                    "client_id": gh.device_client_id, "client_secret_file": "gh.secret",
                    "display_name": "GitHub (device flow)",
                    "groups": {"acme/platform": "devs"}},
        },
        "workload": {
            "ci": {"issuer": WORKLOAD_ISSUER, "jwks_file": "ci-jwks.json",
                   "audience": WORKLOAD_AUD, "token_ttl_seconds": 120,
                   "rules": [{"claims": {"repository": "acme/*", "ref": "refs/heads/main"},
                              "user": "ci-{repository}", "groups": ["devs"]}]},
        },
    }
    cfg = auth_gateway_config(
        registry.url,
        {"apps": {"name_prefix": PREFIX, "read": ["readers", "devs"], "write": ["devs"]}},
        auth=auth, listeners=[{"method": "path", "address": f"127.0.0.1:{port}"}],
        log={"format": "json", "access_log": "access.log"})
    gw = Gateway(cfg, work / "gw", pki, binary=dockgate_binary)
    (gw.dir / "corp.secret").write_text(idp.client_secret + "\n")
    (gw.dir / "gh.secret").write_text(gh.client_secret + "\n")
    (gw.dir / "ci-jwks.json").write_text(json.dumps({"keys": [jwk_of(wkey, "ci-1")]}))
    write_htpasswd(gw.dir / "users.htpasswd", {"local": "local-pw-" + os.urandom(4).hex()})
    gw.start()
    s = Sso(gw, idp, gh, port, wkey, gw.dir / "access.log")
    yield s
    gw.stop(timeout=5)
    idp.stop()
    gh.stop()


def key_from_page(html):
    cmd = text_of(html, "docker-login")
    m = re.search(r"echo &#39;(dgk_[A-Za-z0-9_-]+)&#39;", cmd or "")
    assert m, html[:3000]
    return m.group(1)


def push_ref(s, image, tag="1"):
    return f"docker://{s.hostport}/apps/{image}:{tag}"


def layout(tmp_path, name="img"):
    d = tmp_path / name
    images.write_oci_layout(d, {"1": images.make_image((900,))})
    return f"oci:{d}:1"


# OIDC browser flow --------------------------------------------------------------------------
def test_browser_sign_in_creates_user_with_groups_and_cli_secret(sso):
    before = sso.users_file()
    assert "ann" not in before
    listing = sso.browser().get(sso.base + "/login")
    assert listing.status_code == 200 and "Corp IdP" in listing.text
    b, page = sso.sign_in("ann", "ann-pw-1")
    assert page.status_code == 200, page.text[:2000]
    assert page.url == sso.base + "/user", b.history
    assert text_of(page.text, "user") == "ann"
    assert text_of(page.text, "groups") == "devs"
    assert "config-json" in page.text and "&quot;auths&quot;" in page.text
    key = key_from_page(page.text)
    sso.secrets.append(key)
    # The session cookie: Secure, HttpOnly, SameSite=Lax, short-lived.
    cb = [h for h in b.s.cookies if h.name == "dockgate_session"]
    assert cb and cb[0].secure and cb[0].has_nonstandard_attr("HttpOnly")
    assert 0 < cb[0].expires - time.time() <= 900
    users = sso.users_file()
    assert users["ann"]["provider"] == "corp" and users["ann"]["groups"] == ["devs"]
    # The CLI secret is a password: a token with push on the group's repository.
    t = sso.token(auth=("ann", key), scope="repository:apps/x:pull,push")
    assert t.status_code == 200, t.text
    claims = json.loads(base64.urlsafe_b64decode(t.json()["token"].split(".")[1] + "=="))
    assert sorted(claims["access"][0]["actions"]) == ["pull", "push"]


def test_callback_refusals_create_nothing(sso):
    before = sso.users_file()
    # A wrong password at the provider: no way back to dockgate, no user.
    b = sso.browser()
    page = b.get(sso.base + "/login/corp")
    assert "/interaction/" in page.url
    wrong = b.submit(page, login="ben", password="nope")
    assert wrong.status_code == 403
    # State mismatch: a callback that does not belong to this browser's sign-in.
    b = sso.browser()
    b.s.get(sso.base + "/login/corp", verify=sso.ca, allow_redirects=False, timeout=30)
    r = b.get(sso.base + "/login/corp/callback?code=abc&state=forged")
    assert r.status_code == 400 and "state mismatch" in r.text
    # No sign-in in progress at all.
    r = sso.browser().get(sso.base + "/login/corp/callback?code=abc&state=x")
    assert r.status_code == 400 and "no sign-in in progress" in r.text
    # A complete sign-in still works, and only it made a user.
    page = sso.browser().sign_in(sso.base + "/login/corp", "ben", "ben-pw-1")
    assert text_of(page.text, "user") == "ben"
    after = sso.users_file()
    assert set(after) - set(before) == {"ben"}, after


def test_replayed_code_is_refused(sso):
    """The code from one finished sign-in, replayed with its own (captured) login cookie."""
    b = sso.browser()
    start = b.s.get(sso.base + "/login/corp", verify=sso.ca, allow_redirects=False, timeout=30)
    sealed = start.cookies.get("dockgate_login")
    assert sealed and start.status_code == 303
    setc = start.headers["Set-Cookie"]
    for attr in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/login"):
        assert attr in setc, setc
    page = b.get(start.headers["Location"])
    page = b.submit(page, login="cid", password="cid-pw-1")
    assert text_of(page.text, "user") == "cid", page.text[:2000]
    callback = next(u for u in b.history if "/callback?" in u)
    again = requests.get(callback, verify=sso.ca, timeout=30, allow_redirects=False,
                         cookies={"dockgate_login": sealed})
    assert again.status_code == 400 and "already completed" in again.text, again.text


def test_revoke_from_the_page_ends_the_old_key(sso):
    b, page = sso.sign_in("ann", "ann-pw-1")
    old = key_from_page(page.text)
    assert sso.token(auth=("ann", old)).status_code == 200
    forms = forms_of(page.text)
    revoke = next(i for i, f in enumerate(forms) if "revoke" in f["action"])
    time.sleep(0.02)
    page = b.submit(page, form_index=revoke)
    assert page.status_code == 200 and page.url == sso.base + "/user"
    new = key_from_page(page.text)
    sso.secrets.append(new)
    assert new != old
    assert sso.token(auth=("ann", old)).status_code == 401
    assert sso.token(auth=("ann", new)).status_code == 200
    # A forged form (no CSRF token) changes nothing.
    r = b.s.post(sso.base + "/user/revoke", data={}, verify=sso.ca, timeout=30)
    assert r.status_code == 403
    assert sso.token(auth=("ann", new)).status_code == 200


def test_docker_login_with_the_cli_secret(sso, tmp_path):
    b, page = sso.sign_in("ann", "ann-pw-1")
    key = key_from_page(page.text)
    sso.secrets.append(key)
    out = docker_login(tmp_path / "docker", sso.hostport, "ann", key)
    assert out.returncode == 0 and "Login Succeeded" in out.stdout + out.stderr, out.stderr


# Device flow, credential helper, membership re-check ----------------------------------------
def helper_bin(tmp_path, binary):
    """docker-credential-dockgate: a link to dockgate, on the clients' PATH."""
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    (d / "docker-credential-dockgate").symlink_to(Path(binary).resolve())
    return d


def dockgate_login(sso, binary, env, user, password):
    p = subprocess.Popen([str(binary), "login", sso.hostport, "--provider", "corp", "--ca", sso.ca],
                         env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = None
    lines = []
    for line in p.stderr:
        lines.append(line)
        m = re.search(r"\(or open (\S+)\)", line)
        if m:
            url = m.group(1)
            break
    assert url, "".join(lines)
    page = device_approve(url, user, password)
    assert page.status_code == 200, page.text[:1000]
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, "".join(lines) + err
    return "".join(lines) + err


def podman(client_env, *args, check=True):
    short = Path(client_env.dir) / "pm"
    return run(["podman", "--root", f"{short}/root", "--runroot", f"/tmp/pm-{os.getpid()}-run",
                "--tmpdir", f"{short}/tmp", "--storage-driver", "vfs",
                "--cgroup-manager", "cgroupfs", "--events-backend", "file", *args],
               env=client_env.env, check=check, timeout=180)


def test_device_flow_helper_and_group_removal(sso, dockgate_binary, client_env, tmp_path):
    env = dict(client_env.env)
    env["PATH"] = f"{helper_bin(tmp_path, dockgate_binary)}:{env['PATH']}"
    env["DOCKGATE_CREDENTIALS"] = str(tmp_path / "creds.json")
    client_env.env = env
    sso.idp.set_groups("cid", ["eng"])
    dockgate_login(sso, dockgate_binary, env, "cid", "cid-pw-1")
    stored = json.loads((tmp_path / "creds.json").read_text())[sso.hostport]
    assert stored["Username"] == "<token>" and stored["Secret"]
    sso.secrets.append(stored["Secret"])
    # The helper speaks the protocol.
    got = run([tmp_path / "bin" / "docker-credential-dockgate", "get"], env=env,
              input=sso.hostport.encode())
    assert json.loads(got.stdout)["Username"] == "<token>"
    missing = run([tmp_path / "bin" / "docker-credential-dockgate", "get"], env=env,
                  input=b"elsewhere:1", check=False)
    assert missing.returncode == 1
    assert missing.stdout.strip() == "credentials not found in native keychain"
    # skopeo and podman use it through their auth file: no password anywhere.
    client_env.auth_file.write_text(json.dumps({"credHelpers": {sso.hostport: "dockgate"}}))
    src = layout(tmp_path)
    client_env.skopeo_copy(src, push_ref(sso, "dev"))
    podman(client_env, "pull", "--cert-dir", str(client_env.cert_dir),
           f"{sso.hostport}/apps/dev:1")
    podman(client_env, "push", "--cert-dir", str(client_env.cert_dir),
           f"{sso.hostport}/apps/dev:1", f"{sso.hostport}/apps/dev:podman")
    # cid leaves eng at the provider: at the next refresh (recheck every 1 s) push is gone,
    # pull stays (staff → readers).
    sso.idp.set_groups("cid", ["staff"])
    time.sleep(1.5)
    denied = client_env.skopeo_copy(src, push_ref(sso, "dev", "2"), check=False)
    assert denied.returncode != 0, denied.stdout
    assert re.search(r"denied|unauthorized|forbidden", denied.stderr, re.I), denied.stderr
    client_env.skopeo("inspect", "--raw", "--cert-dir", client_env.cert_dir,
                      push_ref(sso, "dev"))
    assert sso.users_file()["cid"]["groups"] == ["readers"]
    # Removed from every group: not even pull.
    sso.idp.set_groups("cid", [])
    time.sleep(1.5)
    gone = client_env.skopeo("inspect", "--raw", "--cert-dir", client_env.cert_dir,
                             push_ref(sso, "dev"), check=False)
    assert gone.returncode != 0


def start_login(sso, binary, tmp_path, provider):
    """`dockgate login` with its own credential store, as a user would run it."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "DOCKGATE_CREDENTIALS": str(tmp_path / "creds.json")}
    return subprocess.Popen([str(binary), "login", sso.hostport, "--provider", provider,
                             "--ca", sso.ca], env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def stored_refresh_claims(sso, tmp_path):
    """The refresh token `dockgate login` stored, spent at /v2/token for push+pull."""
    stored = json.loads((tmp_path / "creds.json").read_text())[sso.hostport]
    assert stored["Username"] == "<token>" and stored["Secret"]
    sso.secrets.append(stored["Secret"])
    r = requests.post(sso.base + "/v2/token", verify=sso.ca, timeout=30,
                      data={"grant_type": "refresh_token", "service": SERVICE,
                            "refresh_token": stored["Secret"], "client_id": "t",
                            "scope": "repository:apps/x:push,pull"})
    assert r.status_code == 200, r.text
    return json.loads(base64.urlsafe_b64decode(r.json()["token"].split(".")[1] + "=="))


def test_dockgate_login_github_device_flow(sso, dockgate_binary, tmp_path):
    """GitHub's device flow: `dockgate login` shows the code, polls through the gateway
    (`authorization_pending`) until the user enters it, then stores a refresh token that
    the token service honours with the user's team roles."""
    p = start_login(sso, dockgate_binary, tmp_path, "ghd")
    lines, code = [], None
    for line in p.stderr:
        lines.append(line)
        m = re.search(r"open (\S+) and enter the code (\S+)", line)
        if m:
            assert m.group(1) == sso.gh.url + "/login/device", line
            code = m.group(2)
            break
    assert code, "".join(lines)
    polls = sso.gh.polls
    time.sleep(2.5)
    assert sso.gh.polls > polls, "the CLI polls while the code is not entered"
    assert p.poll() is None, "still waiting for the user"
    sso.gh.approve(code)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, "".join(lines) + err
    claims = stored_refresh_claims(sso, tmp_path)
    assert sso.users_file()["hubot"]["provider"] == "ghd"
    assert claims["sub"] == "hubot" and sorted(claims["access"][0]["actions"]) == ["pull", "push"]
    # The provider handed the token out once: the device code is spent.
    assert not sso.gh.devices


def test_dockgate_login_loopback_where_no_device_flow(sso, dockgate_binary, tmp_path):
    """The GitHub stand-in serves no device flow: `dockgate login` falls back to a browser
    sign-in that ends on its listener on 127.0.0.1."""
    p = start_login(sso, dockgate_binary, tmp_path, "gh")
    lines, url = [], None
    for line in p.stderr:
        lines.append(line)
        if "/login/gh?cli_port=" in line:
            url = line.strip()
            break
    assert url, "".join(lines)
    page = sso.browser().get(url)
    assert page.status_code == 200 and "Signed in" in page.text, page.text
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, "".join(lines) + err
    claims = stored_refresh_claims(sso, tmp_path)
    assert claims["sub"] == "octo" and sorted(claims["access"][0]["actions"]) == ["pull", "push"]


# Workload tokens ---------------------------------------------------------------------------
def workload_jwt(key, kid="ci-1", **over):
    now = int(time.time())
    claims = {"iss": WORKLOAD_ISSUER, "aud": WORKLOAD_AUD, "sub": "repo:acme/app:ref:main",
              "repository": "acme/app", "ref": "refs/heads/main", "iat": now,
              "exp": now + 300, **over}
    return jwt_es256({"alg": "ES256", "typ": "JWT", "kid": kid}, claims, key)


def test_workload_tokens(sso, client_env, tmp_path):
    good = workload_jwt(sso.workload_key)
    sso.secrets.append(good)
    r = sso.token(auth=("ci", good), scope="repository:apps/ci:pull,push", offline_token="true")
    assert r.status_code == 200, r.text
    body = r.json()
    assert "refresh_token" not in body and body["expires_in"] <= 120
    claims = json.loads(base64.urlsafe_b64decode(body["token"].split(".")[1] + "=="))
    assert claims["sub"] == "ci-acme-app"
    assert sorted(claims["access"][0]["actions"]) == ["pull", "push"]
    # A real client with the JWT as its password.
    client_env.skopeo_copy(layout(tmp_path), push_ref(sso, "ci"),
                           "--dest-creds", f"ci:{good}")
    # Refused: expired, wrong audience, signed by another key, unknown issuer, no rule.
    other = new_p256_key()
    bad = {
        "expired": workload_jwt(sso.workload_key, exp=int(time.time()) - 600,
                                iat=int(time.time()) - 900),
        "audience": workload_jwt(sso.workload_key, aud="someone-else"),
        "foreign key": workload_jwt(other),
        "unknown issuer": workload_jwt(sso.workload_key, iss="https://evil.example"),
        "no rule": workload_jwt(sso.workload_key, repository="evil/app"),
    }
    for why, tok in bad.items():
        r = sso.token(auth=("ci", tok), scope="repository:apps/ci:pull")
        assert r.status_code == 401, (why, r.text)
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED", why
    # The access log names the workload on the token request.
    time.sleep(0.3)
    lines = [l for l in access_log_lines(sso.access_log) if l.get("workload") == "ci"]
    assert lines and lines[0]["user"] == "ci-acme-app", lines


# GitHub kind -------------------------------------------------------------------------------
def test_github_kind_against_stand_in(sso):
    b, page = sso.sign_in("-", "-", provider="gh")
    assert page.status_code == 200, page.text[:2000]
    assert text_of(page.text, "user") == "octo"
    assert text_of(page.text, "groups") == "devs"
    assert sso.users_file()["octo"]["provider"] == "gh"
    sso.secrets.append(key_from_page(page.text))


# The page in a real browser ----------------------------------------------------------------
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--ignore-certificate-errors", "--virtual-time-budget=20000"]


def chromium(args, profile, timeout=120):
    exe = shutil.which("chromium")
    if not exe:
        pytest.fail("chromium is not installed (scripts/install-deps.sh installs it)")
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_sign_in_page_in_headless_chromium(sso, tmp_path):
    """Chromium follows the whole flow (the provider's login form submits itself), lands on
    the user page with the session cookie, and renders it; the screenshot is kept."""
    sso.idp.state["autologin"] = {"login": "ben", "password": "ben-pw-1"}
    sso.idp._write()
    try:
        profile = tmp_path / "chromium"
        p = chromium(["--dump-dom", sso.base + "/login/corp"], profile)
    finally:
        del sso.idp.state["autologin"]
        sso.idp._write()
    dom = p.stdout
    assert 'Signed in as <span id="user">ben</span>' in dom, (dom[:2000], p.stderr[-2000:])
    assert '<dd id="groups">readers</dd>' in dom
    shot = tmp_path / "sso-user-page.png"
    p = chromium([f"--screenshot={shot}", "--window-size=1100,1300", sso.base + "/user"],
                 profile)
    assert shot.is_file() and shot.stat().st_size > 10_000, p.stdout + p.stderr
    keep = REPO_ROOT / "target" / "test-artifacts"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / "sso-user-page.png")
    print(f"sign-in page screenshot: {keep / 'sso-user-page.png'}")


# Operations --------------------------------------------------------------------------------
def test_check_reports_discovery_failure(sso, dockgate_binary, tmp_path):
    text = sso.gw.config_path.read_text().replace(sso.idp.issuer,
                                                  f"http://127.0.0.1:{free_port()}")
    cfg = sso.gw.dir / "broken-idp.toml"
    cfg.write_text(text)
    out = run([dockgate_binary, "check", "--config", cfg], check=False)
    assert "auth.sso.corp.issuer: discovery failed" in out.stderr, out.stderr
    ok = run([dockgate_binary, "check", "--config", sso.gw.config_path], check=False)
    assert ok.returncode == 0 and "discovery failed" not in ok.stderr, ok.stderr


def test_no_secret_in_logs(sso):
    text = gateway_logs(sso.gw) + sso.access_log.read_text(errors="replace")
    assert "signed in" in text
    leaked = find_secrets(text, sso.secrets)
    assert not leaked, f"secrets in dockgate's logs: {leaked}"
    assert "code=" not in text and "refresh_token" not in text
