"""`dockgate check` on the repository's own conf/dockgate.toml and on broken configs."""
import shutil

import pytest

from dgtest.gateway import REPO_ROOT, gateway_config, to_toml
from dgtest.proc import run

REPO_CONF = REPO_ROOT / "conf" / "dockgate.toml"


def test_repo_default_config_passes_check(dockgate_binary, pki, tmp_path):
    # Same layout as the repository (conf/ next to certs/), so the file's own relative
    # paths "../certs/server.crt" and "../certs/server.key" resolve, unchanged.
    (tmp_path / "conf").mkdir()
    conf = tmp_path / "conf" / "dockgate.toml"
    shutil.copyfile(REPO_CONF, conf)
    pki.install(tmp_path / "certs")
    p = run([dockgate_binary, "check", "--config", conf], check=False, timeout=60,
            cwd=tmp_path)  # cwd is not the config dir: paths must resolve against the file
    assert p.returncode == 0, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"


def _check(dockgate_binary, pki, tmp_path, cfg):
    pki.install(tmp_path)
    path = tmp_path / "dockgate.toml"
    path.write_text(cfg if isinstance(cfg, str) else to_toml(cfg))
    return run([dockgate_binary, "check", "--config", path], check=False, timeout=60,
               cwd="/")


def _base():
    return gateway_config({"main": "http://127.0.0.1:5000"},
                          {"docker-local": {"backend": "main", "type": "local"}},
                          [{"method": "path", "address": "127.0.0.1:15443"}],
                          server={"runtime_dir": "/tmp/dockgate-check-test"})


def test_generated_config_passes_check(dockgate_binary, pki, tmp_path):
    p = _check(dockgate_binary, pki, tmp_path, _base())
    assert p.returncode == 0, f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}"


@pytest.mark.parametrize("breakage", ["unknown-backend", "missing-cert", "port-unknown-repo",
                                      "not-toml", "unknown-method", "unknown-type"])
def test_broken_config_fails_check(dockgate_binary, pki, tmp_path, breakage):
    cfg = _base()
    needle = None
    if breakage == "unknown-backend":
        cfg["repositories"]["docker-local"]["backend"] = "nosuchbackend"
        needle = "nosuchbackend"
    elif breakage == "missing-cert":
        cfg["tls"]["cert"] = "does-not-exist.crt"
        needle = "does-not-exist.crt"
    elif breakage == "port-unknown-repo":
        cfg["listen"].append({"method": "port", "address": "127.0.0.1:15444",
                              "repository": "nosuchrepo"})
        needle = "nosuchrepo"
    elif breakage == "unknown-method":
        # serde refuses the value; the message names file, key, line and the choices.
        cfg["listen"][0]["method"] = "paths"
        needle = ("dockgate.toml: listen[0].method (line ",
                  "unknown variant `paths`, expected one of `path`, `subdomain`, `port`")
    elif breakage == "unknown-type":
        cfg["repositories"]["docker-local"]["type"] = "virtual"
        needle = ("dockgate.toml: repositories.docker-local.type (line ",
                  "expected `local` or `remote`")
    else:
        cfg = "[server\nthreads = = 2\n"
    p = _check(dockgate_binary, pki, tmp_path, cfg)
    assert p.returncode != 0, f"check accepted a broken config ({breakage})\n{p.stdout}{p.stderr}"
    for n in (needle,) if isinstance(needle, str) else needle or ():
        assert n in p.stdout + p.stderr, f"error should name {n!r}:\n{p.stdout}{p.stderr}"
    if breakage.startswith("unknown-"):
        assert p.returncode == 2, p.stderr
