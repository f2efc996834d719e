#!/usr/bin/env bash
# Sorted sets, sets and HyperLogLogs on a 3-node cluster next to a lone redis-server, in
# the same run: redis-benchmark's ZADD, SADD, SPOP and ZPOPMIN tests, and PFADD, on each
# (ops/s and p99, and their ratio); then the cost of one member's ZADD in a sorted set of
# MEMBERS members against one of 10, which must not grow with the set.
#
# Starts `halka dev --nodes 3` (N=3, W=2, R=2, periodic sync, fjall) and a redis-server
# without persistence. Needs redis-server, redis-benchmark and redis-cli.
#
# Usage: scripts/bench-types.sh [halka binary, default target/release/halka] [members, default 100000]
set -euo pipefail
BIN="${1:-target/release/halka}"; MEMBERS="${2:-100000}"
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

compare() { # label redis-benchmark-args...
    local label=$1; shift
    for name in halka redis; do
        port=$PORT; [ "$name" = redis ] && port=$REDIS
        read -r ops p99 <<<"$(row "$port" "$@")"
        eval "${name}_ops=$ops ${name}_p99=$p99"
    done
    echo "$label: halka $halka_ops ops/s p99 $halka_p99 ms; redis $redis_ops ops/s p99 $redis_p99 ms;" \
        "halka/redis throughput $(ratio "$halka_ops" "$redis_ops"), p99 $(ratio "$halka_p99" "$redis_p99")"
}

# SADD and ZADD fill the sets SPOP and ZPOPMIN then empty.
compare "sadd" -t sadd -c 50 -n 50000 -r 100000
compare "spop" -t spop -c 10 -n 500 -r 100000
compare "zadd" -t zadd -c 50 -n 50000 -r 100000
compare "zpopmin" -t zpopmin -c 10 -n 100 -r 100000
compare "pfadd" -c 50 -n 50000 -r 100000 pfadd hll e__rand_int__

echo "== one member's ZADD in a sorted set of $MEMBERS members against one of 10"
for port in "$PORT" "$REDIS"; do
    redis-cli -p "$port" del big small >/dev/null
    pids=()
    for part in $(seq 0 15); do
        seq "$part" 16 $((MEMBERS - 1)) | awk '{ printf "ZADD big %d m%012d\r\n", $1, $1 }' |
            redis-cli -p "$port" --pipe >/dev/null &
        pids+=($!)
    done
    wait "${pids[@]}"
    for i in $(seq 0 9); do redis-cli -p "$port" zadd small "$i" "$(printf 'm%012d' "$i")" >/dev/null; done
done
echo "halka ZCARD big: $(redis-cli -p "$PORT" zcard big), redis: $(redis-cli -p "$REDIS" zcard big)"
for name in halka redis; do
    port=$PORT; [ "$name" = redis ] && port=$REDIS
    read -r big_ops big_p99 <<<"$(row "$port" -c 8 -n 50000 -r "$MEMBERS" zadd big 7 m__rand_int__)"
    read -r small_ops small_p99 <<<"$(row "$port" -c 8 -n 50000 -r 10 zadd small 7 m__rand_int__)"
    echo "$name: big $big_ops ops/s p99 $big_p99 ms; small $small_ops ops/s p99 $small_p99 ms;" \
        "big/small throughput $(ratio "$big_ops" "$small_ops"), p99 $(ratio "$big_p99" "$small_p99")"
done
