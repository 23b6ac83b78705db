"""The numpy API against the Rust CLI: `logits` and `features` give `resnet infer`'s numbers bit
for bit (same engine, same batch, hence the same plan and kernels), on the framework fixtures
of every flavour, square and not, in f32 and f16; and against the frameworks themselves (the
logits and maps in the fixtures' io files), at the Rust golden tests' tolerances, since the CLI
runs the same engine and would share its mistakes."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import resnet_wgpu
from conftest import FIXTURES, assert_close, read_safetensors, resnet, same_bits

# |got - framework| <= TOL * max(1, max |framework|). f32: measured worst on lavapipe
# over these tests' cases: logits 8.5e-7, maps 1.2e-6; every batch-norm epsilon 1e-4 instead of
# 1e-5 puts them at 2e-4 to 6e-4, which fails it. f16 storage: the native golden test's F16_TOL
# (tests/golden.rs).
F32_TOL = 1e-5
F16_TOL = 1e-2

FLAVOURS = ["slim_v2", "keras_v2", "timm_v2", "timm_v2_basic", "torchvision",
            "torchvision_basic", "keras_v1"]  # fmt: skip
CASES = [f"{f}_small_{size}" for f in FLAVOURS for size in ("32x32", "45x37")] + [
    "torchvision_50_64x64",
    "slim_v2_50_64x64",
]


def infer(case: str, tmp_path: Path, *extra: object) -> dict[str, np.ndarray]:
    out = tmp_path / f"{case}.out.safetensors"
    x = read_safetensors(FIXTURES / f"{case}.io.safetensors")["input"]
    resnet(
        "infer",
        "--weights", FIXTURES / f"{case}.weights.safetensors",
        "--input", FIXTURES / f"{case}.io.safetensors",
        "--output", out,
        "--batch", x.shape[0],
        *extra,
    )  # fmt: skip
    return read_safetensors(out)


@pytest.mark.parametrize("case", CASES)
def test_logits_equal_the_cli_bit_for_bit(case: str, tmp_path: Path) -> None:
    io = read_safetensors(FIXTURES / f"{case}.io.safetensors")
    x = io["input"]
    want = infer(case, tmp_path)["logits"]
    model = resnet_wgpu.Classifier(FIXTURES / f"{case}.weights.safetensors", batch=x.shape[0])
    got = model.logits(x)
    assert got.shape == (x.shape[0], model.classes)
    same_bits(got, want)
    # And the framework's answer.
    assert_close(got, io["logits"], F32_TOL, f"{case}: logits vs the framework")


def test_f16_logits_equal_the_cli_bit_for_bit(tmp_path: Path) -> None:
    case = "torchvision_small_45x37"
    io = read_safetensors(FIXTURES / f"{case}.io.safetensors")
    x = io["input"]
    want = infer(case, tmp_path, "--precision", "f16")["logits"]
    model = resnet_wgpu.Classifier(
        FIXTURES / f"{case}.weights.safetensors", precision="f16", batch=x.shape[0]
    )
    assert model.precision == "f16"
    got = model.logits(x)
    same_bits(got, want)
    assert_close(got, io["logits"], F16_TOL, f"{case}: f16 logits vs the framework")
    # f16 storage really differs from f32 (the option reached the engine).
    f32 = resnet_wgpu.Classifier(FIXTURES / f"{case}.weights.safetensors", batch=x.shape[0])
    assert not np.array_equal(f32.logits(x), want)


@pytest.mark.parametrize("case", ["slim_v2_small_45x37", "torchvision_basic_small_32x32"])
def test_features_equal_the_cli_bit_for_bit(case: str, tmp_path: Path) -> None:
    io = read_safetensors(FIXTURES / f"{case}.io.safetensors")
    x = io["input"]
    want = infer(case, tmp_path, "--features")
    model = resnet_wgpu.Classifier(FIXTURES / f"{case}.weights.safetensors", batch=x.shape[0])
    got = model.features(x)
    names = {k.removeprefix("feat/") for k in want if k.startswith("feat/")}
    assert set(got) == names and "pooled" in names and "stage4" in names
    # The framework saved the same maps.
    assert names == {k.removeprefix("feat/") for k in io if k.startswith("feat/")}
    for name, array in got.items():
        same_bits(array, want[f"feat/{name}"])
        assert_close(array, io[f"feat/{name}"], F32_TOL, f"{case}: {name} vs the framework")
    # The pooled map is the global average of stage 4 (post-norm for v2).
    last = got.get("post_norm", got["stage4"])
    assert np.allclose(got["pooled"], last.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)


def write_input(path: Path, x: np.ndarray) -> None:
    """A safetensors file holding `x` (float32) as tensor `input`, for `resnet infer`."""
    data = np.ascontiguousarray(x, "<f4").tobytes()
    header = json.dumps(
        {"input": {"dtype": "F32", "shape": list(x.shape), "data_offsets": [0, len(data)]}}
    ).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)


def test_any_strides_and_sizes_and_a_second_size(tmp_path: Path) -> None:
    case = "torchvision_basic_small_32x32"
    io = read_safetensors(FIXTURES / f"{case}.io.safetensors")
    x = io["input"]
    model = resnet_wgpu.Classifier(FIXTURES / f"{case}.weights.safetensors", batch=2)
    want = model.logits(x)
    assert_close(want, io["logits"], F32_TOL, f"{case}: logits vs the framework")
    # A channels-last array seen through a transpose (not C-contiguous) is read in NCHW order.
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    same_bits(model.logits(nhwc.transpose(0, 3, 1, 2)), want)
    # One image at a time: the same answer as in the batch up to float rounding (a sub-batch of
    # another size runs other dispatch sizes; measured worst 3e-7 of max |logit| 2.8).
    scale = float(np.abs(want).max())
    for i in range(x.shape[0]):
        one = model.logits(x[i : i + 1])
        assert one.shape == (1, model.classes)
        assert np.all(np.abs(one - want[i : i + 1]) <= 1e-5 * scale)
        assert_close(one, io["logits"][i : i + 1], F32_TOL, f"{case}: image {i} alone")
    # Another input size gets its own session: the numbers `resnet infer` gives at that size
    # (no framework ran this input; the CLI's session at 64x64 is checked against the CPU
    # reference by the Rust tests).
    big = np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)
    got = model.logits(big)
    assert got.shape == want.shape
    write_input(tmp_path / "big.safetensors", big)
    resnet("infer", "--weights", FIXTURES / f"{case}.weights.safetensors",
           "--input", tmp_path / "big.safetensors", "--output", tmp_path / "out.safetensors",
           "--batch", 2)  # fmt: skip
    same_bits(got, read_safetensors(tmp_path / "out.safetensors")["logits"])


# One checkpoint of each other format the CLI reads (tests/formats.rs has them all): a
# transformers folder, a BF16 safetensors file, ONNX graphs in f32 and f16.
FORMATS = [
    ("hf/hf_resnet18_64x64", "hf/hf_resnet18_64x64.io.safetensors"),
    ("half/timm_v2_small_32x32_bf16.weights.safetensors",
     "half/timm_v2_small_32x32_bf16.io.safetensors"),
    ("onnx/tv_resnet18ish_opset13.onnx", "onnx/tv_resnet18ish_opset13.io.safetensors"),
    ("onnx/zoo_v1_bottleneck_opset7_f16.onnx", "onnx/zoo_v1_bottleneck_opset7_f16.io.safetensors"),
]  # fmt: skip


@pytest.mark.parametrize(("weights", "io"), FORMATS, ids=[w for w, _ in FORMATS])
def test_every_checkpoint_format_loads_and_equals_the_cli(
    weights: str, io: str, tmp_path: Path
) -> None:
    reference = read_safetensors(FIXTURES / io)
    x = reference["input"]
    out = tmp_path / "out.safetensors"
    resnet("infer", "--weights", FIXTURES / weights, "--input", FIXTURES / io,
           "--output", out, "--batch", x.shape[0])  # fmt: skip
    model = resnet_wgpu.Classifier(FIXTURES / weights, batch=x.shape[0])
    got = model.logits(x)
    same_bits(got, read_safetensors(out)["logits"])
    # The framework's (transformers, torch, onnxruntime) logits; half-precision checkpoints
    # are compared with the framework run in f32 on the same rounded weights (tests/formats.rs).
    assert_close(got, reference["logits"], F32_TOL, f"{weights}: logits vs the framework")
    assert isinstance(model.notes, list)


def test_a_transformers_folder_brings_its_labels() -> None:
    model = resnet_wgpu.Classifier(FIXTURES / "hf" / "hf_resnet18_64x64")
    assert model.labels[:3] == ["zero", "one", "two"] and len(model.labels) == 10
