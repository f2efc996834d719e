#!/usr/bin/env bash
# Fuzzes what crosses halka's trust boundaries: Redis requests, peer-port frames, stored
# records and HTTP causal-context tokens (targets in fuzz/fuzz_targets). Needs the nightly
# toolchain and cargo-fuzz (`rustup toolchain install nightly; cargo install cargo-fuzz`).
# A crash leaves its input under fuzz/artifacts/<target>/; replay it with
# `cargo +nightly fuzz run <target> <file>`.
# Usage: scripts/fuzz.sh [seconds per target, default 60] [target...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH="${1:-60}"
shift || true
TARGETS=("$@")
[ "${#TARGETS[@]}" -gt 0 ] || TARGETS=(resp_request rpc_frame stored_record context_token)
for target in "${TARGETS[@]}"; do
    echo "== $target (${SECONDS_EACH}s)"
    cargo +nightly fuzz run "$target" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 2>&1 |
        grep -E "^#[0-9]+.*DONE|^Done|ERROR|panicked|deadly signal" || true
done
