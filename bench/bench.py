#!/usr/bin/env python3
"""dockgate vs nginx (configured as Artifactory's bundled reverse proxy).

Run through bench/run.sh, which installs the tools first. Everything listens
on 127.0.0.1 only; every load loop is bounded in count and time.

One shared setup:
  backend   nginx, plain HTTP: blobs and manifests from files (sendfile), the
            blob-upload verbs handed to bench/sink.py, which reads each body
            to the end into nothing before it answers
  static    the same nginx, TLS with the bench certificate, serving the same
            files with no proxy hop: the one-TLS-hop ceiling (reference row)
  dockgate  `dockgate serve`, path method, repository key `bench`
  nginx     Artifactory-style reverse proxy, `rewrite ^/v2/bench/(.*) /v2/$1`

Each round runs every measure against dockgate, then nginx (A B A B ...),
then the reference rows; the report takes medians over rounds.

Environment (all optional):
  QUICK=1          smoke run: 3 rounds, 128 MiB GET, 64 MiB uploads, 3 s loads
  ROUNDS=N         rounds (default 5)
  GET_MIB, PUT_MIB blob sizes for the download / upload measures (1024 / 512)
  DUR              seconds of each keep-alive load (10)
  NEWCONN_DUR      seconds of each new-connection load (8)
  IDLE_CONNS       idle keep-alive connections to hold (1000)
  IDLE_AFTER       manifest: each idle connection first GETs the manifest (default: GET /v2/)
  MEASURES         comma list to run only some measures (names in MEASURES below)
  TARGETS          comma list: dockgate,nginx (default both)
  REFS=0           skip the reference rows
  KEY_TYPE         ec (P-256, default) or rsa (2048) for the server key
  PORT_BASE        first of the ports used (default 28400: +43 dockgate,
                   +44 nginx, +80 backend, +81 upload sink, +82 static TLS)
  DOCKGATE_BIN     binary to run (run.sh sets it)
  DOCKGATE_SERVER_EXTRA  lines added to dockgate's [server] (e.g. "fast_lane = false")
  PROFILE=1        record `perf record -e cpu-clock` of dockgate during each of
                   its measures into out/profile/ (see README)
  SERVE_ONLY=N     start everything, print the URLs, keep serving N seconds, stop
  QUIET_WAIT=S     before each measure, wait up to S seconds (default 30) for the
                   rest of the machine to go quiet (< 0.25 cores busy); 0: never
"""
import datetime
import fcntl
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
RUN = os.path.join(OUT, "run")
CERTS = os.path.join(OUT, "certs")
DATA = os.path.join(OUT, "data")
WWW = os.path.join(RUN, "www")


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


QUICK = os.environ.get("QUICK", "") == "1"
ROUNDS = env_int("ROUNDS", 3 if QUICK else 5)
GET_MIB = env_int("GET_MIB", 128 if QUICK else 1024)
PUT_MIB = env_int("PUT_MIB", 64 if QUICK else 512)
DUR = env_int("DUR", 3 if QUICK else 10)
NEWCONN_DUR = env_int("NEWCONN_DUR", 3 if QUICK else 8)
IDLE_CONNS = env_int("IDLE_CONNS", 1000)
KEY_TYPE = os.environ.get("KEY_TYPE", "ec")
PORT_BASE = env_int("PORT_BASE", 28400)
PROFILE = os.environ.get("PROFILE", "") == "1"
REFS = os.environ.get("REFS", "1") != "0"
SERVE_ONLY = env_int("SERVE_ONLY", 0)
QUIET_WAIT = env_int("QUIET_WAIT", 30)
IDLE_AFTER = os.environ.get("IDLE_AFTER", "ping")
THREADS = int(os.environ.get("THREADS", "2"))  # dockgate server.threads == nginx worker_processes

P_DG, P_NGX = PORT_BASE + 43, PORT_BASE + 44
# bench/cluster.sh: Basic credentials on every request (user:password), extra
# TOML appended to dockgate's config, and lines for [repositories.bench].
BENCH_AUTH = os.environ.get("BENCH_AUTH", "")
AUTH_HEADERS = ([f"Authorization: Basic {__import__('base64').b64encode(BENCH_AUTH.encode()).decode()}"]
                if BENCH_AUTH else [])
P_BACKEND, P_SINK, P_STATIC = PORT_BASE + 80, PORT_BASE + 81, PORT_BASE + 82

IMAGE = "library/app"
ACCEPT = ("application/vnd.oci.image.manifest.v1+json, "
          "application/vnd.docker.distribution.manifest.v2+json")
CLK = os.sysconf("SC_CLK_TCK")
MiB, GiB = 1 << 20, 1 << 30

STREAM_MEASURES = ["get_h1", "get_h2", "put_cl", "put_chunked", "put_h2"]
MEASURES = STREAM_MEASURES + ["manifest_h1", "manifest_h2", "newconn_h2", "newconn_h1", "idle"]
SELECTED = [m for m in os.environ.get("MEASURES", ",".join(MEASURES)).split(",") if m]
for m in SELECTED:
    if m not in MEASURES:
        sys.exit(f"bench: unknown measure {m!r}; known: {', '.join(MEASURES)}")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(argv, timeout=120, check=True, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


# ---------------------------------------------------------------- /proc reads

def read_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()


def cpu_seconds(pids):
    """utime+stime of the processes (all their threads), in seconds."""
    t = 0
    for pid in pids:
        try:
            f = read_stat(pid)
            t += int(f[11]) + int(f[12])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return t / CLK


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def children_of(ppid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(read_stat(d)[1]) == ppid:
                    out.append(int(d))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    return sorted(out)


def system_busy_seconds():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK


WAITED = [0.0]


def wait_quiet():
    """On a shared machine, start a measure only once other work has calmed
    down (bounded by QUIET_WAIT); the bench's own servers are idle here."""
    if QUIET_WAIT <= 0:
        return
    start = time.monotonic()
    while True:
        b0, t0 = system_busy_seconds(), time.monotonic()
        time.sleep(0.3)
        cores = (system_busy_seconds() - b0) / (time.monotonic() - t0)
        if cores < 0.25 or time.monotonic() - start > QUIET_WAIT:
            break
    waited = time.monotonic() - start - 0.3
    WAITED[0] += waited
    if waited > 1:
        log(f"waited {waited:.0f} s for other processes to go quiet (now {cores:.2f} cores busy)")


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class RssSampler(threading.Thread):
    """Largest sum of VmRSS over the pids, sampled every 50 ms."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids, self.peak_kib, self.halt = pids, 0, threading.Event()

    def run(self):
        while not self.halt.is_set():
            self.peak_kib = max(self.peak_kib, sum(status_kib(p, "VmRSS") for p in self.pids))
            self.halt.wait(0.05)

    def stop(self):
        self.halt.set()
        self.join()
        self.peak_kib = max(self.peak_kib, sum(status_kib(p, "VmRSS") for p in self.pids))
        return self.peak_kib


# ------------------------------------------------------------------ processes

STARTED = []  # (name, Popen)


def spawn(name, argv, **kw):
    logf = open(os.path.join(RUN, f"{name}.log"), "ab")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                         start_new_session=True, **kw)
    STARTED.append((name, p))
    with open(os.path.join(RUN, "pids"), "a") as f:
        f.write(f"{p.pid} {name}\n")
    return p


def stop_all():
    for name, p in reversed(STARTED):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for name, p in reversed(STARTED):
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    STARTED.clear()
    try:
        os.remove(os.path.join(RUN, "pids"))
    except FileNotFoundError:
        pass


def stop_leftovers():
    """Processes a previous interrupted run of this bench left behind."""
    path = os.path.join(RUN, "pids")
    if not os.path.exists(path):
        return
    for line in open(path):
        pid = int(line.split()[0])
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except FileNotFoundError:
            continue
        if OUT in cmd or "sink.py" in cmd:
            log(f"stopping leftover {pid}: {cmd[:100]}")
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    time.sleep(1)
    os.remove(path)


def port_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_port(port, proc, name, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; see {RUN}/{name}.log")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} does not listen on {port}; see {RUN}/{name}.log")


# ---------------------------------------------------------------------- setup

def make_certs():
    os.makedirs(CERTS, exist_ok=True)
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if KEY_TYPE == "ec" \
        else ["-newkey", "rsa:2048"]
    c = lambda n: os.path.join(CERTS, n)  # noqa: E731
    sh(["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", c("ca.key"), "-out", c("ca.crt"),
        "-days", "30", "-subj", "/CN=dockgate bench CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    sh(["openssl", "req", *newkey, "-nodes", "-keyout", c("server.key"), "-out", c("server.csr"),
        "-subj", "/CN=127.0.0.1"])
    with open(c("server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    sh(["openssl", "x509", "-req", "-in", c("server.csr"), "-CA", c("ca.crt"), "-CAkey", c("ca.key"),
        "-CAcreateserial", "-out", c("server.crt"), "-days", "30", "-extfile", c("server.ext")])
    with open(c("server-chain.crt"), "w") as f:
        f.write(open(c("server.crt")).read() + open(c("ca.crt")).read())


def random_file(name, mib):
    """A file of random bytes (made once, kept in out/data) and its sha256."""
    os.makedirs(DATA, exist_ok=True)
    path = os.path.join(DATA, name)
    dpath = path + ".sha256"
    if os.path.exists(path) and os.path.getsize(path) == mib * MiB and os.path.exists(dpath):
        return path, open(dpath).read().strip()
    log(f"writing {mib} MiB of random data to {path}")
    h = hashlib.sha256()
    with open(path + ".tmp", "wb") as f:
        for _ in range(mib // 4):
            b = os.urandom(4 * MiB)
            h.update(b)
            f.write(b)
        rest = (mib % 4) * MiB
        if rest:
            b = os.urandom(rest)
            h.update(b)
            f.write(b)
    os.replace(path + ".tmp", path)
    with open(dpath, "w") as f:
        f.write(h.hexdigest())
    return path, h.hexdigest()


class Setup:
    pass


def make_data():
    s = Setup()
    s.blob, s.blob_hex = random_file(f"blob-{GET_MIB}MiB.bin", GET_MIB)
    s.upload, _ = random_file(f"upload-{PUT_MIB}MiB.bin", PUT_MIB)
    shutil.rmtree(WWW, ignore_errors=True)
    blobs = os.path.join(WWW, "v2", IMAGE, "blobs")
    mans = os.path.join(WWW, "v2", IMAGE, "manifests")
    os.makedirs(blobs)
    os.makedirs(mans)
    os.symlink(s.blob, os.path.join(blobs, f"sha256:{s.blob_hex}"))
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    chex = hashlib.sha256(config).hexdigest()
    with open(os.path.join(blobs, f"sha256:{chex}"), "wb") as f:
        f.write(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": f"sha256:{chex}", "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": f"sha256:{s.blob_hex}", "size": GET_MIB * MiB}]
        + [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": "sha256:" + hashlib.sha256(str(i).encode()).hexdigest(),
            "size": 1000 + i} for i in range(3)],
        "annotations": {"org.opencontainers.image.source": "https://example.invalid/bench",
                        "org.opencontainers.image.created": "2025-01-01T00:00:00Z"},
    }
    mbytes = json.dumps(manifest, indent=3).encode()
    s.manifest_len = len(mbytes)
    s.manifest_digest = "sha256:" + hashlib.sha256(mbytes).hexdigest()
    for n in ("latest", s.manifest_digest):
        with open(os.path.join(mans, n), "wb") as f:
            f.write(mbytes)
    # Page cache: the first measure must not read the disk.
    for p in (s.blob, s.upload):
        with open(p, "rb") as f:
            while f.read(8 * MiB):
                pass
    return s


NGINX_COMMON = """
worker_rlimit_nofile 16384;
daemon off;
master_process on;
pid {run}/{name}.pid;
error_log {run}/{name}.error.log warn;
events {{ worker_connections 8192; }}
"""

NGINX_TEMP = """
  client_body_temp_path {run}/tmp/{name}-body;
  proxy_temp_path {run}/tmp/{name}-proxy;
  fastcgi_temp_path {run}/tmp/{name}-fastcgi;
  uwsgi_temp_path {run}/tmp/{name}-uwsgi;
  scgi_temp_path {run}/tmp/{name}-scgi;
"""

# The registry's read paths from files; uploads handed to the sink.
BACKEND_LOCATIONS = """
    location = /v2/ {{
      default_type application/json;
      add_header Docker-Distribution-Api-Version registry/2.0 always;
      return 200 '{{}}';
    }}
    location ~ ^/v2/.+/blobs/uploads/ {{
      proxy_pass http://sink;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
      proxy_buffering off;
      client_body_buffer_size 1m;  # the unbuffered body moves in reads of this size
      proxy_read_timeout 600s;
      proxy_send_timeout 600s;
    }}
    location ~ ^/v2/.+/manifests/ {{
      default_type application/vnd.oci.image.manifest.v1+json;
      add_header Docker-Content-Digest {manifest_digest};
      add_header Docker-Distribution-Api-Version registry/2.0 always;
    }}
    location ~ "^/v2/.+/blobs/(sha256:[0-9a-f]{{64}})$" {{
      default_type application/octet-stream;
      add_header Docker-Content-Digest $1;
      add_header Docker-Distribution-Api-Version registry/2.0 always;
    }}
"""


def backend_conf(s):
    name = "nginx-backend"
    loc = BACKEND_LOCATIONS.format(manifest_digest=s.manifest_digest)
    return (NGINX_COMMON.format(run=RUN, name=name) + f"""
worker_processes {THREADS};
http {{
  default_type application/octet-stream;
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
  client_max_body_size 0;
{NGINX_TEMP.format(run=RUN, name=name)}
  upstream sink {{
    server 127.0.0.1:{P_SINK};
    keepalive 64;
  }}
  # The backend: plain HTTP, what both proxies forward to.
  server {{
    listen 127.0.0.1:{P_BACKEND} backlog=4096;
    root {WWW};
{loc}
  }}
  # Reference: the same files over TLS with the bench certificate, no proxy.
  server {{
    listen 127.0.0.1:{P_STATIC} ssl http2 backlog=4096;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate {CERTS}/server-chain.crt;
    ssl_certificate_key {CERTS}/server.key;
    root {WWW};
    rewrite ^/v2/bench/(.*) /v2/$1 break;
{loc}
  }}
}}
""")


def nginx_proxy_conf():
    """nginx as Artifactory's bundled reverse proxy would be set up
    (JFrog's artifactory.conf template), with the settings issue 7 names."""
    name = "nginx-proxy"
    return (NGINX_COMMON.format(run=RUN, name=name) + f"""
worker_processes {THREADS};
http {{
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 65;
  types_hash_max_size 2048;
{NGINX_TEMP.format(run=RUN, name=name)}
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_prefer_server_ciphers on;
  ssl_session_cache shared:SSL:1m;
  ssl_certificate {CERTS}/server-chain.crt;
  ssl_certificate_key {CERTS}/server.key;

  log_format timing 'ip = $remote_addr '
                    'user = "$remote_user" '
                    'local_time = "$time_local" '
                    'host = $host '
                    'request = "$request" '
                    'status = $status '
                    'bytes = $body_bytes_sent '
                    'upstream = "$upstream_addr" '
                    'upstream_time = $upstream_response_time '
                    'request_time = $request_time '
                    'referer = "$http_referer" '
                    'UA = "$http_user_agent" '
                    'reused = $ssl_session_reused conn_reqs = $connection_requests';

  upstream artifactory {{
    server 127.0.0.1:{P_BACKEND};
    keepalive 64;
  }}

  server {{
    listen 127.0.0.1:{P_NGX} ssl http2 backlog=4096;
    server_name 127.0.0.1;
    access_log {RUN}/nginx-proxy.access.log timing;

    if ($http_x_forwarded_proto = '') {{
      set $http_x_forwarded_proto $scheme;
    }}
    rewrite ^/v2/bench/(.*) /v2/$1 break;
    chunked_transfer_encoding on;
    client_max_body_size 0;
    # nginx closes a connection after 1000 requests by default, h2 included;
    # h2load does not reconnect after that GOAWAY, so its clients would die
    # one by one mid-measure. dockgate has no such cap.
    keepalive_requests 1000000;

    location / {{
      proxy_read_timeout 2400s;
      proxy_pass_header Server;
      proxy_cookie_path ~*^/.* /;
      proxy_buffer_size 128k;
      proxy_buffers 40 128k;
      proxy_busy_buffers_size 128k;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://artifactory;
      proxy_set_header X-JFrog-Override-Base-Url $http_x_forwarded_proto://$host:$server_port;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Forwarded-Proto $http_x_forwarded_proto;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
}}
""")


def dockgate_conf():
    return f"""# written by bench/bench.py
[server]
threads = {THREADS}
grace_period_seconds = 1
graceful_shutdown_timeout_seconds = 1
runtime_dir = "{RUN}/dockgate-runtime"
# Every bench client comes from 127.0.0.1 (the idle phase opens IDLE_CONNS).
max_connections_per_client = {max(1024, 2 * IDLE_CONNS)}
{os.environ.get("DOCKGATE_SERVER_EXTRA", "")}

[tls]
cert = "{CERTS}/server-chain.crt"
key = "{CERTS}/server.key"

[[listen]]
address = "127.0.0.1:{P_DG}"
method = "path"

[backends.b]
url = "http://127.0.0.1:{P_BACKEND}"

[repositories.bench]
backend = "b"
{os.environ.get("DOCKGATE_REPO_EXTRA", "")}

[metrics]
address = "off"
""" + extra_toml()


def extra_toml():
    path = os.environ.get("DOCKGATE_EXTRA_TOML")
    if not path:
        return ""
    with open(path) as f:
        return "\n" + f.read()


class Target:
    def __init__(self, name, scheme, port, prefix):
        self.name, self.scheme, self.port, self.prefix = name, scheme, port, prefix
        self.cpu_pids, self.rss_pids = [], []

    def url(self, path):
        return f"{self.scheme}://127.0.0.1:{self.port}{self.prefix}/{IMAGE}{path}"


def start_all(s, dockgate_bin):
    os.makedirs(os.path.join(RUN, "tmp"), exist_ok=True)
    for name, text in (("nginx-backend.conf", backend_conf(s)),
                       ("nginx-proxy.conf", nginx_proxy_conf()),
                       ("dockgate.toml", dockgate_conf())):
        with open(os.path.join(RUN, name), "w") as f:
            f.write(text)
    for f in ("nginx-proxy.access.log",):
        try:
            os.remove(os.path.join(RUN, f))
        except FileNotFoundError:
            pass
    busy = [p for p in (P_DG, P_NGX, P_BACKEND, P_SINK, P_STATIC) if not port_free(p)]
    if busy:
        raise RuntimeError(f"ports {busy} are in use on 127.0.0.1; set PORT_BASE to move the bench")
    sink = spawn("sink", [sys.executable, os.path.join(HERE, "sink.py"), str(P_SINK)])
    backend = spawn("nginx-backend", ["nginx", "-p", RUN, "-e", os.path.join(RUN, "nginx-backend.error.log"),
                                      "-c", os.path.join(RUN, "nginx-backend.conf")])
    ngx = spawn("nginx-proxy", ["nginx", "-p", RUN, "-e", os.path.join(RUN, "nginx-proxy.error.log"),
                                "-c", os.path.join(RUN, "nginx-proxy.conf")])
    env = dict(os.environ)
    dg = spawn("dockgate", [dockgate_bin, "serve", "--config", os.path.join(RUN, "dockgate.toml")], env=env)
    wait_port(P_SINK, sink, "sink")
    wait_port(P_BACKEND, backend, "nginx-backend")
    wait_port(P_STATIC, backend, "nginx-backend")
    wait_port(P_NGX, ngx, "nginx-proxy")
    wait_port(P_DG, dg, "dockgate")
    time.sleep(0.5)  # workers forked

    t = {}
    t["dockgate"] = Target("dockgate", "https", P_DG, "/v2/bench")
    t["dockgate"].cpu_pids = [dg.pid] + children_of(dg.pid)
    t["dockgate"].rss_pids = [dg.pid]
    t["nginx"] = Target("nginx", "https", P_NGX, "/v2/bench")
    workers = children_of(ngx.pid)
    if len(workers) != THREADS:
        raise RuntimeError(f"nginx-proxy has {len(workers)} workers, expected {THREADS}")
    t["nginx"].cpu_pids = [ngx.pid] + workers
    t["nginx"].rss_pids = workers
    t["backend"] = Target("backend", "http", P_BACKEND, "/v2")
    t["backend"].cpu_pids = [backend.pid] + children_of(backend.pid) + [sink.pid]
    t["backend"].rss_pids = children_of(backend.pid) + [sink.pid]
    t["static"] = Target("static", "https", P_STATIC, "/v2/bench")
    t["static"].cpu_pids = t["backend"].cpu_pids
    t["static"].rss_pids = t["backend"].rss_pids
    return t


# ------------------------------------------------------------------- clients

def curl(args, timeout):
    r = sh(["curl", "-sS", "--cacert", os.path.join(CERTS, "ca.crt"), "-o", "/dev/null",
            "-w", "%{json}\n%{header_json}", "--max-time", str(timeout),
            *[a for h in AUTH_HEADERS for a in ("-H", h)], *args],
           timeout=timeout + 10, check=False)
    try:
        body, _, headers = r.stdout.partition("\n")
        j = json.loads(body)
        j["headers"] = {k.lower(): v for k, v in json.loads(headers or "{}").items()}
    except json.JSONDecodeError:
        raise RuntimeError(f"curl {' '.join(args)}: {r.stderr.strip()}")
    if r.returncode != 0:
        raise RuntimeError(f"curl {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
    return j


def stream_timeout(mib):
    return max(60, mib // 10)  # never slower than 10 MiB/s


def m_get(t, s, http):
    size = GET_MIB * MiB
    j = curl([f"--http{http}", t.url(f"/blobs/sha256:{s.blob_hex}")], stream_timeout(GET_MIB))
    if j["http_code"] != 200 or int(j["size_download"]) != size:
        raise RuntimeError(f"{t.name} GET blob: {j['http_code']}, {j['size_download']} bytes")
    want = "2" if http == "2" else "1.1"
    if j.get("http_version") != want:
        raise RuntimeError(f"{t.name} GET blob spoke HTTP/{j.get('http_version')}, not {want}")
    return {"bytes": size, "time_s": j["time_total"], "mib_s": size / MiB / j["time_total"]}


def m_put(t, s, mode):
    size = PUT_MIB * MiB
    args = ["-X", "PATCH", "-T", s.upload, "-H", "Content-Type: application/octet-stream",
            "-H", "Expect:"]
    if mode == "chunked":
        args += ["--http1.1", "-H", "Transfer-Encoding: chunked"]
    elif mode == "h2":
        args += ["--http2"]
    else:
        args += ["--http1.1"]
    j = curl(args + [t.url(f"/blobs/uploads/{uuid.uuid4()}")], stream_timeout(PUT_MIB))
    # The sink answers Range: 0-<bytes it read - 1>: the whole body went through.
    got = j["headers"].get("range", ["?"])[0]
    if j["http_code"] != 202 or got != f"0-{size - 1}":
        raise RuntimeError(f"{t.name} PATCH {mode}: {j['http_code']}, backend read Range {got}, sent {size}")
    return {"bytes": size, "time_s": j["time_total"], "mib_s": size / MiB / j["time_total"]}


def parse_dur_ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    n, u = float(m.group(1)), m.group(2)
    return n * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[u]


def wrk(url, conns, dur, headers=()):
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{dur}s", "--latency", "--timeout", "5s"]
    for h in headers:
        argv += ["-H", h]
    r = sh(argv + [url], timeout=dur + 60)
    out = r.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    res = {"req_s": float(m.group(1)), "p99_ms": parse_dur_ms(p99.group(1)),
           "p50_ms": parse_dur_ms(p50.group(1)), "requests": int(total.group(1)),
           "non2xx": int(non2xx.group(1)) if non2xx else 0,
           "socket_errors": sum(int(x) for x in errs.groups()) if errs else 0}
    bad = res["non2xx"] + res["socket_errors"]
    if res["requests"] == 0 or bad > 0.01 * res["requests"]:
        raise RuntimeError(f"wrk {url}: {bad} bad of {res['requests']}:\n{out}")
    return res


def h2load(url, clients, requests=None, dur=None, logfile=None, headers=()):
    argv = ["h2load", "-t1", f"-c{clients}", "-m1"]
    if dur:
        argv += ["-D", str(dur)]  # no warm-up: the CPU read covers the same requests
    else:
        argv += [f"-n{requests}"]
    if logfile:
        argv += [f"--log-file={logfile}"]
    for h in headers:
        argv += ["-H", h]
    r = sh(argv + [url], timeout=(dur or 10) + 60)
    out = r.stdout
    fin = re.search(r"finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s", out)
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                    r"(\d+) errored, (\d+) timeout", out)
    s2 = re.search(r"status codes: (\d+) 2xx", out)
    if not fin or not req:
        raise RuntimeError(f"h2load {url}: cannot parse:\n{out}\n{r.stderr}")
    res = {"req_s": float(fin.group(3)), "time_s": parse_dur_ms(fin.group(1) + fin.group(2)) / 1000,
           "requests": int(req.group(1)), "succeeded": int(req.group(4)),
           "ok_2xx": int(s2.group(1)) if s2 else 0}
    if res["succeeded"] == 0 or res["ok_2xx"] < 0.99 * res["succeeded"] or \
            res["succeeded"] < 0.99 * res["requests"]:
        raise RuntimeError(f"h2load {url}: {res}:\n{out}")
    return res


def percentile(values, q):
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(q / 100 * len(v) + 0.5)) - 1))
    return v[k]


def m_manifest_h1(t, s):
    return wrk(t.url("/manifests/latest"), 64, DUR, [f"Accept: {ACCEPT}", *AUTH_HEADERS])


def m_manifest_h2(t, s):
    lf = os.path.join(RUN, "h2load-latency.log")
    res = h2load(t.url("/manifests/latest"), 64, dur=DUR, logfile=lf, headers=[f"Accept: {ACCEPT}"])
    lat = []
    with open(lf) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                lat.append(int(parts[2]) / 1000.0)  # µs -> ms
    os.remove(lf)
    res["p99_ms"] = percentile(lat, 99)
    res["p50_ms"] = percentile(lat, 50)
    return res


def m_newconn_h2(t, s):
    """h2load -c 50 -n 50: 50 concurrent clients, one request per connection,
    repeated in batches; req/s = requests / the batches' own durations."""
    done, spent, batches = 0, 0.0, 0
    start = time.monotonic()
    while time.monotonic() - start < NEWCONN_DUR and batches < 5000:
        r = h2load(t.url("/manifests/latest"), 50, requests=50, headers=[f"Accept: {ACCEPT}"])
        done += r["succeeded"]
        spent += r["time_s"]
        batches += 1
    return {"req_s": done / spent, "requests": done, "batches": batches}


def m_newconn_h1(t, s):
    return wrk(t.url("/manifests/latest"), 50, NEWCONN_DUR, [f"Accept: {ACCEPT}", "Connection: close"])


def m_idle(t, s):
    before = sum(status_kib(p, "VmRSS") for p in t.rss_pids)
    # IDLE_AFTER=manifest: each connection's one request is a manifest GET
    # (dockgate's fast lane keeps such a connection) instead of `GET /v2/`.
    path = f"{t.prefix}/{IMAGE}/manifests/latest" if IDLE_AFTER == "manifest" else "/v2/"
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "idle_conns.py"), "127.0.0.1", str(t.port),
                          os.path.join(CERTS, "ca.crt"), path, str(IDLE_CONNS)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 120
        while not line.startswith("OPEN") and time.monotonic() < deadline and p.poll() is None:
            line = p.stdout.readline()
        if not line.startswith("OPEN"):
            raise RuntimeError(f"idle_conns to {t.name}: {line!r} {p.stderr.read()[-2000:]}")
        ok, failed = (int(x) for x in line.split()[1:3])
        time.sleep(1.5)
        during = sum(status_kib(q, "VmRSS") for q in t.rss_pids)
    finally:
        try:
            p.stdin.write("done\n")
            p.stdin.close()
        except BrokenPipeError:
            pass
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if failed > 0.01 * IDLE_CONNS:
        raise RuntimeError(f"idle_conns to {t.name}: {failed} of {IDLE_CONNS} failed")
    time.sleep(2)
    after = sum(status_kib(q, "VmRSS") for q in t.rss_pids)
    return {"opened": ok, "failed": failed, "rss_before_mib": before / 1024, "rss_idle_mib": during / 1024,
            "kib_per_conn": (during - before) / max(ok, 1), "rss_after_mib": after / 1024}


MEASURE_FN = {
    "get_h1": lambda t, s: m_get(t, s, "1.1"),
    "get_h2": lambda t, s: m_get(t, s, "2"),
    "put_cl": lambda t, s: m_put(t, s, "cl"),
    "put_chunked": lambda t, s: m_put(t, s, "chunked"),
    "put_h2": lambda t, s: m_put(t, s, "h2"),
    "manifest_h1": m_manifest_h1,
    "manifest_h2": m_manifest_h2,
    "newconn_h2": m_newconn_h2,
    "newconn_h1": m_newconn_h1,
    "idle": m_idle,
}


def run_measure(t, name, fn, s, backend):
    """Runs one measure, adding the CPU the proxy, the backend, the client and
    everything else on the machine spent meanwhile, and the proxy's peak RSS."""
    wait_quiet()
    perf = None
    if PROFILE and t.name == "dockgate":
        os.makedirs(os.path.join(OUT, "profile"), exist_ok=True)
        pdata = os.path.join(OUT, "profile", f"{name}.data")
        perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "499",
                                 "--call-graph", "dwarf,16384", "-p", str(t.cpu_pids[0]), "-o", pdata],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
    c0, b0, k0, s0 = cpu_seconds(t.cpu_pids), cpu_seconds(backend.cpu_pids), children_cpu(), system_busy_seconds()
    sampler = RssSampler(t.rss_pids)
    sampler.start()
    w0 = time.monotonic()
    try:
        res = fn(t, s)
    finally:
        peak = sampler.stop()
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=120)
            for kind, args in (("self", ["--no-children"]), ("inclusive", ["--children"])):
                with open(pdata[:-5] + f".{kind}.txt", "w") as f:
                    subprocess.run(["perf", "report", "-i", pdata, *args, "--sort", "symbol", "--stdio",
                                    "-g", "none", "--percent-limit", "0.5"],
                                   stdout=f, stderr=subprocess.DEVNULL, timeout=600)
    wall = time.monotonic() - w0
    proxy = cpu_seconds(t.cpu_pids) - c0
    back = cpu_seconds(backend.cpu_pids) - b0 if t.cpu_pids is not backend.cpu_pids else 0.0
    client = children_cpu() - k0
    other = system_busy_seconds() - s0 - proxy - back - client
    res.update({"wall_s": wall, "proxy_cpu_s": proxy, "backend_cpu_s": back, "client_cpu_s": client,
                "other_cpu_s": max(0.0, other), "peak_rss_mib": peak / 1024})
    n_req = res.get("succeeded", res.get("requests"))
    if n_req and "req_s" in res:
        res["cpu_us_per_req"] = proxy / n_req * 1e6
    if "bytes" in res:
        res["cpu_s_per_gib"] = proxy / (res["bytes"] / GiB)
        res["backend_cpu_s_per_gib"] = back / (res["bytes"] / GiB)
    return res


# ----------------------------------------------------------------- reporting

def fmt(v, unit=""):
    if v is None or v != v:
        return "–"
    if abs(v) >= 100:
        s = f"{v:,.0f}"
    elif abs(v) >= 10:
        s = f"{v:.1f}"
    else:
        s = f"{v:.2f}"
    return s + (f" {unit}" if unit else "")


# (label, measure, metric, unit, target: (op, threshold) on the ratio, or ("abs<=", n) on dockgate)
ROWS = [
    ("big blob GET, HTTP/1.1 over TLS ({get}, curl)", "get_h1", "mib_s", "MiB/s", (">=", 1.0)),
    ("  ↳ proxy CPU-seconds per GiB", "get_h1", "cpu_s_per_gib", "s", ("<=", 0.8)),
    ("big blob GET, h2 ({get}, curl --http2)", "get_h2", "mib_s", "MiB/s", (">=", 1.0)),
    ("  ↳ proxy CPU-seconds per GiB", "get_h2", "cpu_s_per_gib", "s", None),
    ("blob upload PATCH {put}, Content-Length (HTTP/1.1)", "put_cl", "mib_s", "MiB/s", (">=", 1.0)),
    ("  ↳ proxy CPU-seconds per GiB", "put_cl", "cpu_s_per_gib", "s", None),
    ("blob upload PATCH {put}, chunked (HTTP/1.1)", "put_chunked", "mib_s", "MiB/s", (">=", 1.0)),
    ("  ↳ proxy CPU-seconds per GiB", "put_chunked", "cpu_s_per_gib", "s", None),
    ("blob upload PATCH {put}, h2 (extra)", "put_h2", "mib_s", "MiB/s", None),
    ("manifest GET keep-alive, HTTP/1.1 (wrk -c64)", "manifest_h1", "req_s", "req/s", (">=", 1.2)),
    ("  ↳ p99 latency", "manifest_h1", "p99_ms", "ms", ("<=", 1.0)),
    ("  ↳ proxy CPU per request", "manifest_h1", "cpu_us_per_req", "µs", None),
    ("manifest GET keep-alive, h2 (h2load -c64 -m1)", "manifest_h2", "req_s", "req/s", (">=", 1.2)),
    ("  ↳ p99 latency", "manifest_h2", "p99_ms", "ms", ("<=", 1.0)),
    ("  ↳ proxy CPU per request", "manifest_h2", "cpu_us_per_req", "µs", None),
    ("new TLS connection per request, full handshake, h2 (h2load -c50 -n50, repeated)", "newconn_h2", "req_s",
     "req/s", (">=", 0.9)),
    ("  ↳ proxy CPU per request", "newconn_h2", "cpu_us_per_req", "µs", None),
    ("new TLS connection per request, resumed session, HTTP/1.1 (wrk -c50, Connection: close)", "newconn_h1",
     "req_s", "req/s", (">=", 0.9)),
    ("  ↳ proxy CPU per request", "newconn_h1", "cpu_us_per_req", "µs", None),
    ("memory: peak RSS while streaming (max over the streaming measures)", "@stream_peak", "mib", "MiB",
     ("abs<=", 64)),
    ("memory: peak RSS over all load rounds (VmHWM before the idle phase)", "@hwm_load", "mib", "MiB", None),
    ("memory: RSS holding {idle} idle keep-alive TLS connections", "idle", "rss_idle_mib", "MiB", None),
    ("  ↳ RSS growth per idle connection (first idle round)", "@kib_per_conn", "kib", "KiB", None),
    ("  ↳ RSS 2 s after they closed", "idle", "rss_after_mib", "MiB", None),
    ("memory: peak RSS over the whole run (VmHWM at the end)", "@hwm", "mib", "MiB", None),
]


def median_of(results, target, measure, metric):
    vals = [r[metric] for r in results.get(target, {}).get(measure, []) if metric in r]
    return statistics.median(vals) if vals else None


def build_table(results, extra, refs, env):
    sub = {"get": f"{GET_MIB} MiB" if GET_MIB != 1024 else "1 GiB", "put": f"{PUT_MIB} MiB",
           "idle": f"{IDLE_CONNS:,}"}
    lines = ["| measure | dockgate | nginx | dockgate/nginx | target | met |",
             "|---|---:|---:|---:|---|:---:|"]
    for label, measure, metric, unit, target in ROWS:
        if measure.startswith("@"):
            d, n = extra.get("dockgate", {}).get(measure), extra.get("nginx", {}).get(measure)
        else:
            if measure not in SELECTED:
                continue
            d, n = median_of(results, "dockgate", measure, metric), median_of(results, "nginx", measure, metric)
        ratio = d / n if d is not None and n else None
        tgt, met = "", ""
        if target:
            op, th = target
            if op == "abs<=":
                tgt = f"dockgate ≤ {th} {unit}"
                met = "" if d is None else ("✅" if d <= th else "❌")
            else:
                tgt = f"ratio {'≥' if op == '>=' else '≤'} {th}"
                if ratio is not None:
                    met = "✅" if (ratio >= th if op == ">=" else ratio <= th) else "❌"
        lines.append(f"| {label.format(**sub)} | {fmt(d, unit)} | {fmt(n, unit)} | "
                     f"{'–' if ratio is None else f'{ratio:.2f}'} | {tgt} | {met} |")
    lines += ["", "Reference rows (no proxy):", "",
              "| reference | value | note |", "|---|---:|---|"]
    for label, val, unit, note in refs:
        lines.append(f"| {label} | {fmt(val, unit)} | {note} |")
    return "\n".join(lines)


def reference_rows(results, speeds):
    rows = []
    b = lambda m, k: median_of(results, "backend", m, k)  # noqa: E731
    st = lambda m, k: median_of(results, "static", m, k)  # noqa: E731
    rows.append(("backend direct (plain HTTP): blob GET, curl", b("get_h1", "mib_s"), "MiB/s",
                 "nginx sendfile; must beat both proxies"))
    rows.append(("backend direct: PATCH Content-Length", b("put_cl", "mib_s"), "MiB/s", "nginx → upload sink"))
    rows.append(("backend direct: PATCH chunked", b("put_chunked", "mib_s"), "MiB/s", "nginx → upload sink"))
    rows.append(("backend direct: manifest GET keep-alive (wrk -c64)", b("manifest_h1", "req_s"), "req/s", ""))
    rows.append(("TLS static server direct: blob GET HTTP/1.1", st("get_h1", "mib_s"), "MiB/s",
                 "nginx serving the file over TLS, same cert: one-TLS-hop ceiling"))
    rows.append(("TLS static server direct: blob GET h2", st("get_h2", "mib_s"), "MiB/s", "same, h2"))
    for name, v in speeds.items():
        rows.append((f"openssl speed -evp {name}, 16 KiB blocks, 1 core", v, "MiB/s", "AES-GCM ceiling"))
    return rows


def openssl_speeds():
    out = {}
    for c in ("aes-128-gcm", "aes-256-gcm"):
        r = sh(["openssl", "speed", "-evp", c, "-seconds", "2", "-bytes", "16384"], timeout=60, check=False)
        m = re.search(r"^\S*AES-\d+-GCM\s+([\d.]+)k", r.stdout, re.M | re.I)
        if m:
            out[c] = float(m.group(1)) * 1000 / MiB
    return out


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    flags = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                fl = line.split(":", 1)[1].split()
                flags = " ".join(x for x in ("aes", "pclmulqdq", "avx2", "vaes", "vpclmulqdq", "avx512f") if x in fl)
                break
    mem = ""
    with open("/proc/meminfo") as f:
        mem = f.readline().split(":")[1].strip()
    return {"nproc": os.cpu_count(), "cpu": model, "cpu_flags": flags, "kernel": platform.release(),
            "mem": mem, "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "loadavg_start": open("/proc/loadavg").read().split()[:3]}


def versions(dockgate_bin):
    v = {}
    for name, argv in (("dockgate", [dockgate_bin, "--version"]), ("nginx", ["nginx", "-v"]),
                       ("curl", ["curl", "--version"]), ("wrk", ["wrk", "-v"]), ("h2load", ["h2load", "--version"]),
                       ("openssl", ["openssl", "version"])):
        r = subprocess.run(argv, capture_output=True, text=True)
        v[name] = ((r.stdout or "") + (r.stderr or "")).strip().splitlines()[0] if (r.stdout or r.stderr) else "?"
    try:
        v["dockgate_git"] = sh(["git", "-C", REPO, "describe", "--always", "--dirty"], check=False).stdout.strip()
    except Exception:
        pass
    with open(dockgate_bin, "rb") as f:
        v["dockgate_sha256"] = hashlib.sha256(f.read()).hexdigest()[:16]
    return v


def tls_params(port, alpn):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-alpn", alpn, "-brief",
                        "-CAfile", os.path.join(CERTS, "ca.crt")], input=b"", capture_output=True, timeout=20)
    txt = (r.stderr + r.stdout).decode(errors="replace")
    proto = re.search(r"Protocol version: (\S+)", txt)
    ciph = re.search(r"Ciphersuite: (\S+)", txt)
    return f"{proto.group(1) if proto else '?'} {ciph.group(1) if ciph else '?'}"


# ---------------------------------------------------------------------- main

def preflight(t, s):
    """Every path each measure uses answers correctly through this target."""
    j = curl(["--http1.1", "-H", f"Accept: {ACCEPT}", t.url("/manifests/latest")], 20)
    if j["http_code"] != 200 or "manifest" not in (j.get("content_type") or ""):
        raise RuntimeError(f"{t.name}: manifest GET gave {j['http_code']} {j.get('content_type')}")
    j = curl(["--http1.1", "-I", t.url(f"/blobs/sha256:{s.blob_hex}")], 20)
    if j["http_code"] != 200:
        raise RuntimeError(f"{t.name}: blob HEAD gave {j['http_code']}")
    for extra in (["--http1.1"], ["--http1.1", "-H", "Transfer-Encoding: chunked"], ["--http2"]):
        if t.scheme == "http" and "--http2" in extra:
            continue
        j = curl([*extra, "-X", "PATCH", "--data-binary", "x" * 4096, "-H", "Expect:",
                  t.url(f"/blobs/uploads/{uuid.uuid4()}")], 20)
        if j["http_code"] != 202:
            raise RuntimeError(f"{t.name}: PATCH {extra} gave {j['http_code']}")


def main():
    dockgate_bin = os.environ.get("DOCKGATE_BIN") or os.path.join(REPO, "target", "release", "dockgate")
    if not os.access(dockgate_bin, os.X_OK):
        sys.exit(f"bench: {dockgate_bin} is missing; run `cargo build --release` or set DOCKGATE_BIN")
    os.makedirs(RUN, exist_ok=True)
    lock = open(os.path.join(OUT, "lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit("bench: another bench run holds bench/out/lock; one at a time")
    stop_leftovers()
    for f in os.listdir(RUN):
        if f.endswith(".log"):
            os.remove(os.path.join(RUN, f))
    # Keep the binary under test fixed even if target/ is rebuilt meanwhile;
    # its own name keeps it apart from other dockgate processes on the machine.
    frozen = os.path.join(RUN, "dg-under-test")
    if os.path.abspath(dockgate_bin) != frozen:
        shutil.copy2(dockgate_bin, frozen)

    env = machine()
    env["versions"] = versions(frozen)
    env["settings"] = {"rounds": ROUNDS, "get_mib": GET_MIB, "put_mib": PUT_MIB, "dur_s": DUR,
                       "newconn_dur_s": NEWCONN_DUR, "idle_conns": IDLE_CONNS, "key_type": KEY_TYPE,
                       "threads": THREADS, "measures": SELECTED}
    log(f"machine: {env['nproc']} cores, {env['cpu']}, kernel {env['kernel']}, load {env['loadavg_start']}")
    log(f"settings: {env['settings']}")

    make_certs()
    s = make_data()
    targets = start_all(s, frozen)
    try:
        for name in ("dockgate", "nginx", "backend", "static"):
            preflight(targets[name], s)
        env["tls"] = {n: {"h2": tls_params(targets[n].port, "h2"), "http/1.1": tls_params(targets[n].port, "http/1.1")}
                      for n in ("dockgate", "nginx", "static")}
        log(f"TLS: {env['tls']}")
        if SERVE_ONLY:
            for n in ("dockgate", "nginx", "backend", "static"):
                print(f"{n}: {targets[n].url('/manifests/latest')}  (cpu pids {targets[n].cpu_pids})")
            print(f"blob: .../blobs/sha256:{s.blob_hex}  CA: {CERTS}/ca.crt", flush=True)
            time.sleep(SERVE_ONLY)
            return
        order = [n for n in os.environ.get("TARGETS", "dockgate,nginx").split(",") if n]
        # Warm-up: connection pools, page cache, allocator.
        for n in order:
            m_get(targets[n], s, "1.1")
            wrk(targets[n].url("/manifests/latest"), 64, 1, [f"Accept: {ACCEPT}", *AUTH_HEADERS])

        results = {n: {} for n in order + ["backend", "static"]}
        t_start = time.monotonic()
        def one(n, m, rnd, label, note=""):
            r = run_measure(targets[n], m, MEASURE_FN[m], s, targets["backend"])
            r["round"] = rnd
            results[n].setdefault(m, []).append(r)
            key = next(k for k in ("mib_s", "req_s", "rss_idle_mib") if k in r)
            log(f"{label} {m:12s} {n:8s} {key}={r[key]:.1f} proxy_cpu={r['proxy_cpu_s']:.2f}s "
                f"other_cpu={r['other_cpu_s']:.2f}s peak_rss={r['peak_rss_mib']:.1f}MiB{note}")

        load = [m for m in SELECTED if m != "idle"]
        for rnd in range(1, ROUNDS + 1):
            for m in load:
                for n in order:
                    one(n, m, rnd, f"round {rnd}/{ROUNDS}")
            if REFS:
                for n, ms in (("backend", ["get_h1", "put_cl", "put_chunked", "manifest_h1"]),
                              ("static", ["get_h1", "get_h2"])):
                    for m in ms:
                        if m in SELECTED:
                            one(n, m, rnd, f"round {rnd}/{ROUNDS}", " (reference)")
        # Memory under load first: the idle phase comes last because the
        # memory 1,000 connections take may stay with the process afterwards.
        extra = {}
        for n in order:
            peaks = [r["peak_rss_mib"] for m in STREAM_MEASURES for r in results[n].get(m, [])]
            extra[n] = {"@stream_peak": max(peaks) if peaks else None,
                        "@hwm_load": sum(status_kib(p, "VmHWM") for p in targets[n].rss_pids) / 1024}
        if "idle" in SELECTED:
            idle_rounds = 1 if QUICK else min(ROUNDS, 3)
            for rnd in range(1, idle_rounds + 1):
                for n in order:
                    one(n, "idle", rnd, f"idle {rnd}/{idle_rounds}")
        for n in order:
            extra[n]["@hwm"] = sum(status_kib(p, "VmHWM") for p in targets[n].rss_pids) / 1024
            first = results[n].get("idle", [{}])[0]
            extra[n]["@kib_per_conn"] = first.get("kib_per_conn")  # later rounds reuse retained memory
        env["bench_seconds"] = round(time.monotonic() - t_start)
        env["quiet_wait_seconds"] = round(WAITED[0])
        env["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        others = [r["other_cpu_s"] / r["wall_s"] for n in order for m in results[n].values() for r in m]
        env["other_load_cores"] = {"median": statistics.median(others) if others else 0,
                                   "max": max(others) if others else 0}
    finally:
        stop_all()

    speeds = openssl_speeds() if REFS else {}
    refs = reference_rows(results, speeds) if REFS else []
    table = build_table(results, extra, refs, env)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rdir = os.path.join(OUT, "results", stamp)
    os.makedirs(rdir)
    header = (f"dockgate {env['versions'].get('dockgate_git', '')} vs {env['versions']['nginx']} — "
              f"{env['nproc']} cores ({env['cpu']}), kernel {env['kernel']}, {env['date']}\n"
              f"rounds={ROUNDS} GET={GET_MIB}MiB PUT={PUT_MIB}MiB load={DUR}s newconn={NEWCONN_DUR}s "
              f"idle={IDLE_CONNS} key={KEY_TYPE}; medians over rounds; bench took {env['bench_seconds']} s "
              f"({env['quiet_wait_seconds']} s of it waiting for a quiet machine); "
              f"other processes' CPU during measures: median {env['other_load_cores']['median']:.2f} cores, "
              f"max {env['other_load_cores']['max']:.2f}\n"
              f"TLS negotiated: dockgate {env['tls']['dockgate']['h2']}, nginx {env['tls']['nginx']['h2']}\n")
    with open(os.path.join(rdir, "results.json"), "w") as f:
        json.dump({"env": env, "results": results, "extra": extra, "openssl_speed_mib_s": speeds}, f, indent=1)
    with open(os.path.join(rdir, "table.md"), "w") as f:
        f.write(header + "\n" + table + "\n")
    for c in ("nginx-backend.conf", "nginx-proxy.conf", "dockgate.toml"):
        shutil.copy2(os.path.join(RUN, c), rdir)
    latest = os.path.join(OUT, "latest")
    if os.path.islink(latest):
        os.remove(latest)
    os.symlink(os.path.join("results", stamp), latest)
    print(header)
    print(table)
    log(f"results in {rdir}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        main()
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
    except Exception as e:
        for name, p in STARTED:
            if p.poll() is not None:
                log(f"{name} (pid {p.pid}) had exited with {p.returncode} (negative: killed by that signal); "
                    f"see {RUN}/{name}.log")
        stop_all()
        import traceback
        traceback.print_exc()
        log(f"bench failed: {e}")
        sys.exit(1)
