#!/usr/bin/env bash
# The native peers, one run, one adapter: ours (resnet bench), ncnn fp32 and fp16 (PyPI wheel,
# Vulkan) and burn (peer/burn-bench), on the same seeded torchvision ResNet-50, alternating
# round by round. Checks ncnn's logits against ours and torch's before any timing, then prints
# one table of images/s and ratios at batch 1 and at our best batch, and a per-stage profile.
#
#   peer/ncnn/run.sh [--rounds N] [--steps N] [--best-batch B | --candidates 1,8,16,32]
#                    [--burn-batches "1 B"] [--no-cold] [--no-profile]
#
# Environment (all optional; the defaults live under the ignored target/):
#   NCNN_VENV      the Python venv (target/ncnn-venv; created from peer/ncnn/requirements*.txt)
#   NCNN_PEER_DIR  the model, input and logits (target/ncnn-peer; made by tools/gen_ncnn_peer.py)
#   RESNET         our CLI (target/release/resnet; built if missing)
#   BURN_BENCH     burn-bench (target/peer/release/burn-bench; burn is skipped, with a note,
#                  when it is missing: building burn's tree takes ~20 min, see its README)
#   RESULTS        where this run's files go (NCNN_PEER_DIR/run-DATE)
set -euo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

rounds=3
steps=3
best=""
candidates="1,8,16,32"
burn_batches="1 best"
profile=1
cold=1
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --best-batch) best=$2; shift 2 ;;
    --candidates) candidates=$2; shift 2 ;;
    --burn-batches) burn_batches=$2; shift 2 ;;
    --no-cold) cold=0; shift ;;
    --no-profile) profile=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
venv=${NCNN_VENV:-target/ncnn-venv}
model_dir=${NCNN_PEER_DIR:-target/ncnn-peer}
resnet=${RESNET:-target/release/resnet}
burn_bench=${BURN_BENCH:-target/peer/release/burn-bench}
results=${RESULTS:-$model_dir/run-$(date +%Y%m%d-%H%M%S)}
# wgpu and ncnn's loader warn (and some Vulkan layers fail) without a runtime dir.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  XDG_RUNTIME_DIR=$(mktemp -d)
  export XDG_RUNTIME_DIR
fi
started=$(date +%s)
say() { printf '\n== %s\n' "$*"; }

if [ ! -x "$resnet" ]; then
  say "building $resnet"
  cargo build --release --locked
fi
py=$venv/bin/python
if [ ! -x "$py" ]; then
  say "creating $venv (torch pulls ~4 GB of CUDA wheels it does not use)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r peer/ncnn/requirements.txt
  "$venv/bin/pip" install -q --no-deps -r peer/ncnn/requirements-nodeps.txt
fi
weights=$model_dir/resnet50.safetensors
if [ ! -f "$model_dir/manifest.json" ]; then
  say "generating the model into $model_dir"
  "$py" tools/gen_ncnn_peer.py --out "$model_dir"
fi
mkdir -p "$results"

say "adapters"
# ncnn takes its default Vulkan device; ours is pointed at the same one by name.
device=$("$py" peer/ncnn/bench.py info 2>/dev/null | "$py" -c \
  'import json, sys; j = json.load(sys.stdin); print(j["gpus"][j["default_gpu"]])')
echo "ncnn: $("$py" peer/ncnn/bench.py info 2>/dev/null)"
ours=(--backend vulkan --adapter "$device")
echo "ours: $("$resnet" info "${ours[@]}" --json 2>/dev/null | "$py" -c 'import json, sys
j = json.load(sys.stdin)
print(j["name"], "|", j["backend"], "|", j["driver"])')"
date -u +"date: %Y-%m-%d %H:%M UTC"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

say "logits: torch (CPU) vs ours vs ncnn, same weights, same input"
"$resnet" infer --weights "$weights" --input "$model_dir/input.safetensors" \
  --output "$model_dir/ours.safetensors" "${ours[@]}" 2>/dev/null
for mode in fp32 fp16; do
  "$py" peer/ncnn/bench.py logits --model-dir "$model_dir" --mode "$mode" \
    --out "$model_dir/ncnn_$mode.safetensors" 2>/dev/null
done
"$py" peer/ncnn/report.py compare --model-dir "$model_dir"

if [ -z "$best" ]; then
  say "our best batch among $candidates (warm-up 1, 2 steps each)"
  "$resnet" bench --weights "$weights" --sweep "$candidates" --warmup 1 --steps 2 --json \
    "${ours[@]}" 2>/dev/null >"$results/sweep.json"
  best=$("$py" peer/ncnn/report.py best "$results/sweep.json")
fi
echo "best batch: $best"

burn_list=()
for b in $burn_batches; do
  [ "$b" = best ] && b=$best
  case " ${burn_list[*]} " in *" $b "*) ;; *) burn_list+=("$b") ;; esac
done
if [ ! -x "$burn_bench" ]; then
  echo "note: $burn_bench is missing, burn is skipped (build it: CARGO_TARGET_DIR=target/peer" \
    "cargo build --release --locked -p burn-bench)"
  burn_list=()
fi
our_batches=(1)
[ "$best" != 1 ] && our_batches+=("$best")

if [ "$cold" = 1 ]; then
  # Setup + first image with Mesa's shader cache off: what a user waits the first time (lavapipe
  # compiles its shaders on first use; later runs read them from ~/.cache/mesa_shader_cache*).
  # burn is left out: its cold warm-up is minutes of autotuning (see peer/burn-bench/README.md).
  say "cold start, batch 1, MESA_SHADER_CACHE_DISABLE=true"
  MESA_SHADER_CACHE_DISABLE=true "$resnet" bench --weights "$weights" --batch 1 --warmup 0 \
    --steps 1 --json "${ours[@]}" 2>/dev/null >"$results/c-ours-b1.json"
  "$py" peer/ncnn/report.py line "$results/c-ours-b1.json"
  for mode in fp32 fp16; do
    MESA_SHADER_CACHE_DISABLE=true "$py" peer/ncnn/bench.py time --model-dir "$model_dir" \
      --mode "$mode" --warmup 1 --steps 1 2>/dev/null >"$results/c-ncnn-$mode-b1.json"
    "$py" peer/ncnn/report.py line "$results/c-ncnn-$mode-b1.json"
  done
fi

for ((r = 1; r <= rounds; r++)); do
  say "round $r of $rounds"
  for b in "${our_batches[@]}"; do
    "$resnet" bench --weights "$weights" --batch "$b" --warmup 1 --steps "$steps" --json \
      "${ours[@]}" 2>/dev/null >"$results/r$r-ours-b$b.json"
    "$py" peer/ncnn/report.py line "$results/r$r-ours-b$b.json"
  done
  for mode in fp32 fp16; do
    "$py" peer/ncnn/bench.py time --model-dir "$model_dir" --mode "$mode" --warmup 1 \
      --steps "$steps" 2>/dev/null >"$results/r$r-ncnn-$mode-b1.json"
    "$py" peer/ncnn/report.py line "$results/r$r-ncnn-$mode-b1.json"
  done
  for b in "${burn_list[@]}"; do
    # burn-bench times ours (random weights) and then burn in one process; its warm-up is
    # burn's autotune (minutes on a cold cache), so it is timed apart as the first run.
    log=$results/r$r-burn-b$b.log
    "$burn_bench" --batch "$b" --size 224 --warmup 1 --steps "$steps" >"$log" 2>&1 ||
      echo "note: burn-bench --batch $b failed, see $log"
    # Its adapter and its summary line (the per-step lines are indented).
    grep -E '^(burn: adapter|burn resnet50:)' "$log" || true
  done
done

say "images/s, $rounds rounds, $steps timed images or batches each"
"$py" peer/ncnn/report.py table --results "$results" --best-batch "$best" | tee "$results/table.md"

if [ "$profile" = 1 ]; then
  say "per stage, batch 1: ours (GPU timestamps) vs ncnn (wall time per part, see bench.py)"
  # One profiled batch per process: repeat and take each dispatch's median.
  for ((i = 1; i <= steps; i++)); do
    "$resnet" bench --weights "$weights" --batch 1 --warmup 1 --steps 1 --profile --json \
      "${ours[@]}" 2>/dev/null >"$results/profile-b1-$i.json"
  done
  for mode in fp32 fp16; do
    "$py" peer/ncnn/bench.py stages --model-dir "$model_dir" --mode "$mode" --steps "$steps" \
      2>/dev/null >"$results/stages-ncnn-$mode.json"
  done
  "$py" peer/ncnn/report.py stages --profile "$results"/profile-b1-*.json \
    --ncnn-stages "$results/stages-ncnn-fp32.json" \
    --ncnn-stages-fp16 "$results/stages-ncnn-fp16.json" | tee "$results/stages.md"
fi
echo
echo "files: $results; whole run $(($(date +%s) - started)) s"
