#!/usr/bin/env bash
# Two builds of `resnet` side by side, alternating in one run (lavapipe's speed differs 2x
# between machines and drifts with load, so only ratios from one run mean anything):
#   tools/ab-bench.sh OLD_BINARY NEW_BINARY [ROUNDS]   (default 3 rounds)
# Per round, in alternating order: resnet_v2_50 batch 1 at 224, the seed experiment
# (resnet_v2_152, batch 32, 224), and a cold start (resnet50 batch 1 at 224 with Mesa's shader
# cache off: pipeline creation included). Prints each run's images/s and setup seconds, then
# the medians and best runs with new/old ratios (on a shared machine the best run is the one
# least disturbed by other work). Needs python3 for the arithmetic.
set -euo pipefail
OLD=$1
NEW=$2
ROUNDS=${3:-3}
OUT=$(mktemp -d)
export RESNET_CACHE_DIR="$OUT/cache" # no tuning tables: the heuristic's kernels, both builds
for b in "$OLD" "$NEW"; do [ -x "$b" ] || { echo "not executable: $b" >&2; exit 1; }; done
run() { # run LABEL BIN ARGS... -> one line "LABEL images_per_s setup_s"
    local label=$1 bin=$2
    shift 2
    "$bin" bench "$@" --json 2>/dev/null |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print(sys.argv[1], r["images_per_s"], r["setup_s"])' "$label"
}
for ((i = 0; i < ROUNDS; i++)); do
    # Alternate which build goes first, so that a drift in load favours neither.
    if ((i % 2 == 0)); then order=("old $OLD" "new $NEW"); else order=("new $NEW" "old $OLD"); fi
    for entry in "${order[@]}"; do
        read -r who bin <<<"$entry"
        run "$who v2_50_b1" "$bin" --model resnet_v2_50 --batch 1 --warmup 1 --steps 5 --no-tuning
        run "$who seed_b32" "$bin" --model resnet_v2_152 --batch 32 --warmup 1 --steps 2 --no-tuning
        MESA_SHADER_CACHE_DISABLE=true run "$who cold_r50_b1" "$bin" --model resnet50 --batch 1 \
            --warmup 0 --steps 1 --no-tuning
    done
done | tee "$OUT/runs.txt"
python3 - "$OUT/runs.txt" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    who, what, ips, setup = line.split()
    runs.setdefault((what, who), []).append((float(ips), float(setup)))
print(f"{'case':<14}{'old img/s':>11}{'new img/s':>11}{'new/old':>9}{'best old':>10}{'best new':>10}{'new/old':>9}{'old setup s':>13}{'new setup s':>13}")
for what in sorted({w for w, _ in runs}):
    o, n = runs[(what, "old")], runs[(what, "new")]
    oi, ni = statistics.median(r[0] for r in o), statistics.median(r[0] for r in n)
    bo, bn = max(r[0] for r in o), max(r[0] for r in n)
    os_, ns = statistics.median(r[1] for r in o), statistics.median(r[1] for r in n)
    print(f"{what:<14}{oi:>11.3f}{ni:>11.3f}{ni / oi:>9.3f}{bo:>10.3f}{bn:>10.3f}{bn / bo:>9.3f}{os_:>13.2f}{ns:>13.2f}")
EOF
