#!/usr/bin/env python3
"""The ncnn peer's model: a seeded torchvision ResNet-50, for us and for ncnn.

What it does
------------
Builds ``torchvision.models.resnet50()`` (v1.5: stride in the 3x3, 1000 classes) under
``torch.manual_seed(SEED)``, gives every BatchNorm seeded non-trivial statistics (the
``gen_fixtures.py`` conventions, so that folding BN is exercised and the logits stay bounded),
runs it in float32 on the CPU on a seeded N(0,1) input and writes into OUT:

* ``resnet50.safetensors`` - the ``state_dict()`` as torch saves it (what ``resnet bench
  --weights`` / ``resnet infer --weights`` load: flavour ``torchvision``);
* ``input.safetensors`` - ``input`` [1,3,224,224] float32 NCHW (already "preprocessed");
* ``reference.safetensors`` - ``logits`` [1,1000] from torch (float32, CPU);
* ``resnet50.ncnn.param`` / ``resnet50.ncnn.bin`` - the same module traced and converted by
  pnnx, weights stored in float32 (``fp16=False``: pnnx's default would round the stored
  weights to half, which would blur the fp32 comparison);
* ``manifest.json`` - seed, versions, the ncnn blob names, max |logit|.

pnnx also leaves its own intermediate files (``*.pt``, ``*.pnnx.*``, ``*_pnnx.py``,
``*_ncnn.py``) in ``OUT/pnnx/``.

Nothing here is committed: OUT defaults to ``target/ncnn-peer`` under the repository (ignored),
and is a few hundred MB.

How to run
----------
    python3 -m venv target/ncnn-venv
    target/ncnn-venv/bin/pip install -r peer/ncnn/requirements.txt
    target/ncnn-venv/bin/pip install --no-deps -r peer/ncnn/requirements-nodeps.txt
    target/ncnn-venv/bin/python tools/gen_ncnn_peer.py [--out DIR] [--seed N]

(``peer/ncnn/run.sh`` does all of this.)  Takes ~1 minute on 2 cores, most of it pnnx.
"""

import argparse
import json
import os
import shutil
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "target", "ncnn-peer")
SIZE = 224


def randomize_bn(model, seed):
    """gen_fixtures.py's BN statistics, drawn from a torch generator seeded with `seed`.

    |gamma| ~ U(0.5, 1.5) with ~20% negative, beta N(0, 0.1), running mean N(0, 0.2), running var
    U(0.5, 2). Each bottleneck's last BN gamma is scaled by 0.3 so the residual stream of 16 units
    stays bounded (torchvision's default init leaves BN as the identity and the logits grow large,
    which would make a relative tolerance meaningless).
    """
    import torch
    from torchvision.models import resnet as tvr

    g = torch.Generator().manual_seed(seed)
    last = {id(m.bn3) for m in model.modules() if isinstance(m, tvr.Bottleneck)}
    with torch.no_grad():
        for m in model.modules():
            if not isinstance(m, torch.nn.BatchNorm2d):
                continue
            n = m.num_features
            scale = 0.3 if id(m) in last else 1.0
            mag = torch.rand(n, generator=g) + 0.5
            sign = torch.where(torch.rand(n, generator=g) < 0.2, -1.0, 1.0)
            m.weight.copy_(mag * sign * scale)
            m.bias.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    ap.add_argument("--seed", type=int, default=0, help="torch.manual_seed for weights and input")
    args = ap.parse_args()

    import numpy as np
    import pnnx
    import torch
    import torchvision
    from safetensors.torch import save_file

    torch.set_grad_enabled(False)
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    model = torchvision.models.resnet50()  # weights=None: torchvision's own seeded init
    randomize_bn(model, args.seed + 1)
    model.eval()
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(args.seed + 2))
    logits = model(x)
    if not torch.isfinite(logits).all():
        sys.exit("non-finite logits")

    # state_dict as torch has it, int64 num_batches_tracked included (our loader skips it).
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        os.path.join(args.out, "resnet50.safetensors"),
    )
    save_file({"input": x.contiguous()}, os.path.join(args.out, "input.safetensors"))
    save_file({"logits": logits.contiguous()}, os.path.join(args.out, "reference.safetensors"))

    # pnnx writes its by-products next to the .pt; keep them in a subfolder.
    work = os.path.join(args.out, "pnnx")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    param = os.path.join(args.out, "resnet50.ncnn.param")
    binf = os.path.join(args.out, "resnet50.ncnn.bin")
    pnnx.export(
        model,
        os.path.join(work, "resnet50.pt"),
        inputs=x,
        ncnnparam=param,
        ncnnbin=binf,
        fp16=False,
    )
    for f in (param, binf):
        if not os.path.isfile(f):
            sys.exit(f"pnnx did not write {f}")

    # The blob names: pnnx calls the graph's input in0 and its output out0; read them back
    # from the param file rather than assume.
    with open(param) as f:
        lines = f.read().split("\n")
    layers = [ln.split() for ln in lines[2:] if ln.strip()]
    inputs = [ly[4] for ly in layers if ly[0] == "Input"]
    consumed = {b for ly in layers for b in ly[4 : 4 + int(ly[2])]}
    outputs = [
        b for ly in layers for b in ly[4 + int(ly[2]) : 4 + int(ly[2]) + int(ly[3])]
        if b not in consumed
    ]
    if len(inputs) != 1 or len(outputs) != 1:
        sys.exit(f"expected one input and one output blob, got {inputs} / {outputs}")

    manifest = {
        "model": "torchvision resnet50 (v1.5), seeded",
        "seed": args.seed,
        "size": SIZE,
        "input_blob": inputs[0],
        "output_blob": outputs[0],
        "ncnn_layers": len(layers),
        "max_abs_logit": float(logits.abs().max()),
        "versions": {
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "pnnx": getattr(pnnx, "__version__", "unknown"),
            "numpy": np.__version__,
        },
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
