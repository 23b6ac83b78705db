"""Bad inputs raise the documented exceptions with the engine's message: a missing file
`FileNotFoundError`, bad data or arguments `ValueError`, a wrong type `TypeError`, no GPU
adapter `RuntimeError` with the install hint. Nothing panics, nothing hangs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import resnet_wgpu
from conftest import DIGITS, FIXTURES

WEIGHTS = DIGITS / "digits.safetensors"
INSTALL_HINT = "apt-get install mesa-vulkan-drivers"


def test_checkpoint_and_labels_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        resnet_wgpu.Classifier(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(os.urandom(100))
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        resnet_wgpu.Classifier(junk)
    with pytest.raises(ValueError, match="3 labels but the model has 10 classes"):
        resnet_wgpu.Classifier(WEIGHTS, labels=["a", "b", "c"])
    with pytest.raises(FileNotFoundError, match="labels.missing"):
        resnet_wgpu.Classifier(WEIGHTS, labels=tmp_path / "labels.missing")
    with pytest.raises(ValueError, match="keras-v1"):
        resnet_wgpu.Classifier(WEIGHTS, flavour="keras-v1")
    with pytest.raises(ValueError, match="slim-v2, keras-v2"):
        resnet_wgpu.Classifier(WEIGHTS, flavour="caffe")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"precision": "f8"}, "f8"),
        ({"backend": "cuda"}, "unknown backend `cuda`"),
        ({"batch": 0}, "batch must be at least 1, got 0"),
        ({"batch": -3}, "batch must be at least 1, got -3"),
        ({"size": 0}, "size must be at least 1"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        resnet_wgpu.Classifier(WEIGHTS, **kwargs)


def test_no_matching_adapter_is_a_runtime_error_with_the_install_hint() -> None:
    with pytest.raises(RuntimeError, match="no GPU adapter found matching `no-such-gpu`") as e:
        resnet_wgpu.Classifier(WEIGHTS, adapter="no-such-gpu")
    assert INSTALL_HINT in str(e.value)


def test_a_machine_without_vulkan_driver_gets_the_install_hint(tmp_path: Path) -> None:
    # A process whose Vulkan loader finds no driver at all: the real no-adapter case.
    code = (
        "import resnet_wgpu\n"
        "try:\n"
        f"    resnet_wgpu.Classifier({str(WEIGHTS)!r}, backend='vulkan')\n"
        "except RuntimeError as e:\n"
        "    print('RuntimeError:', e)\n"
        "print('adapters:', resnet_wgpu.adapters('vulkan'))\n"
    )
    missing = str(tmp_path / "no_icd.json")
    env = {**os.environ, "VK_ICD_FILENAMES": missing, "VK_DRIVER_FILES": missing}
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert "RuntimeError: no GPU adapter found on backend Vulkan" in run.stdout, run.stdout
    assert INSTALL_HINT in run.stdout
    assert "adapters: []" in run.stdout


@pytest.fixture(scope="module")
def small():
    return resnet_wgpu.Classifier(
        FIXTURES / "torchvision_basic_small_32x32.weights.safetensors", batch=2
    )


def test_bad_logits_inputs(small) -> None:
    x = np.zeros((2, 3, 32, 32), np.float32)
    with pytest.raises(TypeError, match="expected a numpy.ndarray"):
        small.logits(x.tolist())
    with pytest.raises(TypeError, match=r"float64.*astype\(numpy.float32\)"):
        small.logits(x.astype(np.float64))
    with pytest.raises(ValueError, match="4-D"):
        small.logits(x[0])
    with pytest.raises(ValueError, match="1 channels .* the model takes 3"):
        small.logits(x[:, :1])
    with pytest.raises(ValueError, match="batch is empty"):
        small.logits(x[:0])
    bad = x.copy()
    bad[1, 2, 3, 4] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        small.logits(bad)
    bad[1, 2, 3, 4] = np.inf
    with pytest.raises(ValueError, match="not finite"):
        small.features(bad)
    with pytest.raises(ValueError):
        small.logits(np.zeros((1, 3, 8, 8), np.float32))
    # The classifier still works after all of that.
    assert small.logits(x).shape == (2, small.classes)


def test_bad_classify_inputs(small, tmp_path: Path) -> None:
    png = DIGITS / "heldout" / "000_label0.png"
    with pytest.raises(TypeError, match="wrap it in a list"):
        small.classify(str(png))
    with pytest.raises(TypeError, match="wrap it in a list"):
        small.classify(png)
    with pytest.raises(TypeError, match="wrap it in a list"):
        small.classify(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(TypeError, match="image 1 is a int"):
        small.classify([png, 7])
    with pytest.raises(TypeError, match="float32 array: pixel arrays must be uint8"):
        small.classify([np.zeros((32, 32, 3), np.float32)])
    with pytest.raises(ValueError, match=r"shape \[32, 32, 5\]"):
        small.classify([np.zeros((32, 32, 5), np.uint8)])
    with pytest.raises(ValueError, match="top must be at least 1"):
        small.classify([png], top=0)
    with pytest.raises(ValueError, match='use "raise" or "return"'):
        small.classify([png], errors="ignore")
    with pytest.raises(FileNotFoundError, match="gone.png"):
        small.classify([png, tmp_path / "gone.png"])
    with pytest.raises(ValueError, match=r"image 0 \(bytes\).*not an image"):
        small.classify([b"GIF89a nonsense"[:3] + b"xx"])
    with pytest.raises(ValueError, match="image has no pixels"):
        small.classify([np.zeros((0, 5, 3), np.uint8)])
    assert len(small.classify([png])[0]) == 5


def test_bad_bench_arguments() -> None:
    with pytest.raises(ValueError, match="--steps 0 would time nothing"):
        resnet_wgpu.bench("resnet18", size=32, batch=1, steps=0)
    with pytest.raises(ValueError, match="unknown model `resnet7`"):
        resnet_wgpu.bench("resnet7", size=32)
    with pytest.raises(ValueError, match="batch must be at least 1"):
        resnet_wgpu.bench("resnet18", size=32, batch=0)
    with pytest.raises(FileNotFoundError):
        resnet_wgpu.bench(weights="/nonexistent.safetensors")
