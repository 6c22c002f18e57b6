"""Real clients (skopeo, buildah, curl) run with per-test isolation.

Every ClientEnv has its own HOME, TMPDIR, XDG dirs and auth file, so nothing is read
from or written to the machine's container configuration. containers/image's blob-info
cache for root lives in /var/lib/containers/cache regardless of HOME, so tests also use
fresh random layers: the cache can then never claim a blob already exists remotely.
"""
import os
from pathlib import Path

from .proc import run


class ClientEnv:
    def __init__(self, workdir, cert_dir):
        self.dir = Path(workdir)
        self.home = self.dir / "home"
        self.tmp = self.dir / "tmp"
        for p in (self.home, self.tmp, self.dir / "xdg-runtime"):
            p.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir / "xdg-runtime", 0o700)
        self.cert_dir = Path(cert_dir)
        self.auth_file = self.dir / "auth.json"
        self.auth_file.write_text('{"auths": {}}')
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            "XDG_RUNTIME_DIR": str(self.dir / "xdg-runtime"),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "REGISTRY_AUTH_FILE": str(self.auth_file),
            "LANG": "C.UTF-8",
        }
        self._buildah_root = self.dir / "buildah-root"
        self._buildah_runroot = self.dir / "buildah-runroot"

    # skopeo -------------------------------------------------------------------------------
    def skopeo(self, *args, timeout=300, check=True):
        return run(["skopeo", *args], env=self.env, timeout=timeout, check=check)

    def skopeo_copy(self, src, dst, *extra, digestfile=None, timeout=300, check=True):
        """Copy with TLS verified against the test CA on whichever side is https (docker://)."""
        args = ["copy", "--retry-times", "0"]
        if src.startswith("docker://"):
            args += ["--src-cert-dir", self.cert_dir]
        if dst.startswith("docker://"):
            args += ["--dest-cert-dir", self.cert_dir]
        if digestfile:
            args += ["--digestfile", digestfile]
        return self.skopeo(*args, *extra, src, dst, timeout=timeout, check=check)

    def skopeo_inspect_raw(self, ref, timeout=60):
        return self.skopeo("inspect", "--raw", "--cert-dir", self.cert_dir, ref,
                           timeout=timeout).stdout

    # buildah ------------------------------------------------------------------------------
    def buildah(self, *args, timeout=300, check=True):
        base = ["buildah", "--root", self._buildah_root, "--runroot", self._buildah_runroot,
                "--storage-driver", "vfs"]
        env = dict(self.env, BUILDAH_ISOLATION="chroot", STORAGE_DRIVER="vfs")
        return run([*base, *args], env=env, timeout=timeout, check=check)

    def buildah_build_scratch(self, tag, files: dict, platform=None):
        """`buildah bud` a FROM scratch image that COPYs the given {name: bytes} files."""
        ctx = self.dir / f"ctx-{tag.replace('/', '_').replace(':', '_')}"
        ctx.mkdir(parents=True, exist_ok=True)
        lines = ["FROM scratch"]
        for name, data in files.items():
            (ctx / name).write_bytes(data)
            lines.append(f"COPY {name} /{name}")
        (ctx / "Containerfile").write_text("\n".join(lines) + "\n")
        args = ["bud", "--isolation", "chroot", "--layers=false", "-f", ctx / "Containerfile",
                "-t", tag]
        if platform:
            args += ["--platform", platform]
        self.buildah(*args, ctx)
        return tag

    # curl ---------------------------------------------------------------------------------
    def curl(self, *args, timeout=600, check=True, stdin=None):
        cmd = ["curl", "--silent", "--show-error", "--cacert", self.cert_dir / "ca.crt", *args]
        return run(cmd, env=self.env, timeout=timeout, check=check, stdin=stdin)
