#!/usr/bin/env bash
# Sets up and runs the benchmark: `bench/run.sh` (about 6 minutes) or
# `bench/run.sh --quick` (under 2). Needs wrk (Debian) and taskset.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-envoy.sh
./build.sh >/dev/null
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
cargo build --quiet --release -p ai-gateway-tests --bin bench-upstream
exec python3 bench/bench.py "$@"
