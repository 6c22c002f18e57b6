"""The first hour and the bad day (issue 11): the CLI and start-up failures an operator meets.

`--version` and `--help`; `cert generate | head -1` on a closed pipe; `check` refusing a
missing htpasswd file, a metrics address on a listener and absurd thread counts, and
warning (not failing) about an open listener without [auth]; a taken port ending `serve`
within seconds with the address and its holder; `user add` without a terminal; and the
`user` commands keeping the owner of the files a service user reads, then that user
serving with them.
"""
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from dgtest.gateway import gateway_config, to_toml
from dgtest.ports import free_port
from dgtest.proc import run, stop_process

ANSI = "\x1b["


def _config_dir(pki, tmp_path, cfg):
    pki.install(tmp_path)
    path = tmp_path / "dockgate.toml"
    path.write_text(cfg if isinstance(cfg, str) else to_toml(cfg))
    return path


def _base(tmp_path, listen="127.0.0.1", **extra):
    cfg = gateway_config({"main": "http://127.0.0.1:5000"},
                         {"docker-local": {"backend": "main", "type": "local"}},
                         [{"method": "path", "address": f"{listen}:{free_port()}"}],
                         server={"runtime_dir": str(tmp_path / "run")})
    cfg["metrics"] = {"address": "off"}
    cfg.update(extra)
    return cfg


def test_version_names_the_commit(dockgate_binary):
    out = run([dockgate_binary, "--version"]).stdout
    assert re.fullmatch(r"dockgate \d+\.\d+\.\d+ \(commit ([0-9a-f]{7,40}|unknown)\)\n", out), out
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                          text=True, cwd=Path(__file__).parent)
    if head.returncode == 0 and "-dirty" not in out:
        # Built from this checkout (the suite's binary is): the same commit, or an older
        # one if HEAD moved since the build.
        assert "commit unknown" not in out, out


def _help(binary, cmd):
    return run([binary, *cmd, "--help"]).stdout


def _subcommands(text):
    names, section = [], None
    for line in text.splitlines():
        if re.match(r"^\S.*:$", line):
            section = line
            continue
        m = re.match(r"^  (\S+)\s", line)
        if section == "Commands:" and m and m.group(1) != "help":
            names.append(m.group(1))
    return names


def all_commands(binary):
    """Every command path, found through the help itself (new subcommands are covered)."""
    out, todo = [], [[]]
    while todo:
        cmd = todo.pop(0)
        out.append(cmd)
        todo += [cmd + [s] for s in _subcommands(_help(binary, cmd))]
    return out


def test_every_argument_is_described(dockgate_binary):
    undescribed = {}
    commands = all_commands(dockgate_binary)
    for cmd in commands:
        text = _help(dockgate_binary, cmd)
        section = None
        for line in text.splitlines():
            if re.match(r"^(Arguments|Options|Commands):", line):
                section = line
                continue
            m = re.match(r"^  (\S.*?)(?:\s{2,}(.*))?$", line)
            if section and m and not (m.group(2) or "").strip() \
                    or (m and (m.group(2) or "").lstrip().startswith("[")):
                undescribed.setdefault(" ".join(cmd) or "dockgate", []).append(line.strip())
        if cmd == ["cert", "generate"]:
            for want in ("[default: ecdsa-p256]", "[default: 200]", "[default: 5443]",
                         "rsa-4096"):
                assert want in text, text
        if cmd in (["check"], ["serve"], ["user", "list"]):
            assert "[default: /etc/dockgate/dockgate.toml]" in text, text
    assert ["user", "delete"] in commands and ["user", "list"] in commands, commands
    assert not undescribed, f"arguments without a description: {undescribed}"


def test_closed_pipe_ends_quietly(dockgate_binary, tmp_path):
    # stdout closes after one line; the rest of the report must not panic.
    p = subprocess.run(["bash", "-c", f'"{dockgate_binary}" cert generate --out "{tmp_path}/c" '
                        f'--ip 127.0.0.1 --port 5443 | head -1; echo "status=${{PIPESTATUS[0]}}"'],
                       capture_output=True, text=True, timeout=60)
    assert p.stdout.startswith("CA:"), p.stdout
    status = int(p.stdout.strip().rsplit("status=", 1)[1])
    assert status in (0, 141), f"exit {status} (141 = ended by SIGPIPE, like cat)\n{p.stderr}"
    assert "panicked" not in p.stderr and p.stderr == "", p.stderr
    p = subprocess.run(["bash", "-c", f'"{dockgate_binary}" --help | head -1'],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stderr == "", p.stderr


@pytest.mark.parametrize("breakage", ["missing-htpasswd", "metrics-on-listener",
                                      "metrics-on-wildcard", "threads"])
def test_check_refuses_naming_the_key(dockgate_binary, pki, tmp_path, breakage):
    cfg = _base(tmp_path)
    listen = cfg["listen"][0]["address"]
    if breakage == "missing-htpasswd":
        cfg["auth"] = {"htpasswd": "nope.htpasswd"}
        key = "auth.htpasswd"
    elif breakage == "metrics-on-listener":
        cfg["metrics"] = {"address": listen}
        key = "metrics.address"
    elif breakage == "metrics-on-wildcard":
        cfg["metrics"] = {"address": "0.0.0.0:" + listen.rsplit(":", 1)[1]}
        key = "metrics.address"
    else:
        cfg["server"]["threads"] = 100000000
        key = "server.threads"
    path = _config_dir(pki, tmp_path, cfg)
    p = run([dockgate_binary, "check", "--config", path], check=False, timeout=60)
    assert p.returncode == 2, f"check accepted {breakage}\n{p.stdout}{p.stderr}"
    assert f"{path}: {key}" in p.stderr, p.stderr
    assert "panicked" not in p.stderr


def test_check_warns_about_an_open_listener_without_auth(dockgate_binary, pki, tmp_path):
    path = _config_dir(pki, tmp_path, _base(tmp_path, listen="0.0.0.0"))
    p = run([dockgate_binary, "check", "--config", path], check=False, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "warning:" in p.stderr and "listen[0].address" in p.stderr and "[auth]" in p.stderr, \
        p.stderr
    quiet = _config_dir(pki, tmp_path, _base(tmp_path))
    p = run([dockgate_binary, "check", "--config", quiet], check=False, timeout=60)
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr


def test_taken_port_exits_at_once_naming_it(dockgate_binary, pki, tmp_path):
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        cfg = _base(tmp_path)
        cfg["listen"].append({"method": "path", "address": f"127.0.0.1:{port}"})
        path = _config_dir(pki, tmp_path, cfg)
        t0 = time.monotonic()
        p = subprocess.run([str(dockgate_binary), "serve", "--config", str(path)],
                           capture_output=True, text=True, timeout=20)
        took = time.monotonic() - t0
    finally:
        holder.close()
    assert p.returncode != 0, p.stderr
    assert took < 10, f"took {took:.1f}s"
    assert f"listen[1].address: 127.0.0.1:{port}: address already in use" in p.stderr, p.stderr
    assert f"(pid {os.getpid()})" in p.stderr, p.stderr  # this test process holds it
    assert "panicked" not in p.stderr and ANSI not in p.stderr, p.stderr


def test_user_add_without_a_terminal_says_password_stdin(dockgate_binary, pki, tmp_path):
    cfg = _base(tmp_path, auth={"htpasswd": "users.htpasswd"})
    path = _config_dir(pki, tmp_path, cfg)
    p = subprocess.run([str(dockgate_binary), "user", "add", "alice", "--config", str(path)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
                       start_new_session=True)  # no controlling terminal
    assert p.returncode == 1, p.stderr
    assert "--password-stdin" in p.stderr and "os error" not in p.stderr, p.stderr


@pytest.fixture
def service_user():
    if os.geteuid() != 0:
        pytest.skip("needs root (runs commands as root and as the nobody user)")
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no nobody user")


def _as(user, cmd):
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
            "--", *map(str, cmd)]


def test_user_commands_as_root_keep_files_readable_by_the_service_user(
        dockgate_binary, pki, service_user):
    # The systemd layout: config, htpasswd and state belong to the service user; an
    # operator runs the user commands as root; the service (here: nobody) then serves.
    base = Path(tempfile.mkdtemp(prefix="dockgate-owner-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        cfg = _base(base, auth={"htpasswd": "users.htpasswd", "state_dir": "state"})
        path = _config_dir(pki, base, cfg)
        (base / "state").mkdir()
        htpasswd = base / "users.htpasswd"
        htpasswd.write_text("")
        os.chmod(htpasswd, 0o600)
        for p in [base, *base.rglob("*")]:
            os.chown(p, service_user.pw_uid, service_user.pw_gid)

        for name, pw in (("alice", "pw-alice-1"), ("bob", "pw-bob-1"), ("alice", "pw-alice-2")):
            run([dockgate_binary, "user", "add", name, "--config", path, "--password-stdin"],
                input=f"{pw}\n".encode())
        run([dockgate_binary, "user", "revoke-keys", "alice", "--config", path])
        assert run([dockgate_binary, "user", "list", "--config", path]).stdout == "alice\nbob\n"
        run([dockgate_binary, "user", "delete", "bob", "--config", path])
        p = run([dockgate_binary, "user", "delete", "bob", "--config", path], check=False)
        assert p.returncode == 1 and "no such user" in p.stderr, p.stderr
        assert run([dockgate_binary, "user", "list", "--config", path]).stdout == "alice\n"
        for f in [htpasswd, *(base / "state").iterdir()]:
            st = f.stat()
            assert (st.st_uid, st.st_gid) == (service_user.pw_uid, service_user.pw_gid), f
            assert st.st_mode & 0o077 == 0 or f.parent.name == "state", (f, oct(st.st_mode))
        assert htpasswd.stat().st_mode & 0o777 == 0o600

        # Another non-root user may not take the file over: told whose it is.
        os.chown(htpasswd, 0, 0)
        p = run(_as(service_user, [dockgate_binary, "user", "add", "carol", "--config", path,
                                   "--password-stdin"]), input=b"pw\n", check=False)
        assert p.returncode == 1 and "belongs to user root" in p.stderr, p.stderr
        os.chown(htpasswd, service_user.pw_uid, service_user.pw_gid)

        # The service user serves with what root wrote: alice logs in.
        port = int(cfg["listen"][0]["address"].rsplit(":", 1)[1])
        log = open(base / "serve.log", "wb")
        proc = subprocess.Popen(_as(service_user, [dockgate_binary, "serve", "--config", path]),
                                stdout=log, stderr=subprocess.STDOUT, cwd=base)
        try:
            deadline = time.monotonic() + 30
            r = None
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    r = requests.get(f"https://127.0.0.1:{port}/v2/auth",
                                     auth=("alice", "pw-alice-2"), verify=str(pki.ca_crt),
                                     timeout=5)
                    break
                except requests.RequestException:
                    time.sleep(0.2)
            text = (base / "serve.log").read_text(errors="replace")
            assert r is not None and r.status_code == 200, text
            assert ANSI not in text, "colour codes in a log that is not a terminal"
        finally:
            stop_process(proc)
            log.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _serve_on_a_terminal(binary, path, extra_env):
    """Run `serve` with a pseudo-terminal as stdout and stderr until it says it is serving."""
    import pty
    import select
    import signal
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "xterm", **extra_env}
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once
        os.execve(str(binary), [str(binary), "serve", "--config", str(path)], env)
    out = b""
    deadline = time.monotonic() + 20
    try:
        while b"dockgate serving" not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    break
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        os.close(fd)
    return out.decode("utf-8", "replace")


def test_colour_only_on_a_terminal_and_never_with_no_color(dockgate_binary, pki, tmp_path):
    path = _config_dir(pki, tmp_path, _base(tmp_path))
    coloured = _serve_on_a_terminal(dockgate_binary, path, {})
    assert "dockgate serving" in coloured and ANSI in coloured, coloured
    plain = _serve_on_a_terminal(dockgate_binary, path, {"NO_COLOR": "1"})
    assert "dockgate serving" in plain and ANSI not in plain, plain
