"""Blob reads (Range, HEAD) and streamed uploads with curl over HTTP/2 and HTTP/1.1."""
import os
import re
from urllib.parse import urljoin, urlsplit

import pytest

from dgtest.images import file_digest, random_file, sha256_digest
from dgtest.standard import METHODS, PREFIX

KEY = "docker-local"


@pytest.mark.parametrize("method", METHODS)
def test_blob_range_get(gateway, backend, unique, method):
    route = gateway.route(method, KEY)
    name = unique("range")
    data = os.urandom(1 << 20)
    digest = backend.push_blob(PREFIX[KEY] + name, data)
    api = gateway.api(route)
    path = f"/v2/{route.name(name)}/blobs/{digest}"

    r = api.get(path, headers={"Range": "bytes=1000-1999"})
    assert r.status_code == 206, (r.status_code, r.headers)
    assert r.content == data[1000:2000]
    assert r.headers.get("Content-Range") == f"bytes 1000-1999/{len(data)}"

    r = api.get(path, headers={"Range": f"bytes={len(data) - 4096}-"})
    assert r.status_code == 206
    assert r.content == data[-4096:]

    r = api.get(path)
    assert r.status_code == 200 and sha256_digest(r.content) == digest

    r = api.head(path)
    assert r.status_code == 200
    assert r.headers.get("Docker-Content-Digest") == digest
    assert int(r.headers.get("Content-Length", -1)) == len(data)


def _headers(raw):
    """Header dict (lower-case names) of the last response in a curl -D dump."""
    blocks = [b for b in re.split(r"\r?\n\r?\n", raw.strip()) if b.strip()]
    lines = blocks[-1].splitlines()
    status = lines[0]
    out = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip().lower()] = v.strip()
    return status, out


def curl_call(client_env, tmp_path, http_flag, method, url, *extra, stdin=None):
    hdr = tmp_path / "headers.txt"
    (tmp_path / "body.out").unlink(missing_ok=True)
    out = client_env.curl(http_flag, "-X", method, "-D", hdr, "-o", tmp_path / "body.out",
                          "-w", "%{http_code} %{http_version}", *extra, url, stdin=stdin)
    code, version = out.stdout.split()
    status, headers = _headers(hdr.read_text())
    body = (tmp_path / "body.out").read_bytes() if (tmp_path / "body.out").exists() else b""
    return int(code), version, headers, body


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("proto", ["h2", "http1.1"])
def test_streamed_chunked_upload_with_curl(gateway, backend, client_env, tmp_path, unique, proto,
                                           method):
    """POST, then PATCH with a body of unknown length piped from stdin (HTTP/1.1:
    Transfer-Encoding: chunked; h2: DATA frames without content-length), then PUT ?digest=.
    Done twice on the same gateway so reused upstream connections are exercised."""
    flag = "--http2" if proto == "h2" else "--http1.1"
    want_version = "2" if proto == "h2" else "1.1"
    key = "team-a"  # a prefixed key: Location must come back without the backend prefix
    route = gateway.route(method, key)
    for i in range(2):
        name = unique(f"up{i}")
        src = tmp_path / f"data{i}.bin"
        digest = random_file(src, 3 * 1024 * 1024 + 12345 * (i + 1))
        size = src.stat().st_size

        base = f"{route.base}/v2/{route.name(name)}/blobs/uploads/"
        code, version, h, body = curl_call(client_env, tmp_path, flag, "POST", base,
                                           "-H", "Content-Length: 0")
        assert (code, version) == (202, want_version), (code, version, h, body)
        loc = h.get("location")
        assert loc, h
        parts = urlsplit(loc)
        if parts.scheme:
            assert parts.scheme == "https" and parts.netloc == route.hostport, loc
        assert parts.path.startswith(f"/v2/{route.name(name)}/blobs/uploads/"), loc
        loc = urljoin(base, loc)

        extra = ["-T", "-", "-H", "Content-Type: application/octet-stream"]
        if proto == "http1.1":
            # curl sends this itself for -T - over HTTP/1.1; say it explicitly anyway.
            # (Over h2 the header is not allowed, and curl 7.88 hangs if given it.)
            extra += ["-H", "Transfer-Encoding: chunked"]
        with open(src, "rb") as stdin:
            code, version, h, body = curl_call(client_env, tmp_path, flag, "PATCH", loc, *extra,
                                               stdin=stdin)
        assert (code, version) == (202, want_version), (code, version, h, body)
        assert h.get("range") == f"0-{size - 1}", h
        loc = urljoin(loc, h["location"])
        assert urlsplit(loc).path.startswith(f"/v2/{route.name(name)}/blobs/uploads/"), loc

        sep = "&" if "?" in loc else "?"
        code, version, h, body = curl_call(client_env, tmp_path, flag, "PUT",
                                           f"{loc}{sep}digest={digest}", "-H", "Content-Length: 0")
        assert code == 201, (code, h, body)
        assert h.get("docker-content-digest") == digest, h

        got = tmp_path / f"got{i}.bin"
        out = client_env.curl(flag, "-o", got, "-w", "%{http_code}",
                              f"{route.base}/v2/{route.name(name)}/blobs/{digest}")
        assert out.stdout == "200"
        assert file_digest(got) == digest
        direct = backend.blob(PREFIX[key] + name, digest)
        assert direct.status_code == 200 and sha256_digest(direct.content) == digest

    # The gateway still answers ordinary requests correctly afterwards.
    r = gateway.api().get("/v2/")
    assert r.status_code == 200 and r.json() == {}


@pytest.mark.parametrize("method", METHODS)
def test_upload_status_and_cancel(gateway, backend, unique, method):
    route = gateway.route(method, "team-a")
    api = gateway.api(route)
    name = unique("status")
    r = api.start_upload(route.name(name))
    assert r.status_code == 202
    loc = api._location(r)
    part = os.urandom(10_000)
    r = api.request("PATCH", loc, data=part, headers={"Content-Type": "application/octet-stream",
                                                     "Content-Range": f"0-{len(part) - 1}"})
    assert r.status_code == 202, (r.status_code, r.text)
    assert r.headers.get("Range") == f"0-{len(part) - 1}"
    loc = api._location(r)
    st = api.get(loc)
    assert st.status_code == 204, (st.status_code, st.text)
    assert st.headers.get("Range") == f"0-{len(part) - 1}"
    assert urlsplit(urljoin(loc, st.headers["Location"])).path.startswith(
        f"/v2/{route.name(name)}/blobs/uploads/")
    d = api.request("DELETE", loc)
    assert d.status_code == 204, (d.status_code, d.text)
    gone = api.get(loc)
    assert gone.status_code == 404
    assert "BLOB_UPLOAD_UNKNOWN" in [e.get("code") for e in gone.json()["errors"]]


def test_concurrent_reads_through_pooled_connections(gateway, backend, unique):
    """Many parallel GET/HEAD/Range requests over several keys: every answer is the right one."""
    from concurrent.futures import ThreadPoolExecutor

    blobs = []
    for key in ("docker-local", "team-a", "team-b"):
        for _ in range(3):
            name = unique("par")
            data = os.urandom(200_000 + len(blobs) * 777)
            blobs.append((key, name, data, backend.push_blob(PREFIX[key] + name, data)))

    def work(i):
        key, name, data, digest = blobs[i % len(blobs)]
        method = METHODS[i % 3] if key != "team-b" else ("path", "subdomain")[i % 2]
        route = gateway.route(method, key)
        api = gateway.api(route)
        path = f"/v2/{route.name(name)}/blobs/{digest}"
        kind = i % 3
        if kind == 0:
            r = api.get(path)
            return r.status_code == 200 and sha256_digest(r.content) == digest
        if kind == 1:
            start = (i * 997) % (len(data) - 100)
            r = api.get(path, headers={"Range": f"bytes={start}-{start + 99}"})
            return r.status_code == 206 and r.content == data[start:start + 100]
        r = api.head(path)
        return r.status_code == 200 and r.headers.get("Docker-Content-Digest") == digest

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(work, range(240)))
    assert all(results), f"{results.count(False)} of {len(results)} answers were wrong"
