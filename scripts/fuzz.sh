#!/usr/bin/env bash
# Fuzzes the codec's parsers and translators with cargo-fuzz (libFuzzer,
# nightly). Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] (default 60).
# Seeds come from shared/fixtures; inputs that once crashed live in
# fuzz/regressions/<target>/ and are replayed first. A new crash is saved
# under fuzz/artifacts/<target>/: move it to fuzz/regressions/ with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
seconds="${1:-60}"

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2

cd fuzz
targets=$(sed -n 's/^name = "\(.*\)"/\1/p' Cargo.toml | grep -v '^ai-gateway-fuzz$')
cargo +nightly fuzz build >/dev/null

seed() {
    local target=$1 dir=corpus/$1
    mkdir -p "$dir"
    case $target in
        sse) for p in anthropic cohere gemini; do cp "../shared/fixtures/$p/stream.sse" "$dir/$p"; done ;;
        proxy_request) for f in ../shared/fixtures/chat_request.json; do printf '\x00' | cat - "$f" > "$dir/openai"; printf '\x04' | cat - "$f" > "$dir/anthropic"; printf '\x07' | cat - "$f" > "$dir/bedrock"; done
            printf '\x10' | cat - ../shared/fixtures/responses_request.json > "$dir/responses-anthropic" ;;
        proxy_response) for p in anthropic cohere gemini bedrock; do
                printf '\x04\x00\x00\x00' | cat - ../shared/fixtures/$p/response.json > "$dir/$p-json"; done
            printf '\x04\x03\x00\x11' | cat - ../shared/fixtures/anthropic/stream.sse > "$dir/anthropic-sse"
            printf '\x10\x03\x00\x11' | cat - ../shared/fixtures/anthropic/stream.sse > "$dir/responses-anthropic-sse" ;;
        mcp) printf '\x00{"jsonrpc":"2.0","id":1,"method":"tools/list"}\x00{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"add"},{"name":"secret"}]}}' > "$dir/list-json"
            printf '\x02{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"add"}}\x00data: {"jsonrpc":"2.0","id":"c","result":{"content":[],"isError":true}}\n\n' > "$dir/call-sse"
            printf '\x03\x00id: 1\ndata: {"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"secret"}]}}\n\n' > "$dir/get-sse" ;;
        a2a) printf '\x00{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m","metadata":{"skillId":"echo"}}}}\x00{"jsonrpc":"2.0","id":1,"result":{"task":{"id":"t","status":{"state":"TASK_STATE_COMPLETED"}}}}' > "$dir/send-json"
            printf '\x08{"jsonrpc":"2.0","id":1,"method":"message/stream","params":{}}\x00data: {"jsonrpc":"2.0","id":1,"result":{"kind":"status-update","taskId":"t","status":{"state":"working"}}}\n\n' > "$dir/stream-sse"
            printf '\x05\x00{"url":"http://a:1/","supportedInterfaces":[{"url":"http://a:1","protocolBinding":"JSONRPC"}],"skills":[{"id":"secret"},{"id":"echo"}]}' > "$dir/card" ;;
        configs) grep -ho "value: '.*'" ../envoy/*.yaml | sed "s/^value: '//; s/'$//" | split -l 1 - "$dir/cfg-" ;;
        governance) cp ../shared/fixtures/chat_request.json "$dir/" ;;
        patterns) printf '(?i)\\b(password|api[_ -]?key)\\b\0my API key is x' > "$dir/deny"
            printf '\\d{3}-\\d{2}-\\d{4}\0ssn 123-45-6789' > "$dir/digits" ;;
        transformer) printf '\x00{"choices":[{"message":{"content":"{\\"status_code\\":201,\\"headers\\":{\\"x-a\\":\\"b\\"},\\"body\\":\\"c\\"}"}}]}' > "$dir/instructions" ;;
        *) ;;
    esac
}

for target in $targets; do
    seed "$target"
    if [ -d "regressions/$target" ] && [ -n "$(ls -A "regressions/$target")" ]; then
        echo "== $target: replaying regressions"
        cargo +nightly fuzz run "$target" "regressions/$target" -- -runs=0 >/dev/null 2>&1 \
            || { echo "$target: a regression input fails again"; exit 1; }
    fi
    echo "== $target: ${seconds}s"
    cargo +nightly fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 2>&1 \
        | grep -E "stat::number_of_executed_units|ERROR|panicked|SUMMARY" || true
    if [ -n "$(ls -A "artifacts/$target" 2>/dev/null)" ]; then
        echo "$target: crash found, see fuzz/artifacts/$target"
        exit 1
    fi
done
