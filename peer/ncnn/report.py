#!/usr/bin/env python3
"""The ncnn peer's checks and tables, from the files peer/ncnn/run.sh leaves behind.

    report.py compare --model-dir D        logits: torch vs ours vs ncnn fp32 / fp16 (exit 1 if
                                           a pair is outside its tolerance)
    report.py table --results R --best-batch B
                                           the images/s table over the rounds in R
    report.py stages --profile P --ncnn-stages S [--ncnn-stages-fp16 S2]
                                           ours per stage (GPU timestamps) next to ncnn's
    report.py best SWEEP                   the batch of `resnet bench --sweep --json` with the
                                           most images/s (each batch's rate on stderr)
    report.py line FILE                    one line from a round's `resnet bench --json` or
                                           `bench.py time` output
"""

import argparse
import glob
import json
import os
import re
import statistics
import sys

# Largest |a - b| allowed, relative to the reference's max |logit|. fp32 engines differ from
# torch's CPU float32 only by summation order and Winograd's transforms (~1e-6 seen); fp16
# storage and arithmetic round every activation and weight to 11 bits (~3e-3 seen).
TOL_FP32 = 1e-4
TOL_FP16 = 2e-2

# (name, file in the model dir, reference file, tolerance)
PAIRS = [
    ("ours f32 vs torch", "ours.safetensors", "reference.safetensors", TOL_FP32),
    ("ncnn fp32 vs torch", "ncnn_fp32.safetensors", "reference.safetensors", TOL_FP32),
    ("ncnn fp32 vs ours", "ncnn_fp32.safetensors", "ours.safetensors", TOL_FP32),
    ("ncnn fp16 vs torch", "ncnn_fp16.safetensors", "reference.safetensors", TOL_FP16),
    ("ncnn fp16 vs ours", "ncnn_fp16.safetensors", "ours.safetensors", TOL_FP16),
]


def logit_diffs(model_dir):
    """[(name, max_abs_diff, relative, tolerance, top1_same, top5_same)] for every pair."""
    import numpy as np
    from safetensors.numpy import load_file

    def logits(name):
        return load_file(os.path.join(model_dir, name))["logits"].reshape(-1).astype(np.float64)

    rows = []
    for name, a, b, tol in PAIRS:
        x, ref = logits(a), logits(b)
        if x.shape != ref.shape:
            raise ValueError(f"{name}: shapes {x.shape} vs {ref.shape}")
        diff = float(np.abs(x - ref).max())
        rel = diff / float(np.abs(ref).max())
        top5 = list(np.argsort(-x)[:5]) == list(np.argsort(-ref)[:5])
        rows.append((name, diff, rel, tol, int(x.argmax()) == int(ref.argmax()), top5))
    return rows


def cmd_compare(args):
    rows = logit_diffs(args.model_dir)
    print(f"{'pair':<22} {'max |diff|':>11} {'/ max|ref|':>11} {'tolerance':>10}  top-1  top-5")
    bad = []
    for name, diff, rel, tol, top1, top5 in rows:
        ok = rel <= tol and top1
        print(f"{name:<22} {diff:>11.3e} {rel:>11.3e} {tol:>10.0e}  "
              f"{'same' if top1 else 'DIFF':<5}  {'same' if top5 else 'diff'}"
              f"{'' if ok else '  <- FAIL'}")
        if not ok:
            bad.append(name)
    if bad:
        sys.exit(f"logits disagree: {', '.join(bad)}")


def first_json(path):
    with open(path) as f:
        text = f.read()
    return json.JSONDecoder().raw_decode(text.lstrip())[0]


BURN_MEAN = re.compile(r"^burn resnet50: ([0-9.]+) ± ([0-9.]+) s/batch, ([0-9.]+) images/s$", re.M)
BURN_WARM = re.compile(r"burn resnet50: warm-up 0: ([0-9.]+) s")


ENGINES = ["ours f32", "ncnn fp32", "ncnn fp16 (defaults)", "burn resnet50 f32"]


def collect(results, prefix="r"):
    """{(engine, batch): [(round, images_per_s, first_run_s or None)]} from the round files
    (`prefix` "r": r<round>-...; "c": the cold-start files c-..., round 0)."""
    out = {}
    for path in sorted(glob.glob(os.path.join(results, prefix + "*-*"))):
        m = re.match(prefix + r"(\d*)-(ours|ncnn-fp32|ncnn-fp16|burn)-b(\d+)\.(json|log)$",
                     os.path.basename(path))
        if not m:
            continue
        rnd, engine, batch = int(m[1] or 0), m[2], int(m[3])
        if engine == "ours":
            j = first_json(path)
            row = (rnd, j["images_per_s"], j["setup_s"] + j["first_batch_s"])
            engine = "ours f32"
        elif engine.startswith("ncnn"):
            j = first_json(path)
            row = (rnd, j["images_per_s"], j["setup_s"] + j["first_s"])
            engine = engine.replace("-", " ") + (" (defaults)" if engine == "ncnn-fp16" else "")
        else:
            with open(path) as f:
                text = f.read()
            mean, warm = BURN_MEAN.search(text), BURN_WARM.search(text)
            if not mean:
                print(f"note: no burn result in {path}", file=sys.stderr)
                continue
            row = (rnd, float(mean[3]), float(warm[1]) if warm else None)
            engine = "burn resnet50 f32"
        out.setdefault((engine, batch), []).append(row)
    return out


def cmd_table(args):
    data = collect(args.results)
    cold = {k: v[0][2] for k, v in collect(args.results, "c").items()}
    med = {k: statistics.median(r[1] for r in v) for k, v in data.items()}
    b = args.best_batch
    ours1, oursb = med.get(("ours f32", 1)), med.get(("ours f32", b))
    rows = []
    for (engine, batch), v in sorted(data.items(), key=lambda kv: (ENGINES.index(kv[0][0]),
                                                                    kv[0][1])):
        rounds = ", ".join(f"{r[1]:.3f}" for r in sorted(v))
        firsts = [r[2] for r in sorted(v) if r[2] is not None]
        first = f"{statistics.median(firsts):.1f}" if firsts else "-"
        c = f"{cold[(engine, batch)]:.1f}" if (engine, batch) in cold else "-"
        if engine == "ours f32":
            rows.append((engine, str(batch), med[(engine, batch)], rounds, "-", first, c))
            continue
        ours = ours1 if batch == 1 else med.get(("ours f32", batch))
        ratio = f"{ours / med[(engine, batch)]:.2f}" if ours else "-"
        rows.append((engine, str(batch), med[(engine, batch)], rounds, ratio, first, c))
        if engine.startswith("ncnn") and batch == 1 and b != 1 and oursb:
            # ncnn runs one image at a time: its rate at our best batch is its batch-1 rate.
            rows.append((engine, f"{b} (1 at a time)", med[(engine, batch)], rounds,
                         f"{oursb / med[(engine, batch)]:.2f}", "-", "-"))
    n = max((len(v) for v in data.values()), default=0)
    print(f"| engine | batch | images/s (median of {n}) | per round | ours / peer | "
          "first run s (median) | cold s |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        engine, batch, ips, rounds, ratio, first, c = row
        print(f"| {engine} | {batch} | {ips:.3f} | {rounds} | {ratio} | {first} | {c} |")
    print("\nfirst run: setup + first batch in each round's process (Mesa's shader cache warm;"
          " burn: its warm-up batch, autotune included); cold: the same with"
          " MESA_SHADER_CACHE_DISABLE=true, once before the rounds")
    fp32 = med.get(("ncnn fp32", 1))
    if fp32 and ours1:
        g1 = ours1 / fp32
        print(f"\ngoal b1: ours / ncnn fp32 = {g1:.2f} (target >= 1.5: "
              f"{'met' if g1 >= 1.5 else 'NOT met'})")
    if fp32 and oursb:
        gb = oursb / fp32
        print(f"goal b{b}: ours per image / ncnn fp32 = {gb:.2f} (target >= 2: "
              f"{'met' if gb >= 2 else 'NOT met'})")


STAGES = ["stem", "stage1", "stage2", "stage3", "stage4", "head"]


def cmd_stages(args):
    # Each profile file is one batch's per-dispatch list; take each dispatch's median.
    runs = [first_json(p) for p in args.profile]
    rows = []
    for r in runs[0]:
        ms = [next(x["ms"] for x in run if x["name"] == r["name"]) for run in runs]
        r = dict(r, ms=statistics.median(ms))
        r["gflops"] = r["gflop"] / r["ms"] * 1e3 if r["ms"] > 0 else 0.0
        rows.append(r)
    ours = dict.fromkeys(STAGES, 0.0)
    for r in rows:
        top = r["name"].split("/")[0]
        ours[top if top in ours else "head"] += r["ms"]
    peers = []
    for path in [args.ncnn_stages] + ([args.ncnn_stages_fp16] if args.ncnn_stages_fp16 else []):
        j = first_json(path)
        peers.append((j["engine"], list(j["stages_ms"].values())))
    head = "| part | ours f32 GPU ms |"
    head += "".join(f" {e} wall ms | time ours / {e} |" for e, _ in peers)
    print(head)
    print("|---|---|" + "---|---|" * len(peers))
    for i, s in enumerate(STAGES):
        line = f"| {s} | {ours[s]:.1f} |"
        for _, v in peers:
            line += f" {v[i]:.1f} | {ours[s] / v[i]:.2f} |"
        print(line)
    total = sum(ours.values())
    line = f"| total | {total:.1f} |"
    for _, v in peers:
        line += f" {sum(v):.1f} | {total / sum(v):.2f} |"
    print(line)
    print(f"\nours, the 12 slowest dispatches (median of {len(runs)} profiled batches):")
    for r in sorted(rows, key=lambda r: -r["ms"])[:12]:
        print(f"  {r['name']:<24} {r['kernel']:<30} {r['ms']:7.1f} ms {r['gflops']:6.2f} GFLOP/s")


def cmd_best(args):
    with open(args.sweep) as f:
        rows = json.load(f)
    for r in rows:
        print(f"  batch {r['batch']}: {r['images_per_s']:.3f} images/s", file=sys.stderr)
    print(max(rows, key=lambda r: r["images_per_s"])["batch"])


def cmd_line(args):
    j = first_json(args.file)
    if "engine" in j:
        print(f"{j['engine']}: {j['images_per_s']:.3f} images/s on {j['device']}, "
              f"setup {j['setup_s']:.1f} s, first image {j['first_s']:.1f} s")
    else:
        print(f"ours b{j['batch']}: {j['images_per_s']:.3f} images/s on {j['adapter']['name']}, "
              f"setup {j['setup_s']:.1f} s, first batch {j['first_batch_s']:.1f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("compare")
    p.add_argument("--model-dir", required=True)
    p = sub.add_parser("table")
    p.add_argument("--results", required=True)
    p.add_argument("--best-batch", type=int, required=True)
    p = sub.add_parser("stages")
    p.add_argument("--profile", required=True, nargs="+", help="`resnet bench --profile --json`")
    p.add_argument("--ncnn-stages", required=True)
    p.add_argument("--ncnn-stages-fp16")
    sub.add_parser("best").add_argument("sweep")
    sub.add_parser("line").add_argument("file")
    args = ap.parse_args()
    cmds = {"compare": cmd_compare, "table": cmd_table, "stages": cmd_stages, "best": cmd_best,
            "line": cmd_line}
    cmds[args.cmd](args)


if __name__ == "__main__":
    main()
