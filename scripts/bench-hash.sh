#!/usr/bin/env bash
# Hashes on a 3-node cluster next to a lone redis-server, in the same run:
#   1. redis-benchmark's HSET test on each (ops/s and p99, and their ratio);
#   2. the cost of writing one field of a hash holding MEMBERS fields against one of a
#      hash holding 10 (HSET of fields already present, random among them), which must
#      not grow with the hash: each field is a record of its own.
#
# Starts `halka dev --nodes 3` (N=3, W=2, R=2, periodic sync, fjall) and a redis-server
# without persistence. Needs redis-server, redis-benchmark and redis-cli.
#
# Usage: scripts/bench-hash.sh [halka binary, default target/release/halka] [members, default 1000000]
set -euo pipefail
BIN="${1:-target/release/halka}"; MEMBERS="${2:-1000000}"
PORT=6890; HTTP=8890; PEER=7890; REDIS=6899
WORK="$(mktemp -d)"
cleanup() { kill "${DEV:-}" "${RS:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN" dev --nodes 3 --data-dir "$WORK" --port "$PORT" --http-port "$HTTP" --peer-port "$PEER" \
    >"$WORK/dev.log" 2>&1 &
DEV=$!
redis-server --port "$REDIS" --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
RS=$!
for p in "$PORT" $((PORT + 1)) $((PORT + 2)) "$REDIS"; do
    for _ in $(seq 1 400); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done
done

row() { # port test-args... -> "ops/s p99_ms"
    local port=$1; shift
    redis-benchmark -p "$port" --csv "$@" 2>/dev/null | tail -1 |
        awk -F'","' '{gsub(/"/, "", $2); gsub(/"/, "", $8); print $2, $8}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "== redis-benchmark -t hset (50 clients, 100000 requests)"
for name in halka redis; do
    port=$PORT; [ "$name" = redis ] && port=$REDIS
    read -r ops p99 <<<"$(row "$port" -t hset -c 50 -n 100000 -r 100000)"
    echo "$name: $ops ops/s, p99 $p99 ms"
    eval "${name}_ops=$ops ${name}_p99=$p99"
done
echo "halka/redis: throughput $(ratio "$halka_ops" "$redis_ops"), p99 $(ratio "$halka_p99" "$redis_p99")"

echo "== one field's write in a hash of $MEMBERS fields against one of 10"
for port in "$PORT" "$REDIS"; do
    redis-cli -p "$port" del big small >/dev/null
    # Fields f000000000000 .. as redis-benchmark writes __rand_int__ (12 digits), through
    # 16 connections at once (one pipelined connection runs its commands in turn).
    pids=()
    for part in $(seq 0 15); do
        seq "$part" 16 $((MEMBERS - 1)) | awk '{ printf "HSET big f%012d v\r\n", $1 }' |
            redis-cli -p "$port" --pipe >/dev/null &
        pids+=($!)
    done
    wait "${pids[@]}"
    for i in $(seq 0 9); do redis-cli -p "$port" hset small "$(printf 'f%012d' "$i")" v >/dev/null; done
done
echo "halka HLEN big: $(redis-cli -p "$PORT" hlen big), redis: $(redis-cli -p "$REDIS" hlen big)"
for name in halka redis; do
    port=$PORT; [ "$name" = redis ] && port=$REDIS
    read -r big_ops big_p99 <<<"$(row "$port" -c 8 -n 50000 -r "$MEMBERS" hset big f__rand_int__ w)"
    read -r small_ops small_p99 <<<"$(row "$port" -c 8 -n 50000 -r 10 hset small f__rand_int__ w)"
    echo "$name: big $big_ops ops/s p99 $big_p99 ms; small $small_ops ops/s p99 $small_p99 ms;" \
        "big/small throughput $(ratio "$big_ops" "$small_ops"), p99 $(ratio "$big_p99" "$small_p99")"
done
