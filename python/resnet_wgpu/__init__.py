"""ResNet image classification as WGSL compute shaders on wgpu (Vulkan, Metal, DX12), from Python.

The engine is the Rust crate ``resnet-wgpu``; this package is its embedding API::

    import resnet_wgpu
    model = resnet_wgpu.Classifier("resnet50.safetensors")
    print(model.classify(["cat.jpg"])[0])        # [(281, 'tabby', 0.62), ...]

* ``Classifier``: ``logits`` (float32 NCHW arrays), ``features`` (every stage's map),
  ``preprocess`` and ``classify`` (file paths, encoded bytes or uint8 pixel arrays).
* ``bench``: the forward-throughput benchmark, the same fields as ``resnet bench --json``.
* ``adapters``: what wgpu sees; ``adapter_for_gpu`` / ``ray_adapter``: which adapter a Ray actor's
  GPU is (Ray pins GPUs through ``CUDA_VISIBLE_DEVICES``, which Vulkan ignores).

GPU work and image decoding release the GIL; one ``Classifier`` may be shared by threads.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ._native import Classifier, __version__, adapters
from ._native import bench_json as _bench_json
from .placement import adapter_for_gpu, ray_adapter

__all__ = [
    "Classifier",
    "__version__",
    "adapter_for_gpu",
    "adapters",
    "bench",
    "ray_adapter",
]


def bench(
    model: str = "resnet_v2_152",
    *,
    weights: str | os.PathLike[str] | None = None,
    batch: int = 32,
    size: int = 224,
    warmup: int | None = None,
    steps: int | None = None,
    seed: int = 0,
    precision: str = "f32",
    adapter: int | str | None = None,
    backend: str | None = None,
) -> dict[str, Any]:
    """The forward-throughput benchmark (TF-slim's ``time_tensorflow_run``) of one batch size.

    Runs ``warmup`` untimed and ``steps`` timed batches of ``batch`` random ``size`` x ``size``
    images through ``model`` (a preset with seeded random weights: ``resnet_v2_152``,
    ``resnet50``, ``ResNet50V2``, ``resnetv2_50`` ...) or the checkpoint ``weights``, and returns
    what ``resnet bench --json`` prints: ``setup_s`` (from this call to the session ready; the
    CLI counts from its process start), ``first_batch_s``, ``mean_s``, ``sd_s``, ``min_s``,
    ``max_s``, ``images_per_s``, ``flops_per_image``, ``flops_executed_per_image``,
    ``gflops``, ``gpu_mean_s``, ``precision``, ``weights_bytes``, ``arena_bytes``,
    ``resident_weight_bytes``, ``resident_bytes``, ``pipelines``, ``adapter`` and the settings. ``warmup``/``steps`` default to 10/100, or 1/3 on a software adapter. The
    measuring is the engine's own (the same code as the CLI), so Python adds nothing to it.
    """
    return json.loads(
        _bench_json(
            model,
            None if weights is None else os.fspath(weights),
            batch,
            size,
            warmup,
            steps,
            seed,
            precision,
            adapter,
            backend,
        )
    )
