#!/usr/bin/env python3
"""What Python costs on top of the engine, in one run: the same forward passes timed by the Rust
CLI (`resnet bench --json`), by `resnet_wgpu.bench` (the same measuring code, called from
Python) and by a Python loop over `Classifier.logits` (numpy in, numpy out: the input copy, the
GIL release, the result array), at batch 1 and 16.

    python python/bench/overhead.py [--resnet target/release/resnet] [--steps 20]

The model is the digits classifier (assets/digits) with random input, at 32x32 (a tiny network:
any per-call overhead shows) and at 224x224 (49x the work per image). Prints a Markdown table
of images/s from the mean time per batch and, in parentheses, from the best (least disturbed by
other processes on a shared machine). `resnet bench` and `resnet_wgpu.bench` time each batch with
GPU timestamp queries where the adapter has them; the `logits` loop runs without, as a caller's
would.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import resnet_wgpu

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "assets" / "digits" / "digits.safetensors"


def cli_bench(resnet: Path, size: int, batch: int, warmup: int, steps: int) -> dict:
    out = subprocess.run(
        [str(resnet), "bench", "--weights", str(WEIGHTS), "--size", str(size),
         "--batch", str(batch), "--warmup", str(warmup), "--steps", str(steps), "--json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out)


def logits_loop(size: int, batch: int, warmup: int, steps: int) -> tuple[float, float]:
    """Mean and best wall time per batch of `Classifier.logits` on a fresh batch-sized
    classifier, as bench times it: `steps` timed batches after `warmup` untimed ones."""
    model = resnet_wgpu.Classifier(WEIGHTS, batch=batch, size=size)
    x = np.random.default_rng(0).uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
    for _ in range(warmup):
        model.logits(x)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        model.logits(x)
        times.append(time.perf_counter() - t0)
    return float(np.mean(times)), min(times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--resnet", type=Path, default=REPO / "target" / "release" / "resnet")
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    print(f"adapter: {resnet_wgpu.adapters('vulkan')[0]['name']}")
    print("| input | batch | CLI `resnet bench` img/s | `resnet_wgpu.bench` img/s | "
          "`Classifier.logits` loop img/s | logits / CLI |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for size in (32, 224):
        for batch in (1, 16):
            steps = args.steps if size == 32 else max(3, args.steps // 4)
            c = cli_bench(args.resnet, size, batch, 2, steps)
            p = resnet_wgpu.bench(weights=WEIGHTS, size=size, batch=batch, warmup=2, steps=steps)
            mean, best = logits_loop(size, batch, 2, steps)
            cli = (batch / c["mean_s"], batch / c["min_s"])
            py = (batch / p["mean_s"], batch / p["min_s"])
            loop = (batch / mean, batch / best)
            cells = " | ".join(f"{m:.1f} ({b:.1f})" for m, b in (cli, py, loop))
            print(f"| {size}x{size} | {batch} | {cells} | {loop[0] / cli[0]:.3f} "
                  f"({loop[1] / cli[1]:.3f}) |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
