"""`dockgate` exit codes: 0 ok, 1 runtime failure, 2 usage or config error, 3 certificate
problem (README "Exit codes")."""
from dgtest.gateway import gateway_config, to_toml
from dgtest.ports import free_port
from dgtest.proc import run


def _write(pki, tmp_path, cfg):
    pki.install(tmp_path)
    path = tmp_path / "dockgate.toml"
    path.write_text(to_toml(cfg))
    return path


def _cfg(tmp_path):
    cfg = gateway_config({"main": "http://127.0.0.1:5000"},
                         {"docker-local": {"backend": "main", "type": "local"}},
                         [{"method": "path", "address": f"127.0.0.1:{free_port()}"}],
                         server={"runtime_dir": str(tmp_path / "run")})
    cfg["metrics"] = {"address": "off"}
    return cfg


def test_exit_codes(dockgate_binary, pki, tmp_path):
    def check(cfg, sub):
        d = tmp_path / sub
        d.mkdir()
        path = _write(pki, d, cfg)
        return run([dockgate_binary, "check", "--config", path], check=False, timeout=60)

    assert check(_cfg(tmp_path), "ok").returncode == 0
    bad = _cfg(tmp_path)
    bad["repositories"]["docker-local"]["immutable_tags"] = ["v1/*"]
    p = check(bad, "config")
    assert p.returncode == 2 and "repositories.docker-local.immutable_tags" in p.stderr, p.stderr
    bad = _cfg(tmp_path)
    bad["policy"] = {"allow_networks": ["10.0.0.0/33"]}
    p = check(bad, "network")
    assert p.returncode == 2 and "policy.allow_networks" in p.stderr, p.stderr
    bad = _cfg(tmp_path)
    bad["tls"]["cert"] = "broken.crt"
    d = tmp_path / "cert"
    d.mkdir()
    (d / "broken.crt").write_text("-----BEGIN CERTIFICATE-----\nnot a cert\n-----END CERTIFICATE-----\n")
    path = _write(pki, d, bad)
    p = run([dockgate_binary, "check", "--config", path], check=False, timeout=60)
    assert p.returncode == 3 and "tls" in p.stderr, p.stderr
    p = run([dockgate_binary, "serve", "--config", path], check=False, timeout=60)
    assert p.returncode == 3, p.stderr
    p = run([dockgate_binary, "check", "--no-such-flag"], check=False, timeout=60)
    assert p.returncode == 2, p.stderr


def test_exit_codes_of_other_commands(dockgate_binary, pki, tmp_path):
    # The user, cluster and cert commands choose the code by the error's kind too.
    cfg = _cfg(tmp_path)
    path = _write(pki, tmp_path, cfg)
    p = run([dockgate_binary, "user", "list", "--config", path], check=False, timeout=60)
    assert p.returncode == 2 and "no [auth] section" in p.stderr, p.stderr
    p = run([dockgate_binary, "cluster", "status", "--config", path], check=False, timeout=60)
    assert p.returncode == 2 and "cluster: no [cluster] section" in p.stderr, p.stderr
    cfg["auth"] = {"htpasswd": "users.htpasswd"}
    (tmp_path / "users.htpasswd").write_text("")
    path.write_text(to_toml(cfg))
    p = run([dockgate_binary, "user", "add", "a:b", "--config", path, "--password-stdin"],
            input=b"pw\n", check=False, timeout=60)
    assert p.returncode == 2 and "user names are" in p.stderr, p.stderr
    cfg["listen"][0]["method"] = "paths"
    path.write_text(to_toml(cfg))
    p = run([dockgate_binary, "user", "list", "--config", path], check=False, timeout=60)
    assert p.returncode == 2 and "listen[0].method (line " in p.stderr, p.stderr
    p = run([dockgate_binary, "cert", "inspect", tmp_path / "missing.crt"], check=False,
            timeout=60)
    assert p.returncode == 3 and "missing.crt" in p.stderr, p.stderr
