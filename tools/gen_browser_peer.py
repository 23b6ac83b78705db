#!/usr/bin/env python3
"""The browser peer benchmark's model and input (peer/web/README.md, BENCHMARKS.md).

What it writes (default ``target/peer-web/model/``, outside git: ~100 MB each, never commit them)
------------------------------------------------------------------------------------------------
resnet50.onnx         torchvision ``resnet50(weights=None)``, seeded, eval mode, exported by torch's
                      legacy TorchScript exporter (``dynamo=False``), opset 17, constant folding on
                      (batch norm folded into the convs, as a user's export is), input ``input``
                      [batch,3,224,224] and output ``logits`` [batch,1000], dynamic batch. Both the
                      page's engines load this one file: ours (the library's ONNX loader) and
                      ONNX Runtime Web, so "the same weights" holds by construction.
resnet50.safetensors  the same model's ``state_dict()`` (OIHW, unfolded batch norm), for engines
                      that take the weights rather than the ONNX graph (the TensorFlow.js model).
input.bin             float32 little-endian [8,3,224,224], N(0,1) from a seeded generator: the
                      page runs its first image at batch 1 and all 8 at batch 8.
expected.bin          float32 [8,1000]: onnxruntime (CPU, Python) on resnet50.onnx and input.bin,
                      a reference the page reports every engine against, besides ours.
meta.json             shapes, names, versions and the torch-vs-onnxruntime difference.

Weights: torchvision's own initialisation under ``torch.manual_seed(SEED)``, then every batch norm's
affine parameters and running statistics drawn (|gamma| in U(0.5,1.5), beta N(0,0.1), mean
N(0,0.1), var U(0.5,2)) so that folding them into the convs is not the identity. The output is
deterministic for a given torch version.

Usage (environment: ``tools/requirements-browser-peer.txt``)::

    python3 -m venv target/peer-web/venv
    target/peer-web/venv/bin/pip install -r tools/requirements-browser-peer.txt
    target/peer-web/venv/bin/python tools/gen_browser_peer.py [--out DIR]
"""

import argparse
import hashlib
import json
import pathlib

import numpy as np
import onnx
import onnxruntime
import torch
import torchvision
from safetensors.torch import save_file

SEED = 2121  # issue 21, item 2
BATCH = 8
SIZE = 224
OPSET = 17


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=pathlib.Path, default=root / "target/peer-web/model")
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(SEED)
    model = torchvision.models.resnet50(weights=None)
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                sign = torch.where(torch.rand(c, generator=g) < 0.2, -1.0, 1.0)
                m.weight.copy_(sign * (0.5 + torch.rand(c, generator=g)))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=g))
    model.eval()

    x = torch.randn(BATCH, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(SEED + 2))
    with torch.no_grad():
        torch_logits = model(x).numpy()

    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(out / "resnet50.safetensors"),
    )
    onnx_path = out / "resnet50.onnx"
    torch.onnx.export(
        model,
        (x[:1],),
        str(onnx_path),
        dynamo=False,
        opset_version=OPSET,
        do_constant_folding=True,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    onnx.checker.check_model(str(onnx_path))
    ops = sorted({n.op_type for n in onnx.load(str(onnx_path)).graph.node})

    sess = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ort_logits = sess.run(["logits"], {"input": x.numpy()})[0]
    scale = float(np.abs(ort_logits).max())
    torch_vs_ort = float(np.abs(ort_logits - torch_logits).max()) / scale
    assert torch_vs_ort < 1e-4, f"torch and onnxruntime differ by {torch_vs_ort:.2e} relative"

    x.numpy().astype("<f4").tofile(out / "input.bin")
    ort_logits.astype("<f4").tofile(out / "expected.bin")
    meta = {
        "model": "torchvision resnet50, seeded (tools/gen_browser_peer.py)",
        "seed": SEED,
        "batch": BATCH,
        "size": SIZE,
        "classes": int(ort_logits.shape[1]),
        "input_name": "input",
        "output_name": "logits",
        "opset": OPSET,
        "onnx_ops": ops,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "max_abs_logit": scale,
        "torch_vs_onnxruntime_rel": torch_vs_ort,
        "sha256": {p: sha256(out / p) for p in ["resnet50.onnx", "input.bin", "expected.bin"]},
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
