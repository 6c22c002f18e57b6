"""The Debian package (issue 17): built by scripts/package.sh with cargo-deb, inspected with
dpkg-deb, installed with dpkg -i on this machine, checked (dockgate check, systemd-analyze
verify and security on the installed unit), then purged with nothing left behind but the
system user (Debian policy keeps users).

Changes the machine: runs as root only, and holds a lock so two test runs never install at
once. A dockgate package already installed by someone else makes the test skip.
"""
import fcntl
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from dgtest.gateway import REPO_ROOT

LOCK = "/tmp/dockgate-package-test.lock"
EXPECTED = [
    "./usr/bin/dockgate",
    "./usr/lib/systemd/system/dockgate.service",
    "./usr/lib/sysusers.d/dockgate.conf",
    "./usr/lib/tmpfiles.d/dockgate.conf",
    "./etc/dockgate/dockgate.toml",
    "./usr/share/bash-completion/completions/dockgate",
    "./usr/share/zsh/vendor-completions/_dockgate",
    "./usr/share/fish/vendor_completions.d/dockgate.fish",
    "./usr/share/man/man1/dockgate.1.gz",
    "./usr/share/man/man1/dockgate-cert-generate.1.gz",
    "./usr/share/dockgate/grafana/dockgate.json",
    "./usr/share/dockgate/prometheus/dockgate-rules.yml",
]
# What dockgate or its scripts make at install or run time; gone after a purge.
RUNTIME = ["/etc/dockgate", "/var/lib/dockgate"]


def sh(*cmd, check=True, timeout=600, **kw):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                       **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))}: exit {p.returncode}\n"
                             f"{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    return p


def dpkg(*args):
    """dpkg, waiting while another dpkg or apt-get holds the lock."""
    deadline = time.monotonic() + 300
    while True:
        p = sh("dpkg", *args, check=False, timeout=300)
        if p.returncode == 0 or "lock" not in p.stderr or time.monotonic() > deadline:
            return p
        time.sleep(2)


def running(exe):
    pids = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and os.readlink(d / "exe") == exe:
                pids.append(d.name)
        except OSError:
            pass
    return pids


def installed():
    p = sh("dpkg-query", "-W", "-f=${Status}", "dockgate", check=False)
    return p.returncode == 0 and "installed" in p.stdout and "not-installed" not in p.stdout


@pytest.fixture(scope="session")
def deb(dockgate_binary):
    """scripts/package.sh, once per session."""
    if os.geteuid() != 0:
        pytest.skip("the package test installs with dpkg: root only")
    p = sh("bash", REPO_ROOT / "scripts" / "package.sh", timeout=1500, cwd=REPO_ROOT)
    path = Path(p.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.suffix == ".deb", p.stdout
    print(f"package: {path} ({path.stat().st_size >> 20} MiB)")
    return path


@pytest.fixture
def machine_lock():
    with open(LOCK, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        if installed():
            pytest.skip("a dockgate package is already installed here; not touching it")
        yield
        fcntl.flock(f, fcntl.LOCK_UN)


def test_package_contents(deb):
    listing = sh("dpkg-deb", "--contents", deb).stdout
    paths = {l.split()[-1] if " -> " not in l else l.split()[-3] for l in listing.splitlines()}
    missing = [e for e in EXPECTED if e not in paths]
    assert not missing, f"missing {missing}\n{listing}"
    assert re.search(r"^-rwxr-xr-x (root/root|0/0) .* \./usr/bin/dockgate$", listing, re.M), listing
    # docker/podman/skopeo find the credential helper on PATH by this name.
    assert re.search(r"^l\S+ .* \./usr/bin/docker-credential-dockgate -> dockgate$", listing,
                     re.M), listing
    info = sh("dpkg-deb", "--info", deb).stdout
    assert "Package: dockgate" in info and "Depends:" in info, info
    # The config is a conffile: upgrades never overwrite an edited one.
    shutil.rmtree(deb.parent / "ctrl", ignore_errors=True)
    sh("dpkg-deb", "-e", deb, deb.parent / "ctrl")
    assert (deb.parent / "ctrl" / "conffiles").read_text().split() == \
        ["/etc/dockgate/dockgate.toml"]
    for script in ("postinst", "prerm", "postrm"):
        assert (deb.parent / "ctrl" / script).is_file(), script
    shutil.rmtree(deb.parent / "ctrl")


def test_install_check_analyze_purge(deb, machine_lock, tmp_path):
    pid1 = sh("ps", "-p", "1", "-o", "comm=").stdout.strip()
    print(f"PID 1 is {pid1!r}")
    try:
        p = dpkg("-i", deb)
        out = p.stdout + p.stderr
        assert p.returncode == 0, out
        print(out)
        assert "systemctl enable --now dockgate" in out, out  # the next step
        assert installed()
        assert sh("getent", "passwd", "dockgate").stdout.startswith("dockgate:")
        st = os.stat("/var/lib/dockgate")
        assert oct(st.st_mode & 0o777) == "0o700", oct(st.st_mode)
        assert Path("/etc/dockgate/dockgate.toml").owner() == "dockgate"
        # Nothing was started: no process runs the installed binary (test gateways run
        # their own build, elsewhere).
        assert not running("/usr/bin/dockgate")

        p = sh("/usr/bin/dockgate", "check", "--config", "/etc/dockgate/dockgate.toml")
        assert ": ok (" in p.stdout, p.stdout
        v = sh("/usr/bin/dockgate", "--version").stdout
        assert v.startswith("dockgate "), v
        # The helper answers the credential-helper protocol (nothing stored: exit 1 with
        # the protocol's message).
        h = subprocess.run(["/usr/bin/docker-credential-dockgate", "get"],
                           input=b"nowhere.example:1", capture_output=True,
                           env={**os.environ, "DOCKGATE_CREDENTIALS": str(tmp_path / "c.json")})
        assert h.returncode == 1 and b"credentials not found" in h.stdout, h
        assert "dockgate-cert" in sh("man", "-w", "dockgate-cert-generate",
                                     check=False).stdout or Path(
            "/usr/share/man/man1/dockgate-cert-generate.1.gz").is_file()

        # An edited conffile survives a reinstall (an upgrade to the same config).
        conf = Path("/etc/dockgate/dockgate.toml")
        conf.write_text(conf.read_text() + "\n# edited by the admin\n")
        p = dpkg("-i", deb)
        assert p.returncode == 0, p.stdout + p.stderr
        assert conf.read_text().endswith("# edited by the admin\n"), p.stdout
        assert "dockgate is installed, not started" not in p.stdout  # first install only

        unit = "/usr/lib/systemd/system/dockgate.service"
        p = sh("systemd-analyze", "verify", unit, check=False, timeout=120)
        out = (p.stdout + p.stderr).strip()
        assert p.returncode == 0 and not out, f"systemd-analyze verify: {p.returncode}\n{out}"
        p = sh("systemd-analyze", "security", "--offline=yes", unit, check=False, timeout=120)
        m = re.search(r"Overall exposure level for dockgate\.service:\s*([0-9.]+)", p.stdout)
        assert m, p.stdout[-2000:] + p.stderr[-2000:]
        print(f"installed unit: exposure {m.group(1)}")
        assert float(m.group(1)) <= 2.0, p.stdout[-3000:]

        # Something made at run time, as serve would (generated certs), must go on purge.
        Path("/var/lib/dockgate/certs/ca.crt").write_text("made at run time\n")
    finally:
        p = dpkg("--purge", "dockgate")
    assert p.returncode == 0, p.stdout + p.stderr
    assert not installed()
    left = [e[1:] for e in EXPECTED if Path(e[1:]).exists()] + \
        [d for d in RUNTIME if Path(d).exists()]
    assert not left, f"left behind after purge: {left}"
    # Debian policy keeps the system user (files it owned may remain elsewhere).
    print("after purge, user kept:", sh("getent", "passwd", "dockgate", check=False).stdout)
