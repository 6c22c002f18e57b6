"""The real distribution registry (docker-registry 2.8) as a dockgate backend."""
import json
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import requests

from .ports import free_port, wait_port_closed
from .proc import read_tail, run, stop_process

REGISTRY_BIN = "/usr/bin/docker-registry"


class Registry:
    """One docker-registry process with its own storage; plain http on loopback."""

    def __init__(self, workdir, schema1=False, htpasswd=None, port=None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.storage = self.dir / "storage"
        self.storage.mkdir(exist_ok=True)
        self.port = port or free_port()
        self.schema1 = schema1
        self.htpasswd = htpasswd  # (user, password) or None
        self.config_path = self.dir / "config.yml"
        self.log_path = self.dir / "registry.log"
        self.proc = None
        self._write_config()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def hostport(self):
        return f"127.0.0.1:{self.port}"

    @property
    def auth(self):
        return tuple(self.htpasswd) if self.htpasswd else None

    def _write_config(self):
        # JSON is valid YAML, which spares a YAML dependency.
        cfg = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.hostport, "secret": secrets.token_hex(16)},
        }
        if self.schema1:
            cfg["compatibility"] = {"schema1": {"enabled": True}}
        if self.htpasswd:
            user, password = self.htpasswd
            pw_file = self.dir / "htpasswd"
            run(["htpasswd", "-Bbc", pw_file, user, password])
            cfg["auth"] = {"htpasswd": {"realm": "dockgate-test", "path": str(pw_file)}}
        self.config_path.write_text(json.dumps(cfg, indent=2))

    def start(self, timeout=20.0):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(self.config_path)],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {self.proc.returncode}:\n"
                                   f"{read_tail(self.log_path)}")
            try:
                r = requests.get(self.url + "/v2/", auth=self.auth, timeout=1)
                if r.status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer /v2/ within {timeout}s:\n"
                           f"{read_tail(self.log_path)}")

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)
            wait_port_closed(self.port)

    def restart(self):
        self.stop()
        return self.start()

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        return read_tail(self.log_path, 200000)

    def remove_storage(self):
        shutil.rmtree(self.storage, ignore_errors=True)
