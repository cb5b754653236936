#!/usr/bin/env bash
# Sets up and runs every test: codec unit tests (native and wasm32),
# clippy's no-panic lints, and the end-to-end tests in a real Envoy.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$HOME/.cargo/bin:$PATH"

scripts/setup-test-deps.sh
./build.sh

# Filter and codec code may not unwrap, expect, panic or index unchecked.
cargo clippy --quiet --release --target wasm32-wasip1 -p ai-gateway-codec -p ai-gateway-host \
    $(for m in filters/*/Cargo.toml; do grep -q cdylib "$m" && echo "-p $(basename "$(dirname "$m")")"; done) -- -D warnings

# The native crates (rate-limit service, aigw) under the same lints.
cargo clippy --quiet -p ai-ratelimit-service -p ai-gateway-cli --all-targets -- -D warnings

mkdir -p target
echo "== codec tests compiled to wasm32 (wasm-bindgen-test, node)"
cargo test -p ai-gateway-codec --target wasm32-unknown-unknown 2>&1 | tee target/test-wasm32.log

echo "== native tests: codec units and end-to-end in Envoy"
rm -rf target/e2e
cargo test --workspace 2>&1 | tee target/test-native.log

# Every Envoy the tests started, checked at the end of its life: a wasm
# panic or trap in any of them fails the run, whichever test caused it.
crashes=$(grep -lE "panicked at|Uncaught RuntimeError" target/e2e/*.log || true)
if [ -n "$crashes" ]; then
    echo "wasm VM failures in: $crashes" >&2
    grep -hE "panicked at|Uncaught RuntimeError" $crashes | head -5 >&2
    echo "0 passed, 1 failed"
    exit 1
fi

# The benchmark is not a test (nothing is timed here), but one quick round
# keeps the script working: it fails if any request through any target fails.
echo "== benchmark smoke (bench/run.sh --quick)"
bench/run.sh --quick --out target/bench >/dev/null

# A few seconds per fuzz target (the long run: scripts/fuzz.sh 600). It
# needs the nightly toolchain; without it the smoke is skipped, loudly.
if rustup toolchain list | grep -q '^nightly'; then
    echo "== fuzz smoke"
    scripts/fuzz.sh 5
else
    echo "== fuzz smoke SKIPPED: no nightly toolchain (rustup toolchain install nightly)"
fi

# One closing line for all the test runs above.
grep -ho 'test result: [a-zA-Z]*\. [0-9]* passed; [0-9]* failed' target/test-wasm32.log target/test-native.log \
    | awk '{passed += $4; failed += $6} END {print passed " passed, " failed " failed"}'
