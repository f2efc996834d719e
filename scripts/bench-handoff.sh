#!/usr/bin/env bash
# Hinted handoff, measured: three `halka server` processes (N=3, W=2), node-3 SIGKILLed,
# REQUESTS random-key SETs through node-1 with redis-benchmark while it is down, then
# node-3 restarted: prints the hints kept, the time from node-3's restart until no node
# keeps a hint, and the rate of delivery.
#
# Needs redis-benchmark and redis-cli (Debian: redis-tools).
# Usage: scripts/bench-handoff.sh [requests, default 200000]
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS="${1:-200000}"
BASE=6580
command -v redis-benchmark >/dev/null || { echo "missing redis-benchmark (apt-get install redis-tools)" >&2; exit 1; }
cargo build --release --quiet
HALKA=target/release/halka

WORK="$(mktemp -d)"
declare -A PID
cleanup() {
    for pid in "${PID[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

SECRET="$("$HALKA" secret)"
MEMBERS=""
for i in 1 2 3; do
    MEMBERS+=$'[[members]]\n'"id = \"node-$i\""$'\n'"peer_addr = \"127.0.0.1:$((BASE + 200 + i))\""$'\n'
done
for i in 1 2 3; do
    cat >"$WORK/node-$i.toml" <<TOML
node_id = "node-$i"
data_dir = "$WORK/node-$i"
redis_addr = "127.0.0.1:$((BASE + i))"
http_addr = "127.0.0.1:$((BASE + 100 + i))"
peer_addr = "127.0.0.1:$((BASE + 200 + i))"
cluster_secret = "$SECRET"
worker_threads = 1
$MEMBERS
TOML
done

start() {
    "$HALKA" server --config "$WORK/node-$1.toml" >>"$WORK/node-$1.log" 2>&1 &
    PID[$1]=$!
    for _ in $(seq 1 200); do
        redis-cli -p $((BASE + $1)) ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "node-$1 did not start" >&2; exit 1
}

# Waits until every node given sees every other one up (INFO halka's peers line), so the
# first request that needs a peer does not meet a link still connecting.
settle() {
    local i
    for i in "$@"; do
        for _ in $(seq 1 600); do
            redis-cli -p $((BASE + i)) info halka | tr -d '\r' | grep '^peers:' | grep -qv '=down' && break
            sleep 0.05
        done
    done
}

# Hints node $1 keeps, summed over owners.
pending() {
    redis-cli -p $((BASE + $1)) info halka | tr -d '\r' |
        awk -F'[:,=]' '/^hints_pending:/ { s = 0; for (i = 3; i <= NF; i += 2) s += $i; print s + 0 }'
}

now_ms() { date +%s%3N; }

for i in 1 2 3; do start "$i"; done
settle 1 2 3
kill -9 "${PID[3]}"; wait "${PID[3]}" 2>/dev/null || true
redis-benchmark -p $((BASE + 1)) -t set -c 50 -d 100 -r 1000000 -n "$REQUESTS" -q 2>/dev/null | tr '\r' '\n' | tail -1
KEPT=$(( $(pending 1) + $(pending 2) ))
echo "hints kept while node-3 was down: $KEPT"
T0=$(now_ms)
start 3
until [ "$(( $(pending 1) + $(pending 2) ))" -eq 0 ]; do sleep 0.05; done
T1=$(now_ms)
ELAPSED=$((T1 - T0))
echo "node-3 restarted and holds every hint after ${ELAPSED} ms (including its start)"
awk -v k="$KEPT" -v ms="$ELAPSED" 'BEGIN { printf "delivery rate: %.0f hints/s (cap: handoff.max_per_second = 10000)\n", k / (ms / 1000) }'
