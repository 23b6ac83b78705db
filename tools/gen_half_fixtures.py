#!/usr/bin/env python3
"""Half-precision (F16 / BF16) safetensors checkpoints with float32 goldens.

For each base case (an existing gen_fixtures.py case: one torchvision, one timm) it reads
tests/fixtures/<base>.weights.safetensors, rounds every floating tensor to float16 and to
bfloat16 with torch's own casts (``tensor.half()`` / ``tensor.bfloat16()``: round to nearest,
ties to even; integer tensors such as int64 ``num_batches_tracked`` are copied unchanged) and
writes, under tests/fixtures/half/:

  <base>_f16.weights.safetensors    F16 tensors (+ the unchanged I64 ones), names as the base file
  <base>_bf16.weights.safetensors   BF16 tensors
  <base>_f16.io.safetensors         float32 NCHW goldens: ``input`` (the base case's input, read
  <base>_bf16.io.safetensors        from its io file), ``logits`` and the same ``feat/*`` maps as the
                                    base io file, computed by the framework model (torchvision
                                    ResNet / timm ResNetV2, rebuilt as gen_fixtures.py builds it) in
                                    FLOAT32 with exactly the rounded weights (widened back to f32)
  manifest.json                     {case, base_case, dtype, flavour, batch, height, width,
                                     max_abs_logit, ...}

Self-check: the rounded tensors equal NumPy's own round-to-nearest-even (float16 via
astype(np.float16); bfloat16 via the bit formula), the file round-trips through
safetensors.torch.load_file, and ref_resnet.py's float64 reference on the widened weights
reproduces every saved output (relative error < 1e-4).

Usage:  OMP_NUM_THREADS=1 /root/formats-venv/bin/python tools/gen_half_fixtures.py
        (venv: tools/requirements-formats.txt; needs the base fixtures from gen_fixtures.py)
"""

import json
import sys
from pathlib import Path

import numpy as np

TOOLS = Path(__file__).resolve().parent
REPO = TOOLS.parent
sys.dont_write_bytecode = True
sys.path.insert(0, str(TOOLS))
import gen_fixtures as gf  # noqa: E402
import ref_resnet as rr  # noqa: E402

FIX = REPO / "tests" / "fixtures"
OUT = FIX / "half"
BASES = ["torchvision_basic_small_32x32", "timm_v2_small_32x32"]


def bf16_rne_numpy(a):
    """float32 -> bfloat16 bits (round to nearest, ties to even), as uint16; no NaNs here."""
    u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def build(case):
    if case["flavour"] == "torchvision":
        return gf.build_torchvision(case)
    return gf.build_timm(case)


def run(model, case, x):
    """Forward with the same hooks as gen_fixtures.run_torch_case."""
    import torch

    if case["flavour"] == "torchvision":
        hooks = {"feat/stem_pool": model.maxpool, "feat/stage1": model.layer1,
                 "feat/stage2": model.layer2, "feat/stage3": model.layer3,
                 "feat/stage4": model.layer4, "feat/pooled": model.avgpool}
        stem_in = model.maxpool
    else:
        hooks = {"feat/stem_conv": model.stem.conv, "feat/stem_pool": model.stem.pool,
                 "feat/stage1": model.stages[0], "feat/stage2": model.stages[1],
                 "feat/stage3": model.stages[2], "feat/stage4": model.stages[3],
                 "feat/post_norm": model.norm, "feat/pooled": model.head.global_pool}
        stem_in = None
    feats, handles = {}, []
    for key, mod in hooks.items():
        handles.append(mod.register_forward_hook(
            lambda m, i, o, key=key: feats.__setitem__(key, o.detach().clone())))
    if stem_in is not None:
        handles.append(stem_in.register_forward_pre_hook(
            lambda m, i: feats.__setitem__("feat/stem_conv", i[0].detach().clone())))
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
    for h in handles:
        h.remove()
    io = {"input": x, "logits": logits.numpy()}
    for k, v in feats.items():
        v = v.numpy()
        io[k] = v.reshape(v.shape[0], -1) if k == "feat/pooled" else v
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in io.items()}


def main():
    import torch
    import timm
    import torchvision
    from safetensors import safe_open
    from safetensors.numpy import load_file as np_load
    from safetensors.numpy import save_file as np_save
    from safetensors.torch import load_file, save_file

    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    manifest_base = {e["case"]: e for e in json.loads((FIX / "manifest.json").read_text())}
    out_manifest = []
    for base in BASES:
        case = manifest_base[base]
        wpath = FIX / f"{base}.weights.safetensors"
        with safe_open(str(wpath), "pt") as f:
            meta = f.metadata()
        sd = load_file(str(wpath))
        base_io = np_load(str(FIX / f"{base}.io.safetensors"))
        x = base_io["input"]
        assert np.array_equal(x, gf.make_input(case)), "base input not reproducible"
        for tag, dtype, st_name in (("f16", torch.float16, "F16"), ("bf16", torch.bfloat16, "BF16")):
            name = f"{base}_{tag}"
            rounded = {k: (v.to(dtype) if v.is_floating_point() else v.clone()).contiguous()
                       for k, v in sd.items()}
            # rounding check against NumPy's round-to-nearest-even
            for k, v in sd.items():
                if not v.is_floating_point():
                    continue
                a = v.numpy()
                if tag == "f16":
                    assert np.array_equal(rounded[k].numpy(), a.astype(np.float16)), k
                else:
                    bits = rounded[k].view(torch.int16).numpy().view(np.uint16)
                    assert np.array_equal(bits, bf16_rne_numpy(a)), k
            wfile = OUT / f"{name}.weights.safetensors"
            save_file(rounded, str(wfile), metadata=meta)
            back = load_file(str(wfile))
            assert set(back) == set(sd)
            for k in back:
                assert back[k].dtype == rounded[k].dtype and torch.equal(back[k], rounded[k]), k
            hdr = json.loads(wfile.read_bytes()[8:8 + int.from_bytes(wfile.read_bytes()[:8], "little")])
            dts = {v["dtype"] for k, v in hdr.items() if k != "__metadata__"}
            assert dts <= {st_name, "I64"}, dts
            widened = {k: (v.float() if v.is_floating_point() else v) for k, v in rounded.items()}
            model = build(case)
            model.eval()
            missing = model.load_state_dict(widened, strict=True)
            io = run(model, case, x)
            assert set(io) == set(base_io), (sorted(io), sorted(base_io))
            for k in io:
                assert io[k].shape == base_io[k].shape and np.all(np.isfinite(io[k])), k
            np_save(io, str(OUT / f"{name}.io.safetensors"))
            # float64 reference on exactly the widened weights
            ref = rr.forward(case["flavour"], {k: v.numpy() for k, v in widened.items()}, x)
            worst = 0.0
            for k, v in ref.items():
                e = float(np.abs(io[k].astype(np.float64) - v).max() / max(1.0, np.abs(v).max()))
                worst = max(worst, e)
                assert e < 1e-4, (name, k, e)
            mx = float(np.abs(io["logits"]).max())
            shift = float(np.abs(io["logits"] - base_io["logits"]).max())
            fw = (f"torchvision {torchvision.__version__.split('+')[0]}" if case["flavour"] == "torchvision"
                  else f"timm {timm.__version__}") + f" (torch {torch.__version__.split('+')[0]})"
            out_manifest.append(dict(
                case=name, base_case=base, dtype=st_name, flavour=case["flavour"], framework=fw,
                unit=case["unit"], units=case["units"], widths=case["widths"], stem_width=case["stem_width"],
                classes=case["classes"], batch=case["batch"], height=case["height"], width=case["width"],
                max_abs_logit=mx, max_abs_logit_change_vs_base=shift,
                weights=wfile.name, io=f"{name}.io.safetensors"))
            print(f"{name:40s} {st_name:4s} max|logit| {mx:7.3f}  |logit - base| {shift:.3g}  ref err {worst:.1e}",
                  flush=True)
    (OUT / "manifest.json").write_text(json.dumps(out_manifest, indent=1) + "\n")
    for p in OUT.iterdir():  # safetensors writes 0600 files
        p.chmod(0o644)
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"done: {total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
