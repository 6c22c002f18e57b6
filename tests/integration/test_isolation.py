"""Two repository keys on one backend, with different name prefixes, stay isolated.

Standard layout: team-a -> backend names under "alpha/", team-b -> under "beta/".
"""
import pytest

from dgtest import images
from dgtest.client import error_codes
from dgtest.standard import PREFIX

NOT_FOUND = {"MANIFEST_UNKNOWN", "NAME_UNKNOWN"}


def routes_for(gateway, key):
    out = [gateway.route("path", key), gateway.route("subdomain", key)]
    try:
        out.append(gateway.route("port", key))
    except KeyError:
        pass
    return out


def test_push_via_key_a_is_invisible_via_key_b(gateway, backend, client_env, tmp_path, unique,
                                                etc_hosts):
    name = unique("iso")
    img = images.make_image((4000, 9000))
    layout = images.write_oci_layout(tmp_path / "src", {"1": img})
    client_env.skopeo_copy(f"oci:{layout}:1", gateway.route("path", "team-a").docker(name, "1"))

    # Landed under prefix A on the backend, and nowhere else.
    assert backend.manifest_digest(f"{PREFIX['team-a']}{name}", "1") == img.digest
    assert backend.manifest(name, "1").status_code == 404
    assert backend.manifest(f"{PREFIX['team-b']}{name}", "1").status_code == 404
    assert backend.manifest(f"team-a/{name}", "1").status_code == 404

    for route in routes_for(gateway, "team-a"):
        api = gateway.api(route)
        assert api.manifest_digest(route.name(name), "1") == img.digest, route
        assert api.tags(route.name(name)).json()["tags"] == ["1"], route

    for route in routes_for(gateway, "team-b"):
        api = gateway.api(route)
        r = api.manifest(route.name(name), "1")
        assert r.status_code == 404, (route, r.status_code, r.text)
        assert set(error_codes(r)) & NOT_FOUND, (route, r.text)
        r = api.manifest(route.name(name), img.digest)
        assert r.status_code == 404, (route, "by digest", r.status_code)
        for blob in img.blobs:
            r = api.head(f"/v2/{route.name(name)}/blobs/{blob.digest}")
            assert r.status_code == 404, (route, blob.digest, r.status_code)
        r = api.tags(route.name(name))
        assert r.status_code == 404, (route, r.status_code, r.text)


def test_same_name_in_two_keys_holds_two_images(gateway, backend, unique):
    name = unique("twin")
    img_a = images.make_image((100,), kind="docker")
    img_b = images.make_image((100,), kind="docker")
    gateway.api(gateway.route("subdomain", "team-a")).push_image(name, "v", img_a)
    gateway.api(gateway.route("subdomain", "team-b")).push_image(name, "v", img_b)
    assert backend.manifest_digest(PREFIX["team-a"] + name, "v") == img_a.digest
    assert backend.manifest_digest(PREFIX["team-b"] + name, "v") == img_b.digest
    api = gateway.api()
    assert api.manifest_digest(f"team-a/{name}", "v") == img_a.digest
    assert api.manifest_digest(f"team-b/{name}", "v") == img_b.digest
    # The port listener bound to team-a sees A's image under the bare name.
    port_api = gateway.api(gateway.route("port", "team-a"))
    assert port_api.manifest_digest(name, "v") == img_a.digest


def test_push_via_port_listener_lands_under_its_prefix(gateway, backend, client_env, tmp_path,
                                                      unique):
    name = unique("portpush")
    img = images.make_image((2000,))
    layout = images.write_oci_layout(tmp_path / "src", {"p": img})
    client_env.skopeo_copy(f"oci:{layout}:p", gateway.route("port", "team-a").docker(name, "p"))
    assert backend.manifest_digest(PREFIX["team-a"] + name, "p") == img.digest
    assert backend.manifest(name, "p").status_code == 404


def test_subdomain_catalog_lists_only_its_key(gateway, backend, unique):
    name_a, name_b = unique("cat-a"), unique("cat-b")
    backend.push_image(PREFIX["team-a"] + name_a, "1", images.make_image((10,), kind="docker"))
    backend.push_image(PREFIX["team-b"] + name_b, "1", images.make_image((10,), kind="docker"))
    repos_a = [n for _, page in gateway.api(gateway.route("subdomain", "team-a")).catalog_pages()
               for n in page]
    repos_b = [n for _, page in gateway.api(gateway.route("subdomain", "team-b")).catalog_pages()
               for n in page]
    assert name_a in repos_a and name_b not in repos_a
    assert name_b in repos_b and name_a not in repos_b
    assert not any(n.startswith(("alpha/", "beta/", "team-")) for n in repos_a + repos_b)
    repos = [n for _, page in gateway.api().catalog_pages() for n in page]
    assert f"team-a/{name_a}" in repos and f"team-b/{name_b}" in repos
    assert f"team-a/{name_b}" not in repos and f"team-b/{name_a}" not in repos
