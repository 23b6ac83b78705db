"""Triton's own HTTP client (PyPI's `tritonclient[http]`) against the built `resnet-serve`.

Run from the repository root after `cargo build --release -p resnet-serve`:

    python3 -m venv /tmp/serve-venv
    /tmp/serve-venv/bin/pip install -r serve/tests/requirements.txt
    /tmp/serve-venv/bin/python -m pytest serve/tests -q

RESNET_SERVE_BIN overrides the binary's path (default: target/release/resnet-serve, under
CARGO_TARGET_DIR when set). The server listens on 127.0.0.1 (a free port) and is killed at
the end.
"""

import json
import os
import pathlib
import subprocess
import threading

import numpy as np
import pytest
import tritonclient.http as httpclient
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
DIGITS = ROOT / "assets" / "digits"
# f32 logits against PyTorch's, relative to max(1, max|logit|) (as tests/golden.rs).
TOL = 1e-5


def binary():
    if "RESNET_SERVE_BIN" in os.environ:
        return os.environ["RESNET_SERVE_BIN"]
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str(target / "release" / "resnet-serve")


@pytest.fixture(scope="module")
def server():
    proc = subprocess.Popen(
        [binary(), "--weights", str(DIGITS / "digits.safetensors"),
         "--labels", str(DIGITS / "labels.txt"), "--size", "32", "--resize", "32",
         "--http", "127.0.0.1:0", "--max-batch", "8", "--max-queue-delay-us", "2000"],
        stderr=subprocess.PIPE, text=True)
    addr = None
    for line in proc.stderr:
        if "over HTTP on " in line:
            addr = line.split("over HTTP on ")[1].strip()
            break
    assert addr, "resnet-serve exited before listening"
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    yield addr
    proc.terminate()
    assert proc.wait(timeout=30) == 0


@pytest.fixture(scope="module")
def client(server):
    return httpclient.InferenceServerClient(url=server, concurrency=8)


def expected(n):
    images = json.loads((DIGITS / "expected.json").read_text())["images"]
    return sorted(images, key=lambda w: w["file"])[:n]


def preprocess(path):
    """torchvision's eval transform of a 32x32 digit: Resize 32 and CenterCrop 32 leave it
    as it is; gray replicated to RGB, ImageNet mean and std."""
    x = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return x.transpose(2, 0, 1).astype(np.float32)


def assert_close(got, want):
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    assert got.shape == want.shape
    for g, w in zip(got, want):
        scale = max(1.0, float(np.abs(w).max()))
        assert np.abs(g - w).max() <= TOL * scale, (g, w)


def test_health_metadata_config(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("digits") and client.is_model_ready("digits_image")
    meta = client.get_model_metadata("digits")
    assert meta["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": [-1, 3, 32, 32]}
    assert client.get_model_metadata("digits_image")["inputs"][0]["datatype"] == "BYTES"
    config = client.get_model_config("digits")
    assert config["max_batch_size"] == 8 and config["input"][0]["dims"] == [3, 32, 32]
    assert "classification" in client.get_server_metadata()["extensions"]


@pytest.mark.parametrize("binary_data", [False, True])
def test_logits_equal_the_framework(client, binary_data):
    want = expected(8)
    x = np.stack([preprocess(DIGITS / w["file"]) for w in want])
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary_data)
    out = httpclient.InferRequestedOutput("logits", binary_data=binary_data)
    logits = client.infer("digits", [inp], outputs=[out]).as_numpy("logits")
    assert logits.shape == (8, 10)
    assert_close(logits, [w["logits"] for w in want])


@pytest.mark.parametrize("binary_data", [False, True])
def test_image_model_classification(client, binary_data):
    want = expected(5)
    files = np.array([(DIGITS / w["file"]).read_bytes() for w in want], dtype=np.object_)
    inp = httpclient.InferInput("image", [len(files)], "BYTES")
    inp.set_data_from_numpy(files, binary_data=True)
    result = client.infer("digits_image", [inp],
                          outputs=[httpclient.InferRequestedOutput("logits", binary_data=binary_data)])
    assert_close(result.as_numpy("logits"), [w["logits"] for w in want])
    result = client.infer(
        "digits_image", [inp],
        outputs=[httpclient.InferRequestedOutput("logits", binary_data=binary_data, class_count=5)])
    top = result.as_numpy("logits")
    assert top.shape == (5, 5)
    for row, w in zip(top, want):
        parsed = [(s.decode() if isinstance(s, bytes) else s).split(":") for s in row]
        assert [int(i) for _, i, _ in parsed] == w["top5"]
        assert [label for _, _, label in parsed] == [str(i) for i in w["top5"]]
        for (p, _, _), q in zip(parsed, w["probabilities_top5"]):
            assert abs(float(p) - q) <= 1e-6 + 5e-5 * q


def test_concurrent_async_requests(client):
    want = expected(16)
    pending = []
    for w in want:
        inp = httpclient.InferInput("image", [1], "BYTES")
        inp.set_data_from_numpy(np.array([(DIGITS / w["file"]).read_bytes()], dtype=np.object_))
        pending.append(client.async_infer("digits_image", [inp]))
    for p, w in zip(pending, want):
        assert int(np.argmax(p.get_result().as_numpy("logits")[0])) == w["top1"]


def test_errors_reach_the_client(client):
    inp = httpclient.InferInput("input", [1, 3, 28, 28], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 3, 28, 28), np.float32))
    with pytest.raises(Exception, match=r"expected `input` \(FP32 \[-1,3,32,32\]\)"):
        client.infer("digits", [inp])
    with pytest.raises(Exception, match="unknown model `nope`"):
        client.infer("nope", [inp])
