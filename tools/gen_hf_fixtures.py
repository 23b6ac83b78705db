#!/usr/bin/env python3
"""Hugging Face transformers ResNet fixtures (models + image-processor goldens).

What it writes
--------------
tests/fixtures/hf/<case>/            exactly what ``ResNetForImageClassification.save_pretrained(
                                     dir, safe_serialization=True)`` writes (config.json,
                                     model.safetensors) plus a ``preprocessor_config.json`` like
                                     microsoft/resnet-50's (ConvNextImageProcessor: shortest_edge 224,
                                     crop_pct 0.875, resample 3, ImageNet mean/std, rescale 1/255)
tests/fixtures/hf/<case>.io.safetensors
                                     float32 NCHW: ``input`` [N,3,H,W], ``logits`` [N,labels],
                                     ``feat/stem_pool`` (hidden_states[0]: embedder conv+BN+ReLU+max
                                     pool), ``feat/stage1..4`` (hidden_states[1..4]), ``feat/pooled``
                                     (pooler output flattened to [N,C])
tests/fixtures/hf/hf_resnet50_noconfig.safetensors
                                     a bare copy of hf_resnet50_64x64/model.safetensors (no
                                     config.json next to it); it reuses hf_resnet50_64x64.io.safetensors
tests/fixtures/hf/manifest.json      one object per case
tests/fixtures/preprocess/hf_expected.safetensors, hf_rules.json
                                     the Pillow-based ConvNeXT image processor (the "slow" one) on the
                                     images of tests/fixtures/preprocess/ (made by
                                     gen_preprocess_fixtures.py; this script only reads them)

Cases (batch 2): hf_resnet18_64x64 (basic [2,2,2,2], hidden [8,12,16,20], embedding 8, 10 labels
"zero".."nine"), hf_resnet50_64x64 (bottleneck [3,4,6,3], hidden [16,32,48,64], embedding 8,
1000 ImageNet labels from assets/imagenet_labels.txt), hf_resnet50_dib_64x64 (the same with
downsample_in_bottleneck=True, 7 labels), hf_resnet26_dfs_45x37 (bottleneck [2,2,2,2],
downsample_in_first_stage=True, 5 labels left at transformers' default LABEL_0..LABEL_4, 45x37).

What the installed transformers (5.23.0) does, read from models/resnet/modeling_resnet.py and
configuration_resnet.py, compared with docs/models.md's transformers section
------------------------------------------------------------------------------------------------
* Everything in that section holds: ResNetConvLayer = Conv2d(padding k//2, bias=False) -> BatchNorm2d
  (eps 1e-5) -> ReLU (Identity for the last conv of a layer); stem 7x7/2 -> MaxPool2d(3, 2, 1);
  bottleneck reduction 4 (inner width = hidden_size // 4); stride on layer.1 (3x3) or on layer.0
  (first 1x1) with downsample_in_bottleneck; shortcut 1x1(stride)+BN only when in != out or
  stride != 1; head Flatten + Linear (``classifier.1.*``).
* Additional details:
  - The stage-1 input width is ``embedding_size``, not hidden_sizes[0]: a basic net whose
    embedding_size == hidden_sizes[0] has NO shortcut in stage 1 (hf_resnet18_64x64), a bottleneck
    net always has one there (embedding 8 -> hidden 16).
  - downsample_in_bottleneck only affects the FIRST layer of stages 2..4 (the only strided ones;
    with downsample_in_first_stage also stage 1): later layers are built without the flag, but they
    have stride 1 anyway.  With downsample_in_first_stage=True *and* downsample_in_bottleneck=True
    the stage-1 stride would sit on the first 1x1 as well (not a fixture here).
  - downsample_in_first_stage=True puts stride 2 on the first layer of stage 1 (for a bottleneck on
    its 3x3 unless downsample_in_bottleneck) and on that layer's shortcut; the stem is unchanged.
  - hidden_states has 5 entries: [embedder output (after the max pool), stage1, .., stage4]; the
    pooler output is [N,C,1,1] (AdaptiveAvgPool2d) and the classifier flattens it.
  - save_pretrained writes every BatchNorm's int64 ``num_batches_tracked`` (0 here, a fresh model in
    eval mode) and the config's ``id2label``/``label2id``; without a custom id2label the config
    holds LABEL_0..LABEL_{n-1}.  config.json (5.23.0) holds architectures, depths,
    downsample_in_bottleneck, downsample_in_first_stage, dtype ("float32"; 4.x wrote
    "torch_dtype"), embedding_size, hidden_act, hidden_sizes, id2label, label2id, layer_type,
    model_type "resnet", num_channels, the backbone fields out_features ["stage4"], out_indices
    [4], stage_names, and transformers_version; no num_labels key (it is len(id2label)).
  - model.safetensors metadata is {"format": "pt"}; 320 tensors for the [3,4,6,3] net (5 per BN
    incl. num_batches_tracked, 1 per conv, classifier.1.weight/bias).
* Image processor: in transformers 5.x ``ConvNextImageProcessor`` is the torchvision-backed
  ("fast") class; the Pillow/NumPy one is ``ConvNextImageProcessorPil`` (what
  ``AutoImageProcessor.from_pretrained(dir, use_fast=False)`` / ``backend="pil"`` returns; its
  saved ``image_processor_type`` is still "ConvNextImageProcessor").  Its steps (read from
  image_processing_pil_convnext.py, image_processing_backends.PilBackend, image_transforms.py):
  shortest_edge < 384: resize the shorter side to int(shortest_edge / crop_pct) (the longer to
  int(that * long / short)), Pillow resample from the config on the uint8 image, then centre crop
  shortest_edge x shortest_edge at top = (H - crop) // 2, left = (W - crop) // 2 (FLOOR, unlike
  torchvision's round-half-even); shortest_edge >= 384: resize straight to shortest_edge x
  shortest_edge (aspect ratio NOT kept, no crop; crop_pct ignored).  Rescale: float32(float64(u8) *
  rescale_factor) (the product is formed in float64), normalise: (x - float32(mean)) /
  float32(std) in float32.  do_convert_rgb defaults to None: a PIL 'L' or 'RGBA' image passed
  directly then fails in normalize (1 or 4 channels vs 3 means) and a 16-bit 'I;16' image fails in
  the uint8 conversion; with do_convert_rgb=True an image with alpha is alpha-composited onto
  WHITE (PIL alpha_composite), not alpha-dropped as convert('RGB') does.  See hf_rules.json.

Weights follow gen_fixtures.py (ParamGen seeded from the case name: conv N(0, sqrt(2/fan_in)),
BN |gamma| U(0.5,1.5) ~20% negative, beta N(0,0.1), mean N(0,0.2), var U(0.5,2), classifier
N(0, 1/sqrt(C)), bias N(0,0.1)); the last BN of every residual branch is scaled by 0.3.
Inputs: seeded N(0,1) (gen_fixtures.make_input).

Self-check: the saved folder is reloaded with AutoModelForImageClassification.from_pretrained
(and the bare safetensors with the config) and must give the same outputs (to 1e-5: two instances
with identical weights can differ in the last bit on the CPU); an independent
float64 NumPy implementation (built from the weight names + config, using ref_resnet.py's ops)
must reproduce every saved output (relative error < 1e-4); the image-processor goldens are
re-computed by a NumPy re-implementation of the rules (Pillow fixed-point resampling emulated).

Usage (CPU only, a few seconds):
    python3 -m venv /root/formats-venv
    /root/formats-venv/bin/pip install -r tools/requirements-formats.txt
    OMP_NUM_THREADS=1 /root/formats-venv/bin/python tools/gen_hf_fixtures.py
"""

import argparse
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np

TOOLS = Path(__file__).resolve().parent
REPO = TOOLS.parent
sys.dont_write_bytecode = True
sys.path.insert(0, str(TOOLS))
import gen_fixtures as gf  # noqa: E402  (ParamGen, seed_for, make_input: the shared conventions)
import ref_resnet as rr  # noqa: E402

OUT = REPO / "tests" / "fixtures" / "hf"
PRE = REPO / "tests" / "fixtures" / "preprocess"

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
CIFAR7 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog"]


def cases():
    imagenet = (REPO / "assets" / "imagenet_labels.txt").read_text().splitlines()
    assert len(imagenet) == 1000
    base50 = dict(layer_type="bottleneck", depths=[3, 4, 6, 3], hidden_sizes=[16, 32, 48, 64],
                  embedding_size=8, downsample_in_first_stage=False)
    return [
        dict(case="hf_resnet18_64x64", layer_type="basic", depths=[2, 2, 2, 2],
             hidden_sizes=[8, 12, 16, 20], embedding_size=8, downsample_in_first_stage=False,
             downsample_in_bottleneck=False, labels=DIGITS, batch=2, height=64, width=64),
        dict(case="hf_resnet50_64x64", **base50, downsample_in_bottleneck=False, labels=imagenet,
             batch=2, height=64, width=64),
        dict(case="hf_resnet50_dib_64x64", **base50, downsample_in_bottleneck=True, labels=CIFAR7,
             batch=2, height=64, width=64),
        dict(case="hf_resnet26_dfs_45x37", layer_type="bottleneck", depths=[2, 2, 2, 2],
             hidden_sizes=[16, 32, 48, 64], embedding_size=8, downsample_in_first_stage=True,
             downsample_in_bottleneck=False, labels=5, batch=2, height=45, width=37),
    ]


def microsoft_resnet50_processor_kwargs():
    return dict(do_resize=True, size={"shortest_edge": 224}, crop_pct=0.875, resample=3,
                do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


def build(case):
    from transformers import ResNetConfig, ResNetForImageClassification

    kw = dict(num_channels=3, embedding_size=case["embedding_size"],
              hidden_sizes=case["hidden_sizes"], depths=case["depths"],
              layer_type=case["layer_type"], hidden_act="relu",
              downsample_in_first_stage=case["downsample_in_first_stage"],
              downsample_in_bottleneck=case["downsample_in_bottleneck"])
    if isinstance(case["labels"], int):
        kw["num_labels"] = case["labels"]
    else:
        kw["id2label"] = {i: n for i, n in enumerate(case["labels"])}
        kw["label2id"] = {n: i for i, n in enumerate(case["labels"])}
    cfg = ResNetConfig(**kw)
    model = ResNetForImageClassification(cfg)
    model.eval()
    return model


def randomize(model, case):
    import torch
    import torch.nn as nn
    from transformers.models.resnet import modeling_resnet as mr

    units = sum(case["depths"])
    rs = 0.3 * min(1.0, math.sqrt(16.0 / units))
    g = gf.ParamGen(case["case"])
    last = set()
    for m in model.modules():
        if isinstance(m, (mr.ResNetBasicLayer, mr.ResNetBottleNeckLayer)):
            last.add(id(m.layer[-1].normalization))
    classifier = model.classifier[1]
    with torch.no_grad():
        for name, m in model.named_modules():
            if m is classifier:
                m.weight.copy_(torch.from_numpy(g.fc(tuple(m.weight.shape), m.weight.shape[1])))
                m.bias.copy_(torch.from_numpy(g.bias(m.bias.shape[0])))
            elif isinstance(m, nn.Conv2d):
                o, i, kh, kw = m.weight.shape
                m.weight.copy_(torch.from_numpy(g.conv((o, i, kh, kw), i * kh * kw)))
                assert m.bias is None, name
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                s = rs if id(m) in last else 1.0
                m.weight.copy_(torch.from_numpy(g.gamma(n, s)))
                m.bias.copy_(torch.from_numpy(g.beta(n)))
                m.running_mean.copy_(torch.from_numpy(g.mean(n)))
                m.running_var.copy_(torch.from_numpy(g.var(n)))
            elif isinstance(m, nn.Linear):
                raise RuntimeError(f"unexpected Linear {name}")


def run_model(model, x):
    import torch

    caught = {}
    h = model.resnet.pooler.register_forward_hook(lambda m, i, o: caught.__setitem__("pooled", o.detach().clone()))
    with torch.no_grad():
        out = model(pixel_values=torch.from_numpy(x), output_hidden_states=True, return_dict=True)
    h.remove()
    hs = out.hidden_states
    assert len(hs) == 5, len(hs)
    io = {"input": x, "logits": out.logits.numpy()}
    io["feat/stem_pool"] = hs[0].numpy()
    for s in range(1, 5):
        io[f"feat/stage{s}"] = hs[s].numpy()
    io["feat/pooled"] = caught["pooled"].numpy().reshape(x.shape[0], -1)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in io.items()}


def hf_reference(W, cfg, x):
    """Independent float64 forward from the checkpoint names + config.json."""
    W = {k: v.astype(np.float64) for k, v in W.items() if v.dtype.kind == "f"}
    x = x.astype(np.float64)
    eps = 1e-5

    def cl(prefix, y, stride=1, act=True):
        w = W[prefix + ".convolution.weight"]
        k = w.shape[2]
        y = rr.conv(y, w, stride=stride, pad=(k // 2,) * 4)
        y = rr.bn(y, tuple(W[prefix + ".normalization." + n] for n in
                           ("weight", "bias", "running_mean", "running_var")), eps)
        return rr.relu(y) if act else y

    f = {}
    y = cl("resnet.embedder.embedder", x, stride=2)
    y = rr.maxpool3x3s2(y, (1, 1, 1, 1), -np.inf)
    f["feat/stem_pool"] = y
    bottleneck = cfg["layer_type"] == "bottleneck"
    for s, depth in enumerate(cfg["depths"]):
        for j in range(depth):
            p = f"resnet.encoder.stages.{s}.layers.{j}."
            stride = 2 if j == 0 and (s > 0 or cfg["downsample_in_first_stage"]) else 1
            if p + "shortcut.convolution.weight" in W:
                sc = cl(p + "shortcut", y, stride=stride, act=False)
            else:
                assert stride == 1
                sc = y
            if bottleneck:
                dib = cfg["downsample_in_bottleneck"] and j == 0
                r = cl(p + "layer.0", y, stride=stride if dib else 1)
                r = cl(p + "layer.1", r, stride=1 if dib else stride)
                r = cl(p + "layer.2", r, act=False)
            else:
                r = cl(p + "layer.0", y, stride=stride)
                r = cl(p + "layer.1", r, act=False)
            y = rr.relu(sc + r)
        f[f"feat/stage{s + 1}"] = y
    pooled = y.mean(axis=(2, 3))
    f["feat/pooled"] = pooled
    f["logits"] = pooled @ W["classifier.1.weight"].T + W["classifier.1.bias"]
    return f


def expected_shapes(case):
    n, h, w = case["batch"], case["height"], case["width"]
    c = lambda v: (v + 1) // 2
    hh, ww = c(c(h)), c(c(w))
    exp = {"input": (n, 3, h, w), "feat/stem_pool": (n, case["embedding_size"], hh, ww)}
    for s in range(4):
        if s > 0 or case["downsample_in_first_stage"]:
            hh, ww = c(hh), c(ww)
        exp[f"feat/stage{s + 1}"] = (n, case["hidden_sizes"][s], hh, ww)
    exp["feat/pooled"] = (n, case["hidden_sizes"][3])
    nl = case["labels"] if isinstance(case["labels"], int) else len(case["labels"])
    exp["logits"] = (n, nl)
    return exp


def generate_models(out):
    import torch
    import transformers
    from safetensors.numpy import load_file, save_file
    from transformers import AutoModelForImageClassification, ConvNextImageProcessorPil, ResNetConfig

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for case in cases():
        name = case["case"]
        torch.manual_seed(gf.seed_for(name, "torch"))
        model = build(case)
        randomize(model, case)
        x = gf.make_input(case)
        io = run_model(model, x)
        d = out / name
        if d.exists():
            shutil.rmtree(d)
        model.save_pretrained(str(d), safe_serialization=True)
        ConvNextImageProcessorPil(**microsoft_resnet50_processor_kwargs()).save_pretrained(str(d))
        save_file(io, str(out / f"{name}.io.safetensors"))
        files = sorted(p.name for p in d.iterdir())
        assert files == ["config.json", "model.safetensors", "preprocessor_config.json"], files
        cfg = json.loads((d / "config.json").read_text())
        W = load_file(str(d / "model.safetensors"))
        # checks: shapes, reload, reference
        exp = expected_shapes(case)
        assert set(exp) == set(io), (sorted(exp), sorted(io))
        for k, shp in exp.items():
            assert io[k].shape == shp, (name, k, io[k].shape, shp)
            assert np.all(np.isfinite(io[k])), (name, k)
        assert np.allclose(io["feat/stage4"].mean(axis=(2, 3)), io["feat/pooled"], rtol=1e-5, atol=1e-6)
        nbt = [k for k in W if k.endswith("num_batches_tracked")]
        assert nbt and all(W[k].dtype == np.int64 for k in nbt), name
        re_model = AutoModelForImageClassification.from_pretrained(str(d)).eval()
        io2 = run_model(re_model, x)
        for k in io:  # same weights; CPU conv kernels may differ in the last bit between instances
            assert np.allclose(io[k], io2[k], rtol=1e-5, atol=1e-6), f"{name}: reload differs in {k}"
        ref = hf_reference(W, cfg, x)
        worst = 0.0
        for k, v in ref.items():
            err = float(np.max(np.abs(io[k].astype(np.float64) - v)) / max(1.0, np.max(np.abs(v))))
            worst = max(worst, err)
            assert err < 1e-4, f"{name}: {k} differs from the NumPy reference (rel {err:.2e})"
        mx = float(np.max(np.abs(io["logits"])))
        assert 0.5 < mx < 100.0, (name, mx)
        entry = dict(case=name, path=name, io=f"{name}.io.safetensors",
                     layer_type=case["layer_type"], depths=case["depths"],
                     hidden_sizes=case["hidden_sizes"], embedding_size=case["embedding_size"],
                     downsample_in_first_stage=case["downsample_in_first_stage"],
                     downsample_in_bottleneck=case["downsample_in_bottleneck"],
                     num_labels=exp["logits"][1], batch=case["batch"], height=case["height"],
                     width=case["width"], has_config=True,
                     transformers_version=transformers.__version__, max_abs_logit=mx)
        manifest.append(entry)
        feat_max = " ".join(f"{k.split('/')[-1]}={np.max(np.abs(v)):.3g}" for k, v in io.items()
                            if k.startswith("feat/"))
        print(f"{name:24s} max|logit| {mx:7.3f}  ref err {worst:.1e}  {feat_max}", flush=True)
        if name == "hf_resnet50_64x64":
            bare = out / "hf_resnet50_noconfig.safetensors"
            shutil.copyfile(d / "model.safetensors", bare)
            # the bare file + the known config must give the same logits
            m2 = ResNetForImageClassification_from_bare(bare, d / "config.json")
            io3 = run_model(m2, x)
            assert np.allclose(io3["logits"], io["logits"], rtol=1e-5, atol=1e-6)
            nc = dict(entry)
            nc.update(case="hf_resnet50_noconfig", path="hf_resnet50_noconfig.safetensors",
                      has_config=False,
                      notes="bare copy of hf_resnet50_64x64/model.safetensors without config.json or "
                            "preprocessor_config.json; reuses hf_resnet50_64x64.io.safetensors. Without "
                            "a config the labels are unknown (1000 outputs) and downsample_in_bottleneck "
                            "cannot be read from the weights (false here: stride on the 3x3)")
            manifest.append(nc)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def ResNetForImageClassification_from_bare(path, config_path):
    from safetensors.torch import load_file
    from transformers import ResNetConfig, ResNetForImageClassification

    cfg = ResNetConfig.from_json_file(str(config_path))
    m = ResNetForImageClassification(cfg).eval()
    m.load_state_dict(load_file(str(path)), strict=True)
    return m


# ---------------------------------------------------------------------------
# Image processor goldens
# ---------------------------------------------------------------------------

RULES = {
    # (a) microsoft/resnet-50's preprocessor_config.json
    "hf_resnet50": microsoft_resnet50_processor_kwargs(),
    # (b) small crop, bilinear, custom mean/std
    "hf_se32_bilinear": dict(do_resize=True, size={"shortest_edge": 32}, crop_pct=0.875, resample=2,
                             do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                             image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25]),
    # (c) shortest_edge >= 384: warp to 384x384, no crop (crop_pct is ignored)
    "hf_se384_warp": dict(do_resize=True, size={"shortest_edge": 384}, crop_pct=0.875, resample=3,
                          do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                          image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD),
    # (d) crop offsets with an odd margin: (H - crop) // 2 (floor) != torchvision's round-half-even
    "hf_se29_crop_pct_0.9": dict(do_resize=True, size={"shortest_edge": 29}, crop_pct=0.9, resample=3,
                                 do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                                 image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD),
    # (e) as (b), but the RGBA PIL image is passed as opened, with do_convert_rgb=True
    "hf_se32_bilinear_convert_rgb": dict(do_resize=True, size={"shortest_edge": 32}, crop_pct=0.875,
                                         resample=2, do_rescale=True, rescale_factor=1 / 255,
                                         do_normalize=True, image_mean=[0.5, 0.5, 0.5],
                                         image_std=[0.25, 0.25, 0.25], do_convert_rgb=True),
}
# 224x224 tensors are 588 KiB and 384x384 1.7 MiB: the big rules run on one or two images.
PLAN = {
    "rgb_300x200.jpg": ["hf_resnet50", "hf_se32_bilinear", "hf_se29_crop_pct_0.9"],
    "rgb_199x257.png": ["hf_resnet50", "hf_se32_bilinear", "hf_se384_warp", "hf_se29_crop_pct_0.9"],
    "gray_64x48.png": ["hf_se32_bilinear", "hf_se29_crop_pct_0.9"],
    "rgba_120x90.png": ["hf_se32_bilinear", "hf_se32_bilinear_convert_rgb", "hf_se29_crop_pct_0.9"],
    "gray16_80x60.png": ["hf_se32_bilinear", "hf_se29_crop_pct_0.9"],
    "rgb16_80x60.png": ["hf_se32_bilinear", "hf_se29_crop_pct_0.9"],
}
DECODED = ["rgb_300x200.jpg", "gray_64x48.png", "rgba_120x90.png", "gray16_80x60.png",
           "rgb16_80x60.png"]
RESAMPLE_NAMES = {2: "bilinear", 3: "bicubic"}

# --- Pillow resampling emulation: the same algorithm as gen_preprocess_fixtures.py's reference
# (that script needs Keras, so the few functions are repeated here rather than imported).
PRECISION_BITS = 22


def _bilinear(x):
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def _bicubic(x, a=-0.5):
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


FILTERS = {"bilinear": (_bilinear, 1.0), "bicubic": (_bicubic, 2.0)}


def pil_coeffs(in_size, out_size, kind):
    filt, support = FILTERS[kind]
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = support * filterscale
    rows = []
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        ss = 1.0 / filterscale
        w = [filt((x + xmin - center + 0.5) * ss) for x in range(xmax - xmin)]
        ww = 0.0
        for v in w:
            ww += v
        w = np.array([v / ww for v in w]) if ww != 0.0 else np.array(w)
        rows.append((xmin, w))
    return rows


def pil_resize_u8(img, out_w, out_h, kind):
    """Pillow ImagingResample on uint8 HxWxC: horizontal pass then vertical, 8-bit intermediate,
    22-bit fixed-point weights."""
    def one_pass(a, out_n, axis):
        in_n = a.shape[axis]
        if out_n == in_n:
            return a
        res = []
        for xmin, w in pil_coeffs(in_n, out_n, kind):
            src = np.take(a, np.arange(xmin, xmin + len(w)), axis=axis).astype(np.int64)
            shape = [1] * a.ndim
            shape[axis] = len(w)
            k = np.where(w < 0, np.trunc(-0.5 + w * (1 << PRECISION_BITS)),
                         np.trunc(0.5 + w * (1 << PRECISION_BITS))).astype(np.int64)
            acc = (1 << (PRECISION_BITS - 1)) + (src * k.reshape(shape)).sum(axis=axis)
            res.append(np.clip(acc >> PRECISION_BITS, 0, 255))
        return np.stack(res, axis=axis)

    t = one_pass(img.astype(np.int64), out_w, 1)
    t = one_pass(t, out_h, 0)
    return t.astype(np.uint8)


def composite_on_white(rgba):
    """PIL alpha_composite(white, im) for an opaque white background (Pillow AlphaComposite.c):
    outa = 255; blend = srca * 255 (shifted), per channel
    out = (src * a + dst * (255 - a)) / 255 with Pillow's rounding: tmp = x + 0x80; (tmp >> 8 + tmp) >> 8."""
    a = rgba[..., 3:4].astype(np.int64)
    src = rgba[..., :3].astype(np.int64)
    # Pillow: coef1 = src.a * 255 * 255 * (1<<PRECISION) / outa255 ; with dst.a == 255: outa255 = 255*255
    # -> coef1 = a << 7 (PRECISION_BITS 7), coef2 = 255 - coef1 ... computed below exactly as in C.
    PREC = 7
    outa255 = a * 255 + 255 * (255 - a)  # = 255*255 (dst opaque)
    coef1 = a * 255 * 255 * (1 << PREC) // outa255
    coef2 = 255 * (1 << PREC) - coef1
    tmpr = src * coef1 + 255 * coef2
    tmp = tmpr + (0x80 << PREC)
    out = ((tmp >> 8) + tmp) >> 8 >> PREC
    return out.astype(np.uint8)


def ref_rule(decoded, cfg):
    """NumPy re-implementation of ConvNextImageProcessorPil on an HxWx3 uint8 image."""
    h, w = decoded.shape[:2]
    se = cfg["size"]["shortest_edge"]
    kind = RESAMPLE_NAMES[cfg["resample"]]
    info = {"input_wh": [w, h]}
    if se < 384:
        short = int(se / cfg["crop_pct"])
        if w <= h:
            nw, nh = short, int(short * h / w)
        else:
            nw, nh = int(short * w / h), short
        r = pil_resize_u8(decoded, nw, nh, kind) if (nw, nh) != (w, h) else decoded
        top, left = (nh - se) // 2, (nw - se) // 2
        assert top >= 0 and left >= 0
        c = r[top:top + se, left:left + se]
        info.update(resized_wh=[nw, nh], crop_left_top=[left, top], crop=[se, se],
                    torchvision_round_would_give=[int(round((nw - se) / 2.0)), int(round((nh - se) / 2.0))])
    else:
        c = pil_resize_u8(decoded, se, se, kind)
        info.update(resized_wh=[se, se], crop=None)
    x = (c.astype(np.float64) * cfg["rescale_factor"]).astype(np.float32)
    x = (x - np.asarray(cfg["image_mean"], np.float32)) / np.asarray(cfg["image_std"], np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)), info


def run_processor(path, rule):
    from PIL import Image
    from transformers import ConvNextImageProcessorPil

    cfg = dict(RULES[rule])
    convert = cfg.pop("do_convert_rgb", None)
    proc = ConvNextImageProcessorPil(**cfg)
    with Image.open(path) as im:
        # Convention of gen_preprocess_fixtures.py: every rule starts from convert('RGB'), except
        # the *_convert_rgb rule which hands the image over as opened and lets transformers convert.
        src = im if convert else im.convert("RGB")
        y = proc(src, do_convert_rgb=convert, return_tensors="np")["pixel_values"]
    assert y.shape[0] == 1 and y.dtype == np.float32
    return y[0]


def raw_mode_probe():
    """What the processor does with each image passed as opened (no convert)."""
    from PIL import Image
    from transformers import ConvNextImageProcessorPil

    proc = ConvNextImageProcessorPil(**RULES["hf_se32_bilinear"])
    res = {}
    for f in PLAN:
        with Image.open(PRE / f) as im:
            mode = im.mode
            try:
                y = proc(im, return_tensors="np")["pixel_values"][0]
                with Image.open(PRE / f) as im2:
                    z = proc(im2.convert("RGB"), return_tensors="np")["pixel_values"][0]
                res[f] = {"mode": mode, "result": "ok",
                          "equals_convert_rgb_first": bool(np.array_equal(y, z))}
            except Exception as e:  # noqa: BLE001 - recorded as data
                res[f] = {"mode": mode, "result": f"{type(e).__name__}: {str(e)[:160]}"}
    return res


def generate_preprocess():
    import PIL
    import transformers
    from PIL import Image, features
    from safetensors.numpy import save_file
    from transformers import AutoImageProcessor

    tensors, tinfo, checks = {}, {}, {}
    for fname, rules in PLAN.items():
        path = PRE / fname
        assert path.exists(), f"{path} missing: run gen_preprocess_fixtures.py first"
        with Image.open(path) as im:
            decoded = np.array(im.convert("RGB"))
            raw = np.array(im)
        if fname in DECODED:
            tensors[f"{fname}/decoded_rgb"] = np.ascontiguousarray(decoded)
            tinfo[f"{fname}/decoded_rgb"] = {"dtype": "uint8", "layout": "HWC", "shape": list(decoded.shape)}
        for rule in rules:
            y = run_processor(path, rule)
            name = f"{fname}/{rule}"
            tensors[name] = np.ascontiguousarray(y)
            src = decoded
            if RULES[rule].get("do_convert_rgb"):
                assert raw.ndim == 3 and raw.shape[2] == 4
                src = composite_on_white(raw)
                with Image.open(path) as im:
                    pil_comp = np.array(Image.alpha_composite(
                        Image.new("RGBA", im.size, (255, 255, 255, 255)), im.convert("RGBA")).convert("RGB"))
                assert np.array_equal(src, pil_comp), "alpha composite emulation"
                tensors[f"{fname}/white_composite_rgb"] = np.ascontiguousarray(src)
                tinfo[f"{fname}/white_composite_rgb"] = {
                    "dtype": "uint8", "layout": "HWC", "shape": list(src.shape),
                    "what": "PIL.Image.alpha_composite(white RGBA, im.convert('RGBA')).convert('RGB'): what "
                            "transformers' convert_to_rgb feeds the resize for an image with alpha"}
            ref, geo = ref_rule(src, RULES[rule])
            assert ref.shape == y.shape, (name, ref.shape, y.shape)
            d = float(np.abs(ref - y).max())
            checks[name] = {"max_abs_diff_reference": d}
            tinfo[name] = {"dtype": "float32", "layout": "CHW", "shape": list(y.shape), **geo}
            print(f"{name:45s} {str(tuple(y.shape)):16s} ref {d:.3g}", flush=True)
            assert d <= 1e-6, (name, d)
    save_file(tensors, str(PRE / "hf_expected.safetensors"), metadata={"format": "np"})

    # the saved microsoft-style config must load as the Pillow processor and agree
    pp = OUT / "hf_resnet50_64x64"
    proc = AutoImageProcessor.from_pretrained(str(pp), backend="pil")
    assert type(proc).__name__ == "ConvNextImageProcessorPil", type(proc)
    with Image.open(PRE / "rgb_300x200.jpg") as im:
        y = proc(im.convert("RGB"), return_tensors="np")["pixel_values"][0]
    assert np.array_equal(y, tensors["rgb_300x200.jpg/hf_resnet50"])
    fast = AutoImageProcessor.from_pretrained(str(pp))
    with Image.open(PRE / "rgb_300x200.jpg") as im:
        yf = fast(im.convert("RGB"), return_tensors="np")["pixel_values"][0]
    fast_diff = float(np.abs(yf - y).max())

    u = np.arange(256)
    assert np.array_equal((u.astype(np.float64) * (1 / 255)).astype(np.float32),
                          u.astype(np.float32) / np.float32(255))

    def cfg_json(rule):
        return dict(RULES[rule])

    rules = {
        "about": "Goldens of transformers' Pillow-based ConvNeXT image processor (ConvNextImageProcessorPil, "
                 "the processor of microsoft/resnet-50 when use_fast=False / backend='pil') made by "
                 "tools/gen_hf_fixtures.py. Tensors in hf_expected.safetensors: '<image-file>/<rule>' float32 CHW "
                 "(batch dimension dropped), '<image-file>/decoded_rgb' uint8 HWC = PIL convert('RGB') (the input of "
                 "every rule except *_convert_rgb), '<image-file>/white_composite_rgb' uint8 HWC (the input of the "
                 "*_convert_rgb rule after transformers' alpha compositing). Images are those of "
                 "tests/fixtures/preprocess/ (rules.json describes their decode).",
        "versions": {"python": sys.version.split()[0], "transformers": transformers.__version__,
                     "pillow": PIL.__version__, "numpy": np.__version__,
                     "libjpeg_turbo": features.version("libjpeg_turbo")},
        "processor": {
            "class": "transformers.ConvNextImageProcessorPil (image_processing_pil_convnext.py)",
            "call": "ConvNextImageProcessorPil(**config)(Image.open(p).convert('RGB'), return_tensors='np')"
                    "['pixel_values'][0]",
            "steps": [
                "input: PIL image -> np.array (HWC uint8) -> CHW",
                "resize, shortest_edge < 384: short = int(shortest_edge / crop_pct) (truncation: 224/0.875 = 256, "
                "32/0.875 = 36.57 -> 36); the shorter side -> short, the longer -> int(short * long / short_in) "
                "(truncation); Pillow Image.resize((w, h), resample) on the uint8 image (reducing_gap None), "
                "see rules.json 'pil_resample_bilinear_bicubic' (same Pillow code path as torchvision)",
                "then centre crop shortest_edge x shortest_edge at top = (H - crop) // 2, left = (W - crop) // 2 "
                "(floor division: NOT torchvision's int(round(...)) with half-to-even)",
                "resize, shortest_edge >= 384: Image.resize((shortest_edge, shortest_edge), resample): aspect ratio "
                "not kept, no crop, crop_pct ignored",
                "rescale: (u8.astype(float64) * rescale_factor).astype(float32), rescale_factor = 1/255 as the "
                "float64 0.00392156862745098 (checked: equal to float32(u8) / 255 in float32 for all 256 values)",
                "normalise: float32: (x - float32(image_mean)) / float32(image_std) per channel",
                "output CHW float32 (RGB)",
            ],
            "do_convert_rgb": "default None (not converted). With True: an image with an alpha band (or a "
                              "'transparency' info entry) is converted to RGBA and alpha-composited onto an opaque "
                              "WHITE background (PIL alpha_composite), then RGB; other modes: convert('RGB')",
            "raw_input_without_convert": raw_mode_probe(),
            "fast_processor_note": "AutoImageProcessor.from_pretrained(dir) without backend/use_fast returns the "
                                   "torchvision-backed ConvNextImageProcessor in transformers 5.x; on "
                                   f"rgb_300x200.jpg/hf_resnet50 it differs from the Pillow one by max {fast_diff:.4g} "
                                   "(normalised units)",
        },
        "rules": {r: {"config": cfg_json(r)} for r in RULES},
        "tensors": tinfo,
        "verification": {
            "what": "numpy re-implementation (Pillow fixed-point resampling emulated exactly, floor crop offsets, "
                    "float64 rescale, float32 normalise) from decoded_rgb / white_composite_rgb",
            "max_abs_diff": checks,
        },
    }
    rules["rules"]["hf_resnet50"]["note"] = "microsoft/resnet-50's preprocessor_config.json (also written next to every HF model fixture)"
    rules["rules"]["hf_se32_bilinear"]["note"] = "resize shorter side to int(32/0.875) = 36, crop 32; bilinear; mean 0.5 std 0.25"
    rules["rules"]["hf_se384_warp"]["note"] = "shortest_edge >= 384: warp to 384x384 (no crop, crop_pct ignored)"
    rules["rules"]["hf_se29_crop_pct_0.9"]["note"] = (
        "short side int(29/0.9) = 32, crop 29: the margins are odd, so the floor offsets differ from "
        "torchvision's int(round(x/2)) (see tensors.*.crop_left_top vs torchvision_round_would_give)")
    rules["rules"]["hf_se32_bilinear_convert_rgb"]["note"] = (
        "as hf_se32_bilinear but the RGBA image is passed as opened with do_convert_rgb=True: composited on white "
        "before resizing (compare with rgba_120x90.png/hf_se32_bilinear, which starts from convert('RGB') = alpha dropped)")
    (PRE / "hf_rules.json").write_text(json.dumps(rules, indent=1) + "\n")
    return rules


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models-only", action="store_true")
    ap.add_argument("--preprocess-only", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not args.preprocess_only:
        generate_models(OUT)
    if not args.models_only:
        generate_preprocess()
    # safetensors writes 0600 files; make them ordinary 0644 fixtures
    for p in list(OUT.rglob("*")) + [PRE / "hf_expected.safetensors", PRE / "hf_rules.json"]:
        if p.is_file():
            p.chmod(0o644)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    total += sum((PRE / f).stat().st_size for f in ("hf_expected.safetensors", "hf_rules.json") if (PRE / f).exists())
    print(f"done; {total / 1e6:.2f} MB in tests/fixtures/hf + preprocess/hf_*")


if __name__ == "__main__":
    main()
