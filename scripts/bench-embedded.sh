#!/usr/bin/env bash
# Embedded benchmark against the seed's design in Go, in the same run: `halka bench
# --embedded` and bench/seed-go (the seed's Toy DynamoDB written idiomatically: goroutine
# per replica, buffered channel, RWMutex per node) run the same workload — 6 nodes, N=5,
# W=3, R=3, 100,000 preloaded keys, 1,000,000 ops at 50% put / 50% get, 100-byte values —
# alternately, ROUNDS times. Prints every round and the median ops/s, p99 and the
# halka/Go ratio per client count. The machine is shared: trust the ratios and medians.
#
# Needs Go (Debian: golang-go). Usage: scripts/bench-embedded.sh [rounds, default 5] [clients, default 1,2]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${1:-5}"
CLIENTS="${2:-1,2}"
command -v go >/dev/null || { echo "missing go (apt-get install golang-go)" >&2; exit 1; }
cargo build --release --quiet
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd bench/seed-go && go build -o "$WORK/seed-go" .)

# Both print the same table: clients ops/s p50 p99 p99.9 errors.
for round in $(seq 1 "$ROUNDS"); do
    target/release/halka bench --embedded --clients "$CLIENTS" |
        awk -v r="$round" '$1 ~ /^[0-9]+$/ && NF == 6 { print "halka", r, $1, $2, $4 }' >>"$WORK/rows"
    "$WORK/seed-go" -clients "$CLIENTS" |
        awk -v r="$round" '$1 ~ /^[0-9]+$/ && NF == 6 { print "go", r, $1, $2, $4 }' >>"$WORK/rows"
done

printf '%-6s %-5s %-7s %12s %9s\n' impl round clients "ops/s" "p99 µs"
sort -k3,3n -k2,2n -k1,1 "$WORK/rows" | awk '{ printf "%-6s %-5s %-7s %12.0f %9.2f\n", $1, $2, $3, $4, $5 }'
echo
printf '%-7s %14s %11s %14s %11s %8s\n' clients "halka ops/s" "halka p99" "go ops/s" "go p99" ratio
for c in ${CLIENTS//,/ }; do
    median() { awk -v i="$1" -v c="$c" -v col="$2" '$1 == i && $3 == c { print $col }' "$WORK/rows" |
        sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
    h=$(median halka 4); hp=$(median halka 5); g=$(median go 4); gp=$(median go 5)
    awk -v c="$c" -v h="$h" -v hp="$hp" -v g="$g" -v gp="$gp" \
        'BEGIN { printf "%-7s %14.0f %11.2f %14.0f %11.2f %8.2f\n", c, h, hp, g, gp, h / g }'
done
