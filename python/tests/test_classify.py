"""`classify` on the 360 held-out digits equals `resnet classify --json` (index, label and
float32 probability, exactly), from file paths, encoded bytes and Pillow-decoded pixel arrays;
and one Classifier shared by 4 threads answers as it does alone."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import resnet_wgpu
from conftest import DIGITS, as_cli, cli_top
from PIL import Image


def test_paths_equal_the_cli(digits, digits_cli: list[dict], heldout: list[Path]) -> None:
    got = digits.classify(heldout)
    assert len(got) == len(digits_cli) == 360
    for path, g, want in zip(heldout, got, digits_cli, strict=True):
        assert want["file"] == str(path)
        assert len(g) == 5
        assert as_cli(g) == cli_top(want), path
    # The model is a working one: the framework's accuracy (assets/digits/expected.json).
    correct = sum(g[0][0] == int(p.stem.split("label")[1]) for p, g in zip(heldout, got))
    assert correct == 357, correct


def test_bytes_and_pixel_arrays_equal_paths(digits, heldout: list[Path]) -> None:
    files = heldout[:40]
    want = digits.classify(files, top=3)
    assert digits.classify([f.read_bytes() for f in files], top=3) == want
    assert digits.classify([bytearray(f.read_bytes()) for f in files], top=3) == want
    # Pillow decodes, the engine takes the pixels: the same answer (grey, RGB, RGBA forms).
    grey = [np.asarray(Image.open(f)) for f in files]
    assert grey[0].dtype == np.uint8 and grey[0].ndim == 2
    assert digits.classify(grey, top=3) == want
    rgb = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    assert digits.classify(rgb, top=3) == want
    rgba = [np.asarray(Image.open(f).convert("RGBA")) for f in files]
    assert digits.classify(rgba, top=3) == want
    # A 4-D uint8 array is a batch; os.PathLike and str both name files; mixed in one list.
    assert digits.classify(np.stack(rgb), top=3) == want
    mixed = [str(files[0]), files[1].read_bytes(), rgb[2], files[3]]
    # (Compared with a batch of the same size: a sub-batch of another size may round the last
    # bit of a probability differently.)
    assert digits.classify(mixed, top=3) == digits.classify(files[:4], top=3)
    # A JPEG re-encode of the same image still classifies (decoded by the engine).
    buf = io.BytesIO()
    Image.open(files[0]).convert("RGB").save(buf, "JPEG", quality=95)
    assert digits.classify([buf.getvalue()], top=1)[0][0][0] == want[0][0][0]


def test_preprocess_is_what_logits_classify(digits, heldout: list[Path]) -> None:
    files = heldout[:16]
    x = digits.preprocess(files)
    assert x.shape == (16, 3, 32, 32) and x.dtype == np.float32
    logits = digits.logits(x)
    top = [g[0][0] for g in digits.classify(files, top=1)]
    assert list(logits.argmax(axis=1)) == top


def test_four_threads_share_one_classifier(digits, heldout: list[Path]) -> None:
    files = heldout[:96]
    x = digits.preprocess(files)
    want_top = digits.classify(files)
    want_logits = digits.logits(x)
    results: dict[int, tuple] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(t: int) -> None:
        try:
            start.wait()
            # Every thread alternates both calls, so that they interleave on the GPU.
            got = [(digits.classify(files), digits.logits(x)) for _ in range(3)]
            results[t] = tuple(got)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    assert len(results) == 4
    for got in results.values():
        assert len(got) == 3
        for top, logits in got:
            assert top == want_top
            assert np.array_equal(logits.view(np.uint32), want_logits.view(np.uint32))


# Run in a child process: if `classify` held the GIL the child would deadlock, and a timeout
# in the parent turns that into a failure instead of a hung test run.
GIL_CHILD = r"""
import os, sys, threading
import resnet_wgpu

digits, image, pipe = sys.argv[1:4]
model = resnet_wgpu.Classifier(
    os.path.join(digits, "digits.safetensors"),
    labels=os.path.join(digits, "labels.txt"), size=32, resize=32,
)
want = model.classify([image])
data = open(image, "rb").read()
os.mkfifo(pipe)

def writer():
    # open() returns only once a reader has opened the pipe: `classify`, inside native code.
    # Everything after it is Python bytecode, which runs only while that call lets go of the
    # GIL; and the call cannot return before the pipe is written and closed.
    with open(pipe, "wb") as f:
        f.write(data)

t = threading.Thread(target=writer, daemon=True)
t.start()
got = model.classify([pipe])
t.join()
assert got == want, (got, want)
print("classified through the pipe:", got[0][0])
"""


def test_the_gil_is_released_during_native_work(heldout: list[Path], tmp_path: Path) -> None:
    """`classify` reads, decodes and runs the GPU in one native section with the GIL released.
    Shown by order of events, not by time: the image is a named pipe that only a Python thread
    writes, and that thread can start writing only after `classify` has opened the pipe. If the
    call held the GIL, the writer could not run, the call would wait for ever for its image,
    and the child is killed at the timeout; on any GPU, however fast, the overlap is forced."""
    try:
        run = subprocess.run(
            [sys.executable, "-c", GIL_CHILD, str(DIGITS), str(heldout[0]), str(tmp_path / "pipe")],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            "classify() never returned: it holds the GIL while it waits for its input, so the "
            f"Python thread that writes the input could not run\n{e.stderr}"
        )
    assert run.returncode == 0, run.stderr
    assert "classified through the pipe: (" in run.stdout, run.stdout


def test_errors_return_keeps_the_good_images(digits, heldout: list[Path], tmp_path) -> None:
    missing = tmp_path / "missing.png"
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    images = [heldout[0], missing, b"not an image", corrupt, heldout[1]]
    got = digits.classify(images, errors="return")
    assert len(got) == 5
    want = digits.classify([heldout[0], heldout[1]])
    assert got[0] == want[0] and got[4] == want[1]
    assert isinstance(got[1], FileNotFoundError) and "missing.png" in str(got[1])
    assert isinstance(got[2], ValueError) and "image 2" in str(got[2])
    assert isinstance(got[3], ValueError) and "corrupt.png" in str(got[3])
    assert digits.classify([]) == []
