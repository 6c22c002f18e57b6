"""scripts/run-local.sh and scripts/test.sh on a machine without a current Rust (issue 11).

Debian 12's own cargo (1.63) is older than Cargo.toml's rust-version: both scripts must say
how to get a current toolchain (rustup) and stop before installing or building anything.
A fake `cargo` first on PATH plays the old one; an empty PATH entry and HOME play a machine
with none. The version comparison itself is checked as a table.
"""
import os
import re
import stat

import pytest

from dgtest.gateway import REPO_ROOT
from dgtest.proc import run

SCRIPTS = ["run-local.sh", "test.sh"]
WANT = re.search(r'^rust-version\s*=\s*"([0-9.]+)"', (REPO_ROOT / "Cargo.toml").read_text(),
                 re.M).group(1)


def _fake_cargo(directory, version):
    directory.mkdir(parents=True, exist_ok=True)
    cargo = directory / "cargo"
    cargo.write_text(f"#!/bin/sh\necho 'cargo {version} (fake 2022-06-01)'\n")
    cargo.chmod(cargo.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return directory


@pytest.fixture
def root_only():
    if os.geteuid() != 0:
        pytest.skip("the scripts re-run themselves through sudo when not root")


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("cargo", ["old", "missing"])
def test_script_stops_with_rustup_steps(root_only, tmp_path, script, cargo):
    home = tmp_path / "home"  # no ~/.cargo/bin to fall back on
    home.mkdir()
    path = "/usr/sbin:/usr/bin:/sbin:/bin"
    if cargo == "old":
        path = f"{_fake_cargo(tmp_path / 'bin', '1.63.0')}:{path}"
    env = {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8"}
    p = run(["bash", REPO_ROOT / "scripts" / script], env=env, cwd=tmp_path, timeout=60,
            check=False)
    assert p.returncode == 3, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    assert f"needs Rust {WANT} or newer" in p.stderr, p.stderr
    assert ("cargo 1.63.0" if cargo == "old" else "cargo was not found") in p.stderr, p.stderr
    assert "https://sh.rustup.rs | sh -s -- -y" in p.stderr, p.stderr
    assert '. "$HOME/.cargo/env"' in p.stderr, p.stderr
    assert "==>" not in p.stdout + p.stderr, "it went on to install or build"


@pytest.mark.parametrize("have,want,ok", [
    ("1.88.0", "1.88", True), ("1.95.0", "1.88", True), ("1.100.0", "1.88", True),
    ("1.87.0", "1.88", False), ("1.63.0", "1.88", False), ("1.88.0-nightly", "1.88", True),
    ("1.9.0", "1.88", False),
])
def test_version_comparison(have, want, ok):
    p = run(["bash", "-c", f'. scripts/toolchain.sh; version_at_least "{have}" "{want}"'],
            cwd=REPO_ROOT, check=False)
    assert (p.returncode == 0) == ok, (have, want)


def test_current_cargo_passes(root_only):
    if run(["bash", "-c", "command -v cargo"], check=False).returncode != 0:
        pytest.skip("no cargo on PATH")
    p = run(["bash", "-c", ". scripts/toolchain.sh; need_cargo && echo ok"], cwd=REPO_ROOT,
            env=dict(os.environ), check=False)
    assert p.stdout.strip() == "ok", p.stderr
