#!/usr/bin/env bash
# TLS against plain, in one run on one machine: two 3-node `halka dev` clusters side by
# side, one plain and one with `--tls` (mutual TLS between its nodes, a Redis TLS port
# beside each plain one). redis-benchmark (SET and GET, 50 clients, 100-byte values) runs
# in turns, ROUNDS times, against
#   plain:      the plain cluster's Redis port (no TLS anywhere),
#   peer-mtls:  the TLS cluster's plain Redis port (only the links between nodes are TLS),
#   tls:        the TLS cluster's Redis TLS port (TLS from client to node and between nodes),
# and prints each configuration's median ops/s and p99, and their ratios to plain.
#
# Needs redis-benchmark built with TLS (Debian's is).
# Usage: scripts/bench-tls.sh [halka binary, default target/release/halka] [requests, default 200000] [rounds, default 3]
set -euo pipefail
BIN="${1:-target/release/halka}"; N="${2:-200000}"; ROUNDS="${3:-3}"
WORK="$(mktemp -d)"
cleanup() { kill "${PLAIN:-}" "${TLS:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN" dev --data-dir "$WORK/plain" --port 6980 --http-port 8980 --peer-port 7980 >"$WORK/plain.log" 2>&1 &
PLAIN=$!
"$BIN" dev --tls --data-dir "$WORK/tls" --port 6990 --http-port 8990 --peer-port 7990 --tls-port 6995 \
    >"$WORK/tls.log" 2>&1 &
TLS=$!
for log in "$WORK/plain.log" "$WORK/tls.log"; do
    for _ in $(seq 1 600); do grep -q "Ctrl-C stops" "$log" 2>/dev/null && break; sleep 0.05; done
done
CA="$WORK/tls/tls/ca.crt"

run() { # name, redis-benchmark connection flags -> "name test ops/s p99" lines
    local name="$1"; shift
    redis-benchmark "$@" -t set,get -c 50 -d 100 -r 100000 -n "$N" --csv 2>/dev/null |
        awk -F',' -v name="$name" 'NR > 1 { gsub(/"/, ""); split($0, f, ","); print name, f[1], f[2], f[7] }'
}
for r in $(seq 1 "$ROUNDS"); do
    run plain -p 6980
    run peer-mtls -p 6990
    run tls -p 6995 --tls --cacert "$CA"
done >"$WORK/runs"

python3 - "$WORK/runs" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    config, op, ops, p99 = line.split()
    runs.setdefault((config, op), []).append((float(ops), float(p99)))
print(f"{'config':<10} {'op':<4} {'ops/s':>10} {'p99 ms':>8} {'ops/plain':>10} {'p99/plain':>10}")
for op in ("SET", "GET"):
    base_ops = statistics.median(o for o, _ in runs[("plain", op)])
    base_p99 = statistics.median(p for _, p in runs[("plain", op)])
    for config in ("plain", "peer-mtls", "tls"):
        ops = statistics.median(o for o, _ in runs[(config, op)])
        p99 = statistics.median(p for _, p in runs[(config, op)])
        print(f"{config:<10} {op:<4} {ops:>10.0f} {p99:>8.3f} {ops / base_ops:>10.2f} {p99 / base_p99:>10.2f}")
PY
