"""README's quick start, run as written (issue 11): the commands are read from README.md.

The shipped conf/dockgate.toml is served the way scripts/run-local.sh serves it (from a
directory holding conf/ and certs/, `[tls] generate = true`), with three substitutions so
it can run beside other tests: a free port for 5443, the test registry for
127.0.0.1:5000, and private runtime and metrics settings. The README block after the
`quickstart` marker then runs line by line, with the same port substitution, in that
directory: podman imports and pushes, skopeo inspects and copies, curl lists the tags,
each trusting dockgate through the trust directory dockgate wrote and printed.
"""
import re
import shutil
import socket
import subprocess
import tempfile
import time

import requests

from dgtest.gateway import REPO_ROOT
from dgtest.ports import free_port
from dgtest.proc import run, stop_process

README = REPO_ROOT / "README.md"
MARKER = "<!-- quickstart:"


def quickstart_commands():
    text = README.read_text()
    after = text[text.index(MARKER):]
    block = re.search(r"```sh\n(.*?)```", after, re.S).group(1)
    return [l for l in block.splitlines() if l.strip() and not l.lstrip().startswith("#")]


def test_readme_quickstart_works_as_written(dockgate_binary, registry, tmp_path, client_env):
    port = free_port()
    while True:  # also free on ::1, which the shipped config listens on too
        try:
            with socket.socket(socket.AF_INET6) as s6:
                s6.bind(("::1", port))
            break
        except OSError as e:
            if e.errno == 99:  # no IPv6 here: dockgate skips [::1] too
                break
            port = free_port()
    work = tmp_path / "checkout"
    (work / "conf").mkdir(parents=True)
    conf = (REPO_ROOT / "conf" / "dockgate.toml").read_text()
    for old, new in (("5443", str(port)), ("http://127.0.0.1:5000", registry.url),
                     ('"/run/dockgate"', f'"{tmp_path / "run"}"'),
                     ('"127.0.0.1:9464"', '"off"')):
        assert old in conf, f"conf/dockgate.toml no longer has {old!r}: update this test"
        conf = conf.replace(old, new)
    (work / "conf" / "dockgate.toml").write_text(conf)

    log = tmp_path / "serve.stderr"
    with open(log, "wb") as err:
        proc = subprocess.Popen([str(dockgate_binary), "serve", "--config", "conf/dockgate.toml"],
                                cwd=work, stdout=subprocess.DEVNULL, stderr=err)
    short = tempfile.mkdtemp(prefix="qs-", dir="/tmp")  # podman wants short run paths
    try:
        ca = work / "certs" / "clients" / f"127.0.0.1:{port}" / "ca.crt"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                requests.get(f"https://127.0.0.1:{port}/v2/", verify=str(ca), timeout=2)
                break
            except (requests.RequestException, OSError):
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        printed = log.read_text()
        # The trust directory: printed at start with the copy commands, only CA files.
        assert f"Clients trust dockgate's CA from {work.resolve()}/certs/clients:" in printed, \
            printed
        for want in ("/etc/docker/certs.d/", "/etc/containers/certs.d/",
                     "/etc/containerd/certs.d/", "update-ca-certificates"):
            assert want in printed, printed
        files = sorted(str(p.relative_to(work / "certs" / "clients"))
                       for p in (work / "certs" / "clients").rglob("*") if p.is_file())
        assert files and all(f.endswith("/ca.crt") for f in files), files
        assert f"127.0.0.1:{port}/ca.crt" in files and f"[::1]:{port}/ca.crt" in files, files

        # podman with private storage, so the machine's images are never touched.
        storage = tmp_path / "storage.conf"
        storage.write_text(f'[storage]\ndriver = "vfs"\nrunroot = "{short}/run"\n'
                           f'graphroot = "{short}/root"\n')
        containers = tmp_path / "containers.conf"
        containers.write_text(f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                              f'tmp_dir = "{short}/tmp"\n')
        env = dict(client_env.env, CONTAINERS_STORAGE_CONF=str(storage),
                   CONTAINERS_CONF=str(containers))
        outputs = []
        for line in quickstart_commands():
            cmd = line.replace("5443", str(port))
            p = run(["bash", "-euo", "pipefail", "-c", cmd], env=env, cwd=work, timeout=180,
                    check=False)
            assert p.returncode == 0, f"README command failed: {line}\n{p.stdout}\n{p.stderr}"
            outputs.append(p.stdout)
        assert '"tags":["1"]' in outputs[-1].replace(" ", ""), outputs[-1]
        assert 'hello' in outputs[-1], outputs[-1]
        assert (work / "hello-oci" / "index.json").is_file()
    finally:
        stop_process(proc)
        shutil.rmtree(short, ignore_errors=True)
