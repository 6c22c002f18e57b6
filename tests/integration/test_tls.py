"""TLS as Go clients see it: the gateway's certificate verifies with the right CA only."""
import pytest
import requests

from dgtest import images
from dgtest.client import V2
from dgtest.gateway import gateway_config
from dgtest.pki import make_pki_dockgate
from dgtest.tools import ClientEnv


def test_unknown_ca_is_rejected_by_go_clients(gateway, tmp_path, unique):
    # A client that was not given the test CA must refuse the gateway's certificate.
    env = ClientEnv(tmp_path / "no-ca", tmp_path / "empty-cert-dir")
    (tmp_path / "empty-cert-dir").mkdir()
    p = env.skopeo("inspect", "--retry-times", "0", "--cert-dir", tmp_path / "empty-cert-dir",
                   f"docker://{gateway.route('path', 'docker-local').ref('x', 'y')}",
                   check=False, timeout=60)
    assert p.returncode != 0
    assert "x509: certificate signed by unknown authority" in p.stderr, p.stderr
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(gateway.url + "/v2/", timeout=5)  # system roots only


def test_dockgate_generated_certificate_works_with_real_clients(dockgate, registry, etc_hosts,
                                                                dockgate_binary, tmp_path,
                                                                unique, pki):
    own = make_pki_dockgate(tmp_path / "own-pki", dockgate_binary)
    gw = dockgate(gateway_config({"main": registry.url},
                                 {"docker-local": {"backend": "main", "type": "local"}},
                                 [{"method": "path"}, {"method": "subdomain"}]),
                  pki_override=own)
    env = ClientEnv(tmp_path / "client", own.cert_dir)
    img = images.make_image((1000,))
    layout = images.write_oci_layout(tmp_path / "src", {"t": img})
    name = unique("ownpki")
    for method in ("path", "subdomain"):
        route = gw.route(method, "docker-local")
        env.skopeo_copy(f"oci:{layout}:t", route.docker(name, method))
        assert V2(route.base, verify=str(own.ca_crt)).manifest_digest(
            route.name(name), method) == img.digest
        out = env.curl("-o", "/dev/null", "-w", "%{http_code}", f"{route.base}/v2/").stdout
        assert out == "200"
    # The session CA did not sign this certificate: Go clients given that CA refuse it.
    other = ClientEnv(tmp_path / "other", pki.cert_dir)
    p = other.skopeo("inspect", "--retry-times", "0", "--cert-dir", pki.cert_dir,
                     gw.route("path", "docker-local").docker(name, "path"), check=False, timeout=60)
    assert "x509: certificate signed by unknown authority" in p.stderr, p.stderr
