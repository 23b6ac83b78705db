#!/usr/bin/env python3
"""ncnn (PyPI wheel, Vulkan) on the model tools/gen_ncnn_peer.py wrote: logits, timing, profile.

    bench.py info                                   ncnn version and the Vulkan devices it sees
    bench.py logits --model-dir D --mode M --out F  run D/input.safetensors, write `logits` to F
    bench.py time   --model-dir D --mode M [--warmup 1] [--steps 3]
                                                    one JSON line: setup_s, first_s, mean_s, ...
    bench.py stages --model-dir D --mode M          per-stage GPU wall times (see below)

Modes: `fp32` is Vulkan with every fp16/bf16 option off (storage, packing and arithmetic in
float32, as ours); `fp16` is Vulkan with ncnn's own defaults, which on a device that reports
fp16 storage and arithmetic (lavapipe does) store and compute in half.

Timing matches `resnet bench` and burn-bench: wall time of one image from the host array to the
host logits (Mat from the array, upload, every dispatch, read-back, copy into NumPy), after
`--warmup` untimed images, over `--steps` timed ones; sd = sqrt(E[x^2] - E[x]^2). ncnn runs one
image at a time (its Vulkan path has no batch dimension), so its images/s is 1 / mean_s.
`setup_s` is load_param + load_model (ncnn builds its Vulkan pipelines there); `first_s` is the
first image after it (lavapipe compiles shaders lazily, so a cold Mesa cache lands here).

The Python wheel has no per-layer profiler (ncnn's layer timer is a compile-time option,
NCNN_BENCHMARK, off in the wheel), so `stages` approximates one: on one extractor it extracts
the last blob of the stem, of each stage and the logits in order; ncnn computes only the
layers each new blob needs and waits for the GPU before returning, so each step's wall time is
that part of the network plus one submit/wait and one read-back of its output.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

MODES = ("fp32", "fp16")


def load_manifest(model_dir):
    with open(os.path.join(model_dir, "manifest.json")) as f:
        return json.load(f)


def load_input(model_dir):
    from safetensors.numpy import load_file

    x = load_file(os.path.join(model_dir, "input.safetensors"))["input"]
    if x.shape[0] != 1:
        sys.exit(f"input batch {x.shape[0]}: ncnn runs one image at a time")
    return np.ascontiguousarray(x[0], dtype=np.float32)  # [3, H, W]


def make_net(model_dir, mode):
    """A net on ncnn's default Vulkan device with `mode`'s options; returns (net, setup_s)."""
    import ncnn

    if ncnn.get_gpu_count() < 1:
        sys.exit("ncnn sees no Vulkan device")
    t0 = time.perf_counter()
    net = ncnn.Net()
    net.opt.use_vulkan_compute = True
    if mode == "fp32":
        net.opt.use_fp16_packed = False
        net.opt.use_fp16_storage = False
        net.opt.use_fp16_arithmetic = False
        net.opt.use_bf16_packed = False
        net.opt.use_bf16_storage = False
    elif mode != "fp16":
        sys.exit(f"unknown mode {mode}")
    # The fp16 mode keeps ncnn's defaults, untouched.
    base = os.path.join(model_dir, "resnet50.ncnn")
    if net.load_param(base + ".param") != 0 or net.load_model(base + ".bin") != 0:
        sys.exit(f"ncnn could not load {base}.param/.bin")
    return net, time.perf_counter() - t0


def run_once(net, blobs, x, out_blob):
    import ncnn

    ex = net.create_extractor()
    ex.input(blobs["input_blob"], ncnn.Mat(x))
    ret, out = ex.extract(out_blob)
    if ret != 0:
        sys.exit(f"ncnn extract {out_blob} failed: {ret}")
    return np.array(out).reshape(-1).copy()


def options(net):
    o = net.opt
    keys = [
        "use_vulkan_compute", "use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic",
        "use_bf16_storage", "use_winograd_convolution", "use_sgemm_convolution",
    ]
    return {k: bool(getattr(o, k)) for k in keys}


def cmd_info(_args):
    import ncnn

    n = ncnn.get_gpu_count()
    print(json.dumps({
        "ncnn": ncnn.__version__,
        "gpus": [ncnn.get_gpu_info(i).device_name() for i in range(n)],
        "default_gpu": ncnn.get_default_gpu_index() if n else None,
    }))


def device_name(net):
    import ncnn

    return ncnn.get_gpu_info(ncnn.get_default_gpu_index()).device_name()


def cmd_logits(args):
    from safetensors.numpy import save_file

    m = load_manifest(args.model_dir)
    net, _ = make_net(args.model_dir, args.mode)
    y = run_once(net, m, load_input(args.model_dir), m["output_blob"])
    save_file({"logits": y.reshape(1, -1).astype(np.float32)}, args.out)


def cmd_time(args):
    import ncnn

    m = load_manifest(args.model_dir)
    x = load_input(args.model_dir)
    net, setup_s = make_net(args.model_dir, args.mode)
    t0 = time.perf_counter()
    run_once(net, m, x, m["output_blob"])
    first_s = time.perf_counter() - t0
    for _ in range(max(args.warmup - 1, 0)):  # the first image was the first warm-up
        run_once(net, m, x, m["output_blob"])
    d = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        run_once(net, m, x, m["output_blob"])
        d.append(time.perf_counter() - t0)
    d = np.array(d)
    mean = float(d.mean())
    print(json.dumps({
        "engine": f"ncnn {args.mode}",
        "ncnn": ncnn.__version__,
        "device": device_name(net),
        "options": options(net),
        "batch": 1,
        "warmup": max(args.warmup, 1),
        "steps": args.steps,
        "setup_s": setup_s,
        "first_s": first_s,
        "mean_s": mean,
        "sd_s": float(np.sqrt(max((d * d).mean() - mean * mean, 0.0))),
        "min_s": float(d.min()),
        "images_per_s": 1.0 / mean,
    }))


def stage_blobs(model_dir):
    """(name, blob) for the stem's pool, the last block of each stage, and the logits.

    In pnnx's ncnn graph every bottleneck ends in a BinaryOp (the residual add) followed by a
    ReLU; stage ends are the 3rd, 7th, 13th and 16th of those ReLUs ([3, 4, 6, 3] units).
    """
    m = load_manifest(model_dir)
    with open(os.path.join(model_dir, "resnet50.ncnn.param")) as f:
        layers = [ln.split() for ln in f.read().split("\n")[2:] if ln.strip()]
    pool = next(ly for ly in layers if ly[0] == "Pooling")
    res_adds = [ly for ly in layers if ly[0] == "BinaryOp"]
    ends = []
    for ly in res_adds:
        outb = ly[4 + int(ly[2])]
        relu = [r for r in layers if r[0] == "ReLU" and r[4] == outb]
        ends.append(relu[0][4 + int(relu[0][2])] if relu else outb)
    if len(ends) != 16:
        sys.exit(f"expected 16 residual adds, found {len(ends)}")
    names = [("stem (conv 7x7 s2 + pool)", pool[4 + int(pool[2])])]
    for k, last in enumerate([2, 6, 12, 15]):
        names.append((f"stage{k + 1}", ends[last]))
    names.append(("head (avg pool + fc)", m["output_blob"]))
    return names


def cmd_stages(args):
    import ncnn

    m = load_manifest(args.model_dir)
    x = load_input(args.model_dir)
    net, _ = make_net(args.model_dir, args.mode)
    names = stage_blobs(args.model_dir)
    for _ in range(max(args.warmup, 1)):
        run_once(net, m, x, m["output_blob"])
    rows = {n: [] for n, _ in names}
    for _ in range(args.steps):
        ex = net.create_extractor()
        ex.input(m["input_blob"], ncnn.Mat(x))
        for n, blob in names:
            t0 = time.perf_counter()
            ret, out = ex.extract(blob)
            np.array(out)
            rows[n].append(time.perf_counter() - t0)
            if ret != 0:
                sys.exit(f"extract {blob}: {ret}")
    print(json.dumps({
        "engine": f"ncnn {args.mode}",
        "stages_ms": {n: 1e3 * float(np.median(v)) for n, v in rows.items()},
    }))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info")
    for name in ("logits", "time", "stages"):
        p = sub.add_parser(name)
        p.add_argument("--model-dir", required=True)
        p.add_argument("--mode", choices=MODES, default="fp32")
        if name == "logits":
            p.add_argument("--out", required=True)
        else:
            p.add_argument("--warmup", type=int, default=1)
            p.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    {"info": cmd_info, "logits": cmd_logits, "time": cmd_time, "stages": cmd_stages}[args.cmd](args)


if __name__ == "__main__":
    main()
