"""A real OpenID provider for the SSO tests: npm `oidc-provider` (installed by
scripts/install-deps.sh into tests/integration/oidc/node_modules), run with Node on
loopback by `oidc/provider.mjs`. Accounts live in a JSON file the provider reads on every
lookup, so a test changes someone's groups by rewriting it.

`Browser` is the cookie-keeping HTTP client that walks the sign-in: it follows redirects
and posts the forms it finds (the provider's login form, the device pages' hidden inputs).
"""
import json
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from .ports import free_port
from .proc import stop_process

OIDC_DIR = Path(__file__).resolve().parent.parent / "oidc"


class Forms(HTMLParser):
    """Every <form>: action, method and the named <input>s inside it (values as rendered).
    Buttons are not fields: a submit sends none (an abort button would say no)."""

    def __init__(self):
        super().__init__()
        self.forms = []
        self.open = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.open = True
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get"),
                               "id": a.get("id", ""), "fields": {}})
        elif tag == "input" and self.open and a.get("name"):
            self.forms[-1]["fields"].setdefault(a["name"], a.get("value", ""))

    def handle_endtag(self, tag):
        if tag == "form":
            self.open = False


def forms_of(html):
    p = Forms()
    p.feed(html)
    return p.forms


class OidcProvider:
    def __init__(self, workdir, accounts, redirect_uris, client_id="dockgate",
                 client_secret="test-client-secret"):
        node = shutil.which("node")
        if not node or not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
            pytest.fail("node or oidc-provider missing: run scripts/install-deps.sh")
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.client_id, self.client_secret = client_id, client_secret
        self.state_path = self.dir / "idp-state.json"
        self.state = {
            "port": self.port,
            "clients": [{
                "client_id": client_id, "client_secret": client_secret,
                "redirect_uris": list(redirect_uris),
                "grant_types": ["authorization_code", "refresh_token",
                                "urn:ietf:params:oauth:grant-type:device_code"],
                "response_types": ["code"],
            }],
            "accounts": accounts,
        }
        self._write()
        self.log = self.dir / "idp.log"
        self.proc = subprocess.Popen([node, str(OIDC_DIR / "provider.mjs"), str(self.state_path)],
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                r = requests.get(self.issuer + "/.well-known/openid-configuration", timeout=2)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        pytest.fail("oidc-provider did not start:\n" + self.log.read_text(errors="replace"))

    def _write(self):
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        tmp.replace(self.state_path)

    def set_groups(self, user, groups):
        self.state["accounts"][user]["groups"] = list(groups)
        self._write()

    def stop(self):
        if self.proc:
            stop_process(self.proc)


class Browser:
    """requests.Session that signs in through forms, like a person would."""

    def __init__(self, ca):
        self.s = requests.Session()
        self.ca = str(ca)
        self.history = []

    def get(self, url, **kw):
        r = self.s.get(url, verify=self.ca, timeout=30, **kw)
        self.history += [h.url for h in r.history] + [r.url]
        return r

    def submit(self, page, form_index=0, **values):
        """Posts form `form_index` of `page` (a Response) with `values` over its fields."""
        forms = forms_of(page.text)
        assert forms, f"no form on {page.url}: {page.text[:500]}"
        f = forms[form_index]
        data = {**f["fields"], **values}
        url = urljoin(page.url, f["action"] or page.url)
        r = self.s.post(url, data=data, verify=self.ca, timeout=30)
        self.history += [h.url for h in r.history] + [r.url]
        return r

    def sign_in(self, start_url, user, password):
        """GET start_url → the provider's login form → back; returns the last response."""
        page = self.get(start_url)
        if "/interaction/" not in page.url:
            return page
        return self.submit(page, login=user, password=password)


def device_approve(verification_uri_complete, user, password):
    """Walks the provider's device pages in a fresh browser: confirm the code, sign in."""
    b = Browser(ca=True)
    b.ca = True
    page = b.get(verification_uri_complete)
    for _ in range(6):
        if "/interaction/" in page.url and "password" in page.text:
            page = b.submit(page, login=user, password=password)
            continue
        forms = forms_of(page.text)
        if not forms:
            return page
        # The user-code form, then the confirm form: hidden xsrf + user_code, posted as is.
        page = b.submit(page)
    return page


def text_of(html, element_id):
    m = re.search(rf'id="{element_id}"[^>]*>(.*?)</', html, re.S)
    return m and m.group(1)
