"""Push and pull round trips with real clients through the path, subdomain and port
listeners; every digest is compared with what the backend holds (read directly)."""
import json
import os
from pathlib import Path

import pytest

from dgtest import images
from dgtest.images import sha256_digest
from dgtest.standard import METHODS, PREFIX

KEY = "docker-local"  # has a listener of every kind in the standard layout


def assert_same_everywhere(gateway, backend, key, image, ref, expected):
    """The manifest under `ref` has digest `expected` on the backend and through every
    listener of the gateway that serves `key` (GET and HEAD)."""
    assert backend.manifest_digest(PREFIX[key] + image, ref) == expected
    for method in METHODS:
        try:
            route = gateway.route(method, key)
        except KeyError:
            continue
        api = gateway.api(route)
        assert api.manifest_digest(route.name(image), ref) == expected, route
        head = api.manifest(route.name(image), ref, method="HEAD")
        assert head.status_code == 200, (route, head.status_code)
        assert head.headers.get("Docker-Content-Digest") == expected, (route, head.headers)


def assert_dir_pull_matches(out_dir, expected_manifest_digest, backend, backend_name):
    """A `skopeo copy ... dir:OUT` result: manifest bytes and every blob are intact."""
    out_dir = Path(out_dir)
    manifest_bytes = (out_dir / "manifest.json").read_bytes()
    assert sha256_digest(manifest_bytes) == expected_manifest_digest
    manifest = json.loads(manifest_bytes)
    for desc in [manifest["config"], *manifest["layers"]]:
        hexd = desc["digest"].split(":", 1)[1]
        data = (out_dir / hexd).read_bytes()
        assert sha256_digest(data) == desc["digest"]
        assert len(data) == desc["size"]
        direct = backend.blob(backend_name, desc["digest"])
        assert direct.status_code == 200 and direct.content == data
    return manifest


@pytest.mark.parametrize("fmt", ["oci", "v2s2"])
@pytest.mark.parametrize("method", METHODS)
def test_skopeo_push_pull(gateway, backend, client_env, tmp_path, unique, method, fmt):
    route = gateway.route(method, KEY)
    img = images.make_image((3000, 120000))
    layout = images.write_oci_layout(tmp_path / "src", {"v1": img})
    name = unique("sk")
    digest_file = tmp_path / "pushed.digest"
    extra = ["--format", "v2s2"] if fmt == "v2s2" else []
    client_env.skopeo_copy(f"oci:{layout}:v1", route.docker(name, "v1"), *extra,
                           digestfile=digest_file)
    pushed = digest_file.read_text().strip()
    if fmt == "oci":
        assert pushed == img.digest, "an OCI manifest must arrive byte for byte"
    assert_same_everywhere(gateway, backend, KEY, name, "v1", pushed)
    assert_same_everywhere(gateway, backend, KEY, name, pushed, pushed)  # by digest too

    out = tmp_path / "pulled"
    client_env.skopeo_copy(route.docker(name, "v1"), f"dir:{out}")
    manifest = assert_dir_pull_matches(out, pushed, backend, PREFIX[KEY] + name)
    expected_type = images.OCI_MANIFEST if fmt == "oci" else images.DOCKER_MANIFEST
    assert manifest["mediaType"] == expected_type
    # The compressed layers are the ones we built, whatever the manifest format.
    assert [l["digest"] for l in manifest["layers"]] == [l.digest for l in img.layers]


@pytest.mark.parametrize("method", METHODS)
def test_buildah_push_chunked(gateway, backend, client_env, tmp_path, unique, method):
    """buildah pushes blobs with PATCH + Transfer-Encoding: chunked."""
    route = gateway.route(method, KEY)
    local = f"localhost/{unique('bh')}"
    client_env.buildah_build_scratch(local, {"a.bin": os.urandom(300_000),
                                             "b.txt": os.urandom(64).hex().encode()})
    name = unique("bh")
    digest_file = tmp_path / "pushed.digest"
    client_env.buildah("push", "--cert-dir", client_env.cert_dir, "--retry", "0",
                       "--digestfile", digest_file, local, route.docker(name, "latest"))
    pushed = digest_file.read_text().strip()
    assert_same_everywhere(gateway, backend, KEY, name, "latest", pushed)
    out = tmp_path / "pulled"
    client_env.skopeo_copy(route.docker(name, "latest"), f"dir:{out}")
    assert_dir_pull_matches(out, pushed, backend, PREFIX[KEY] + name)


@pytest.mark.parametrize("method", METHODS)
def test_buildah_manifest_push_all(gateway, backend, client_env, tmp_path, unique, method):
    """A multi-platform index from `buildah manifest create/add` + `manifest push --all`."""
    route = gateway.route(method, KEY)
    stem = unique("ml")
    arches = ["amd64", "arm64"]
    for arch in arches:
        client_env.buildah_build_scratch(f"localhost/{stem}-{arch}",
                                         {"arch.txt": arch.encode(),
                                          "rand.bin": os.urandom(50_000)},
                                         platform=f"linux/{arch}")
    client_env.buildah("manifest", "create", f"localhost/{stem}-list")
    for arch in arches:
        client_env.buildah("manifest", "add", "--os", "linux", "--arch", arch,
                           f"localhost/{stem}-list", f"containers-storage:localhost/{stem}-{arch}")
    name = unique("ml")
    digest_file = tmp_path / "index.digest"
    client_env.buildah("manifest", "push", "--all", "--cert-dir", client_env.cert_dir,
                       "--digestfile", digest_file, f"localhost/{stem}-list",
                       route.docker(name, "multi"))
    pushed = digest_file.read_text().strip()
    assert_same_everywhere(gateway, backend, KEY, name, "multi", pushed)

    api = gateway.api(route)
    r = api.manifest(route.name(name), "multi")
    index = r.json()
    assert r.headers["Content-Type"] in (images.OCI_INDEX, images.DOCKER_LIST)
    assert sorted(m["platform"]["architecture"] for m in index["manifests"]) == arches
    for child in index["manifests"]:
        assert_same_everywhere(gateway, backend, KEY, name, child["digest"], child["digest"])
        m = api.manifest(route.name(name), child["digest"]).json()
        for desc in [m["config"], *m["layers"]]:
            b = api.blob(route.name(name), desc["digest"])
            assert b.status_code == 200 and sha256_digest(b.content) == desc["digest"]

    # A real client pulls the whole list back through the gateway.
    out = tmp_path / "pulled-oci"
    client_env.skopeo_copy(route.docker(name, "multi"), f"oci:{out}:multi", "--all")
    idx = json.loads((out / "index.json").read_text())
    assert [m["digest"] for m in idx["manifests"]] == [pushed]


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
@pytest.mark.parametrize("method", METHODS)
def test_oras_artifact_push_pull(gateway, backend, pki, tmp_path, unique, monkeypatch,
                                 method, chunked):
    import oras.client

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.ca_crt))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    route = gateway.route(method, KEY)
    files = {"notes.txt": f"artifact {unique('a')}\n".encode(),
             "payload.bin": os.urandom(700_000)}
    for fname, data in files.items():
        Path(fname).write_bytes(data)
    name = unique("oras")
    client = oras.client.OrasClient()  # https; verifies with REQUESTS_CA_BUNDLE
    resp = client.push(target=route.ref(name, "v1"), files=list(files), do_chunked=chunked,
                       chunk_size=256 * 1024)
    assert resp.status_code == 201

    manifest_digest = backend.manifest_digest(PREFIX[KEY] + name, "v1")
    assert_same_everywhere(gateway, backend, KEY, name, "v1", manifest_digest)
    pulled = client.pull(target=route.ref(name, "v1"), outdir=str(tmp_path / "out"))
    got = {Path(p).name: Path(p).read_bytes() for p in pulled}
    assert got == files


@pytest.mark.parametrize("method", METHODS)
def test_nested_and_punctuated_names(gateway, backend, unique, method):
    """Multi-segment names with '.', '_', '__' and '--' route to <prefix><name> and back."""
    route = gateway.route(method, "team-a")
    name = f"ns.x/sub_y/deep__er/{unique('img--z')}"
    img = images.make_image((200,), kind="docker")
    gateway.api(route).push_image(route.name(name), "t", img)
    assert backend.manifest_digest(PREFIX["team-a"] + name, "t") == img.digest
    for m in METHODS:
        r = gateway.route(m, "team-a")
        assert gateway.api(r).manifest_digest(r.name(name), "t") == img.digest, r
