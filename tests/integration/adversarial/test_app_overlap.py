"""Overlapping namespaces (issue 10, item 4): `dockgate check` refuses them unless the
wider key says allow_overlap, and roles are decided on the backend-side name, so the wider
repository never grants what the narrower one denies."""
import pytest
import requests

from dgtest import images
from dgtest.attack_app import BackendLog, app_setup, error_code
from dgtest.gateway import gateway_config, to_toml
from dgtest.ops import jwt_split
from dgtest.proc import run


def test_check_refuses_overlap_without_the_key(dockgate_binary, pki, tmp_path):
    pki.install(tmp_path)
    repos = {"docker-local": {"backend": "main", "type": "local"},
             "team-a": {"backend": "main", "type": "local", "name_prefix": "team-a/"},
             "elsewhere": {"backend": "other", "type": "local", "name_prefix": "x/"}}
    cfg = gateway_config({"main": "http://127.0.0.1:5000", "other": "http://127.0.0.1:5001"},
                         repos, [{"method": "path", "address": "127.0.0.1:15443"}],
                         server={"runtime_dir": str(tmp_path / "run")})
    path = tmp_path / "dockgate.toml"
    path.write_text(to_toml(cfg))
    p = run([dockgate_binary, "check", "--config", path], check=False, timeout=60)
    assert p.returncode != 0, p.stdout
    msg = p.stderr + p.stdout
    assert "repositories.docker-local" in msg and '"team-a"' in msg, msg
    assert "allow_overlap" in msg and str(path) in msg, msg
    cfg["repositories"]["docker-local"]["allow_overlap"] = True
    path.write_text(to_toml(cfg))
    p = run([dockgate_binary, "check", "--config", path], check=False, timeout=60)
    assert p.returncode == 0, p.stderr


def test_wider_repository_cannot_write_into_narrower_namespace(dockgate, registry_factory,
                                                               client_env, tmp_path, unique):
    app = app_setup(dockgate, registry_factory, unique("ovl"))
    route = app.route("path", "docker-local")
    img = images.make_image((500,))
    layout = images.write_oci_layout(tmp_path / "src", {"1": img})
    storage = app.one.storage / "docker" / "registry" / "v2" / "repositories"
    seen = BackendLog(app.one)
    # Attack: wally may write docker-local but has no role on live, whose namespace
    # (<stem>-w/team/) lies inside docker-local's (<stem>-w/). He pushes docker-local/team/app.
    p = client_env.skopeo_copy(f"oci:{layout}:1", route.docker("team/app", "1"), "--dest-creds",
                               f"wally:{app.users['wally']}", check=False)
    assert p.returncode != 0 and ("denied" in p.stderr.lower() or "403" in p.stderr), p.stderr
    assert not (storage / (app.prefix["live"] + "app")).exists()
    assert not [u for m, u, _ in seen.requests() if m in ("POST", "PUT", "PATCH")], \
        seen.requests()
    # A token for it carries no push (and no pull: live does not let wally read).
    tok = app.token(route, "repository:docker-local/team/app:pull,push", "wally")
    _, claims, _ = jwt_split(tok)
    assert claims["access"] == [{"type": "repository", "name": "docker-local/team/app",
                                 "actions": []}], claims
    r = requests.get(route.base + "/v2/docker-local/team/app/tags/list", verify=app.ca,
                     auth=("wally", app.users["wally"]), timeout=30)
    assert (r.status_code, error_code(r.content)) == (403, ["DENIED"]), r.text
    # Outside the narrower namespace wally's role applies; alice (roles on both) may write.
    client_env.skopeo_copy(f"oci:{layout}:1", route.docker("lib/app", "1"), "--dest-creds",
                           f"wally:{app.users['wally']}")
    client_env.skopeo_copy(f"oci:{layout}:1", route.docker("team/app", "1"), "--dest-creds",
                           f"alice:{app.users['alice']}")
    assert (storage / (app.prefix["live"] + "app")).exists()
