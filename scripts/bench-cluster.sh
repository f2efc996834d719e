#!/usr/bin/env bash
# Cluster benchmark: a 3-node halka cluster (N=3, W=2, R=2) and a plain redis-server on the
# same machine, driven by identical redis-benchmark runs; prints ops/s, p50 and p99 for each
# and the halka/Redis ratios, for sync policies `periodic` and `always`. Then a single etcd
# member (which fsyncs every put), driven by tools/etcd-load with the same concurrency,
# value size and keyspace, for the `always` comparison.
#
# Needs redis-server, redis-benchmark, etcd and protoc (Debian: redis-server, redis-tools,
# etcd-server, protobuf-compiler). Runs one thing at a time: run together, they would
# share the CPUs and each look slower than it is.
# Usage: scripts/bench-cluster.sh [requests per run, default 200000]
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS="${1:-200000}"
REDIS_PORT=6399
HALKA_PORT=6480
for tool in redis-server redis-benchmark redis-cli etcd protoc; do
    command -v "$tool" >/dev/null ||
        { echo "missing $tool (apt-get install redis-server redis-tools etcd-server protobuf-compiler)" >&2; exit 1; }
done
cargo build --release --quiet
cargo build --release --quiet --manifest-path tools/etcd-load/Cargo.toml
HALKA=target/release/halka
ETCD_LOAD=tools/etcd-load/target/release/etcd-load

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_ping() {
    for _ in $(seq 1 200); do
        redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "nothing answers on port $1" >&2
    exit 1
}

# One redis-benchmark run; prints "rps p50 p99" for SET, GET and INCR, one line each.
run_bench() {
    local port=$1; shift
    redis-benchmark -p "$port" -t set,get,incr -c 50 -d 100 -r 100000 -n "$REQUESTS" --csv "$@" 2>/dev/null |
        awk -F',' 'NR > 1 { gsub(/"/, ""); split($0, f, ","); print f[1], f[2], f[5], f[7] }'
}

redis-server --port "$REDIS_PORT" --save "" --appendonly no --daemonize no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
wait_ping "$REDIS_PORT"

printf '%-9s %-4s %-4s %12s %9s %9s %12s %9s %9s %8s\n' \
    sync test pipe "halka ops/s" "p50 ms" "p99 ms" "redis ops/s" "p50 ms" "p99 ms" ratio
for sync in periodic always; do
    "$HALKA" dev --nodes 3 --ephemeral --sync "$sync" --port "$HALKA_PORT" \
        --http-port 8480 --peer-port 7480 >"$WORK/halka-$sync.log" 2>&1 &
    DEV=$!
    PIDS+=($DEV)
    wait_ping "$HALKA_PORT"; wait_ping $((HALKA_PORT + 1)); wait_ping $((HALKA_PORT + 2))
    for pipe in 1 16; do
        run_bench "$HALKA_PORT" -P "$pipe" >"$WORK/halka.out"
        run_bench "$REDIS_PORT" -P "$pipe" >"$WORK/redis.out"
        paste -d' ' "$WORK/halka.out" "$WORK/redis.out" |
            while read -r test h_rps h_p50 h_p99 _ r_rps r_p50 r_p99; do
                ratio=$(awk -v h="$h_rps" -v r="$r_rps" 'BEGIN { printf "%.2f", h / r }')
                printf '%-9s %-4s %-4s %12s %9s %9s %12s %9s %9s %8s\n' \
                    "$sync" "$test" "$pipe" "$h_rps" "$h_p50" "$h_p99" "$r_rps" "$r_p50" "$r_p99" "$ratio"
            done
    done
    kill -INT "$DEV"
    wait "$DEV" 2>/dev/null || true
done

# etcd: one member, data on the same disk as halka's.
ETCD_PORT=2479
etcd --name bench --data-dir "$WORK/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls http://127.0.0.1:2480 \
    --initial-advertise-peer-urls http://127.0.0.1:2480 \
    --initial-cluster bench=http://127.0.0.1:2480 >"$WORK/etcd.log" 2>&1 &
ETCD=$!
PIDS+=($ETCD)
for _ in $(seq 1 200); do
    "$ETCD_LOAD" --endpoint "127.0.0.1:$ETCD_PORT" --requests 1 --clients 1 --conns 1 \
        >/dev/null 2>&1 && break
    sleep 0.05
done
for conns in 50 1; do
    "$ETCD_LOAD" --endpoint "127.0.0.1:$ETCD_PORT" --clients 50 --conns "$conns" \
        --requests "$REQUESTS" --value-size 100 --keyspace 100000 |
        awk -F, -v c="$conns" '{ printf "etcd      PUT  1 %12s %9s %9s   (50 clients on %s gRPC connection(s))\n", $2, $3, $4, c }'
done
