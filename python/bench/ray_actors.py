#!/usr/bin/env python3
"""The Ray Data example's throughput with 1 and 2 actors, in one run, on a local Ray instance.

    python python/bench/ray_actors.py [--copies 4] [--num-cpus 2]

Input: the 360 held-out digits, each copied `--copies` times into a scratch folder (so that the
pipeline's start-up, a few seconds of Ray and session setup, weighs less). Each configuration
runs `examples/ray_classify.py` as a fresh process with its own local Ray instance and reports
the example's own figure: images / wall time from the start of the pipeline to the last row
written (actor start-up and session build included). Sizes: 32 (the digits' own: per-image
work is tiny) and 224 (the same model on upscaled images: 49x the work per image).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "assets" / "digits"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--copies", type=int, default=4)
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--sizes", default="32,224")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        for c in range(args.copies):
            for f in sorted((DIGITS / "heldout").glob("*.png")):
                shutil.copy(f, images / f"{c}_{f.name}")
        n = len(list(images.iterdir()))
        print(f"{n} images, local Ray instance with {args.num_cpus} CPUs")
        print("| input | actors | images/s | seconds |")
        print("|---|---|---|---|")
        for size in map(int, args.sizes.split(",")):
            for actors in (1, 2):
                out = Path(tmp) / f"out_{size}_{actors}"
                run = subprocess.run(
                    [sys.executable, str(REPO / "examples" / "ray_classify.py"), str(images),
                     str(out), "--weights", str(DIGITS / "digits.safetensors"),
                     "--labels", str(DIGITS / "labels.txt"), "--size", str(size),
                     "--resize", str(size), "--actors", str(actors),
                     "--num-cpus", str(args.num_cpus)],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                m = re.search(r"(\d+) images in ([\d.]+) s: ([\d.]+) images/s", run.stdout)
                if run.returncode != 0 or not m or int(m.group(1)) != n:
                    sys.exit(f"run failed:\n{run.stdout}\n{run.stderr[-3000:]}")
                print(f"| {size}x{size} | {actors} | {m.group(3)} | {m.group(2)} |", flush=True)


if __name__ == "__main__":
    main()
