"""Shared helpers: the repository's fixtures and digits, the `resnet` CLI as the reference, and
a reader for safetensors files (the format is a length, a JSON header and raw little-endian
data; reading it here keeps the test environment to pytest, numpy, Pillow and ray)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
DIGITS = REPO / "assets" / "digits"

# wgpu warns on every adapter enumeration of a headless machine without one.
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")


def resnet_bin() -> Path:
    """The CLI the package is compared with: $RESNET_BIN, else the release build's."""
    path = Path(os.environ.get("RESNET_BIN", REPO / "target" / "release" / "resnet"))
    if not path.is_file():
        pytest.fail(
            f"the reference CLI {path} does not exist: build it with `cargo build --release` "
            "(or point RESNET_BIN at it)"
        )
    return path


def resnet(*args: object) -> str:
    """Runs the CLI; its stdout. A failure fails the test with its stderr."""
    run = subprocess.run(
        [str(resnet_bin()), *map(str, args)], capture_output=True, text=True, check=False
    )
    if run.returncode != 0:
        pytest.fail(f"resnet {' '.join(map(str, args))} failed:\n{run.stderr}")
    return run.stdout


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every float32 tensor of a safetensors file."""
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    data = raw[8 + header_len :]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", f"{path}: {name} is {t['dtype']}"
        begin, end = t["data_offsets"]
        out[name] = np.frombuffer(data[begin:end], "<f4").reshape(t["shape"]).copy()
    return out


def same_bits(got: np.ndarray, want: np.ndarray) -> None:
    """Bit-for-bit equality (NaN included), with shape and count."""
    assert got.dtype == np.float32 and want.dtype == np.float32
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.size > 0
    different = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
    assert different.size == 0, (
        f"{different.size} of {got.size} values differ, first at {different[0]}: "
        f"{got.flat[different[0]]!r} vs {want.flat[different[0]]!r}"
    )


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    """Largest |got - want| over max(1, max |want|), as the Rust tests' `rel_err`
    (tests/common/mod.rs): the shapes must agree, nothing may be empty, and a NaN or an infinity
    on either side fails (a plain max would skip NaN)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.size > 0, "nothing to compare"
    assert np.isfinite(want).all(), f"the reference holds {want[~np.isfinite(want)][:4]}"
    assert np.isfinite(got).all(), f"got {got[~np.isfinite(got)][:4]}"
    return float(np.abs(got - want).max() / max(1.0, float(np.abs(want).max())))


def assert_close(got: np.ndarray, want: np.ndarray, tol: float, what: str) -> float:
    """`rel_err(got, want) <= tol`; returns the error."""
    e = rel_err(got, want)
    assert e <= tol, f"{what}: relative error {e:.3e} exceeds {tol:g}"
    return e


@pytest.fixture(scope="session")
def heldout() -> list[Path]:
    files = sorted((DIGITS / "heldout").glob("*.png"))
    assert len(files) == 360
    return files


@pytest.fixture(scope="session")
def digits_cli(heldout: list[Path]) -> list[dict]:
    """`resnet classify --json` on the 360 held-out digits (batch 16, torchvision's eval
    transform at 32, as in assets/digits/README.md)."""
    out = resnet(
        "classify",
        "--weights", DIGITS / "digits.safetensors",
        "--labels", DIGITS / "labels.txt",
        "--size", 32, "--resize", 32, "--batch", 16, "--json",
        *heldout,
    )  # fmt: skip
    results = json.loads(out)
    assert len(results) == 360 and all("top" in r for r in results)
    return results


@pytest.fixture(scope="session")
def digits():
    """The digits classifier as `digits_cli` runs it."""
    import resnet_wgpu

    return resnet_wgpu.Classifier(
        DIGITS / "digits.safetensors",
        batch=16,
        labels=DIGITS / "labels.txt",
        size=32,
        resize=32,
    )


def as_cli(result: list[tuple[int, str, float]]) -> list[dict]:
    """A `classify` answer in `resnet classify --json`'s form, probabilities as float32."""
    return [
        {"index": i, "label": label, "probability": np.float32(p)} for i, label, p in result
    ]


def cli_top(entry: dict) -> list[dict]:
    return [
        {"index": t["index"], "label": t["label"], "probability": np.float32(t["probability"])}
        for t in entry["top"]
    ]
