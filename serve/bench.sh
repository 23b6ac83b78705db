#!/usr/bin/env bash
# The serving benchmark of BENCHMARKS.md ("Serving"), all in one run on one adapter:
# perf_analyzer's throughput and p50/p99 latency at concurrency 1, 4 and 8, over gRPC and HTTP,
# with dynamic batching on (--max-batch 8; --max-queue-delay-us 2000 for the digits net, whose
# batch takes milliseconds, 50000 for resnet50, whose batch takes seconds here) and off
# (--max-batch 1 --max-queue-delay-us 0), for the digits net (32x32, assets/digits) and resnet50 at 224
# (seeded random weights, written by serve/examples/random_checkpoint.rs: the weights
# `resnet bench --model resnet50` times); then `resnet bench` at batch 1 and 8 on the same two
# checkpoints. The tensor models (`digits`, `resnet50`), zeros as input: speed does not depend
# on the values.
#
#   cargo build --release --bin resnet -p resnet-wgpu
#   cargo build --release -p resnet-serve --bins --examples
#   PERF_ANALYZER=/path/to/perf_analyzer serve/bench.sh [OUT_DIR]    (default serve-bench-out)
#
# perf_analyzer: see serve/tests/requirements-perf.txt (PERF_ANALYZER_LIBS: the folder of
# libcudart.so.12, default: found in PERF_ANALYZER's virtualenv). Prints the table; the raw CSVs,
# bench JSON and the log (machine load before each part) stay in OUT_DIR. SERVE_BENCH_QUICK=1:
# the digits net only (a smoke test of this script, ~2 min).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-serve-bench-out}
BIN=${CARGO_TARGET_DIR:-target}/release
PA=${PERF_ANALYZER:?set PERF_ANALYZER to the perf_analyzer binary (serve/tests/requirements-perf.txt)}
if [ -z "${PERF_ANALYZER_LIBS:-}" ]; then
    PERF_ANALYZER_LIBS=$(ls -d "$(dirname "$PA")"/../lib/python3*/site-packages/nvidia/cuda_runtime/lib | head -1)
fi
export LD_LIBRARY_PATH="$PERF_ANALYZER_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
mkdir -p "$OUT"
: > "$OUT/log.txt"
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt" >&2; }

R50="$OUT/resnet50.safetensors"
if [ "${SERVE_BENCH_QUICK:-0}" != 1 ] && [ ! -f "$R50" ]; then
    "$BIN/examples/random_checkpoint" resnet50 "$R50" 0
fi
"$BIN/resnet" info >"$OUT/info.txt" 2>&1 || true
log "adapter: $(grep -m1 -E '^ *\[0\]' "$OUT/info.txt" || cat "$OUT/info.txt")"

server_pid=""
stop_server() {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" || true
        server_pid=""
    fi
}
trap stop_server EXIT

metric() { # metric HTTP_ADDR NAME: summed over labels
    curl -s "http://$1/metrics" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { print s + 0 }'
}

# measure TAG MODEL WEIGHTS SIZE RESIZE WINDOW BATCHING...: one server, then perf_analyzer at
# concurrency 1, 4, 8 over gRPC and HTTP.
measure() {
    local tag=$1 model=$2 weights=$3 size=$4 resize=$5 window=$6; shift 6
    "$BIN/resnet-serve" --weights "$weights" --name "$model" --size "$size" --resize "$resize" \
        --http 127.0.0.1:0 --grpc 127.0.0.1:0 "$@" 2>"$OUT/$tag.server.log" &
    server_pid=$!
    local http="" grpc=""
    for _ in $(seq 1 600); do
        http=$(sed -n 's/.* over HTTP on //p' "$OUT/$tag.server.log")
        [ -n "$http" ] && break
        kill -0 "$server_pid" || { cat "$OUT/$tag.server.log" >&2; exit 1; }
        sleep 0.5
    done
    grpc=$(sed -n 's/.* over gRPC on //p' "$OUT/$tag.server.log")
    for proto in grpc http; do
        local url=$grpc
        [ "$proto" = http ] && url=$http
        for c in 1 4 8; do
            log "$tag $proto c$c: load $(cut -d' ' -f1-3 /proc/loadavg)"
            local b0 n0
            b0=$(metric "$http" resnet_batch_size_count); n0=$(metric "$http" resnet_batch_size_sum)
            # Windows of at least $window requests until 3 in a row agree within 15% (at most
            # 8 windows); failing that (a busy machine), within 50%, and the table says so.
            rm -f "$OUT/$tag.$proto.c$c.relaxed"
            local s
            for s in 15 50; do
                if "$PA" -m "$model" -u "$url" -i "$proto" --concurrency-range "$c" \
                    --measurement-mode count_windows --measurement-request-count "$window" \
                    -s "$s" -r 8 --input-data zero -f "$OUT/$tag.$proto.c$c.csv" \
                    >"$OUT/$tag.$proto.c$c.txt" 2>&1; then
                    [ "$s" = 15 ] || echo "$s" >"$OUT/$tag.$proto.c$c.relaxed"
                    break
                fi
                log "$tag $proto c$c: no 3 windows within $s% (see $OUT/$tag.$proto.c$c.txt)"
                rm -f "$OUT/$tag.$proto.c$c.csv"
            done
            local b1 n1
            b1=$(metric "$http" resnet_batch_size_count); n1=$(metric "$http" resnet_batch_size_sum)
            echo "$b1 $b0 $n1 $n0" | awk '{ printf "%.2f\n", ($1 > $2) ? ($3 - $4) / ($1 - $2) : 0 }' \
                >"$OUT/$tag.$proto.c$c.batch"
        done
    done
    log "$tag: failures $(metric "$http" nv_inference_request_failure)"
    stop_server
}

DIGITS=assets/digits/digits.safetensors
OFF=(--max-batch 1 --max-queue-delay-us 0)
measure digits.on digits "$DIGITS" 32 32 200 --max-batch 8 --max-queue-delay-us 2000
measure digits.off digits "$DIGITS" 32 32 200 "${OFF[@]}"
MODELS=(digits)
if [ "${SERVE_BENCH_QUICK:-0}" != 1 ]; then
    measure resnet50.on resnet50 "$R50" 224 256 24 --max-batch 8 --max-queue-delay-us 50000
    measure resnet50.off resnet50 "$R50" 224 256 24 "${OFF[@]}"
    MODELS+=(resnet50)
fi
for b in 1 8; do
    log "bench digits batch $b: load $(cut -d' ' -f1-3 /proc/loadavg)"
    "$BIN/resnet" bench --weights "$DIGITS" --size 32 --batch "$b" --warmup 10 --steps 200 --json \
        >"$OUT/bench.digits.b$b.json" 2>>"$OUT/log.txt"
    if [ "${SERVE_BENCH_QUICK:-0}" != 1 ]; then
        log "bench resnet50 batch $b: load $(cut -d' ' -f1-3 /proc/loadavg)"
        "$BIN/resnet" bench --weights "$R50" --size 224 --batch "$b" --warmup 1 --steps 3 --json \
            >"$OUT/bench.resnet50.b$b.json" 2>>"$OUT/log.txt"
    fi
done

python3 - "$OUT" "${MODELS[@]}" <<'PY'
import csv, json, pathlib, sys
out, models = pathlib.Path(sys.argv[1]), sys.argv[2:]
print("| model | batching | protocol | concurrency | infer/s | p50 ms | p99 ms | mean batch |")
print("|---|---|---|---|---|---|---|---|")
for model in models:
    for mode in ["on", "off"]:
        for proto in ["grpc", "http"]:
            for c in [1, 4, 8]:
                stem = f"{model}.{mode}.{proto}.c{c}"
                batch = (out / f"{stem}.batch").read_text().strip()
                relaxed = out / f"{stem}.relaxed"
                note = f" (within {relaxed.read_text().strip()}%)" if relaxed.exists() else ""
                try:
                    row = next(csv.DictReader(open(out / f"{stem}.csv")))
                    ips, p50, p99 = (float(row["Inferences/Second"]), float(row["p50 latency"]) / 1000,
                                     float(row["p99 latency"]) / 1000)
                    cells = f"{ips:.2f}{note} | {p50:.1f} | {p99:.1f}"
                except (OSError, StopIteration):
                    cells = "failed | | "
                print(f"| {model} | {mode} | {proto} | {c} | {cells} | {batch} |")
print()
print("| `resnet bench` | batch | images/s | s / batch |")
print("|---|---|---|---|")
for model in models:
    for b in [1, 8]:
        j = json.loads((out / f"bench.{model}.b{b}.json").read_text())
        j = j[0] if isinstance(j, list) else j
        print(f"| {model} | {b} | {j['images_per_s']:.2f} | {j['mean_s']:.4f} ± {j['sd_s']:.4f} |")
PY
