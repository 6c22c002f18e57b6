"""What the gateway must pass through untouched: Accept (and so content negotiation),
referrers paths, Authorization and Basic WWW-Authenticate challenges."""
import pytest

from dgtest import images
from dgtest.client import V2, error_codes, raw_request
from dgtest.gateway import gateway_config
from dgtest.standard import PREFIX


def both(gateway, registry, route, image, path_suffix, headers=None):
    """(direct response, gateway response) for the same request, sent as raw HTTP/1.1."""
    direct = raw_request(f"{registry.url}/v2/{PREFIX[route.key]}{image}/{path_suffix}",
                         headers=headers)
    via = raw_request(f"{route.base}/v2/{route.name(image)}/{path_suffix}", headers=headers,
                      ca_file=gateway.pki.ca_crt)
    return direct, via


@pytest.mark.parametrize("key", ["docker-local", "team-a"])
def test_accept_header_negotiation_passes_through(gateway, registry, backend, unique, key):
    route = gateway.route("path", key)
    oci = images.make_image((64,), kind="oci")
    docker = images.make_image((64,), kind="docker")
    name = unique("accept")
    backend.push_image(PREFIX[key] + name, "oci", oci)
    backend.push_image(PREFIX[key] + name, "docker", docker)

    # OCI manifest asked for without an OCI Accept: distribution answers 404 MANIFEST_UNKNOWN.
    only_docker = {"Accept": images.DOCKER_MANIFEST}
    direct, via = both(gateway, registry, route, name, "manifests/oci", only_docker)
    assert direct.status == 404
    assert (via.status, error_codes(via.body)) == (404, error_codes(direct.body))
    direct, via = both(gateway, registry, route, name, "manifests/oci",
                       {"Accept": images.OCI_MANIFEST})
    assert direct.status == via.status == 200
    assert images.sha256_digest(via.body) == oci.digest
    assert via.headers["Content-Type"] == images.OCI_MANIFEST

    # Schema2 asked for with no Accept at all: distribution down-converts to signed schema1.
    direct, via = both(gateway, registry, route, name, "manifests/docker")
    assert direct.status == via.status == 200
    assert direct.headers["Content-Type"] == via.headers["Content-Type"] == images.SCHEMA1_SIGNED
    direct, via = both(gateway, registry, route, name, "manifests/docker",
                       {"Accept": images.DOCKER_MANIFEST})
    assert via.status == 200 and images.sha256_digest(via.body) == docker.digest
    assert via.headers["Docker-Content-Digest"] == docker.digest


def test_referrers_path_passes_through(gateway, registry, backend, unique):
    route = gateway.route("path", "team-a")
    name = unique("ref")
    img = images.make_image((64,))
    backend.push_image(PREFIX["team-a"] + name, "1", img)
    hdr = {"Accept": images.OCI_INDEX}
    direct, via = both(gateway, registry, route, name, f"referrers/{img.digest}", hdr)
    # distribution 2.8 has no referrers API: whatever it answers, the client must see.
    assert via.status == direct.status, (via.status, via.body[:200], direct.status)
    direct, via = both(gateway, registry, route, name,
                       f"referrers/{img.digest}?artifactType=application%2Fvnd.example", hdr)
    assert via.status == direct.status


@pytest.fixture
def auth_gateway(registry_factory, dockgate):
    reg = registry_factory(htpasswd=("alice", "s3cret"))
    gw = dockgate(gateway_config({"sec": reg.url}, {"secure": {"backend": "sec", "type": "local"}},
                                 [{"method": "path"}, {"method": "port", "repository": "secure"}]))
    return reg, gw


def test_basic_auth_backend_challenge_and_credentials_pass_through(auth_gateway, unique):
    reg, gw = auth_gateway
    name = unique("auth")
    anon = gw.api()
    r = anon.get(f"/v2/secure/{name}/manifests/1")
    assert r.status_code == 401, (r.status_code, r.text)
    assert error_codes(r) == ["UNAUTHORIZED"]
    assert r.headers.get("WWW-Authenticate") == 'Basic realm="dockgate-test"'

    api = V2(gw.url, verify=str(gw.pki.ca_crt), auth=("alice", "s3cret"))
    img = images.make_image((500,))
    api.push_image(f"secure/{name}", "1", img)
    direct = V2(reg.url, auth=("alice", "s3cret"))
    assert direct.manifest_digest(name, "1") == img.digest
    assert api.manifest_digest(f"secure/{name}", "1") == img.digest
    wrong = V2(gw.url, verify=str(gw.pki.ca_crt), auth=("alice", "wrong"))
    assert wrong.manifest(f"secure/{name}", "1").status_code == 401


def test_skopeo_with_credentials_to_basic_auth_backend(auth_gateway, client_env, tmp_path, unique):
    reg, gw = auth_gateway
    img = images.make_image((500,))
    layout = images.write_oci_layout(tmp_path / "src", {"1": img})
    name = unique("authsk")
    for method in ("path", "port"):
        client_env.skopeo_copy(f"oci:{layout}:1", gw.route(method, "secure").docker(name, method),
                               "--dest-creds", "alice:s3cret")
        assert V2(reg.url, auth=("alice", "s3cret")).manifest_digest(name, method) == img.digest


@pytest.mark.parametrize("method", ["path", "subdomain", "port"])
def test_ping_on_every_listener(gateway, method):
    route = gateway.route(method, "team-a")
    r = gateway.api(route).get("/v2/")
    assert r.status_code == 200 and r.json() == {}
    assert r.headers.get("Docker-Distribution-API-Version") == "registry/2.0"


@pytest.mark.parametrize("method", ["path", "subdomain", "port"])
def test_delete_manifest_and_blob(gateway, backend, unique, method):
    route = gateway.route(method, "team-a")
    api = gateway.api(route)
    name = unique("del")
    img = images.make_image((300,), kind="docker")
    api.push_image(route.name(name), "1", img)
    assert backend.manifest_digest(PREFIX["team-a"] + name, "1") == img.digest
    r = api.request("DELETE", f"/v2/{route.name(name)}/manifests/{img.digest}")
    assert r.status_code == 202, (r.status_code, r.text)
    assert api.manifest(route.name(name), img.digest).status_code == 404
    assert backend.manifest(PREFIX["team-a"] + name, img.digest).status_code == 404
    layer = img.layers[0].digest
    r = api.request("DELETE", f"/v2/{route.name(name)}/blobs/{layer}")
    assert r.status_code == 202, (r.status_code, r.text)
    assert backend.head(f"/v2/{PREFIX['team-a']}{name}/blobs/{layer}").status_code == 404
