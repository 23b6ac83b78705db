#!/usr/bin/env bash
# Builds the page into web/dist: the library for wasm32 (WebGPU) through wasm-bindgen, the
# page, and the digits classifier of assets/digits. Serve it with
# `cargo run --release -p resnet-web --bin serve` (http://127.0.0.1:8000/).
#
# Needs the wasm32 target (`rustup target add wasm32-unknown-unknown`) and the wasm-bindgen CLI
# of exactly the wasm-bindgen version in Cargo.lock (the error below says which).
set -euo pipefail
cd "$(dirname "$0")/.."

want=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')
have=$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2 || true)
if [ "$have" != "$want" ]; then
    echo "web/build.sh: needs wasm-bindgen $want (found: ${have:-none});" \
        "install it with: cargo install wasm-bindgen-cli --version $want" >&2
    exit 1
fi
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "web/build.sh: needs the wasm32 target; add it with: rustup target add wasm32-unknown-unknown" >&2
    exit 1
fi

cargo build --release --locked --target wasm32-unknown-unknown -p resnet-web --lib
rm -rf web/dist
mkdir -p web/dist/digits
wasm-bindgen --target web --no-typescript --out-dir web/dist/pkg \
    target/wasm32-unknown-unknown/release/resnet_web.wasm
cp web/index.html web/app.js web/dist/
cp assets/digits/digits.safetensors assets/digits/labels.txt web/dist/digits/
echo "web/dist: $(du -sh web/dist/pkg/resnet_web_bg.wasm | cut -f1) of wasm; serve it with: cargo run --release -p resnet-web --bin serve"
