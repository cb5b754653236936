#!/usr/bin/env bash
# Sets up and runs the benchmark: `bench/run.sh` (about 17 minutes) or
# `bench/run.sh --quick` (about 5). Needs wrk, redis-server and taskset (Debian);
# perf (linux-perf), when installed, adds where the CPU goes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-envoy.sh
./build.sh >/dev/null
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
cargo build --quiet --release -p ai-gateway-tests --bin bench-upstream
# Host-call counts per filter come from the same modules built with the
# host crate's `count-host-calls` feature, in a target dir of their own.
CARGO_TARGET_DIR=target/count cargo build --quiet --release --target wasm32-wasip1 \
    -p ai-proxy -p ai-proxy-advanced -p ai-prompt-guard -p ai-prompt-decorator -p ai-prompt-template -p ai-token-ratelimit -p ai-mcp-proxy -p ai-a2a-proxy \
    --features ai-gateway-host/count-host-calls
# The floor rows: a bench-only wasm filter (bench/floor-filter), never shipped.
cargo build --quiet --release --target wasm32-wasip1 -p bench-floor-filter
# The shared-budget target runs the rate-limit service and Redis; --quick
# (CI's smoke) takes the debug build test.sh already made.
command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }
if [[ " $* " == *" --quick "* ]]; then
    cargo build --quiet -p ai-ratelimit-service
else
    cargo build --quiet --release -p ai-ratelimit-service
fi
exec python3 bench/bench.py "$@"
