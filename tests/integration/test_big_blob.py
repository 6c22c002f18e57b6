"""A 1 GiB blob through the gateway with bounded memory (peak RSS asserted, not time)."""
import hashlib
import subprocess
from urllib.parse import urljoin

import pytest

from dgtest.client import V2
from dgtest.gateway import gateway_config
from dgtest.images import random_file

GIB = 1024 ** 3
RSS_LIMIT_KIB = 100 * 1024


def stream_digest(cmd, env):
    """Run cmd writing the body to stdout; return (sha256 digest, bytes, exit code)."""
    h = hashlib.sha256()
    n = 0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as p:
        while True:
            chunk = p.stdout.read(4 << 20)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
        err = p.stderr.read().decode("utf-8", "replace")
        rc = p.wait(timeout=600)
    return "sha256:" + h.hexdigest(), n, rc, err


@pytest.mark.big
def test_one_gib_blob_push_and_pull_bounded_memory(registry_factory, dockgate, client_env,
                                                   big_tmp, capsys):
    reg = registry_factory()  # its own backend: the GiB is deleted with it at teardown
    gw = dockgate(gateway_config({"b": reg.url},
                                 {"docker-local": {"backend": "b", "type": "local"}}))
    at_start = gw.rss_peak_kib()
    src = big_tmp / "one-gib.bin"
    digest = random_file(src, GIB)
    base = f"{gw.url}/v2/docker-local/big/blobs/"

    # Monolithic upload: POST, then PUT <location>&digest= with the file as the body.
    api = gw.api()
    r = api.start_upload("docker-local/big")
    assert r.status_code == 202, r.text
    loc = urljoin(base, r.headers["Location"])
    sep = "&" if "?" in loc else "?"
    out = client_env.curl("-X", "PUT", "-T", src, "-H", "Content-Type: application/octet-stream",
                          "-o", "/dev/null", "-w", "%{http_code}", f"{loc}{sep}digest={digest}",
                          timeout=900)
    assert out.stdout == "201", out.stdout
    after_push = gw.rss_peak_kib()
    assert V2(reg.url).head(f"/v2/big/blobs/{digest}").headers.get("Content-Length") == str(GIB)

    got, n, rc, err = stream_digest(
        ["curl", "--silent", "--show-error", "--fail", "--cacert", str(client_env.cert_dir / "ca.crt"),
         f"{base}{digest}"], client_env.env)
    assert rc == 0, err
    assert n == GIB and got == digest
    peak = gw.rss_peak_kib()
    with capsys.disabled():  # always shown, pass or fail
        print(f"\ndockgate peak RSS (VmHWM): at start {at_start} KiB, after 1 GiB push {after_push} KiB, "
              f"after push+pull {peak} KiB (limit {RSS_LIMIT_KIB} KiB)")
    assert peak < RSS_LIMIT_KIB, f"peak RSS {peak} KiB >= {RSS_LIMIT_KIB} KiB"
