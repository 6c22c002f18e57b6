"""The edge cache (issue 16) with the real registry and real clients.

One backend request per blob for 20 concurrent `skopeo copy` of one image (counted in the
registry's own access log), copies byte-identical; a blob corrupted in the registry's storage
is neither served as good nor stored; a user with pull on repository B only gets 404 for a
digest that only A holds, even when it is cached; the cache survives a restart; `max_size`
holds under more than it can keep.
"""
import concurrent.futures as cf
import hashlib
import re
import secrets
import time
from pathlib import Path

import pytest
import requests

from dgtest import images
from dgtest.client import V2
from dgtest.ops import auth_gateway_config, metric, samples_of, write_htpasswd
from dgtest.ports import free_port


def pw():
    return "pw-" + secrets.token_urlsafe(12)


class CacheSetup:
    """A gateway with [auth] and [cache] on its own registry: keys ra (prefix a/) and
    rb (prefix b/), both cache = true. alice reads both, bob reads rb only."""

    def __init__(self, gw, registry, users, cache_dir, metrics_port):
        self.gw, self.registry, self.users = gw, registry, users
        self.cache_dir, self.metrics_port = cache_dir, metrics_port

    @property
    def hostport(self):
        return f"127.0.0.1:{self.gw.port('path')}"

    def api(self, user):
        return V2(f"https://{self.hostport}", verify=str(self.gw.pki.ca_crt),
                  auth=(user, self.users[user]))

    def backend_gets(self, name, digest):
        """Successful GETs the registry itself logged for one blob or manifest."""
        pat = re.compile(
            rf'"GET /v2/{re.escape(name)}/(blobs|manifests)/{re.escape(digest)} HTTP/[0-9.]+" 200 ')
        return sum(1 for line in self.registry.log_text().splitlines() if pat.search(line))

    def objects(self):
        """Stored objects and their sizes; one evicted while this lists it is gone."""
        out = {}
        for p in (self.cache_dir / "objects" / "sha256").glob("*"):
            if p.name.endswith(".meta"):
                continue
            try:
                out[p.name] = p.stat().st_size
            except FileNotFoundError:
                pass
        return out

    def metrics(self):
        return samples_of(self.metrics_port)

    def wait_stored(self, digest, timeout=5):
        """Objects are stored just after the last byte went out."""
        hexd = digest.split(":")[1]
        deadline = time.monotonic() + timeout
        while hexd not in self.objects() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.objects().get(hexd)


@pytest.fixture
def cache_setup(dockgate, registry_factory):
    def make(max_size="64MiB"):
        reg = registry_factory()
        users = {"alice": pw(), "bob": pw()}
        port = free_port()
        cfg = auth_gateway_config(
            reg.url,
            {"ra": {"name_prefix": "a/", "read": ["alice"], "write": ["alice"], "cache": True},
             "rb": {"name_prefix": "b/", "read": ["alice", "bob"], "write": ["alice"],
                    "cache": True}},
            auth={"challenge": "basic"}, metrics_port=port)
        cfg["cache"] = {"dir": "cache", "max_size": max_size}
        gw = dockgate(cfg, start=False)
        write_htpasswd(gw.dir / "users.htpasswd", users)
        gw.start()
        return CacheSetup(gw, reg, users, gw.dir / "cache", port)
    return make


def test_storm_of_skopeo_copies_costs_one_get_per_blob(cache_setup, client_env, tmp_path):
    s = cache_setup()
    img = images.make_image((1 << 20, 300_000))
    V2(s.registry.url).push_image("a/storm", "1", img)
    creds = f"alice:{s.users['alice']}"

    def copy(i):
        out = tmp_path / f"copy{i}"
        client_env.skopeo_copy(f"docker://{s.hostport}/ra/storm:1", f"oci:{out}:1",
                               "--src-creds", creds)
        return out

    with cf.ThreadPoolExecutor(20) as pool:
        outs = list(pool.map(copy, range(20)))
    for blob in img.blobs:
        assert s.backend_gets("a/storm", blob.digest) == 1, blob.digest
        for out in outs:
            path = out / "blobs" / "sha256" / blob.digest.split(":")[1]
            assert images.file_digest(path) == blob.digest
    m = s.metrics()
    assert metric(m, "dockgate_cache_misses_total", repository="ra") == len(img.blobs)
    assert metric(m, "dockgate_cache_lock_waits_total", repository="ra") + \
        metric(m, "dockgate_cache_hits_total", repository="ra") >= 19 * len(img.blobs)
    assert metric(m, "dockgate_cache_sent_bytes_total", repository="ra") >= \
        20 * sum(b.size for b in img.blobs)
    # A Range is served from the cache too.
    layer = img.layers[0]
    r = s.api("alice").get(f"/v2/ra/storm/blobs/{layer.digest}",
                           headers={"Range": "bytes=100-199"})
    assert (r.status_code, r.content, r.headers.get("Content-Range")) == \
        (206, layer.data[100:200], f"bytes 100-199/{layer.size}")
    assert s.backend_gets("a/storm", layer.digest) == 1
    # Tags always go to the backend: a re-pushed tag is seen at once.
    img2 = images.make_image((1000,))
    V2(s.registry.url).push_image("a/storm", "1", img2)
    assert s.api("alice").manifest_digest("ra/storm", "1") == img2.digest


def test_corrupt_blob_is_never_served_as_good_nor_stored(cache_setup):
    s = cache_setup()
    img = images.make_image((400_000,))
    V2(s.registry.url).push_image("a/bad", "1", img)
    layer = img.layers[0]
    hexd = layer.digest.split(":")[1]
    data_file = (s.registry.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd /
                 "data")
    good = data_file.read_bytes()
    data_file.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    api = s.api("alice")
    for _ in range(2):
        with pytest.raises(requests.exceptions.RequestException):
            r = api.get(f"/v2/ra/bad/blobs/{layer.digest}")
            # A complete body would have to be the good one.
            assert hashlib.sha256(r.content).hexdigest() == hexd
            raise AssertionError("a corrupt blob was answered whole")
        assert hexd not in s.objects()
    assert list((s.cache_dir / "tmp").iterdir()) == []
    assert metric(s.metrics(), "dockgate_cache_failed_fills_total") == 2
    data_file.write_bytes(good)
    r = api.get(f"/v2/ra/bad/blobs/{layer.digest}")
    assert r.status_code == 200 and r.content == layer.data
    assert s.wait_stored(layer.digest) == layer.size


def test_cached_digest_is_not_revealed_through_another_repository(cache_setup):
    s = cache_setup()
    img = images.make_image((50_000,))
    V2(s.registry.url).push_image("a/secret", "1", img)
    layer = img.layers[0]
    alice, bob = s.api("alice"), s.api("bob")
    assert alice.get(f"/v2/ra/secret/blobs/{layer.digest}").content == layer.data
    assert alice.get(f"/v2/ra/secret/manifests/{img.digest}",
                     headers={"Accept": img.media_type}).content == img.manifest
    assert s.wait_stored(layer.digest) == layer.size
    # bob may not pull ra at all; through rb the backend says the digest is not there.
    assert bob.get(f"/v2/ra/secret/blobs/{layer.digest}").status_code in (401, 403)
    for path in (f"/v2/rb/secret/blobs/{layer.digest}",
                 f"/v2/rb/secret/manifests/{img.digest}"):
        for method in ("GET", "HEAD"):
            r = bob.request(method, path, headers={"Accept": img.media_type})
            assert r.status_code == 404, (method, path, r.status_code)
            assert r.headers.get("X-Cache") is None
    # Once rb holds it too, rb is served from the same cached bytes.
    V2(s.registry.url).push_image("b/secret", "1", img)
    r = bob.get(f"/v2/rb/secret/blobs/{layer.digest}")
    assert (r.status_code, r.headers.get("X-Cache"), r.content) == (200, "hit", layer.data)
    assert s.backend_gets("b/secret", layer.digest) == 0


def test_cache_survives_a_restart(cache_setup):
    s = cache_setup()
    img = images.make_image((300_000,))
    V2(s.registry.url).push_image("a/keep", "1", img)
    layer = img.layers[0]
    path = f"/v2/ra/keep/blobs/{layer.digest}"
    assert s.api("alice").get(path).content == layer.data
    assert s.wait_stored(layer.digest) == layer.size
    s.gw.stop()
    s.gw.start()
    r = s.api("alice").get(path)
    assert (r.status_code, r.headers.get("X-Cache"), r.content) == (200, "hit", layer.data)
    assert s.backend_gets("a/keep", layer.digest) == 1
    assert metric(s.metrics(), "dockgate_cache_objects") >= 1


def test_max_size_holds_under_more_than_fits(cache_setup):
    s = cache_setup(max_size="2MiB")
    blobs = []
    api_b = V2(s.registry.url)
    for i in range(8):
        data = secrets.token_bytes(400_000)
        blobs.append((api_b.push_blob("a/many", data), data))
    api = s.api("alice")
    limit = 2 << 20

    def fetch(item):
        digest, data = item
        r = api.get(f"/v2/ra/many/blobs/{digest}")
        assert r.status_code == 200 and r.content == data
        used = sum(s.objects().values())
        assert used <= limit, used
        return used

    with cf.ThreadPoolExecutor(4) as pool:
        for _ in range(2):
            list(pool.map(fetch, blobs))
    assert sum(s.objects().values()) <= limit
    m = s.metrics()
    # At least one eviction; how many depends on timing: a fill that cannot reserve room
    # while other fills are in flight streams through without being stored.
    assert metric(m, "dockgate_cache_evictions_total") >= 1
    assert metric(m, "dockgate_cache_size_bytes") <= limit
