#!/usr/bin/env bash
# Two builds of halka, alternated on the same machine: each round starts a 3-node
# `halka dev` cluster (N=3, W=2, R=2, periodic sync) from one binary, drives it with
# redis-benchmark (SET and GET, 50 clients, 100-byte values), stops it, then does the
# same with the other binary. Prints every round and the median ratio B/A per test.
# Alternating cancels most of a shared machine's drift; compare ratios, not absolutes.
#
# Needs redis-benchmark and redis-cli (Debian: redis-tools).
# Usage: scripts/bench-ab.sh A_BINARY B_BINARY [rounds, default 3] [requests, default 200000]
set -euo pipefail
A="$1"; B="$2"; ROUNDS="${3:-3}"; REQUESTS="${4:-200000}"
PORT=6780
command -v redis-benchmark >/dev/null || { echo "missing redis-benchmark (apt-get install redis-tools)" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

one() {
    local bin=$1 dir
    dir="$(mktemp -d -p "$WORK")"
    "$bin" dev --nodes 3 --data-dir "$dir" --port "$PORT" --http-port 8780 --peer-port 7780 \
        >"$dir/dev.log" 2>&1 &
    local dev=$!
    for p in "$PORT" $((PORT + 1)) $((PORT + 2)); do
        for _ in $(seq 1 200); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done
    done
    redis-benchmark -p "$PORT" -t set,get -c 50 -d 100 -r 100000 -n "$REQUESTS" --csv 2>/dev/null |
        awk -F',' 'NR > 1 { gsub(/"/, ""); split($0, f, ","); print f[1], f[2], f[7] }'
    kill -INT "$dev"; wait "$dev" 2>/dev/null || true
}

printf '%-6s %-5s %-4s %12s %9s\n' round build test "ops/s" "p99 ms"
for r in $(seq 1 "$ROUNDS"); do
    for side in A B; do
        bin=$A; [ "$side" = B ] && bin=$B
        one "$bin" | while read -r t rps p99; do
            printf '%-6s %-5s %-4s %12s %9s\n' "$r" "$side" "$t" "$rps" "$p99"
            echo "$side $t $rps $p99" >>"$WORK/all"
        done
    done
done
for t in SET GET; do
    paste -d' ' <(awk -v t="$t" '$1 == "A" && $2 == t { print $3 }' "$WORK/all") \
        <(awk -v t="$t" '$1 == "B" && $2 == t { print $3 }' "$WORK/all") |
        awk '{ printf "%.3f\n", $2 / $1 }' | sort -n >"$WORK/ratios"
    n=$(wc -l <"$WORK/ratios")
    echo "$t: B/A ops/s per round: median $(sed -n "$(( (n + 1) / 2 ))p" "$WORK/ratios")," \
        "min $(head -1 "$WORK/ratios"), max $(tail -1 "$WORK/ratios")"
done
