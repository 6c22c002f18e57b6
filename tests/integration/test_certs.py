"""Issue 3: certificates docker-style clients accept.

Every acceptance is proven with skopeo (Go's crypto/x509, what docker, containerd and
podman use) or Python's verifier, always against a CA; never with curl -k or
--tls-verify=false. `dockgate cert inspect --host` must predict Go's exact error text.
"""
import http.client
import json
import os
import shutil
import stat

from dgtest import images
from dgtest.extra import (ca_only_dir, cert_generate, cert_inspect, cert_sans,  # noqa: F401
                          cert_serial_of, file_serial, install_certs_d, openssl_leaf,
                          peer_cert, pem_count, predicted_go_error, tls_gateway,
                          verifying_context, wait_for)
from dgtest.gateway import gateway_config
from dgtest.ports import free_port
from dgtest.tools import ClientEnv

KEY = "docker-local"
REPOS = {KEY: {"backend": "main", "type": "local"}}


def config_for(registry, cert, key, address, **tls):
    t = {"cert": str(cert), "key": str(key), "reload_interval_seconds": 1}
    t.update(tls)
    cfg = gateway_config({"main": registry.url}, REPOS,
                         [{"method": "path", "address": address}], tls=t)
    cfg["metrics"] = {"address": "off"}  # the default 127.0.0.1:9464 is shared by every gateway
    return cfg


def layout_with_image(path, tag="v1"):
    img = images.make_image((512, 4096))
    return images.write_oci_layout(path, {tag: img}), img


def skopeo_push(client, layout, ref, cert_dir=None, tag="v1", check=True, digestfile=None):
    """skopeo copy oci:LAYOUT:TAG docker://REF; the CA only via --dest-cert-dir when given
    (else the per-host certs.d under the client's HOME, or nothing)."""
    args = ["copy", "--retry-times", "0"]
    if cert_dir:
        args += ["--dest-cert-dir", cert_dir]
    if digestfile:
        args += ["--digestfile", digestfile]
    return client.skopeo(*args, f"oci:{layout}:{tag}", f"docker://{ref}", check=check,
                         timeout=120)


def skopeo_pull(client, ref, out_dir, cert_dir=None, check=True):
    args = ["copy", "--retry-times", "0"]
    if cert_dir:
        args += ["--src-cert-dir", cert_dir]
    return client.skopeo(*args, f"docker://{ref}", f"dir:{out_dir}", check=check, timeout=120)


def assert_go_rejects(proc, expected):
    assert proc.returncode != 0, f"skopeo unexpectedly succeeded:\n{proc.stdout}"
    assert expected in proc.stderr, f"expected {expected!r} in skopeo's error:\n{proc.stderr}"


def assert_inspect_predicts(binary, cert, host, expected):
    rc, out = cert_inspect(binary, cert, host=host)
    assert rc == 2, f"cert inspect --host {host} exit {rc} (want 2 = rejected):\n{out}"
    assert predicted_go_error(out) == expected, f"inspect predicted something else:\n{out}"
    return out


def new_client(tmp_path, name, ca_cert_dir):
    return ClientEnv(tmp_path / name, ca_cert_dir)


# ----------------------------------------------------------------------------------------------
def test_generated_cert_push_pull_by_ip_and_by_name(registry, tls_gateway, dockgate_binary,
                                                     tmp_path, unique):
    port = free_port()
    certs = tmp_path / "certs"
    gen = cert_generate(dockgate_binary, certs, ips=["127.0.0.1"], dns=["localhost"], port=port)
    # What generate promises: CA + chain, private keys 0600, and a trust directory holding
    # only the CA per address, with the copy commands.
    for f in ("ca.crt", "ca.key", "server.crt", "server.key"):
        assert (certs / f).is_file(), f"{f} missing after cert generate:\n{gen.stdout}"
    for f in ("ca.key", "server.key"):
        assert stat.S_IMODE((certs / f).stat().st_mode) == 0o600, f
    assert pem_count(certs / "server.crt") == 2, "server.crt should hold leaf + CA"
    for hp in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert [p.name for p in (certs / "clients" / hp).iterdir()] == ["ca.crt"]
        assert (certs / "clients" / hp / "ca.crt").read_bytes() == (certs / "ca.crt").read_bytes()
    assert f"cp -r {certs}/clients/. /etc/docker/certs.d/" in gen.stdout, gen.stdout
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        rc, out = cert_inspect(dockgate_binary, certs / "server.crt", host=host)
        assert rc == 0, f"inspect --host {host}: exit {rc}\n{out}"
        assert predicted_go_error(out) is None, out

    gw = tls_gateway(config_for(registry, certs / "server.crt", certs / "server.key",
                                f"127.0.0.1:{port}"), certs / "ca.crt")
    cadir = ca_only_dir(certs / "ca.crt", tmp_path / "cadir")
    layout, img = layout_with_image(tmp_path / "layout")
    name = unique("gen")

    # 1. --dest-cert-dir, dialing the IP.
    flags = new_client(tmp_path, "flags", cadir)
    skopeo_push(flags, layout, f"127.0.0.1:{port}/{KEY}/{name}:ip", cert_dir=cadir)
    # 2. Per-host certs.d under HOME, dialing the name; no cert flags at all.
    certsd = new_client(tmp_path, "certsd", cadir)
    install_certs_d(certsd.home, f"localhost:{port}", certs / "ca.crt")
    install_certs_d(certsd.home, f"127.0.0.1:{port}", certs / "ca.crt")
    skopeo_push(certsd, layout, f"localhost:{port}/{KEY}/{name}:name")
    # Pulls, crossed over: by name with the flag, by IP through certs.d.
    skopeo_pull(flags, f"localhost:{port}/{KEY}/{name}:ip", tmp_path / "pull-name",
                cert_dir=cadir)
    skopeo_pull(certsd, f"127.0.0.1:{port}/{KEY}/{name}:name", tmp_path / "pull-ip")
    for d in ("pull-name", "pull-ip"):
        manifest = (tmp_path / d / "manifest.json").read_bytes()
        assert images.sha256_digest(manifest) == img.digest, d  # OCI pushed as is
        for blob in img.blobs:
            assert (tmp_path / d / blob.digest.split(":", 1)[1]).read_bytes() == blob.data

    # Control: the same client without the CA is refused, so the CA is what made it work.
    bare = new_client(tmp_path, "bare", tmp_path / "nowhere")
    p = skopeo_push(bare, layout, f"127.0.0.1:{port}/{KEY}/{name}:noca", check=False)
    assert_go_rejects(p, "x509: certificate signed by unknown authority")
    assert gw.running


def test_ip_not_in_sans_rejected_then_reissue_hot_reloads(registry, tls_gateway,
                                                           dockgate_binary, tmp_path, unique):
    port = free_port()
    certs = tmp_path / "certs"
    cert_generate(dockgate_binary, certs, ips=["127.0.0.1"], dns=["localhost"], port=port)
    ca_before = (certs / "ca.crt").read_bytes()
    old_serial = file_serial(certs / "server.crt")
    expected = "x509: certificate is valid for 127.0.0.1, not 127.0.0.2"
    assert_inspect_predicts(dockgate_binary, certs / "server.crt", f"127.0.0.2:{port}", expected)

    gw = tls_gateway(config_for(registry, certs / "server.crt", certs / "server.key",
                                f"0.0.0.0:{port}"), certs / "ca.crt")
    pid = gw.pid
    cadir = ca_only_dir(certs / "ca.crt", tmp_path / "cadir")
    client = new_client(tmp_path, "client", cadir)
    layout, img = layout_with_image(tmp_path / "layout")
    name = unique("reissue")
    ref = f"127.0.0.2:{port}/{KEY}/{name}:v1"

    p = skopeo_push(client, layout, ref, cert_dir=cadir, check=False)
    assert_go_rejects(p, expected)

    # A keep-alive connection opened before the re-issue (verified for 127.0.0.1).
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=15,
                                       context=verifying_context(certs / "ca.crt"))
    conn.request("GET", "/v2/")
    r = conn.getresponse()
    r.read()
    assert r.status == 200 and not r.will_close, (r.status, r.getheaders())
    sock = conn.sock
    local = sock.getsockname()
    assert cert_serial_of(sock.getpeercert()) == old_serial

    # Re-issue into the same directory: same CA, new leaf with 127.0.0.2.
    out = cert_generate(dockgate_binary, certs, ips=["127.0.0.2", "127.0.0.1"],
                        dns=["localhost"], port=port).stdout
    assert (certs / "ca.crt").read_bytes() == ca_before, f"the CA changed:\n{out}"
    new_serial = file_serial(certs / "server.crt")
    assert new_serial != old_serial
    rc, inspect_out = cert_inspect(dockgate_binary, certs / "server.crt",
                                   host=f"127.0.0.2:{port}")
    assert rc == 0, inspect_out

    wait_for(lambda: cert_serial_of(peer_cert(port, certs / "ca.crt", "127.0.0.2",
                                              connect_ip="127.0.0.2")) == new_serial,
             timeout=15, what="the re-issued cert is served for new handshakes")
    skopeo_push(client, layout, ref, cert_dir=cadir)  # the same command now succeeds
    assert gw.running and gw.pid == pid, "dockgate restarted"

    # The old connection is still the same TLS session and still answers.
    conn.request("GET", "/v2/")
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200 and json.loads(body) == {}
    assert conn.sock is sock and sock.getsockname() == local, "the connection was replaced"
    assert cert_serial_of(sock.getpeercert()) == old_serial
    conn.close()


def test_dns_only_cert_rejected_when_dialing_ip(registry, tls_gateway, dockgate_binary,
                                                tmp_path, unique):
    port = free_port()
    certs = tmp_path / "certs"
    cert_generate(dockgate_binary, certs, dns=["localhost"], port=port)
    expected = ("x509: cannot validate certificate for 127.0.0.1 because it doesn't contain "
                "any IP SANs")
    assert_inspect_predicts(dockgate_binary, certs / "server.crt", f"127.0.0.1:{port}", expected)

    tls_gateway(config_for(registry, certs / "server.crt", certs / "server.key",
                           f"127.0.0.1:{port}"), certs / "ca.crt")
    cadir = ca_only_dir(certs / "ca.crt", tmp_path / "cadir")
    client = new_client(tmp_path, "client", cadir)
    layout, _ = layout_with_image(tmp_path / "layout")
    name = unique("dnsonly")
    p = skopeo_push(client, layout, f"127.0.0.1:{port}/{KEY}/{name}:v1", cert_dir=cadir,
                    check=False)
    assert_go_rejects(p, expected)
    # The same cert is fine for the name it holds.
    skopeo_push(client, layout, f"localhost:{port}/{KEY}/{name}:v1", cert_dir=cadir)


def test_cn_only_cert_rejected_as_legacy_common_name(registry, tls_gateway, dockgate_binary,
                                                     tmp_path, unique):
    port = free_port()
    ca = tmp_path / "ca"
    cert_generate(dockgate_binary, ca, ips=["127.0.0.1"])  # only for its CA
    crt, key = openssl_leaf(ca / "ca.crt", ca / "ca.key", tmp_path / "cn", "server",
                            cn="127.0.0.1", sans=None)
    expected = "x509: certificate relies on legacy Common Name field, use SANs instead"
    assert_inspect_predicts(dockgate_binary, crt, f"127.0.0.1:{port}", expected)

    tls_gateway(config_for(registry, crt, key, f"127.0.0.1:{port}"), ca / "ca.crt")
    cadir = ca_only_dir(ca / "ca.crt", tmp_path / "cadir")
    client = new_client(tmp_path, "client", cadir)
    layout, _ = layout_with_image(tmp_path / "layout")
    p = skopeo_push(client, layout, f"127.0.0.1:{port}/{KEY}/{unique('cn')}:v1",
                    cert_dir=cadir, check=False)
    assert_go_rejects(p, expected)


def test_sni_selects_certificate_by_server_name(registry, tls_gateway, dockgate_binary,
                                                tmp_path):
    port = free_port()
    main = tmp_path / "main"
    cert_generate(dockgate_binary, main, ips=["127.0.0.1"], dns=["localhost"])
    extra = []
    for n in ("a", "b"):
        d = tmp_path / n
        d.mkdir()
        shutil.copyfile(main / "ca.crt", d / "ca.crt")  # cert generate reuses a CA in DIR
        shutil.copyfile(main / "ca.key", d / "ca.key")
        os.chmod(d / "ca.key", 0o600)
        cert_generate(dockgate_binary, d, dns=[f"{n}.registry.test"])
        assert (d / "ca.crt").read_bytes() == (main / "ca.crt").read_bytes()
        extra.append({"cert": str(d / "server.crt"), "key": str(d / "server.key"),
                      "server_names": [f"{n}.registry.test"]})
    tls_gateway(config_for(registry, main / "server.crt", main / "server.key",
                           f"127.0.0.1:{port}", certificates=extra), main / "ca.crt")
    ca = main / "ca.crt"
    for n in ("a", "b"):
        pc = peer_cert(port, ca, server_hostname=f"{n}.registry.test")
        assert cert_sans(pc) == [f"{n}.registry.test"], pc
        assert cert_serial_of(pc) == file_serial(tmp_path / n / "server.crt")
    default_serial = file_serial(main / "server.crt")
    # Bare IP: no SNI at all -> the default cert (verified for 127.0.0.1).
    pc = peer_cert(port, ca, server_hostname="127.0.0.1")
    assert cert_serial_of(pc) == default_serial and "127.0.0.1" in cert_sans(pc), pc
    # A name no cert lists -> the default cert too (chain verified, name not ours).
    pc = peer_cert(port, ca, server_hostname="c.registry.test", check_hostname=False)
    assert cert_serial_of(pc) == default_serial, pc
    pc = peer_cert(port, ca, server_hostname="localhost")
    assert cert_serial_of(pc) == default_serial, pc


def test_corrupt_replacement_is_refused_and_old_cert_keeps_serving(registry, tls_gateway,
                                                                    dockgate_binary, tmp_path):
    port = free_port()
    certs = tmp_path / "certs"
    cert_generate(dockgate_binary, certs, ips=["127.0.0.1"], dns=["localhost"])
    ca = certs / "ca.crt"
    gw = tls_gateway(config_for(registry, certs / "server.crt", certs / "server.key",
                                f"127.0.0.1:{port}"), ca)
    pid = gw.pid
    serial = file_serial(certs / "server.crt")
    assert cert_serial_of(peer_cert(port, ca, "127.0.0.1")) == serial
    original = (certs / "server.crt").read_bytes()
    marks = gw.log_marks()

    (certs / "server.crt").write_bytes(b"this is not a certificate\n" + os.urandom(64))

    def refusal_logged():
        lines = [l for l in gw.log_since_plain(marks).splitlines()
                 if "ERROR" in l and "server.crt" in l]
        return lines

    wait_for(refusal_logged, timeout=15, what="an ERROR naming server.crt in the log")
    for _ in range(3):  # still the old cert, on fresh handshakes
        assert cert_serial_of(peer_cert(port, ca, "127.0.0.1")) == serial
    r = gw.api(f"https://127.0.0.1:{port}").get("/v2/")
    assert r.status_code == 200

    # Restore: still the old cert, and reloading still works afterwards.
    (certs / "server.crt").write_bytes(original)
    assert cert_serial_of(peer_cert(port, ca, "127.0.0.1")) == serial
    cert_generate(dockgate_binary, certs, ips=["127.0.0.1"], dns=["localhost"])
    new_serial = file_serial(certs / "server.crt")
    wait_for(lambda: cert_serial_of(peer_cert(port, ca, "127.0.0.1")) == new_serial,
             timeout=15, what="a valid replacement after a refused one is picked up")
    assert gw.running and gw.pid == pid


def test_tls_generate_at_start_then_kept_on_restart(registry, tls_gateway, tmp_path, unique):
    port = free_port()
    gen = tmp_path / "gen"
    gen.mkdir()  # empty: no CA, no cert, no key
    cfg = config_for(registry, gen / "server.crt", gen / "server.key", f"127.0.0.1:{port}",
                     generate=True, ips=["127.0.0.1"], dns=["localhost"])
    gw = tls_gateway(cfg, gen / "ca.crt")  # the readiness probe waits for the new CA

    for f in ("ca.crt", "ca.key", "server.crt", "server.key"):
        assert (gen / f).is_file(), f"{f} not generated:\n{gw.log_text()}"
    for f in ("ca.key", "server.key"):
        assert stat.S_IMODE((gen / f).stat().st_mode) == 0o600, f
    serial = file_serial(gen / "server.crt")
    ca_bytes = (gen / "ca.crt").read_bytes()
    pc = peer_cert(port, gen / "ca.crt", "127.0.0.1")  # hostname checked
    assert cert_serial_of(pc) == serial
    assert sorted(cert_sans(pc)) == ["127.0.0.1", "localhost"], pc
    cadir = ca_only_dir(gen / "ca.crt", tmp_path / "cadir")
    client = new_client(tmp_path, "client", cadir)
    layout, _ = layout_with_image(tmp_path / "layout")
    skopeo_push(client, layout, f"127.0.0.1:{port}/{KEY}/{unique('gen')}:v1", cert_dir=cadir)

    gw.stop(timeout=5)
    gw.start()
    assert file_serial(gen / "server.crt") == serial, "the cert was re-issued on restart"
    assert (gen / "ca.crt").read_bytes() == ca_bytes
    assert cert_serial_of(peer_cert(port, gen / "ca.crt", "127.0.0.1")) == serial
