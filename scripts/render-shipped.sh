#!/usr/bin/env bash
# Renders every envoy/<name>.gateway.yaml to envoy/<name>.yaml, the files the
# compose file mounts and the end-to-end tests run. `cargo test -p
# ai-gateway-cli` fails while one of them is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p ai-gateway-cli --bin aigw
for gateway in envoy/*.gateway.yaml; do
    out="${gateway%.gateway.yaml}.yaml"
    target/debug/aigw render --for docker "$gateway" -o "$out"
    echo "rendered $gateway -> $out"
done
