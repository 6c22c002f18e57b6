"""Small registry API clients: a requests-based /v2 client and a raw HTTP/1.1 request.

requests/urllib3 normalise paths ("..", "//"), so tests that must send an exact path
use raw_request(), which writes the request line as given.
"""
import http.client
import json
import re
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests

from .images import ACCEPT_ALL, sha256_digest

LINK_RE = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


def next_link(resp):
    link = resp.headers.get("Link")
    if not link:
        return None
    m = LINK_RE.search(link)
    return m.group(1) if m else None


def error_codes(resp_or_body):
    """The list of `code`s in a registry error body ([] if the body is not one)."""
    body = resp_or_body
    if hasattr(resp_or_body, "content"):
        body = resp_or_body.content
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except ValueError:
            return []
    try:
        return [e.get("code") for e in body.get("errors", [])]
    except AttributeError:
        return []


def error_messages(resp_or_body):
    body = resp_or_body.content if hasattr(resp_or_body, "content") else resp_or_body
    try:
        body = json.loads(body)
        return [str(e.get("message", "")) for e in body.get("errors", [])]
    except (ValueError, AttributeError):
        return []


class V2:
    """A /v2 API client for one registry endpoint (the backend or a dockgate listener).

    `name` arguments are repository names as this endpoint sees them, e.g.
    "docker-local/app" on a path listener, "app" on a subdomain/port listener or the backend.
    """

    def __init__(self, base_url, verify=True, auth=None, timeout=60):
        self.base = base_url.rstrip("/")
        self.s = requests.Session()
        self.s.verify = verify
        self.s.trust_env = False  # no proxies, no REQUESTS_CA_BUNDLE surprises
        self.s.auth = auth
        self.timeout = timeout
        self.locations = []  # every upload Location we were given (for assertions)

    def url(self, path):
        return path if path.startswith(("http://", "https://")) else self.base + path

    def request(self, method, path, **kw):
        kw.setdefault("timeout", self.timeout)
        kw.setdefault("allow_redirects", False)
        return self.s.request(method, self.url(path), **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def head(self, path, **kw):
        return self.request("HEAD", path, **kw)

    def _location(self, resp):
        loc = resp.headers.get("Location")
        assert loc, f"{resp.request.method} {resp.url}: no Location header ({resp.status_code})"
        self.locations.append(loc)
        return urljoin(resp.url, loc)

    # uploads -----------------------------------------------------------------------------
    def start_upload(self, name, params=None):
        r = self.request("POST", f"/v2/{name}/blobs/uploads/", params=params)
        return r

    def push_blob(self, name, data):
        """POST + monolithic PUT ?digest=. Returns the digest."""
        digest = sha256_digest(data)
        r = self.start_upload(name)
        assert r.status_code == 202, f"POST upload {name}: {r.status_code} {r.text}"
        loc = self._location(r)
        sep = "&" if "?" in loc else "?"
        r = self.request("PUT", f"{loc}{sep}digest={digest}", data=data,
                         headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 201, f"PUT blob {name}: {r.status_code} {r.text}"
        return digest

    def push_manifest(self, name, ref, body, media_type):
        r = self.request("PUT", f"/v2/{name}/manifests/{ref}", data=body,
                         headers={"Content-Type": media_type})
        assert r.status_code == 201, f"PUT manifest {name}:{ref}: {r.status_code} {r.text}"
        return r

    def push_image(self, name, tag, image):
        for blob in image.blobs:
            self.push_blob(name, blob.data)
        self.push_manifest(name, tag, image.manifest, image.media_type)
        return image.digest

    # reads -------------------------------------------------------------------------------
    def manifest(self, name, ref, accept=ACCEPT_ALL, method="GET"):
        return self.request(method, f"/v2/{name}/manifests/{ref}", headers={"Accept": accept})

    def manifest_digest(self, name, ref, accept=ACCEPT_ALL):
        """sha256 of the manifest bytes served, after checking Docker-Content-Digest agrees."""
        r = self.manifest(name, ref, accept)
        assert r.status_code == 200, f"GET manifest {self.base} {name}:{ref}: {r.status_code} {r.text}"
        digest = sha256_digest(r.content)
        header = r.headers.get("Docker-Content-Digest")
        assert header in (None, digest), f"Docker-Content-Digest {header} != body {digest}"
        return digest

    def blob(self, name, digest, **kw):
        return self.get(f"/v2/{name}/blobs/{digest}", **kw)

    def tags(self, name):
        return self.get(f"/v2/{name}/tags/list")

    def catalog_pages(self, n=None, max_pages=50):
        """Follow Link rel=next from /v2/_catalog. Returns [(response, repositories)]."""
        path = "/v2/_catalog" + (f"?n={n}" if n else "")
        pages = []
        url = self.url(path)
        for _ in range(max_pages):
            r = self.s.get(url, timeout=self.timeout, allow_redirects=False)
            assert r.status_code == 200, f"GET {url}: {r.status_code} {r.text}"
            pages.append((r, r.json().get("repositories", [])))
            nxt = next_link(r)
            if not nxt:
                return pages
            url = urljoin(url, nxt)
        raise AssertionError(f"catalog pagination did not end after {max_pages} pages")


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def content(self):
        return self.body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to `connect_ip` while using `host` for SNI, certificate checks and Host."""

    def __init__(self, host, port, connect_ip, context, timeout):
        super().__init__(host, port, context=context, timeout=timeout)
        self._connect_ip = connect_ip

    def connect(self):
        sock = socket.create_connection((self._connect_ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def tls_context(ca_file):
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def raw_request(url, method="GET", headers=None, body=None, ca_file=None,
                connect_ip="127.0.0.1", timeout=30):
    """Send exactly `url`'s path (no normalisation) over HTTP/1.1, TLS verified with ca_file."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port
    path = url[url.index(parts.netloc) + len(parts.netloc):] or "/"
    if parts.scheme == "https":
        conn = _PinnedHTTPSConnection(host, port or 443, connect_ip, tls_context(ca_file), timeout)
    else:
        conn = http.client.HTTPConnection(connect_ip, port or 80, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        hdrs = {"Host": parts.netloc}
        hdrs.update(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Length", str(len(body)))
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return RawResponse(resp.status, resp.reason, resp.headers, data)
    finally:
        conn.close()
