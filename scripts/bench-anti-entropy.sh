#!/usr/bin/env bash
# Anti-entropy, measured on three `halka server` processes (N=3, W=2, R=2, hinted handoff
# off so that only anti-entropy repairs).
#
#   repair [KEYS]        node-3 is SIGKILLed, KEYS distinct keys are written through
#                        node-1, node-3 restarts: time until the three store digests are
#                        equal (every replica identical) and keys repaired per second.
#                        Then the foreground cost: SET and GET through node-1 with every
#                        replica identical, and again while node-3 is refilled from an
#                        emptied data directory; p99 and throughput ratios.
#   cost [ROUNDS]        hot-path cost of keeping digest trees: the same build with
#                        anti-entropy on and off, alternated, SET and GET through node-1.
#
# AAE_RATE sets anti_entropy.max_keys_per_second (default 50000), AAE_BUSY_RATE
# anti_entropy.busy_keys_per_second (default 1500: the rate while a node serves clients);
# AAE_NODE_EXTRA adds top-level lines to every node's config (e.g. "read_hedge_ms = 1");
# AAE_ROUNDS the rounds of the foreground cost (default 3; the median is reported).
# Needs redis-benchmark and redis-cli (Debian: redis-tools).
# Usage: [AAE_RATE=N] [AAE_BUSY_RATE=N] scripts/bench-anti-entropy.sh repair [1000000] | cost [5]
set -euo pipefail
cd "$(dirname "$0")/.."

MODE="${1:-repair}"
ARG="${2:-}"
BASE=6680
command -v redis-benchmark >/dev/null || { echo "missing redis-benchmark (apt-get install redis-tools)" >&2; exit 1; }
cargo build --release --quiet
HALKA="${HALKA:-target/release/halka}"

WORK="$(mktemp -d)"
declare -A PID
cleanup() {
    for pid in "${PID[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

SECRET="$("$HALKA" secret)"

# Writes the three node configs; $1 is "true" or "false" for anti-entropy.
configure() {
    local members="" i
    for i in 1 2 3; do
        members+=$'[[members]]\n'"id = \"node-$i\""$'\n'"peer_addr = \"127.0.0.1:$((BASE + 200 + i))\""$'\n'
    done
    for i in 1 2 3; do
        cat >"$WORK/node-$i.toml" <<TOML
node_id = "node-$i"
data_dir = "$WORK/data/node-$i"
redis_addr = "127.0.0.1:$((BASE + i))"
http_addr = "127.0.0.1:$((BASE + 100 + i))"
peer_addr = "127.0.0.1:$((BASE + 200 + i))"
cluster_secret = "$SECRET"
worker_threads = 1
${AAE_NODE_EXTRA:-}
[handoff]
enabled = false
[anti_entropy]
enabled = $1
max_keys_per_second = ${AAE_RATE:-50000}
busy_keys_per_second = ${AAE_BUSY_RATE:-1500}
$members
TOML
    done
}

start() {
    "$HALKA" server --config "$WORK/node-$1.toml" >>"$WORK/node-$1.log" 2>&1 &
    PID[$1]=$!
    for _ in $(seq 1 600); do
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

stop() {
    kill "-$2" "${PID[$1]}" 2>/dev/null || true
    wait "${PID[$1]}" 2>/dev/null || true
    unset "PID[$1]"
}

field() {
    redis-cli -p $((BASE + $1)) info halka | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'
}

identical() {
    local a b c
    a=$(field 1 aae_store_digest); b=$(field 2 aae_store_digest); c=$(field 3 aae_store_digest)
    [ -n "$a" ] && [ "$a" = "$b" ] && [ "$b" = "$c" ]
}

repaired() { echo $(( $(field 1 aae_keys_repaired) + $(field 2 aae_keys_repaired) + $(field 3 aae_keys_repaired) )); }

now_ms() { date +%s%3N; }

# SET and GET through node-1: prints "TEST ops/s p99_ms" lines.
load() {
    redis-benchmark -p $((BASE + 1)) -t set,get -c 50 -d 100 -r "$1" -n "$2" --csv 2>/dev/null |
        awk -F',' 'NR > 1 { gsub(/"/, ""); split($0, f, ","); print f[1], f[2], f[7] }'
}

# KEYS distinct keys key:000000000000 .. in the form redis-benchmark's -r uses.
fill() {
    awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) { k = sprintf("key:%012d", i); printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$3\r\nval\r\n", length(k), k } }' |
        redis-cli -p $((BASE + 1)) --pipe | tail -1
}

repair() {
    local keys="${1:-1000000}" t0 t1 before
    configure true
    for i in 1 2 3; do start "$i"; done
    settle 1 2 3
    stop 3 9
    echo "writing $keys keys with node-3 down"
    fill "$keys"
    before=$(( $(field 1 aae_keys_repaired) + $(field 2 aae_keys_repaired) ))
    t0=$(now_ms)
    start 3
    until identical; do sleep 0.2; done
    t1=$(now_ms)
    local ms=$((t1 - t0)) done
    done=$(( $(repaired) - before ))
    echo "node-3 restarted; every replica identical after ${ms} ms (including its start)"
    awk -v k="$done" -v ms="$ms" 'BEGIN { printf "records repaired: %d, %.0f/s\n", k, k / (ms / 1000) }'

    # The foreground cost, in rounds: SET/GET through node-1 with every replica
    # identical, then again while node-3 is refilled from an emptied data directory.
    # Each round pairs a quiet run with the busy one after it; the median ratio is the
    # figure (this machine's noise moves single runs by tens of percent).
    local rounds="${AAE_ROUNDS:-3}" r t2
    : >"$WORK/ratios"
    for r in $(seq 1 "$rounds"); do
        echo "round $r: SET/GET through node-1, $keys keys, every replica identical:"
        load "$keys" 200000 | tee "$WORK/quiet"
        stop 3 9
        rm -rf "$WORK/data/node-3"
        t2=$(now_ms)
        start 3
        echo "round $r: the same while node-3 is refilled from an empty directory:"
        load "$keys" 200000 | tee "$WORK/busy"
        if identical; then echo "(note: the repair finished before the load did)"; fi
        paste -d' ' "$WORK/quiet" "$WORK/busy" |
            awk '{ printf "%s %.3f %.3f\n", $1, $5 / $2, $6 / $3 }' | tee -a "$WORK/ratios" |
            awk '{ printf "%s during repair / quiet: ops/s %.2fx, p99 %.2fx\n", $1, $2, $3 }'
        until identical; do sleep 0.2; done
        echo "node-3 refilled from empty, under that load, after $(( $(now_ms) - t2 )) ms"
    done
    [ "$rounds" -gt 0 ] || return 0
    for t in SET GET; do
        awk -v t="$t" '$1 == t { print $2, $3 }' "$WORK/ratios" | sort -n -k2 |
            awk -v t="$t" '{ ops[NR] = $1; p99[NR] = $2 } END {
                m = int((NR + 1) / 2); printf "%s median of %d rounds: p99 %.2fx (ops/s %.2fx in that round)\n", t, NR, p99[m], ops[m] }'
    done
}
cost() {
    local rounds="${1:-5}" r side
    : >"$WORK/all"
    printf '%-6s %-4s %-4s %12s %9s\n' round aae test "ops/s" "p99 ms"
    for r in $(seq 1 "$rounds"); do
        # Which side goes first alternates, so drift over a round favours neither.
        local order="on off"
        [ $((r % 2)) -eq 0 ] && order="off on"
        for side in $order; do
            rm -rf "$WORK/data"
            configure "$([ "$side" = on ] && echo true || echo false)"
            for i in 1 2 3; do start "$i"; done
            settle 1 2 3
            load 100000 200000 | while read -r t rps p99; do
                printf '%-6s %-4s %-4s %12s %9s\n' "$r" "$side" "$t" "$rps" "$p99"
                echo "$side $t $rps $p99" >>"$WORK/all"
            done
            for i in 1 2 3; do stop "$i" INT; done
        done
    done
    for t in SET GET; do
        paste -d' ' <(awk -v t="$t" '$1 == "off" && $2 == t { print $3 }' "$WORK/all") \
            <(awk -v t="$t" '$1 == "on" && $2 == t { print $3 }' "$WORK/all") |
            awk '{ printf "%.3f\n", $2 / $1 }' | sort -n >"$WORK/ratios"
        n=$(wc -l <"$WORK/ratios")
        echo "$t: on/off ops/s per round: median $(sed -n "$(( (n + 1) / 2 ))p" "$WORK/ratios")," \
            "min $(head -1 "$WORK/ratios"), max $(tail -1 "$WORK/ratios")"
    done
}

case "$MODE" in
    repair) repair "${ARG:-1000000}" ;;
    cost) cost "${ARG:-5}" ;;
    *) echo "usage: $0 repair [KEYS] | cost [ROUNDS]" >&2; exit 2 ;;
esac
