#!/usr/bin/env bash
# The benchmark suite for a real GPU, given only the release binary:
#   tools/gpu-bench.sh [RESNET_BINARY [OUT_DIR]]   (defaults: target/release/resnet, gpu-bench-out)
# Writes JSON (and the logs) under OUT_DIR: the adapter, the tuner's report, the seed experiment
# (resnet_v2_152, batch 32, 10 + 100 steps) heuristic and tuned, batch sweeps of resnet50,
# resnet_v2_50 and resnet_v2_152 in f32 and (where the adapter has SHADER_F16) f16, and one
# per-layer profile at batch 32. Record what it prints in BENCHMARKS.md with the card's name.
# GPU_BENCH_QUICK=1: the same steps at 32x32 with 1 step each (a smoke test of the script).
set -euo pipefail
BIN=${1:-target/release/resnet}
OUT=${2:-gpu-bench-out}
mkdir -p "$OUT"
# Tuning results go beside the other outputs, so this run neither reads nor overwrites the
# user's own cache.
export RESNET_CACHE_DIR="$OUT/cache"
if [ "${GPU_BENCH_QUICK:-0}" = 1 ]; then
    Q=(--size 32); W=(--warmup 0 --steps 1); SEED=(--warmup 0 --steps 1); SWEEP=1,2; TB=(--batch 2)
else
    Q=(); W=(--warmup 10 --steps 50); SEED=(--warmup 10 --steps 100); SWEEP=1,8,32,64,128; TB=(--batch 32)
fi
log() { echo "== $*" | tee -a "$OUT/log.txt"; }
run() { # run NAME ARGS...: stdout to OUT/NAME.json, stderr to the log
    local name=$1; shift
    log "$name: $BIN $*"
    # A failed step (say f16 on an adapter without it) is logged and the suite goes on; the
    # script's exit status says whether any failed.
    if ! "$BIN" "$@" >"$OUT/$name.json" 2>>"$OUT/log.txt"; then
        log "$name FAILED (see log.txt)"
        failed=$((failed + 1))
    fi
}
failed=0

[ -x "$BIN" ] || { echo "no executable at $BIN: build with cargo build --release" >&2; exit 1; }
# Vulkan loader and driver: say what is missing before anything runs.
if command -v vulkaninfo >/dev/null; then
    vulkaninfo --summary >"$OUT/vulkaninfo.txt" 2>&1 || true
fi
log "info"
"$BIN" info 2>>"$OUT/log.txt" | tee "$OUT/info.txt"
f16=false
grep -q SHADER_F16 "$OUT/info.txt" && f16=true

# The seed experiment with the heuristic's kernels, then tuned at batch 32 and again.
run seed_heuristic bench --model resnet_v2_152 "${TB[@]}" "${Q[@]}" "${SEED[@]}" --json --no-tuning
run tune_resnet_v2_152 tune --model resnet_v2_152 "${TB[@]}" "${Q[@]}" --json
run seed_tuned bench --model resnet_v2_152 "${TB[@]}" "${Q[@]}" "${SEED[@]}" --json

for model in resnet50 resnet_v2_50 resnet_v2_152; do
    run "sweep_${model}_f32" bench --model "$model" --sweep "$SWEEP" "${Q[@]}" "${W[@]}" --json
    if $f16; then
        run "sweep_${model}_f16" bench --model "$model" --sweep "$SWEEP" "${Q[@]}" "${W[@]}" \
            --precision f16 --json
    fi
done
run profile_resnet_v2_152 bench --model resnet_v2_152 "${TB[@]}" "${Q[@]}" --warmup 1 --steps 1 --profile --json
log "done: $OUT ($failed failed)"
[ "$failed" = 0 ]
