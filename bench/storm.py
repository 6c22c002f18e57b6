#!/usr/bin/env python3
"""Pull storm (issue 16): CLIENTS concurrent clients fetch the same blob (STORM_MIB) and the
same manifest by digest through a proxy, cold (empty cache) then warm, for

  dockgate with [cache]              (one backend fetch, waiters stream from the partial file)
  nginx plain, Artifactory-style     (every request reaches the backend)
  nginx proxy_cache + proxy_cache_lock (the best an nginx user can do)

Reported per row: backend requests (the backend's own access log), aggregate MB/s
(clients x size / h2load's wall time), proxy CPU-seconds per GiB delivered, proxy peak RSS.
The backend is bench.py's nginx serving files. Clients: `h2load --h1` (Go clients pull over
HTTP/1.1), one connection and one request per client. Run through bench/storm.sh.
"""
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402

CLIENTS = b.env_int("CLIENTS", 100)
STORM_MIB = b.env_int("STORM_MIB", 256)
P_DGC = b.PORT_BASE + 50      # dockgate with [cache]
P_NPLAIN = b.PORT_BASE + 51   # nginx plain
P_NCACHE = b.PORT_BASE + 52   # nginx proxy_cache
P_BACK = b.PORT_BASE + 53     # backend nginx (plain HTTP, access log on)
STORM = os.path.join(b.RUN, "storm")
# Which proxies (dockgate, plain, cached) and how many warm storms each (rows per round).
STORM_TARGETS = os.environ.get("STORM_TARGETS", "dockgate,plain,cached").split(",")
WARM_ROUNDS = b.env_int("WARM_ROUNDS", 1)
# STORM_PERF=1: perf record of the proxy during its warm blob storms, into STORM/perf-<proxy>-<n>.data.
STORM_PERF = os.environ.get("STORM_PERF") == "1"


def backend_conf(manifest_digest):
    name = "storm-backend"
    return (b.NGINX_COMMON.format(run=STORM, name=name) + f"""
worker_processes {b.THREADS};
http {{
  default_type application/octet-stream;
  access_log {STORM}/backend.access.log;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
{b.NGINX_TEMP.format(run=STORM, name=name)}
  server {{
    listen 127.0.0.1:{P_BACK} backlog=4096;
    root {b.WWW};
    location ~ ^/v2/.+/manifests/ {{
      default_type application/vnd.oci.image.manifest.v1+json;
      add_header Docker-Content-Digest {manifest_digest};
    }}
    location ~ "^/v2/.+/blobs/(sha256:[0-9a-f]{{64}})$" {{
      add_header Docker-Content-Digest $1;
    }}
  }}
}}
""")


def nginx_conf(name, port, cache):
    cache_path = f"proxy_cache_path {STORM}/{name}-cache levels=1:2 keys_zone={name}:10m " \
                 f"max_size=4g inactive=1h use_temp_path=off;" if cache else ""
    # proxy_cache needs proxy_buffering on; the lock holds waiters until the
    # whole object is cached (5 s by default, then they go to the backend).
    caching = f"""
      proxy_buffering on;
      proxy_cache {name};
      proxy_cache_key $uri;
      proxy_cache_valid 200 1h;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 600s;
      proxy_cache_lock_age 600s;
      proxy_ignore_headers Cache-Control Expires Set-Cookie;""" if cache else """
      proxy_buffering off;"""
    return (b.NGINX_COMMON.format(run=STORM, name=name) + f"""
worker_processes {b.THREADS};
http {{
  default_type application/octet-stream;
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
{b.NGINX_TEMP.format(run=STORM, name=name)}
  {cache_path}
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:1m;
  ssl_certificate {b.CERTS}/server-chain.crt;
  ssl_certificate_key {b.CERTS}/server.key;
  upstream artifactory {{
    server 127.0.0.1:{P_BACK};
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port} ssl http2 backlog=4096;
    rewrite ^/v2/bench/(.*) /v2/$1 break;
    client_max_body_size 0;
    keepalive_requests 1000000;
    location / {{
      proxy_read_timeout 2400s;
      proxy_buffer_size 128k;
      proxy_buffers 40 128k;
      proxy_busy_buffers_size 128k;
      proxy_request_buffering off;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_pass http://artifactory;{caching}
    }}
  }}
}}
""")


def dockgate_conf():
    return f"""# written by bench/storm.py
[server]
threads = {b.THREADS}
grace_period_seconds = 1
graceful_shutdown_timeout_seconds = 1
runtime_dir = "{STORM}/dockgate-runtime"
max_connections_per_client = {CLIENTS * 4}

[tls]
cert = "{b.CERTS}/server-chain.crt"
key = "{b.CERTS}/server.key"

[[listen]]
address = "127.0.0.1:{P_DGC}"
method = "path"

[backends.b]
url = "http://127.0.0.1:{P_BACK}"

[repositories.bench]
backend = "b"
cache = true

[cache]
dir = "{STORM}/dockgate-cache"
max_size = "{max(4096, 4 * STORM_MIB)}MiB"

[metrics]
address = "off"
"""


def make_data():
    blob, hexd = b.random_file(f"blob-{STORM_MIB}MiB.bin", STORM_MIB)
    shutil.rmtree(b.WWW, ignore_errors=True)
    blobs = os.path.join(b.WWW, "v2", b.IMAGE, "blobs")
    mans = os.path.join(b.WWW, "v2", b.IMAGE, "manifests")
    os.makedirs(blobs)
    os.makedirs(mans)
    os.symlink(blob, os.path.join(blobs, f"sha256:{hexd}"))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + "0" * 64, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": f"sha256:{hexd}", "size": STORM_MIB * b.MiB}],
    }, indent=3).encode()
    import hashlib
    mdigest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    with open(os.path.join(mans, mdigest), "wb") as f:
        f.write(manifest)
    with open(blob, "rb") as f:  # page cache
        while f.read(8 * b.MiB):
            pass
    return hexd, mdigest, len(manifest)


def start(name, argv, port):
    p = b.spawn(name, argv)
    b.wait_port(port, p, name)
    time.sleep(0.3)
    return p


def backend_requests(what):
    try:
        with open(os.path.join(STORM, "backend.access.log")) as f:
            return sum(1 for line in f if what in line)
    except FileNotFoundError:
        return 0


def storm(target, pids, url, what, size, headers=(), perf_out=None):
    b.wait_quiet()
    perf = None
    if perf_out:
        import subprocess
        perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "499", "--call-graph", "dwarf,16384",
                                 "-p", ",".join(map(str, pids)), "-o", perf_out],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
    before = backend_requests(what)
    rss = b.RssSampler(pids)
    rss.start()
    cpu0, k0, s0 = b.cpu_seconds(pids), b.children_cpu(), b.system_busy_seconds()
    argv_headers = list(headers)
    res = h2load_h1(url, argv_headers)
    cpu = b.cpu_seconds(pids) - cpu0
    client = b.children_cpu() - k0
    other = max(0.0, b.system_busy_seconds() - s0 - cpu - client)
    peak = rss.stop()
    if perf:
        import signal
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=120)
    total = CLIENTS * size
    return {"target": target, "what": what, "backend_requests": backend_requests(what) - before,
            "mb_s": total / res["time_s"] / 1e6, "time_s": res["time_s"],
            "cpu_s_per_gib": cpu / (total / b.GiB), "cpu_s": cpu, "peak_rss_mib": peak / 1024,
            "succeeded": res["succeeded"], "client_cpu_s": client, "other_cpu_s": other}


def h2load_h1(url, headers):
    argv = ["h2load", "--h1", "-t1", f"-c{CLIENTS}", f"-n{CLIENTS}", "-m1"]
    for h in headers:
        argv += ["-H", h]
    r = b.sh(argv + [url], timeout=1800)
    import re
    fin = re.search(r"finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s", r.stdout)
    ok = re.search(r"(\d+) succeeded", r.stdout)
    s2 = re.search(r"status codes: (\d+) 2xx", r.stdout)
    if not fin or not ok or int(ok.group(1)) != CLIENTS or not s2 or int(s2.group(1)) != CLIENTS:
        raise RuntimeError(f"h2load {url}:\n{r.stdout}\n{r.stderr}")
    return {"time_s": b.parse_dur_ms(fin.group(1) + fin.group(2)) / 1000,
            "succeeded": int(ok.group(1))}


def main():
    dockgate_bin = os.environ.get("DOCKGATE_BIN") or os.path.join(b.REPO, "target/release/dockgate")
    os.makedirs(b.RUN, exist_ok=True)
    b.stop_leftovers()
    shutil.rmtree(STORM, ignore_errors=True)
    os.makedirs(os.path.join(STORM, "tmp"))
    b.make_certs()
    hexd, mdigest, mlen = make_data()
    with open(os.path.join(STORM, "backend.conf"), "w") as f:
        f.write(backend_conf(mdigest))
    start("storm-backend", ["nginx", "-p", STORM, "-c", os.path.join(STORM, "backend.conf")],
          P_BACK)
    blob_path = f"/v2/bench/{b.IMAGE}/blobs/sha256:{hexd}"
    man_path = f"/v2/bench/{b.IMAGE}/manifests/{mdigest}"
    accept = "Accept: application/vnd.oci.image.manifest.v1+json"
    rows = []
    try:
        for key, target, port in (("dockgate", "dockgate+cache", P_DGC),
                                  ("plain", "nginx plain", P_NPLAIN),
                                  ("cached", "nginx proxy_cache+lock", P_NCACHE)):
            if key not in STORM_TARGETS:
                continue
            conf = os.path.join(STORM, f"{port}.conf")
            if target.startswith("dockgate"):
                with open(conf, "w") as f:
                    f.write(dockgate_conf())
                p = start("storm-dockgate", [dockgate_bin, "serve", "--config", conf], port)
                pids = [p.pid]
            else:
                name = "plain" if "plain" in target else "cached"
                with open(conf, "w") as f:
                    f.write(nginx_conf(name, port, cache=name == "cached"))
                p = start(f"storm-nginx-{name}", ["nginx", "-p", STORM, "-c", conf], port)
                pids = [p.pid] + b.children_of(p.pid)
            base = f"https://127.0.0.1:{port}"
            for n, phase in enumerate(["cold"] + ["warm"] * WARM_ROUNDS):
                b.log(f"{target}: {phase} storm, {CLIENTS} x {STORM_MIB} MiB blob")
                perf_out = os.path.join(STORM, f"perf-{key}-{n}.data") \
                    if STORM_PERF and phase == "warm" else None
                r = storm(target, pids, base + blob_path, f"sha256:{hexd}", STORM_MIB * b.MiB,
                          perf_out=perf_out)
                r["phase"], r["object"] = phase, "blob"
                rows.append(r)
                b.log(f"  {r}")
                r = storm(target, pids, base + man_path, mdigest, mlen, headers=[accept])
                r["phase"], r["object"] = phase, "manifest"
                rows.append(r)
                b.log(f"  {r}")
            p.terminate()
            p.wait(timeout=15)
    finally:
        b.stop_all()
    with open(os.path.join(STORM, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print(f"pull storm: {CLIENTS} clients (h2load --h1, one request each), blob {STORM_MIB} MiB, "
          f"manifest {mlen} B, by digest; {os.cpu_count()} cores\n")
    print("| proxy | object | phase | backend requests | aggregate MB/s | proxy CPU-s per GiB "
          "| proxy peak RSS | client / other CPU-s |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['target']} | {r['object']} | {r['phase']} | {r['backend_requests']} "
              f"| {r['mb_s']:,.0f} | {r['cpu_s_per_gib']:.2f} | {r['peak_rss_mib']:.1f} MiB "
              f"| {r['client_cpu_s']:.2f} / {r['other_cpu_s']:.2f} |")


if __name__ == "__main__":
    main()
