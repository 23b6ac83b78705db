"""`bench` returns what `resnet bench --json` prints (same fields, same static figures); and
`adapters` lists what wgpu sees, in a form `Classifier(adapter=, backend=)` takes back."""

from __future__ import annotations

import json

import resnet_wgpu
from conftest import DIGITS, resnet

TIMINGS = ("setup_s", "first_batch_s", "mean_s", "sd_s", "min_s", "max_s", "images_per_s",
           "gflops", "gpu_mean_s")  # fmt: skip
STATIC = ("model", "batch", "size", "warmup", "steps", "precision", "flops_per_image",
          "flops_executed_per_image", "weights_bytes", "arena_bytes", "resident_weight_bytes",
          "resident_bytes", "pipelines", "adapter")  # fmt: skip


def test_bench_has_the_cli_fields_and_figures() -> None:
    args = {"size": 32, "batch": 2, "warmup": 1, "steps": 2}
    cli = json.loads(
        resnet("bench", "--model", "resnet18", "--json",
               *[a for k, v in args.items() for a in (f"--{k}", v)])
    )  # fmt: skip
    got = resnet_wgpu.bench("resnet18", **args)
    assert set(got) == set(cli)
    assert set(got) == set(TIMINGS) | set(STATIC)
    for k in STATIC:
        assert got[k] == cli[k], k
    for k in TIMINGS:
        assert isinstance(got[k], float) and got[k] >= 0, k
    assert got["min_s"] <= got["mean_s"] <= got["max_s"]
    assert abs(got["images_per_s"] - 2 / got["mean_s"]) < 1e-9 * got["images_per_s"]


def test_bench_of_a_checkpoint_and_the_adapters_defaults() -> None:
    got = resnet_wgpu.bench(weights=DIGITS / "digits.safetensors", size=32, batch=4)
    assert got["model"].endswith("digits.safetensors")
    # Unless told otherwise: 1 warm-up and 3 timed batches on a software adapter (lavapipe,
    # WARP, SwiftShader: wgpu's device type Cpu), 10 and 100 on a GPU (src/bench.rs).
    device_type = got["adapter"]["device_type"]
    assert device_type in {"Cpu", "DiscreteGpu", "IntegratedGpu", "VirtualGpu", "Other"}, got
    want = (1, 3) if device_type == "Cpu" else (10, 100)
    assert (got["warmup"], got["steps"]) == want, (device_type, got["warmup"], got["steps"])
    assert got["flops_per_image"] > 0 and got["precision"] == "f32"


def test_adapters_round_trip_into_a_classifier() -> None:
    listed = resnet_wgpu.adapters()
    assert listed, "wgpu sees no adapter: install mesa-vulkan-drivers (see README)"
    keys = {"index", "name", "backend", "device_type", "vendor", "device", "pci_bus_id",
            "driver", "driver_info"}  # fmt: skip
    for a in listed:
        assert set(a) == keys
    vulkan = resnet_wgpu.adapters("vulkan")
    assert vulkan and all(a["backend"] == "vulkan" for a in vulkan)
    assert [a["index"] for a in vulkan] == list(range(len(vulkan)))
    a = vulkan[-1]
    model = resnet_wgpu.Classifier(
        DIGITS / "digits.safetensors", adapter=a["index"], backend=a["backend"], size=32
    )
    assert model.adapter["name"] == a["name"] and model.adapter["backend"] == "vulkan"
    # A substring of the name works too.
    by_name = resnet_wgpu.Classifier(DIGITS / "digits.safetensors", adapter=a["name"][:6])
    assert by_name.adapter["name"] == a["name"]
    assert "Classifier(torchvision ResNet-10, 10 classes" in repr(model)
