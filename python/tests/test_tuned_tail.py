"""Issue 22 from Python: a tuning table that avoids the kernel the heuristic picks, and more
images than one batch holds (7 in batches of 4, so the last batch is short). Every image is
classified, each as PyTorch did (`assets/digits/expected.json`: the top 5 classes in order,
probabilities within 5e-5 relative, as tests/classify.rs)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import resnet_wgpu
from conftest import DIGITS, resnet_bin

PROB_TOL = 5e-5


def register_everywhere(cache: Path) -> int:
    """Stores what `resnet tune` stores for this adapter at batch 4, with every choice turned
    into the register kernel (what tuning writes where register wins every shape); returns how
    many choices that changed."""
    run = subprocess.run(
        [
            str(resnet_bin()),
            "tune",
            "--weights",
            str(DIGITS / "digits.safetensors"),
            "--batch",
            "4",
            "--size",
            "32",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**__import__("os").environ, "RESNET_CACHE_DIR": str(cache)},
    )
    assert run.returncode == 0, run.stderr
    (path,) = cache.glob("tuning-*.json")
    table = json.loads(path.read_text())
    changed = 0
    for choice in table["entries"].values():
        if choice["variant"] != "register":
            changed += 1
            choice["variant"] = "register"
            choice.pop("tile", None)
            choice["splits"] = 1
    path.write_text(json.dumps(table))
    return changed


def test_a_tuned_table_and_a_short_last_batch(tmp_path: Path, monkeypatch) -> None:
    changed = register_everywhere(tmp_path)
    if changed == 0:
        pytest.fail("the tuner chose register everywhere: the table changes nothing to test")
    monkeypatch.setenv("RESNET_CACHE_DIR", str(tmp_path))
    expected = json.loads((DIGITS / "expected.json").read_text())["images"][:7]
    files = [DIGITS / e["file"] for e in expected]
    model = resnet_wgpu.Classifier(
        DIGITS / "digits.safetensors",
        batch=4,
        labels=DIGITS / "labels.txt",
        size=32,
        resize=32,
    )
    got = model.classify(files)
    assert len(got) == 7
    for path, g, want in zip(files, got, expected, strict=True):
        assert not isinstance(g, Exception), (path, g)
        assert [p[0] for p in g] == want["top5"], path
        assert [p[1] for p in g] == [str(i) for i in want["top5"]], path
        for (_, _, p), q in zip(g, want["probabilities_top5"], strict=True):
            assert abs(p - q) <= PROB_TOL * q, (path, p, q)
