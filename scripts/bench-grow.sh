#!/usr/bin/env bash
# A 3-node cluster grows to 4 while clients keep writing and reading: how fast the new
# node streams its partitions in, how long the join takes, and what it costs the clients.
#
# Starts `halka dev --nodes 3` (N=3, W=2, R=2, periodic sync, fjall), loads KEYS keys of
# VALUE bytes through redis-benchmark (the cluster then holds about 3 x KEYS x VALUE
# bytes on disk), measures SET and GET p99 (8 clients each, at once), then starts a fourth node
# with `halka server --join`, joins and commits it, and measures SET and GET again while
# partitions move. Prints the join's duration, the bytes the new node streamed in
# (halka_transfer_bytes_total) and the rate, and the p99 ratios during/before.
#
# Needs redis-benchmark, redis-cli and curl.
# With a fourth argument `idle`, no clients run during the join: the streaming rate
# alone, with the transfer budget at its idle rate.
#
# Usage: scripts/bench-grow.sh [halka binary, default target/release/halka] [keys, default 330000] [value bytes, default 1000] [idle]
set -euo pipefail
BIN="${1:-target/release/halka}"; KEYS="${2:-330000}"; VALUE="${3:-1000}"; IDLE="${4:-}"
PORT=6880; HTTP=8880; PEER=7880
WORK="$(mktemp -d)"
cleanup() { kill "${N4:-}" "${DEV:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN" dev --nodes 3 --data-dir "$WORK" --port "$PORT" --http-port "$HTTP" --peer-port "$PEER" \
    >"$WORK/dev.log" 2>&1 &
DEV=$!
for p in "$PORT" $((PORT + 1)) $((PORT + 2)); do
    for _ in $(seq 1 400); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done
done

echo "loading $KEYS keys of $VALUE bytes"
redis-benchmark -p "$PORT" -t set -c 50 -P 16 -d "$VALUE" -r "$KEYS" -n $((KEYS * 3)) -q >/dev/null 2>&1

p99() { # requests -> "SET ops/s p99_ms" and "GET ops/s p99_ms": SETs and GETs at once,
    # 8 clients each, 100-byte values, so both overlap the join (which takes seconds).
    redis-benchmark -p "$PORT" -t set -c 8 -d 100 -r 100000 -n "$1" --csv 2>/dev/null >"$WORK/set.csv" &
    local set_pid=$!
    redis-benchmark -p $((PORT + 1)) -t get -c 8 -d 100 -r 100000 -n "$1" --csv 2>/dev/null >"$WORK/get.csv"
    wait "$set_pid"
    cat "$WORK/set.csv" "$WORK/get.csv" |
        awk -F',' '/^"(SET|GET)"/ { gsub(/"/, ""); split($0, f, ","); print f[1], f[2], f[7] }'
}
if [ -z "$IDLE" ]; then echo "before the join:"; p99 30000 | tee "$WORK/before"; fi

"$BIN" server --join --node-id node-4 --data-dir "$WORK/node-4" --redis-addr 127.0.0.1:$((PORT + 3)) \
    --http-addr 127.0.0.1:$((HTTP + 3)) --peer-addr 127.0.0.1:$((PEER + 3)) \
    --cluster-secret-file "$WORK/cluster-secret" >"$WORK/node-4.log" 2>&1 &
N4=$!
for _ in $(seq 1 400); do redis-cli -p $((PORT + 3)) ping >/dev/null 2>&1 && break; sleep 0.05; done
"$BIN" cluster join 127.0.0.1:$((PEER + 3)) --addr 127.0.0.1:$PORT >/dev/null
start=$(date +%s.%N)
# The join's end is taken when `commit --wait` returns, not after the clients below.
( "$BIN" cluster commit --wait --addr 127.0.0.1:$PORT >/dev/null 2>"$WORK/wait.log"
  date +%s.%N >"$WORK/end" ) &
WAIT=$!
if [ -z "$IDLE" ]; then echo "during the join:"; p99 30000 | tee "$WORK/during"; fi
wait "$WAIT"
end=$(cat "$WORK/end")
bytes=$(curl -s http://127.0.0.1:$((HTTP + 3))/metrics | awk '/^halka_transfer_bytes_total/ { print $2 }')
records=$(curl -s http://127.0.0.1:$((HTTP + 3))/metrics | awk '/^halka_transfer_records_total/ { print $2 }')
awk -v s="$start" -v e="$end" -v b="$bytes" -v r="$records" 'BEGIN {
    t = e - s; printf "join complete in %.1f s; node-4 streamed %d records, %.0f MB: %.1f MB/s\n", t, r, b / 1e6, b / 1e6 / t }'
# The new node's own account of its streaming: from taking the change up to holding
# every partition it gains (streamed from one old owner, caught up with the others).
grep -h "holds every partition it gains" "$WORK/node-4.log" | sed 's/.*partitions=/streaming: partitions=/'
[ -n "$IDLE" ] || paste "$WORK/before" "$WORK/during" | awk '{ printf "%s p99 during/before: %.2f (%s ms -> %s ms), ops/s %.2f\n", $1, $6 / $3, $3, $6, $5 / $2 }'
