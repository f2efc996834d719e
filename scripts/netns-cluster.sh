#!/usr/bin/env bash
# A 3-node halka cluster on three "hosts" of one Linux machine: network namespaces hk1..hk3
# at 10.77.0.1..3 on a bridge, each running `halka server`. Unlike `halka dev` (loopback),
# the nodes talk over real network stacks, and a host can be cut off the way a switch port
# fails — packets vanish, nothing is refused — to watch deadlines, quorums and repair.
#
# Needs root and iproute2. Usage:
#   scripts/netns-cluster.sh up              build, start, print how to connect
#   scripts/netns-cluster.sh partition 3     cut hk3 off the bridge
#   scripts/netns-cluster.sh heal 3          reconnect it
#   scripts/netns-cluster.sh down            stop the nodes, remove namespaces and bridge
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=3
BRIDGE=hkbr0
STATE=/tmp/halka-netns
HALKA="$PWD/target/release/halka"

up() {
    cargo build --release --quiet
    mkdir -p "$STATE"
    ip link add "$BRIDGE" type bridge
    ip link set "$BRIDGE" up
    # The nodes listen beyond loopback: the peer port needs a shared secret, and the
    # client ports protected mode off (the namespaces' bridge is private to this host).
    local secret
    secret=$("$HALKA" secret)
    local members=""
    for i in $(seq 1 "$NODES"); do
        members+="[[members]]\nid = \"n$i\"\npeer_addr = \"10.77.0.$i:7380\"\n"
    done
    for i in $(seq 1 "$NODES"); do
        ip netns add "hk$i"
        ip link add "hkv$i" type veth peer name eth0 netns "hk$i"
        ip link set "hkv$i" master "$BRIDGE"
        ip link set "hkv$i" up
        ip netns exec "hk$i" ip addr add "10.77.0.$i/24" dev eth0
        ip netns exec "hk$i" ip link set eth0 up
        ip netns exec "hk$i" ip link set lo up
        printf "node_id = \"n$i\"\ndata_dir = \"$STATE/n$i\"\nredis_addr = \"10.77.0.$i:6380\"\nhttp_addr = \"10.77.0.$i:8080\"\npeer_addr = \"10.77.0.$i:7380\"\ncluster_secret = \"$secret\"\nprotected_mode = false\n$members" \
            >"$STATE/n$i.toml"
        ip netns exec "hk$i" "$HALKA" server --config "$STATE/n$i.toml" >"$STATE/n$i.log" 2>&1 &
        echo $! >"$STATE/n$i.pid"
    done
    for i in $(seq 1 "$NODES"); do
        for _ in $(seq 1 100); do
            ip netns exec "hk$i" "$HALKA" status --addr "10.77.0.$i:6380" >/dev/null 2>&1 && break
            sleep 0.1
        done
    done
    echo "halka on hk1..hk$NODES (10.77.0.1..$NODES; Redis 6380, HTTP 8080); logs in $STATE"
    echo "  ip netns exec hk1 redis-cli -h 10.77.0.1 -p 6380 set Mahmut Ozer"
    echo "  ip netns exec hk2 $HALKA status --addr 10.77.0.2:6380"
    echo "  $0 partition 3; ...; $0 heal 3; $0 down"
}

down() {
    local pids=()
    for file in "$STATE"/*.pid; do
        [ -e "$file" ] && pids+=("$(cat "$file")")
    done
    [ "${#pids[@]}" -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
    # Graceful shutdown takes up to the nodes' grace period; a namespace outlives its
    # deletion while a process is inside, and so would its veth.
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
    for i in $(seq 1 "$NODES"); do
        ip netns del "hk$i" 2>/dev/null || true
        ip link del "hkv$i" 2>/dev/null || true
    done
    ip link del "$BRIDGE" 2>/dev/null || true
    rm -rf "$STATE"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    partition) ip link set "hkv${2:?which node}" down ;;
    heal) ip link set "hkv${2:?which node}" up ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
esac
