"""_catalog over all keys with pagination through rewritten Link headers; tags/list."""
from urllib.parse import urlsplit

import pytest

from dgtest import images
from dgtest.client import V2, error_codes, next_link
from dgtest.gateway import gateway_config
from dgtest.standard import METHODS, PREFIX

CATALOG_REPOS = {
    "team-a": {"backend": "b", "type": "local", "name_prefix": "alpha/"},
    "team-b": {"backend": "b", "type": "local", "name_prefix": "beta/"},
}
BACKEND_NAMES = ["alpha/app1", "alpha/app2", "alpha/nested/app3", "beta/app4", "beta/app5",
                 "outside/app6"]  # outside/ belongs to no key
EXPECTED = ["team-a/app1", "team-a/app2", "team-a/nested/app3", "team-b/app4", "team-b/app5"]


@pytest.fixture
def catalog_gateway(registry_factory, dockgate, etc_hosts):
    reg = registry_factory()
    direct = V2(reg.url)
    for name in BACKEND_NAMES:
        direct.push_image(name, "1", images.make_image((32,), kind="docker"))
    gw = dockgate(gateway_config({"b": reg.url}, CATALOG_REPOS,
                                 [{"method": "path"}, {"method": "subdomain"},
                                  {"method": "port", "repository": "team-a"}]))
    return gw


def assert_link_is_client_facing(resp, route_hostport):
    link = resp.headers.get("Link")
    if not link:
        return
    target = next_link(resp)
    assert target, f"unparseable Link: {link}"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        assert parts.scheme == "https" and parts.netloc == route_hostport, link
    assert parts.path == "/v2/_catalog", link


def test_catalog_pagination_over_all_keys(catalog_gateway):
    gw = catalog_gateway
    api = gw.api()
    full = api.get("/v2/_catalog")
    assert full.status_code == 200, full.text
    assert full.json()["repositories"] == EXPECTED

    pages = api.catalog_pages(n=2)
    seen = [n for _, repos in pages for n in repos]
    assert sorted(seen) == EXPECTED, seen
    assert len(seen) == len(set(seen)), f"names seen twice: {seen}"
    assert seen == EXPECTED, "pages must come in sorted order"
    assert all(len(repos) <= 2 for _, repos in pages), [r for _, r in pages]
    assert len(pages) == 3, [r for _, r in pages]
    for resp, _ in pages[:-1]:
        assert 'rel="next"' in resp.headers.get("Link", ""), resp.headers
        assert_link_is_client_facing(resp, f"127.0.0.1:{gw.port('path')}")
    assert "Link" not in pages[-1][0].headers or not next_link(pages[-1][0])


@pytest.mark.parametrize("n", [1, 3, 5, 100])
def test_catalog_pagination_page_sizes(catalog_gateway, n):
    pages = catalog_gateway.api().catalog_pages(n=n)
    seen = [x for _, repos in pages for x in repos]
    assert seen == EXPECTED
    assert all(len(repos) <= n for _, repos in pages)


@pytest.mark.parametrize("method", ["subdomain", "port"])
def test_catalog_on_single_key_listener(catalog_gateway, method):
    route = catalog_gateway.route(method, "team-a")
    api = catalog_gateway.api(route)
    r = api.get("/v2/_catalog")
    assert r.status_code == 200, r.text
    assert r.json()["repositories"] == ["app1", "app2", "nested/app3"]
    pages = api.catalog_pages(n=2)
    assert [x for _, repos in pages for x in repos] == ["app1", "app2", "nested/app3"]
    for resp, _ in pages[:-1]:
        assert_link_is_client_facing(resp, route.hostport)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("key", ["docker-local", "team-a"])
def test_tags_list(gateway, backend, unique, method, key):
    # distribution 2.8 ignores `n` on tags/list, so Link rewriting for tags is a Rust unit test.
    route = gateway.route(method, key)
    name = unique("tags")
    img = images.make_image((16,), kind="docker")
    backend.push_image(PREFIX[key] + name, "latest", img)
    for tag in ("1.0", "1.1", "beta_2"):
        backend.push_manifest(PREFIX[key] + name, tag, img.manifest, img.media_type)
    r = gateway.api(route).tags(route.name(name))
    assert r.status_code == 200, r.text
    assert sorted(r.json()["tags"]) == ["1.0", "1.1", "beta_2", "latest"]
    # the image is named as the client named it, not as the backend stores it
    assert r.json()["name"] == route.name(name), r.text


def test_tags_list_unknown_image(gateway, unique):
    r = gateway.api().tags(f"team-a/{unique('none')}")
    assert r.status_code == 404
    assert error_codes(r) == ["NAME_UNKNOWN"], r.text


def test_catalog_merges_backends_in_sorted_order(registry_factory, dockgate):
    """Keys on two backends; "lib-extra/..." sorts before "lib/..." ('-' < '/'), so a gateway
    that concatenates per-key listings in key order cannot pass."""
    one, two = registry_factory(), registry_factory()
    for reg, names in ((one, ["lib/z", "lib/a", "unlisted/x"]), (two, ["extra/a", "extra/q"])):
        for n in names:
            V2(reg.url).push_image(n, "1", images.make_image((8,), kind="docker"))
    gw = dockgate(gateway_config(
        {"one": one.url, "two": two.url},
        {"lib": {"backend": "one", "type": "local", "name_prefix": "lib/"},
         "lib-extra": {"backend": "two", "type": "local", "name_prefix": "extra/"}}))
    expected = ["lib-extra/a", "lib-extra/q", "lib/a", "lib/z"]
    assert gw.api().get("/v2/_catalog").json()["repositories"] == expected
    for n in (1, 2, 3):
        pages = gw.api().catalog_pages(n=n)
        assert [x for _, repos in pages for x in repos] == expected, n
