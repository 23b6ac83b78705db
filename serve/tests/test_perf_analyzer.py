"""Triton's load generator, perf_analyzer, against `resnet-serve` over HTTP and gRPC at
concurrency 1 to 8, a fixed count of requests per measurement window, with zero errors (its
exit status, its own report, and the server's failure counter).

PyPI's `perf-analyzer` is a placeholder; the binary ships in `tritonclient==2.40.0`'s wheel
(serve/tests/requirements-perf.txt) and runs with Debian's `libb64-0d` and the `libcudart.so.12`
of PyPI's `nvidia-cuda-runtime-cu12`:

    apt-get install libb64-0d
    python3 -m venv /tmp/perf && /tmp/perf/bin/pip install --no-deps -r serve/tests/requirements-perf.txt
    PERF_ANALYZER=/tmp/perf/bin/perf_analyzer python -m pytest serve/tests/test_perf_analyzer.py

Skipped without PERF_ANALYZER (.ci/run sets it). PERF_ANALYZER_LIBS overrides the folder of
libcudart.so.12 (default: nvidia/cuda_runtime/lib in the site-packages of PERF_ANALYZER's
virtualenv).
"""

import base64
import csv
import glob
import json
import os
import pathlib
import struct
import subprocess

import pytest

from serving import DIGITS, Server

PERF_ANALYZER = os.environ.get("PERF_ANALYZER")
pytestmark = pytest.mark.skipif(not PERF_ANALYZER, reason="PERF_ANALYZER is not set")


def env():
    libs = os.environ.get("PERF_ANALYZER_LIBS")
    if not libs:
        venv = pathlib.Path(PERF_ANALYZER).resolve().parents[1]
        found = glob.glob(str(venv / "lib" / "python3*" / "site-packages" / "nvidia" / "cuda_runtime" / "lib"))
        assert found, f"no nvidia/cuda_runtime/lib in {venv}: set PERF_ANALYZER_LIBS"
        libs = found[0]
    return {**os.environ, "LD_LIBRARY_PATH": ":".join(filter(None, [libs, os.environ.get("LD_LIBRARY_PATH")]))}


@pytest.fixture(scope="module")
def server():
    s = Server("--max-batch", "8", "--max-queue-delay-us", "1000")
    yield s
    s.stop()


def perf_analyzer(server, protocol, model, concurrency, data, csv_path):
    """Runs perf_analyzer; returns its CSV rows. Each concurrency level takes windows of at
    least 20 requests until 3 in a row agree (-s 1000: any 3; this checks errors, not speed)."""
    url = server.http if protocol == "http" else server.grpc
    cmd = [PERF_ANALYZER, "-m", model, "-u", url, "-i", protocol,
           "--concurrency-range", concurrency, "--measurement-mode", "count_windows",
           "--measurement-request-count", "20", "-r", "3", "-s", "1000",
           "--input-data", data, "-f", str(csv_path)]
    r = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"{' '.join(cmd)}: exit {r.returncode}\n{out}"
    assert "error" not in out.lower(), out
    with open(csv_path) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_perf_analyzer_at_concurrency_1_to_8_has_no_errors(server, protocol, tmp_path):
    failures = server.metric("nv_inference_request_failure")
    before = server.metric("nv_inference_request_success")
    # The tensor model, zeros (perf_analyzer's "random" FP32 bytes include NaNs, which the
    # server refuses).
    rows = perf_analyzer(server, protocol, "digits", "1:8:1", "zero", tmp_path / "digits.csv")
    assert sorted(int(r["Concurrency"]) for r in rows) == list(range(1, 9))
    assert all(float(r["Inferences/Second"]) > 0 for r in rows), rows
    # The image model: held-out PNGs in Triton's BYTES serialization (4-byte length, then the
    # file), base64 in perf_analyzer's JSON.
    files = sorted((DIGITS / "heldout").glob("*.png"))[:4]
    data = {"data": [{"image": {"b64": base64.b64encode(
        struct.pack("<I", f.stat().st_size) + f.read_bytes()).decode()}} for f in files]}
    (tmp_path / "images.json").write_text(json.dumps(data))
    rows = perf_analyzer(server, protocol, "digits_image", "8", str(tmp_path / "images.json"),
                         tmp_path / "images.csv")
    assert [int(r["Concurrency"]) for r in rows] == [8]
    assert server.metric("nv_inference_request_failure") == failures
    assert server.metric("nv_inference_request_success") > before
