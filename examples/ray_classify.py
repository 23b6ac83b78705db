#!/usr/bin/env python3
"""Classify a folder of images with Ray Data, one resnet-wgpu Classifier per actor, on every GPU
of a Ray cluster; the top 5 of each image go to Parquet (or JSON lines).

    # One machine (a local Ray instance), 2 actors:
    python examples/ray_classify.py IMAGES/ OUT/ --weights resnet50.safetensors --actors 2

    # A cluster of GPU machines: the head's address, one GPU per actor, 8 actors.
    python examples/ray_classify.py s3://bucket/images/ s3://bucket/top5/ \\
        --weights /models/resnet50.safetensors --address auto --actors 8 --gpus-per-actor 1

The pipeline: ``read_binary_files`` (each file's own bytes, so that decoding and resizing are
the engine's Pillow-exact ones, not Ray's) -> ``map_batches(ResNetPredictor,
compute=ActorPoolStrategy(size=N), num_gpus=G)`` (each actor holds one ``Classifier`` on the GPU
Ray assigned it, see ``resnet_wgpu.ray_adapter``) -> ``write_parquet``. Each output row is
``file``, ``top`` (a list of ``{index, label, probability}``, as ``resnet classify --json``
prints), ``error`` (why a file could not be classified; it is kept, not dropped) and
``adapter`` (the GPU that ran it).

The weights path must exist on every node (a shared file system or the same image); Ray ships
this script's code to the workers, and the ``resnet-wgpu`` wheel must be installed on each.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
import pyarrow as pa

#: The Arrow type of the `top` column: `resnet classify --json`'s `top` list.
TOP = pa.list_(
    pa.struct([("index", pa.int64()), ("label", pa.string()), ("probability", pa.float32())])
)


class ResNetPredictor:
    """A Ray Data actor: one Classifier, created once, on the GPU Ray assigned this actor."""

    def __init__(
        self,
        weights: str,
        *,
        top: int = 5,
        batch: int = 16,
        precision: str = "f32",
        labels: str | None = None,
        size: int | None = None,
        resize: int | None = None,
        vendor: str | None = None,
    ) -> None:
        import resnet_wgpu

        # Ray pins GPUs through CUDA_VISIBLE_DEVICES, which Vulkan ignores: map the actor's GPU
        # id to its adapter explicitly ({} without a GPU: the default, software, adapter).
        placement = resnet_wgpu.ray_adapter(vendor) if _in_ray() else {}
        self.classifier = resnet_wgpu.Classifier(
            weights,
            precision=precision,
            batch=batch,
            labels=labels,
            size=size,
            resize=resize,
            **placement,
        )
        self.top = top
        self.adapter = self.classifier.adapter["name"]

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        # errors="return": a corrupt file gets its message in `error`, the rest of the batch
        # is still classified.
        results = self.classifier.classify(list(batch["bytes"]), top=self.top, errors="return")
        top: list[Any] = []
        error: list[str | None] = []
        for r in results:
            if isinstance(r, Exception):
                top.append(None)
                error.append(f"{type(r).__name__}: {r}")
            else:
                top.append([{"index": i, "label": lb, "probability": p} for i, lb, p in r])
                error.append(None)
        n = len(results)
        return pa.table(
            {
                "file": pa.array([str(p) for p in batch["path"]], pa.string()),
                "top": pa.array(top, TOP),
                "error": pa.array(error, pa.string()),
                "adapter": pa.array([self.adapter] * n, pa.string()),
            }
        )


def _in_ray() -> bool:
    import ray

    return ray.is_initialized()


def classify_folder(
    folder: str,
    output: str,
    weights: str,
    *,
    actors: int = 1,
    gpus_per_actor: float = 0,
    cpus_per_actor: float | None = None,
    batch_size: int = 16,
    output_format: str = "parquet",
    **predictor: Any,
) -> None:
    """Runs the pipeline on a Ray instance that is already up (``ray.init``).

    ``cpus_per_actor`` defaults to 1 with GPUs and 0.5 without: there the actors' GPU is the
    software adapter, which runs on every core whatever Ray reserves, and Ray Data's read tasks
    need a whole CPU each (two actors holding both CPUs of a 2-CPU instance starve them: the
    pipeline never starts).
    """
    import ray

    if cpus_per_actor is None:
        cpus_per_actor = 1 if gpus_per_actor > 0 else 0.5
    images = ray.data.read_binary_files(folder, include_paths=True)
    predictions = images.map_batches(
        ResNetPredictor,
        fn_constructor_args=(weights,),
        fn_constructor_kwargs={"batch": batch_size, **predictor},
        batch_size=batch_size,
        batch_format="numpy",
        # A fixed pool of `actors` stateful actors, each building its Classifier once (Ray 2.60
        # deprecates map_batches' `concurrency=N` for this spelling of the same thing).
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=gpus_per_actor,
        num_cpus=cpus_per_actor,
    )
    if output_format == "parquet":
        predictions.write_parquet(output)
    else:
        predictions.write_json(output)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="images (a folder or any path Ray Data reads: s3://, gs://, ...)")
    p.add_argument("output", help="output folder (Parquet or JSON-lines files)")
    p.add_argument("--weights", required=True, help="checkpoint, readable on every node")
    p.add_argument("--labels", help="one label per line (default: ImageNet or the indices)")
    p.add_argument("--size", type=int, help="network input side (default: the flavour's)")
    p.add_argument("--resize", type=int, help="shorter side before the centre crop")
    p.add_argument("--precision", default="f32", choices=["f32", "f16"])
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=16, help="images per batch and GPU run")
    p.add_argument("--actors", type=int, default=1, help="Classifier actors (one per GPU)")
    p.add_argument(
        "--gpus-per-actor",
        type=float,
        help="default: 1 if the cluster has GPUs, else 0 (actors share the software adapter)",
    )
    p.add_argument(
        "--cpus-per-actor", type=float, help="default: 1 with GPUs, 0.5 without (see classify_folder)"
    )
    p.add_argument("--vendor", help="GPU vendor Ray counts where a node has several")
    p.add_argument("--format", dest="output_format", default="parquet", choices=["parquet", "json"])
    p.add_argument("--address", help="Ray cluster address (default: start a local instance)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local instance (default: all)")
    args = p.parse_args(argv)

    import ray
    from ray.data.expressions import col

    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False)
    gpus = args.gpus_per_actor
    if gpus is None:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    t0 = time.perf_counter()
    classify_folder(
        args.folder,
        args.output,
        args.weights,
        actors=args.actors,
        gpus_per_actor=gpus,
        cpus_per_actor=args.cpus_per_actor,
        batch_size=args.batch_size,
        output_format=args.output_format,
        top=args.top,
        precision=args.precision,
        labels=args.labels,
        size=args.size,
        resize=args.resize,
        vendor=args.vendor,
    )
    seconds = time.perf_counter() - t0
    reader = ray.data.read_parquet if args.output_format == "parquet" else ray.data.read_json
    results = reader(args.output)
    n = results.count()
    failed = results.filter(expr=col("error").is_not_null()).count()
    print(
        f"{n} images in {seconds:.2f} s: {n / seconds:.1f} images/s with {args.actors} actor(s), "
        f"{gpus:g} GPU(s) each; {failed} failed; results in {os.fspath(args.output)}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
