#!/usr/bin/env bash
# Fuzzes what crosses halka's trust boundaries: Redis requests, peer-port frames, stored
# records, HTTP causal-context tokens, ACL rules and HTTP credentials (targets in
# fuzz/fuzz_targets), with cargo-fuzz (libFuzzer, coverage-guided).
#
#   scripts/fuzz.sh [seconds per target, default 60] [target...]
#       Nightly toolchain with AddressSanitizer (`rustup toolchain install nightly`).
#   scripts/fuzz.sh --runs N [target...]
#       The same, N executions per target (the long run in BENCHMARKS.md: 10000000).
#   scripts/fuzz.sh --ci [seconds per target, default 20]
#       What .ci/run does: the stable toolchain without a sanitizer (sanitizers need
#       nightly), installing cargo-fuzz if it is missing. Panics, failed assertions,
#       out-of-memory and timeouts still fail the run.
#
# Any crash fails the script and leaves its input under fuzz/artifacts/<target>/; replay
# it with `cargo +nightly fuzz run <target> <file>`.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

TOOLCHAIN=(+nightly)
BUILD=()
LIMIT=(-max_total_time=60)
case "${1:-}" in
--ci)
    shift
    TOOLCHAIN=()
    BUILD=(--sanitizer none)
    LIMIT=(-max_total_time="${1:-20}")
    shift || true
    if ! cargo fuzz --version >/dev/null 2>&1; then
        cargo install --locked --quiet cargo-fuzz@0.13.2
    fi
    ;;
--runs)
    LIMIT=(-runs="$2")
    shift 2
    ;;
"") ;;
*)
    LIMIT=(-max_total_time="$1")
    shift
    ;;
esac
# Its own target directory: the instrumented build must not replace the workspace's.
BUILD+=(--target-dir "${FUZZ_TARGET_DIR:-target}")
TARGETS=("$@")
[ "${#TARGETS[@]}" -gt 0 ] || TARGETS=(resp_request rpc_frame stored_record context_token glob_pattern acl_rules http_auth)

# One build for every target before any runs, so the runs' time limits hold. cargo-fuzz
# builds optimised with debug assertions and overflow checks on: an overflow fails too.
cargo "${TOOLCHAIN[@]}" fuzz build "${BUILD[@]}"
for target in "${TARGETS[@]}"; do
    echo "== $target (${LIMIT[*]})"
    mkdir -p "corpus/$target"
    log="$(mktemp)"
    if ! cargo "${TOOLCHAIN[@]}" fuzz run "${BUILD[@]}" "$target" "corpus/$target" -- \
        "${LIMIT[@]}" -rss_limit_mb=2048 -max_len=65536 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz target $target failed; its input is under fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E "^Done|DONE" "$log" | tail -n 2
    rm -f "$log"
done
