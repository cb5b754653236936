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

echo "== codec tests compiled to wasm32 (wasm-bindgen-test, node)"
cargo test -p ai-gateway-codec --target wasm32-unknown-unknown

echo "== native tests: codec units and end-to-end in Envoy"
cargo test --workspace
