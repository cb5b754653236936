#!/usr/bin/env bash
# Builds every filter for wasm32-wasip1 into dist/, shrinks them with
# wasm-opt when it is installed, and prints each module's size.
set -euo pipefail
cd "$(dirname "$0")"

if ! rustup target list --installed | grep -qx wasm32-wasip1; then
    rustup target add wasm32-wasip1
fi

filters=()
for manifest in filters/*/Cargo.toml; do
    grep -q 'crate-type = \["cdylib"\]' "$manifest" && filters+=("$(basename "$(dirname "$manifest")")")
done

cargo build --quiet --release --target wasm32-wasip1 $(printf -- '-p %s ' "${filters[@]}")

mkdir -p dist
for name in "${filters[@]}"; do
    module="${name//-/_}.wasm"
    src="target/wasm32-wasip1/release/$module"
    # Unchanged since the last build: keep the optimized module (each test
    # binary runs this script once; wasm-opt takes seconds per module).
    if [ -f "dist/$module" ] && [ "dist/$module" -nt "$src" ]; then
        continue
    fi
    if command -v wasm-opt >/dev/null; then
        # Debian's binaryen 108 needs the features rustc emits spelled out.
        # -Os, not -Oz: V8 compiled -Oz output about 20% slower at startup.
        wasm-opt -Os --strip-debug --enable-bulk-memory --enable-sign-ext \
            --enable-nontrapping-float-to-int --enable-mutable-globals \
            --enable-multivalue --enable-reference-types "$src" -o "dist/$module.tmp"
        mv "dist/$module.tmp" "dist/$module"
    else
        cp "$src" "dist/$module"
    fi
done

command -v wasm-opt >/dev/null || echo "note: wasm-opt not found (apt-get install binaryen): modules are unoptimized"
for name in "${filters[@]}"; do
    module="${name//-/_}.wasm"
    printf '%-28s %8d bytes\n' "dist/$module" "$(stat -c %s "dist/$module")"
done
