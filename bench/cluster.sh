#!/usr/bin/env bash
# [cluster] on/off: the manifest GET (wrk, HTTP/1.1 keep-alive) and blob GET
# (curl, HTTP/1.1) rows of bench/bench.py for dockgate alone, with [auth] and
# Basic credentials on every request (so each request reads the runtime
# state: the password cache, the API-key generation), once with the state in
# files and once in a one-member etcd with TLS started here. Prints both
# tables; keeps them in bench/out/cluster/. Timings are never asserted.
#   bench/cluster.sh                 default rounds (ROUNDS=5 in bench.py)
#   QUICK=1 bench/cluster.sh         smoke run
#   KILL=1 bench/cluster.sh          also the SIGKILL-during-push scenario of
#                                    tests/integration/test_cluster.py with a 200 MB layer
# Needs: etcd-server (scripts/install-deps.sh), plus what bench/run.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out/cluster
rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

if [[ -z "${DOCKGATE_BIN:-}" ]]; then
  cargo build --release --quiet
  export DOCKGATE_BIN="$PWD/target/release/dockgate"
fi
for b in etcd htpasswd openssl wrk curl nginx; do
  command -v "$b" >/dev/null || { echo "bench/cluster.sh: $b missing (scripts/install-deps.sh, bench/run.sh)" >&2; exit 1; }
done

# One CA, a member certificate and a client certificate, P-256.
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$OUT/ca.key" -out "$OUT/ca.crt" -days 2 \
  -subj "/CN=bench etcd CA" -addext basicConstraints=critical,CA:TRUE 2>/dev/null
sign() { # name eku [san]
  openssl req -new "${ec[@]}" -keyout "$OUT/$1.key" -out "$OUT/$1.csr" -subj "/CN=$1" 2>/dev/null
  printf 'extendedKeyUsage=%s\n%s' "$2" "${3:+subjectAltName=$3}" >"$OUT/$1.ext"
  openssl x509 -req -in "$OUT/$1.csr" -CA "$OUT/ca.crt" -CAkey "$OUT/ca.key" -CAcreateserial \
    -out "$OUT/$1.crt" -days 2 -extfile "$OUT/$1.ext" 2>/dev/null
}
sign member serverAuth,clientAuth IP:127.0.0.1
sign client clientAuth

PORT_BASE=${PORT_BASE:-28400}
C=$((PORT_BASE + 79)) P=$((PORT_BASE + 78))
etcd --name bench --data-dir "$OUT/etcd.data" \
  --listen-client-urls "https://127.0.0.1:$C" --advertise-client-urls "https://127.0.0.1:$C" \
  --listen-peer-urls "https://127.0.0.1:$P" --initial-advertise-peer-urls "https://127.0.0.1:$P" \
  --initial-cluster "bench=https://127.0.0.1:$P" \
  --cert-file "$OUT/member.crt" --key-file "$OUT/member.key" --trusted-ca-file "$OUT/ca.crt" \
  --client-cert-auth --peer-cert-file "$OUT/member.crt" --peer-key-file "$OUT/member.key" \
  --peer-trusted-ca-file "$OUT/ca.crt" --logger zap --log-level warn >"$OUT/etcd.log" 2>&1 &
ETCD=$!
trap 'kill $ETCD 2>/dev/null; wait $ETCD 2>/dev/null || true' EXIT

htpasswd -B -C 5 -bc "$OUT/users.htpasswd" bench bench-password 2>/dev/null
cat >"$OUT/auth.toml" <<TOML
[auth]
htpasswd = "$OUT/users.htpasswd"
state_dir = "$OUT/state"
TOML
cp "$OUT/auth.toml" "$OUT/auth-cluster.toml"
cat >>"$OUT/auth-cluster.toml" <<TOML

[cluster]
etcd = ["https://127.0.0.1:$C"]
ca = "$OUT/ca.crt"
cert = "$OUT/client.crt"
key = "$OUT/client.key"
prefix = "/dockgate-bench/"
TOML

export TARGETS=dockgate REFS=0 MEASURES=${MEASURES:-get_h1,manifest_h1}
# write too: bench.py's preflight checks the upload path (PATCH) as well.
export BENCH_AUTH=bench:bench-password DOCKGATE_REPO_EXTRA=$'read = ["bench"]\nwrite = ["bench"]'
for mode in off on; do
  extra="$OUT/auth.toml"
  [[ $mode == on ]] && extra="$OUT/auth-cluster.toml"
  echo "==> [cluster] $mode" >&2
  DOCKGATE_EXTRA_TOML=$extra python3 bench/bench.py >"$OUT/table-$mode.md"
done

{
  echo "# [cluster] off / on (dockgate only, Basic credentials on every request)"
  echo
  echo "## [cluster] off (runtime state in files)"
  cat "$OUT/table-off.md"
  echo
  echo "## [cluster] on (one etcd member, TLS, on this machine)"
  cat "$OUT/table-on.md"
} | tee "$OUT/cluster.md"

if [[ "${KILL:-}" == 1 ]]; then
  echo "==> SIGKILL during a 200 MB push through HAProxy" >&2
  DOCKGATE_CLUSTER_PUSH_MIB=200 DOCKGATE_BIN=$DOCKGATE_BIN \
    python3 -m pytest -q tests/integration/test_cluster.py -k "sigkill" -s
fi
