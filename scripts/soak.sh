#!/usr/bin/env bash
# The long robustness soak (not in CI): the shipped governance chain under
# mixed traffic for MINUTES (default 30), Envoy's RSS printed each minute;
# from 10 minutes on it fails if RSS grew over 5% from minute 5 to the end.
# Usage: scripts/soak.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
minutes="${1:-30}"
./build.sh >/dev/null
SOAK_SECS=$((minutes * 60)) cargo test -q -p ai-gateway-tests --test robustness soak_mixed_traffic -- --nocapture 2>&1 | grep -E "^soak:|test result|panicked|memory"
