#!/usr/bin/env bash
# One hung node, measured: a 3-node `halka dev` cluster (N=3, W=2, R=2) driven by
# redis-benchmark through node-1, healthy and then with node-3 SIGSTOPped (its sockets
# stay open, nothing answers). Prints SET and GET ops/s and p99 for both, and the ratios.
#
# Needs redis-benchmark and redis-cli (Debian: redis-tools).
# Usage: scripts/bench-hung.sh [requests per run, default 100000]
# HALKA=path/to/halka runs another build (for before/after figures) instead of building.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS="${1:-100000}"
PORT=6680
command -v redis-benchmark >/dev/null || { echo "missing redis-benchmark (apt-get install redis-tools)" >&2; exit 1; }
if [ -z "${HALKA:-}" ]; then cargo build --release --quiet; HALKA=target/release/halka; fi
WORK="$(mktemp -d)"
"$HALKA" dev --nodes 3 --data-dir "$WORK/data" --port "$PORT" --http-port 8680 \
    --peer-port 7680 >"$WORK/dev.log" 2>&1 &
DEV=$!
cleanup() {
    pkill -CONT -f "$WORK" 2>/dev/null || true
    kill -INT "$DEV" 2>/dev/null || true
    wait "$DEV" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
for p in "$PORT" $((PORT + 1)) $((PORT + 2)); do
    for _ in $(seq 1 200); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done
done

# "test rps p99" for SET and GET.
run() {
    redis-benchmark -p "$PORT" -t set,get -c 50 -d 100 -r 100000 -n "$REQUESTS" --csv 2>/dev/null |
        awk -F',' 'NR > 1 { gsub(/"/, ""); split($0, f, ","); print f[1], f[2], f[7] }'
}

run >"$WORK/healthy"
NODE3=$(pgrep -f "$WORK/data/node-3.toml" | head -1)
kill -STOP "$NODE3"
run >"$WORK/hung"
kill -CONT "$NODE3"
printf '%-5s %14s %10s %14s %10s %9s %9s\n' test "healthy ops/s" "p99 ms" "hung ops/s" "p99 ms" "ops x" "p99 x"
paste -d' ' "$WORK/healthy" "$WORK/hung" | while read -r t h_rps h_p99 _ s_rps s_p99; do
    awk -v t="$t" -v a="$h_rps" -v b="$h_p99" -v c="$s_rps" -v d="$s_p99" \
        'BEGIN { printf "%-5s %14s %10s %14s %10s %9.2f %9.2f\n", t, a, b, c, d, c / a, d / b }'
done
