"""Driver for bench/schema1.sh: real docker-registry 2.8 backends in RAM, skopeo, dockgate."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from dgtest.backend import Registry  # noqa: E402
from dgtest.gateway import gateway_config, to_toml  # noqa: E402
from dgtest.images import Blob, Image, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST  # noqa: E402
from dgtest.images import write_oci_layout, sha256_digest  # noqa: E402
from dgtest.schema1 import schema2_tags  # noqa: E402

BIN = ROOT / "target" / "release" / "dockgate"


def timed(cmd):
    """(seconds, peak RSS MiB) of a command under /usr/bin/time -v."""
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-v", *map(str, cmd)], capture_output=True, text=True)
    took = time.monotonic() - t0
    if p.returncode not in (0, 1):
        raise SystemExit(f"{cmd} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    return took, rss / 1024


def big_layout(d, mib):
    """An OCI layout whose one layer is `mib` MiB of random data in a gzipped tar (made
    with the system tar+gzip, streaming)."""
    d.mkdir(parents=True)
    payload = d / "payload.bin"
    with open(payload, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    layer = d / "layer.tar.gz"
    subprocess.run(f"tar -C {d} -cf - payload.bin | gzip -1 > {layer}", shell=True, check=True)
    payload.unlink()
    h = subprocess.run(["sha256sum", layer], capture_output=True, text=True, check=True)
    digest = "sha256:" + h.stdout.split()[0]
    diff = subprocess.run(f"gzip -dc {layer} | sha256sum", shell=True, capture_output=True,
                          text=True, check=True).stdout.split()[0]
    cfg = Blob(json.dumps({"architecture": "amd64", "os": "linux",
                           "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff]},
                           "history": [{"created_by": "bench"}]}).encode(), OCI_CONFIG)
    size = layer.stat().st_size
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": cfg.descriptor(),
                           "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": digest,
                                       "size": size}]}).encode()
    out = d / "layout"
    write_oci_layout(out, {"v1": Image(config=cfg, layers=[], manifest=manifest,
                                       media_type=OCI_MANIFEST)})
    shutil.move(layer, out / "blobs" / "sha256" / digest.split(":")[1])
    return out


def main(mib, tags):
    work = Path(tempfile.mkdtemp(prefix="dg-s1-bench-", dir="/dev/shm"))
    regs = []
    try:
        regs = [Registry(work / f"r{i}", schema1=True).start() for i in range(2)]
        cfg = gateway_config({"a": regs[0].url, "b": regs[1].url},
                             {"ra": {"backend": "a", "type": "local"},
                              "rb": {"backend": "b", "type": "local"}})
        # scan and convert never listen; the config still needs a valid listener.
        cfg["listen"][0]["address"] = "127.0.0.1:1"
        cfg["metrics"] = {"address": "off"}
        conf = work / "dockgate.toml"
        conf.write_text(to_toml(cfg))
        per = tags // 8
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda a: schema2_tags(a[0].url, f"bulk{a[1]}",
                                                 [f"t{i}" for i in range(per)]),
                          [(r, p) for r in regs for p in range(4)]))
        for conc in (8, 32):
            took, rss = timed([BIN, "schema1", "scan", "-c", conf, "--format", "json",
                               "--concurrency", conc])
            print(f"scan: {8 * per} tags, concurrency {conc}: {took:.1f}s "
                  f"({8 * per / took:.0f} tags/s), peak RSS {rss:.0f} MiB")

        layout = big_layout(work / "big", mib)
        env = dict(os.environ, HOME=str(work / "home"))
        for name in ("conv/app", "ref/app"):
            subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "--format", "v2s1",
                            f"oci:{layout}:v1", f"docker://{regs[0].hostport}/{name}:v1"],
                           check=True, env=env)
        took, rss = timed(["skopeo", "copy", "--src-tls-verify=false",
                           "--dest-tls-verify=false", "--format", "v2s2",
                           f"docker://{regs[0].hostport}/ref/app:v1",
                           f"docker://{regs[0].hostport}/ref2/app:v1"])
        print(f"skopeo copy --format v2s2, {mib} MiB layer: {took:.1f}s, peak RSS {rss:.0f} MiB")
        took2, rss2 = timed([BIN, "schema1", "convert", "-c", conf, "--repository", "ra",
                             "--image", "conv/app", "--journal", work / "j.jsonl"])
        print(f"dockgate schema1 convert, {mib} MiB layer: {took2:.1f}s, peak RSS {rss2:.0f} MiB "
              f"({took / took2:.2f}x skopeo's speed)")
    finally:
        for r in regs:
            r.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
