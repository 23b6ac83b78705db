"""ncnn's logits against ours and torch's on the ncnn peer's model (same weights, same input).

Needs the model tools/gen_ncnn_peer.py writes (NCNN_PEER_DIR, default target/ncnn-peer), our
release CLI (RESNET, default target/release/resnet) and a Vulkan device; skips without them.
Not part of .ci/run (torch and ncnn are large, and CI has no use for them):

    target/ncnn-venv/bin/python -m pytest peer/ncnn -q
"""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import bench  # noqa: E402
import report  # noqa: E402

MODEL_DIR = os.environ.get("NCNN_PEER_DIR", os.path.join(ROOT, "target", "ncnn-peer"))
RESNET = os.environ.get("RESNET", os.path.join(ROOT, "target", "release", "resnet"))


@pytest.fixture(scope="module")
def logits_written():
    if not os.path.isfile(os.path.join(MODEL_DIR, "manifest.json")):
        pytest.skip(f"no model in {MODEL_DIR}: run tools/gen_ncnn_peer.py")
    if not os.path.isfile(RESNET):
        pytest.skip(f"no {RESNET}: cargo build --release")
    import ncnn
    from safetensors.numpy import save_file

    if ncnn.get_gpu_count() < 1:
        pytest.skip("ncnn sees no Vulkan device")
    device = ncnn.get_gpu_info(ncnn.get_default_gpu_index()).device_name()
    subprocess.run(
        [RESNET, "infer", "--weights", os.path.join(MODEL_DIR, "resnet50.safetensors"),
         "--input", os.path.join(MODEL_DIR, "input.safetensors"),
         "--output", os.path.join(MODEL_DIR, "ours.safetensors"),
         "--backend", "vulkan", "--adapter", device],
        check=True, capture_output=True,
    )
    m = bench.load_manifest(MODEL_DIR)
    x = bench.load_input(MODEL_DIR)
    for mode in bench.MODES:
        net, _ = bench.make_net(MODEL_DIR, mode)
        y = bench.run_once(net, m, x, m["output_blob"])
        save_file({"logits": y.reshape(1, -1)}, os.path.join(MODEL_DIR, f"ncnn_{mode}.safetensors"))
    return report.logit_diffs(MODEL_DIR)


@pytest.mark.parametrize("pair", [p[0] for p in report.PAIRS])
def test_logits_agree(logits_written, pair):
    name, diff, rel, tol, top1, _ = next(r for r in logits_written if r[0] == pair)
    assert top1, f"{name}: top-1 class differs"
    assert rel <= tol, f"{name}: max |diff| {diff:.3e} = {rel:.3e} of max |logit| > {tol:.0e}"
