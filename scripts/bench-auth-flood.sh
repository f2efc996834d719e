#!/usr/bin/env bash
# What a flood of wrong passwords costs real clients. A 3-node `halka dev` cluster with a
# password on the default user; redis-benchmark GETs and SETs (16 clients, logged in)
# measure ops/s and p99 before, then again while FLOODERS connections send `AUTH` with a
# wrong password as fast as the node answers them (from the same address, so the
# throttle slows the flood: 10 free failures a minute, then 10 ms doubling to 1 s per
# AUTH). Prints both, their ratio, the failures the node counted and the CPU it used.
#
# Needs redis-benchmark and curl.
# Usage: scripts/bench-auth-flood.sh [halka binary, default target/release/halka] [flooders, default 200] [seconds, default 20]
set -euo pipefail
BIN="${1:-target/release/halka}"; FLOODERS="${2:-200}"; SECONDS_="${3:-20}"
WORK="$(mktemp -d)"
cleanup() { kill "${DEV:-}" "${FLOOD:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
PW=flood-bench-password
"$BIN" dev --data-dir "$WORK" --port 6960 --http-port 8960 --peer-port 7960 >"$WORK/dev.log" 2>&1 &
DEV=$!
for _ in $(seq 1 600); do grep -q "Ctrl-C stops" "$WORK/dev.log" 2>/dev/null && break; sleep 0.05; done
redis-cli -p 6960 ACL SETUSER default on ">$PW" >/dev/null
for _ in $(seq 1 200); do redis-cli -p 6962 --user default --pass "$PW" PING 2>/dev/null | grep -q PONG && break; sleep 0.05; done

measure() {
    redis-benchmark -p 6960 --user default -a "$PW" -t set,get -c 16 -d 100 -r 100000 -n 100000 --csv 2>/dev/null |
        awk -F',' 'NR > 1 { gsub(/"/, ""); split($0, f, ","); print f[1], f[2], f[7] }'
}
cpu() { ps -o cputime= -p "$(pgrep -f "$WORK/node-1.toml" | head -1)" | awk -F: '{ print $1 * 3600 + $2 * 60 + $3 }'; }

echo "before the flood (op ops/s p99_ms):"; measure | tee "$WORK/before"
c0=$(cpu)
# FLOODERS connections, each sending AUTH with a wrong password as soon as the last was
# answered; prints how many answers came back.
python3 - "$FLOODERS" >"$WORK/flood" <<'PY' &
import asyncio, signal, sys
def stop(*_):
    raise KeyboardInterrupt
signal.signal(signal.SIGTERM, stop)
async def flood(counts):
    reader, writer = await asyncio.open_connection("127.0.0.1", 6960)
    auth = b"*3\r\n$4\r\nAUTH\r\n$8\r\nintruder\r\n$11\r\nwrong-guess\r\n"
    while True:
        writer.write(auth)
        await reader.readline()
        counts[0] += 1
async def main(n):
    counts = [0]
    tasks = [asyncio.create_task(flood(counts)) for _ in range(n)]
    try:
        await asyncio.sleep(3600)
    finally:
        print(counts[0], flush=True)
try:
    asyncio.run(main(int(sys.argv[1])))
except KeyboardInterrupt:
    pass
PY
FLOOD=$!
sleep 2
echo "during the flood:"; measure | tee "$WORK/during"
sleep "$SECONDS_"
c1=$(cpu)
kill "$FLOOD"; wait "$FLOOD" 2>/dev/null || true
failures=$(curl -s -u "default:$PW" http://127.0.0.1:8960/metrics | awk '/^halka_auth_failures_total/ { print $2 }')
join "$WORK/before" "$WORK/during" | awk '{ printf "%s ops/s during/before %.2f, p99 during/before %.2f\n", $1, $4 / $2, $5 / $3 }'
echo "the flood got $(cat "$WORK/flood") answers"
echo "node-1: $failures failed AUTHs counted; $(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }') s of CPU over the flood"
