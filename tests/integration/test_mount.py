"""Cross-repository blob mounts: within one key -> 201 (mounted); across keys -> the
mount is dropped and a normal upload starts (202)."""
import os
from urllib.parse import urlsplit

import pytest

from dgtest.images import sha256_digest
from dgtest.standard import PREFIX


def assert_client_facing(location, gateway_route, expected_path_prefix):
    parts = urlsplit(location)
    if parts.scheme:
        assert parts.scheme == "https" and parts.netloc == gateway_route.hostport, location
    assert parts.path.startswith(expected_path_prefix), (location, expected_path_prefix)


@pytest.mark.parametrize("key", ["docker-local", "team-a"])
def test_mount_within_one_key_path_listener(gateway, backend, unique, key):
    route = gateway.route("path", key)
    api = gateway.api(route)
    src, dst = unique("src"), unique("dst")
    data = os.urandom(20_000)
    digest = api.push_blob(route.name(src), data)
    assert backend.head(f"/v2/{PREFIX[key]}{src}/blobs/{digest}").status_code == 200

    r = api.start_upload(route.name(dst), params={"mount": digest, "from": route.name(src)})
    assert r.status_code == 201, (r.status_code, r.headers, r.text)
    assert r.headers.get("Docker-Content-Digest") == digest
    assert_client_facing(r.headers["Location"], route, f"/v2/{route.name(dst)}/blobs/")
    assert backend.head(f"/v2/{PREFIX[key]}{dst}/blobs/{digest}").status_code == 200
    got = api.blob(route.name(dst), digest)
    assert got.status_code == 200 and got.content == data


@pytest.mark.parametrize("method", ["subdomain", "port"])
def test_mount_within_one_key_single_key_listener(gateway, backend, unique, method):
    route = gateway.route(method, "team-a")
    api = gateway.api(route)
    src, dst = unique("src"), unique("dst")
    digest = api.push_blob(src, os.urandom(5000))
    r = api.start_upload(dst, params={"mount": digest, "from": src})
    assert r.status_code == 201, (r.status_code, r.text)
    assert_client_facing(r.headers["Location"], route, f"/v2/{dst}/blobs/")
    assert backend.head(f"/v2/{PREFIX['team-a']}{dst}/blobs/{digest}").status_code == 200


def test_mount_across_keys_becomes_a_normal_upload(gateway, backend, unique):
    api = gateway.api()
    src, dst = unique("src"), unique("dst")
    data = os.urandom(20_000)
    digest = api.push_blob(f"team-a/{src}", data)
    assert backend.head(f"/v2/{PREFIX['team-a']}{src}/blobs/{digest}").status_code == 200

    r = api.start_upload(f"team-b/{dst}", params={"mount": digest, "from": f"team-a/{src}"})
    assert r.status_code == 202, (r.status_code, r.headers, r.text)
    route = gateway.route("path", "team-b")
    assert_client_facing(r.headers["Location"], route, f"/v2/team-b/{dst}/blobs/uploads/")
    # Nothing was mounted into team-b ...
    assert backend.head(f"/v2/{PREFIX['team-b']}{dst}/blobs/{digest}").status_code == 404
    assert api.head(f"/v2/team-b/{dst}/blobs/{digest}").status_code == 404
    # ... and the upload session it got is a working one.
    loc = api._location(r)
    sep = "&" if "?" in loc else "?"
    put = api.request("PUT", f"{loc}{sep}digest={digest}", data=data,
                      headers={"Content-Type": "application/octet-stream"})
    assert put.status_code == 201, (put.status_code, put.text)
    got = api.blob(f"team-b/{dst}", digest)
    assert got.status_code == 200 and sha256_digest(got.content) == digest
    assert backend.head(f"/v2/{PREFIX['team-b']}{dst}/blobs/{digest}").status_code == 200


def test_mount_from_unknown_key_becomes_a_normal_upload(gateway, unique):
    api = gateway.api()
    r = api.start_upload(f"team-a/{unique('dst')}",
                         params={"mount": "sha256:" + "0" * 64, "from": "no-such-key/x"})
    assert r.status_code == 202, (r.status_code, r.text)
