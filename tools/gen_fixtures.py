#!/usr/bin/env python3
"""Golden ResNet fixtures for resnet-wgpu, produced by the REAL frameworks.

What it does
------------
For every case below it builds a small ResNet with the framework's own block
code (torchvision ``ResNet``, timm ``ResNetV2``, Keras 3
``keras.src.applications.resnet.ResNet`` + ``stack_residual_blocks_v1/v2``,
TF-slim ``tf_slim.nets.resnet_v2.resnet_v2``), fills it with seeded random but
well-conditioned weights (negative BN gammas, non-trivial running stats,
biases), runs it on a seeded N(0,1) input and writes

* ``tests/fixtures/<case>.weights.safetensors`` - the checkpoint as a user of
  that framework would export it (native names and layouts: torch
  ``state_dict()`` incl. int64 ``num_batches_tracked``; Keras ``v.path`` ->
  value, HWIO; slim global variable names without ``:0``, HWIO);
* ``tests/fixtures/<case>.io.safetensors`` - ``input`` [N,3,H,W], ``logits``
  [N,classes] and the intermediate maps ``feat/*`` (all NCHW, float32);
* ``tests/fixtures/manifest.json`` - one object per case.

See docs/models.md for the semantics of the five flavours and
tools/README.md for details.

How to run
----------
    python3 -m venv /root/fixtures-venv
    /root/fixtures-venv/bin/pip install -r tools/requirements-fixtures.txt
    /root/fixtures-venv/bin/python tools/gen_fixtures.py            # all cases
    /root/fixtures-venv/bin/python tools/gen_fixtures.py --only torchvision_50_64x64
    /root/fixtures-venv/bin/python tools/gen_fixtures.py --list
    /root/fixtures-venv/bin/python tools/gen_fixtures.py --full --out /tmp/resnet-full   # 224x224 full width

Each framework family runs in its own subprocess (torch / Keras-3-on-TF /
TF-slim in TF1 graph mode) so they never share a process.  Everything is
deterministic: the seeds derive from the case name (crc32).  The script ends
with a self-check (feature shapes against the flavours' rules, finite logits,
max|logit| per case) and fails loudly if anything is off.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import zlib

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures")
DEFAULT_FULL_OUT = "/tmp/resnet-wgpu-full-fixtures"

V2 = ("slim-v2", "keras-v2", "timm-v2")
FAMILY = {
    "torchvision": "torch",
    "timm-v2": "torch",
    "keras-v2": "keras",
    "keras-v1": "keras",
    "slim-v2": "slim",
}
PREFIX = {
    "slim-v2": "slim_v2",
    "keras-v2": "keras_v2",
    "timm-v2": "timm_v2",
    "torchvision": "torchvision",
    "keras-v1": "keras_v1",
}
# Scale of the residual branch's last layer (v2: last conv kernel, v1: last BN
# gamma) so that deep residual streams stay bounded: 0.3 up to 16 units
# (ResNet-50), then 0.3*sqrt(16/units) (152: 0.17, 200: 0.15).
def residual_scale(case):
    return 0.3 * min(1.0, math.sqrt(16.0 / sum(case["units"])))

# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------


def _case(name, flavour, unit, units, widths, stem, classes, h, w, batch=2):
    return dict(case=name, flavour=flavour, unit=unit, units=list(units),
                widths=list(widths), stem_width=stem, classes=classes,
                batch=batch, height=h, width=w)


def all_cases():
    cases = []
    # 1. flavour cases: 2 units per stage, 32x32 and 45x37
    flav = [
        # prefix, flavour, unit, widths, stem, classes
        ("slim_v2_small", "slim-v2", "bottleneck", (4, 8, 16, 32), 64, 11),
        ("keras_v2_small", "keras-v2", "bottleneck", (4, 8, 16, 32), 64, 10),
        # timm rounds every channel count with make_divisible(.., 8): a
        # bottleneck width of 4 would silently become 8, so timm uses 8..64.
        ("timm_v2_small", "timm-v2", "bottleneck", (8, 16, 32, 64), 16, 12),
        ("timm_v2_basic_small", "timm-v2", "basic", (8, 16, 32, 64), 16, 13),
        ("torchvision_small", "torchvision", "bottleneck", (4, 8, 16, 32), 16, 14),
        ("torchvision_basic_small", "torchvision", "basic", (8, 16, 32, 64), 16, 15),
        ("keras_v1_small", "keras-v1", "bottleneck", (4, 8, 16, 32), 64, 9),
    ]
    for (h, w) in ((32, 32), (45, 37)):
        for prefix, flavour, unit, widths, stem, classes in flav:
            cases.append(_case(f"{prefix}_{h}x{w}", flavour, unit, (2, 2, 2, 2),
                               widths, stem, classes, h, w))
    # 2. depth cases at 64x64, real units per stage.  torchvision/timm use
    # stem width == first stage width (the real 64:64 ratio), Keras/slim have a
    # fixed 64-channel stem.  The real classifier sizes (1001 slim / 1000 the
    # others) are used where the classifier is cheap (each flavour has at least
    # one such case); the wide (8..64) depth cases use 101/100 classes to keep
    # the fixtures small.
    real_classes = {"torchvision_18_64x64", "timm_v2_18_64x64", "torchvision_152_64x64",
                    "keras_v2_152_64x64", "keras_v1_152_64x64", "slim_v2_200_64x64"}

    def add(name, flavour, unit, units, widths):
        stem = 64 if flavour in ("slim-v2", "keras-v2", "keras-v1") else widths[0]
        classes = 1000 if name in real_classes else 100
        if flavour == "slim-v2":
            classes += 1  # background class
        # Batch 1: the flavour cases above already cover batch > 1; this keeps the
        # committed fixtures near 30 MB.
        cases.append(_case(name, flavour, unit, units, widths, stem, classes, 64, 64, batch=1))

    for flavour in ("torchvision", "timm-v2"):
        add(f"{PREFIX[flavour]}_18_64x64", flavour, "basic", (2, 2, 2, 2), (8, 16, 32, 64))
    # timm cannot go below 8 (make_divisible); the others use 4..32 to keep the set small
    # (slim's depth-50 case keeps 8..64 so one real-depth case of the seed family is wide).
    for flavour in ("slim-v2", "keras-v2", "timm-v2", "torchvision", "keras-v1"):
        wd = (8, 16, 32, 64) if flavour in ("slim-v2", "timm-v2") else (4, 8, 16, 32)
        add(f"{PREFIX[flavour]}_50_64x64", flavour, "bottleneck", (3, 4, 6, 3), wd)
    for flavour in ("slim-v2", "keras-v2", "timm-v2", "torchvision", "keras-v1"):
        wd = (8, 16, 32, 64) if flavour == "timm-v2" else (4, 8, 16, 32)
        add(f"{PREFIX[flavour]}_152_64x64", flavour, "bottleneck", (3, 8, 36, 3), wd)
    add("slim_v2_200_64x64", "slim-v2", "bottleneck", (3, 24, 36, 3), (4, 8, 16, 32))
    return cases


def full_cases():
    """Full-width 224x224 versions of the real networks (manual checks only)."""
    out = []
    depths = {18: ("basic", (2, 2, 2, 2)), 50: ("bottleneck", (3, 4, 6, 3)),
              152: ("bottleneck", (3, 8, 36, 3)), 200: ("bottleneck", (3, 24, 36, 3))}
    have = {
        "torchvision": (18, 50, 152), "timm-v2": (18, 50, 152),
        "keras-v2": (50, 152), "keras-v1": (50, 152), "slim-v2": (50, 152, 200),
    }
    for flavour, ds in have.items():
        for d in ds:
            unit, units = depths[d]
            out.append(_case(f"{PREFIX[flavour]}_{d}_full_224x224", flavour, unit, units,
                             (64, 128, 256, 512), 64, 1001 if flavour == "slim-v2" else 1000,
                             224, 224))
    return out


def stage_channels(case):
    m = 4 if case["unit"] == "bottleneck" else 1
    return [w * m for w in case["widths"]]


def seed_for(case_name, what):
    return zlib.crc32(f"{case_name}/{what}".encode())


def make_input(case):
    rng = np.random.default_rng(seed_for(case["case"], "input"))
    return rng.standard_normal((case["batch"], 3, case["height"], case["width"])).astype(np.float32)


# ---------------------------------------------------------------------------
# Random parameters (shared by all frameworks)
# ---------------------------------------------------------------------------


class ParamGen:
    """Seeded generator for the different kinds of parameters."""

    def __init__(self, case_name):
        self.rng = np.random.default_rng(seed_for(case_name, "weights"))

    def conv(self, shape, fan_in, scale=1.0):
        return (self.rng.standard_normal(shape) * math.sqrt(2.0 / fan_in) * scale).astype(np.float32)

    def gamma(self, n, scale=1.0):
        mag = self.rng.uniform(0.5, 1.5, n)
        sign = np.where(self.rng.uniform(0.0, 1.0, n) < 0.2, -1.0, 1.0)
        return (mag * sign * scale).astype(np.float32)

    def beta(self, n):
        return (self.rng.standard_normal(n) * 0.1).astype(np.float32)

    def mean(self, n):
        return (self.rng.standard_normal(n) * 0.2).astype(np.float32)

    def var(self, n):
        return self.rng.uniform(0.5, 2.0, n).astype(np.float32)

    def bias(self, n):
        return (self.rng.standard_normal(n) * 0.1).astype(np.float32)

    def fc(self, shape, c_in):
        return (self.rng.standard_normal(shape) / math.sqrt(c_in)).astype(np.float32)


# ---------------------------------------------------------------------------
# torch: torchvision ResNet and timm ResNetV2
# ---------------------------------------------------------------------------


def build_torchvision(case):
    import torch.nn as nn
    from torchvision.models import resnet as tvr

    block = tvr.Bottleneck if case["unit"] == "bottleneck" else tvr.BasicBlock
    model = tvr.ResNet(block, case["units"], num_classes=case["classes"])
    stem = case["stem_width"]
    # Reduced widths, keeping torchvision's own _make_layer and forward.
    model.inplanes = stem
    model.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(stem)
    w, u = case["widths"], case["units"]
    model.layer1 = model._make_layer(block, w[0], u[0])
    model.layer2 = model._make_layer(block, w[1], u[1], stride=2)
    model.layer3 = model._make_layer(block, w[2], u[2], stride=2)
    model.layer4 = model._make_layer(block, w[3], u[3], stride=2)
    model.fc = nn.Linear(w[3] * block.expansion, case["classes"])
    return model


def build_timm(case):
    import timm
    # The registered entry points (resnetv2_18: PreActBasic, resnetv2_50:
    # PreActBottleneck, both with create_conv2d + BatchNormAct2d), with the
    # depth/width overridden.
    arch = "resnetv2_18" if case["unit"] == "basic" else "resnetv2_50"
    return timm.create_model(arch, pretrained=False, layers=case["units"],
                             channels=tuple(stage_channels(case)),
                             stem_chs=case["stem_width"], num_classes=case["classes"])


def torch_randomize(model, case):
    import torch
    import torch.nn as nn
    from torchvision.models import resnet as tvr
    from timm.models import resnetv2 as tmr

    g = ParamGen(case["case"])
    rs = residual_scale(case)
    last = set()  # ids of the residual branch's last layer
    for m in model.modules():
        if isinstance(m, tvr.Bottleneck):
            last.add(id(m.bn3))
        elif isinstance(m, tvr.BasicBlock):
            last.add(id(m.bn2))
        elif isinstance(m, tmr.PreActBottleneck):
            last.add(id(m.conv3))
        elif isinstance(m, tmr.PreActBasic):
            last.add(id(m.conv2))
    classifier = model.fc if hasattr(model, "fc") else model.head.fc
    with torch.no_grad():
        for name, m in model.named_modules():
            s = rs if id(m) in last else 1.0
            if m is classifier:
                c_in = m.weight.shape[1]
                m.weight.copy_(torch.from_numpy(g.fc(tuple(m.weight.shape), c_in)))
                m.bias.copy_(torch.from_numpy(g.bias(m.bias.shape[0])))
            elif isinstance(m, nn.Conv2d):
                o, i, kh, kw = m.weight.shape
                m.weight.copy_(torch.from_numpy(g.conv((o, i, kh, kw), i * kh * kw, s)))
                if m.bias is not None:
                    m.bias.copy_(torch.from_numpy(g.bias(o)))
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.from_numpy(g.gamma(n, s)))
                m.bias.copy_(torch.from_numpy(g.beta(n)))
                m.running_mean.copy_(torch.from_numpy(g.mean(n)))
                m.running_var.copy_(torch.from_numpy(g.var(n)))
            elif isinstance(m, nn.Linear):
                raise RuntimeError(f"unexpected Linear {name}")


def run_torch_case(case, out_dir):
    import torch
    import torchvision
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(seed_for(case["case"], "torch"))
    if case["flavour"] == "torchvision":
        model = build_torchvision(case)
        fw = f"torchvision {torchvision.__version__.split('+')[0]} (torch {torch.__version__.split('+')[0]})"
        hooks = {"feat/stem_pool": model.maxpool, "feat/stage1": model.layer1,
                 "feat/stage2": model.layer2, "feat/stage3": model.layer3,
                 "feat/stage4": model.layer4, "feat/pooled": model.avgpool}
        stem_in = model.maxpool  # input of the max pool = conv1 -> bn1 -> relu
    else:
        model = build_timm(case)
        fw = f"timm {timm.__version__} (torch {torch.__version__.split('+')[0]})"
        hooks = {"feat/stem_conv": model.stem.conv, "feat/stem_pool": model.stem.pool,
                 "feat/stage1": model.stages[0], "feat/stage2": model.stages[1],
                 "feat/stage3": model.stages[2], "feat/stage4": model.stages[3],
                 "feat/post_norm": model.norm, "feat/pooled": model.head.global_pool}
        stem_in = None
    model.eval()
    torch_randomize(model, case)

    feats = {}
    handles = []
    for key, mod in hooks.items():
        def hook(m, inp, out, key=key):
            feats[key] = out.detach().clone()
        handles.append(mod.register_forward_hook(hook))
    if stem_in is not None:
        def pre_hook(m, inp):
            feats["feat/stem_conv"] = inp[0].detach().clone()
        handles.append(stem_in.register_forward_pre_hook(pre_hook))

    x = make_input(case)
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
    for h in handles:
        h.remove()
    io = {"input": x, "logits": logits.numpy()}
    for k, v in feats.items():
        v = v.numpy()
        if k == "feat/pooled":
            v = v.reshape(v.shape[0], -1)
        io[k] = v
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(out_dir, f"{case['case']}.weights.safetensors"))
    return fw, io


# ---------------------------------------------------------------------------
# Keras 3 (TensorFlow backend): ResNet() + stack_residual_blocks_v1/v2
# ---------------------------------------------------------------------------


def build_keras(case):
    from keras.src.applications import resnet as kr

    w, u = case["widths"], case["units"]
    depth = 2 + 3 * sum(u)
    if case["flavour"] == "keras-v2":
        def stack_fn(x):
            x = kr.stack_residual_blocks_v2(x, w[0], u[0], name="conv2")
            x = kr.stack_residual_blocks_v2(x, w[1], u[1], name="conv3")
            x = kr.stack_residual_blocks_v2(x, w[2], u[2], name="conv4")
            return kr.stack_residual_blocks_v2(x, w[3], u[3], stride1=1, name="conv5")
        preact, name = True, f"resnet{depth}v2"
    else:
        def stack_fn(x):
            x = kr.stack_residual_blocks_v1(x, w[0], u[0], stride1=1, name="conv2")
            x = kr.stack_residual_blocks_v1(x, w[1], u[1], name="conv3")
            x = kr.stack_residual_blocks_v1(x, w[2], u[2], name="conv4")
            return kr.stack_residual_blocks_v1(x, w[3], u[3], name="conv5")
        preact, name = False, f"resnet{depth}"
    return kr.ResNet(stack_fn, preact, True, include_top=True, weights=None,
                     input_shape=(case["height"], case["width"], 3), classes=case["classes"],
                     classifier_activation=None, name=name)


def keras_randomize(model, case):
    import keras

    g = ParamGen(case["case"])
    rs = residual_scale(case)
    v2 = case["flavour"] == "keras-v2"
    for layer in model.layers:
        nm = layer.name
        if isinstance(layer, keras.layers.Dense):
            kshape = tuple(layer.kernel.shape)
            layer.kernel.assign(g.fc(kshape, kshape[0]))
            layer.bias.assign(g.bias(kshape[1]))
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, ci, co = layer.kernel.shape
            s = rs if (v2 and nm.endswith("_3_conv")) else 1.0
            layer.kernel.assign(g.conv((kh, kw, ci, co), kh * kw * ci, s))
            if layer.use_bias:
                layer.bias.assign(g.bias(co))
        elif isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            s = rs if ((not v2) and nm.endswith("_3_bn")) else 1.0
            layer.gamma.assign(g.gamma(n, s))
            layer.beta.assign(g.beta(n))
            layer.moving_mean.assign(g.mean(n))
            layer.moving_variance.assign(g.var(n))
        elif layer.weights:
            raise RuntimeError(f"unexpected layer with weights: {nm}")


def run_keras_case(case, out_dir):
    import keras
    import tensorflow as tf
    from safetensors.numpy import save_file

    keras.utils.set_random_seed(seed_for(case["case"], "keras") % (2 ** 31))
    keras.backend.clear_session()
    model = build_keras(case)
    keras_randomize(model, case)
    u = case["units"]
    v2 = case["flavour"] == "keras-v2"
    names = {
        "feat/stem_conv": "conv1_conv" if v2 else "conv1_relu",
        "feat/stem_pool": "pool1_pool",
    }
    for s in range(4):
        names[f"feat/stage{s + 1}"] = f"conv{s + 2}_block{u[s]}_out"
    if v2:
        names["feat/post_norm"] = "post_relu"
    names["feat/pooled"] = "avg_pool"
    names["logits"] = "predictions"
    keys = list(names)
    probe = keras.Model(model.input, [model.get_layer(names[k]).output for k in keys])
    x = make_input(case)
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    outs = probe(x_nhwc, training=False)
    io = {"input": x}
    for k, o in zip(keys, outs):
        o = np.asarray(o)
        if o.ndim == 4:
            o = o.transpose(0, 3, 1, 2)
        io[k] = np.ascontiguousarray(o, dtype=np.float32)
    direct = np.asarray(model(x_nhwc, training=False))
    if not np.allclose(direct, io["logits"], rtol=1e-5, atol=1e-5):
        raise RuntimeError("keras probe model disagrees with the model itself")
    weights = {}
    for v in model.weights:
        if v.path in weights:
            raise RuntimeError(f"duplicate keras weight path {v.path}")
        weights[v.path] = np.ascontiguousarray(v.numpy(), dtype=np.float32)
    save_file(weights, os.path.join(out_dir, f"{case['case']}.weights.safetensors"))
    fw = f"keras {keras.__version__} (tensorflow {tf.__version__} backend)"
    return fw, io


# ---------------------------------------------------------------------------
# TF-slim (tf.compat.v1 graph mode): tf_slim.nets.resnet_v2.resnet_v2
# ---------------------------------------------------------------------------


def _patch_tf_keras_legacy_layers():
    """TF >= 2.16 resolves tf.compat.v1 BatchNormalization (used by slim.batch_norm)
    lazily from ``tf_keras.legacy_tf_layers.normalization``, but tf_keras ships
    that module as ``tf_keras.src.legacy_tf_layers.normalization``.  Alias it
    (the layer code itself is untouched)."""
    try:
        import tf_keras.legacy_tf_layers.normalization  # noqa: F401
        return
    except ImportError:
        pass
    import tf_keras.src.legacy_tf_layers as legacy
    import tf_keras.src.legacy_tf_layers.normalization as norm
    sys.modules.setdefault("tf_keras.legacy_tf_layers", legacy)
    sys.modules.setdefault("tf_keras.legacy_tf_layers.normalization", norm)


def run_slim_case(case, out_dir):
    import tensorflow as tf
    _patch_tf_keras_legacy_layers()
    import tf_slim as slim
    from tf_slim.nets import resnet_v2
    from safetensors.numpy import save_file

    w, u = case["widths"], case["units"]
    depth = 2 + 3 * sum(u)
    scope = f"resnet_v2_{depth}"
    x = make_input(case)
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(seed_for(case["case"], "slim") % (2 ** 31))
        inp = tf.compat.v1.placeholder(tf.float32, [case["batch"], case["height"], case["width"], 3])
        blocks = [
            resnet_v2.resnet_v2_block("block1", base_depth=w[0], num_units=u[0], stride=2),
            resnet_v2.resnet_v2_block("block2", base_depth=w[1], num_units=u[1], stride=2),
            resnet_v2.resnet_v2_block("block3", base_depth=w[2], num_units=u[2], stride=2),
            resnet_v2.resnet_v2_block("block4", base_depth=w[3], num_units=u[3], stride=1),
        ]
        with slim.arg_scope(resnet_v2.resnet_arg_scope()):
            net, end_points = resnet_v2.resnet_v2(inp, blocks, num_classes=case["classes"],
                                                  is_training=False, global_pool=True,
                                                  scope=scope)
        tensors = {
            "feat/stem_conv": end_points[f"{scope}/conv1"],
            "feat/stem_pool": graph.get_tensor_by_name(f"{scope}/pool1/MaxPool:0"),
            "feat/stage1": end_points[f"{scope}/block1"],
            "feat/stage2": end_points[f"{scope}/block2"],
            "feat/stage3": end_points[f"{scope}/block3"],
            "feat/stage4": end_points[f"{scope}/block4"],
            "feat/post_norm": graph.get_tensor_by_name(f"{scope}/postnorm/Relu:0"),
            "feat/pooled": graph.get_tensor_by_name(f"{scope}/pool5:0"),
            "logits": net,
        }
        # The stem pool must be the TF SAME max pool of resnet_arg_scope.
        pool_op = graph.get_operation_by_name(f"{scope}/pool1/MaxPool")
        assert pool_op.get_attr("padding") == b"SAME", pool_op.get_attr("padding")
        variables = tf.compat.v1.global_variables()
        g = ParamGen(case["case"])
        rs = residual_scale(case)
        values = {}
        for v in variables:
            name = v.name[:-2] if v.name.endswith(":0") else v.name
            if not name.startswith(scope + "/"):
                raise RuntimeError(f"unexpected variable {name}")
            shape = tuple(v.shape.as_list())
            leaf = name.rsplit("/", 1)[1]
            if "/logits/" in name:
                val = g.fc(shape, shape[2]) if leaf == "weights" else g.bias(shape[0])
            elif leaf == "weights":
                s = rs if name.endswith("/conv3/weights") else 1.0
                val = g.conv(shape, shape[0] * shape[1] * shape[2], s)
            elif leaf == "biases":
                val = g.bias(shape[0])
            elif leaf == "gamma":
                val = g.gamma(shape[0])
            elif leaf == "beta":
                val = g.beta(shape[0])
            elif leaf == "moving_mean":
                val = g.mean(shape[0])
            elif leaf == "moving_variance":
                val = g.var(shape[0])
            else:
                raise RuntimeError(f"unexpected variable {name}")
            values[name] = val
        # One assign op per variable, all fed in a single run.
        feeds, assigns = {}, []
        for v in variables:
            ph = tf.compat.v1.placeholder(v.dtype.base_dtype, v.shape)
            feeds[ph] = values[v.name[:-2]]
            assigns.append(v.assign(ph))
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(assigns, feed_dict=feeds)
            keys = list(tensors)
            outs = sess.run([tensors[k] for k in keys], feed_dict={inp: x_nhwc})
            saved = {v.name[:-2]: np.ascontiguousarray(sess.run(v), dtype=np.float32)
                     for v in variables}
    for k in saved:
        assert np.array_equal(saved[k], values[k]), k
    io = {"input": x}
    for k, o in zip(keys, outs):
        o = np.asarray(o, dtype=np.float32)
        if k in ("logits", "feat/pooled"):
            o = o.reshape(o.shape[0], -1)  # [N,1,1,C] -> [N,C]
        elif o.ndim == 4:
            o = o.transpose(0, 3, 1, 2)
        io[k] = np.ascontiguousarray(o)
    save_file(saved, os.path.join(out_dir, f"{case['case']}.weights.safetensors"))
    fw = f"tf-slim {slim_version()} (tensorflow {tf.__version__})"
    return fw, io


def slim_version():
    try:
        from importlib.metadata import version
        return version("tf-slim")
    except Exception:  # pragma: no cover
        return "?"


# ---------------------------------------------------------------------------
# Worker (one framework family per process)
# ---------------------------------------------------------------------------


def worker(family, cases, out_dir):
    from safetensors.numpy import save_file

    if family == "torch":
        import torch
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        run = run_torch_case
    elif family == "keras":
        run = run_keras_case
    else:
        run = run_slim_case
    results = []
    for case in cases:
        fw, io = run(case, out_dir)
        io = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in io.items()}
        save_file(io, os.path.join(out_dir, f"{case['case']}.io.safetensors"))
        entry = dict(case)
        entry["framework"] = fw
        entry["max_abs_logit"] = float(np.max(np.abs(io["logits"])))
        results.append(entry)
        feat_max = " ".join(f"{k.split('/')[-1]}={np.max(np.abs(v)):.3g}"
                            for k, v in io.items() if k.startswith("feat/"))
        print(f"  [{family}] {case['case']}: max|logit| = {entry['max_abs_logit']:.3f}; "
              f"max|feat|: {feat_max}", file=sys.stderr, flush=True)
    return results


def run_workers(cases, out_dir):
    by_family = {}
    for c in cases:
        by_family.setdefault(FAMILY[c["flavour"]], []).append(c)
    results = []
    for family in ("torch", "keras", "slim"):
        if family not in by_family:
            continue
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        env["KERAS_BACKEND"] = "tensorflow"
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["PYTHONHASHSEED"] = "0"
        env["TF_DETERMINISTIC_OPS"] = "1"
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", family, "--out", out_dir]
        proc = subprocess.run(cmd, input=json.dumps(by_family[family]), text=True,
                              stdout=subprocess.PIPE, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"worker {family} failed with exit code {proc.returncode}")
        results += json.loads(proc.stdout.strip().splitlines()[-1])
    return results


# ---------------------------------------------------------------------------
# Self-check
# ---------------------------------------------------------------------------


def ceil_half(n):
    return (n + 1) // 2


def expected_shapes(case):
    n, h, w = case["batch"], case["height"], case["width"]
    ch = stage_channels(case)
    sh, sw = ceil_half(h), ceil_half(w)          # 7x7/2 pad 3
    ph, pw = ceil_half(sh), ceil_half(sw)        # 3x3/2 max pool (any rule)
    exp = {"input": (n, 3, h, w), "logits": (n, case["classes"]),
           "feat/stem_conv": (n, case["stem_width"], sh, sw),
           "feat/stem_pool": (n, case["stem_width"], ph, pw)}
    if case["flavour"] in ("slim-v2", "keras-v2"):
        strides = (2, 2, 2, 1)  # stride in the LAST unit of blocks 1..3
    else:
        strides = (1, 2, 2, 2)  # stride in the FIRST unit of stages 2..4
    hh, ww = ph, pw
    for s in range(4):
        if strides[s] == 2:
            hh, ww = ceil_half(hh), ceil_half(ww)
        exp[f"feat/stage{s + 1}"] = (n, ch[s], hh, ww)
    if case["flavour"] in V2:
        exp["feat/post_norm"] = (n, ch[3], hh, ww)
    exp["feat/pooled"] = (n, ch[3])
    return exp


def self_check(case, out_dir):
    from safetensors.numpy import load_file

    io = load_file(os.path.join(out_dir, f"{case['case']}.io.safetensors"))
    exp = expected_shapes(case)
    if set(io) != set(exp):
        raise SystemExit(f"{case['case']}: io keys {sorted(io)} != {sorted(exp)}")
    for k, shp in exp.items():
        if tuple(io[k].shape) != shp:
            raise SystemExit(f"{case['case']}: {k} has shape {io[k].shape}, expected {shp}")
        if io[k].dtype != np.float32 or not np.all(np.isfinite(io[k])):
            raise SystemExit(f"{case['case']}: {k} not finite float32")
    ref = make_input(case)
    if not np.array_equal(ref, io["input"]):
        raise SystemExit(f"{case['case']}: input not reproducible")
    # pooled == mean of the last map (post_norm for v2, stage4 for v1)
    last = io["feat/post_norm"] if case["flavour"] in V2 else io["feat/stage4"]
    if not np.allclose(last.mean(axis=(2, 3)), io["feat/pooled"], rtol=1e-4, atol=1e-5):
        raise SystemExit(f"{case['case']}: pooled != mean(last map)")
    w = load_file(os.path.join(out_dir, f"{case['case']}.weights.safetensors"))
    for k, v in w.items():
        if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            raise SystemExit(f"{case['case']}: weight {k} not finite")
    mx = float(np.max(np.abs(io["logits"])))
    if not (0.5 < mx < 100.0):
        raise SystemExit(f"{case['case']}: max|logit| {mx} out of the sane range")
    # Independent float64 re-implementation of docs/models.md, fed only with the
    # saved checkpoint: it must reproduce every saved output.
    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import ref_resnet
    ref = ref_resnet.forward(case["flavour"], w, io["input"])
    worst = 0.0
    for k, v in ref.items():
        err = float(np.max(np.abs(io[k].astype(np.float64) - v)) / max(1.0, np.max(np.abs(v))))
        worst = max(worst, err)
        if err > 1e-4:
            raise SystemExit(f"{case['case']}: {k} differs from the NumPy reference (rel {err:.2e})")
    if set(ref) != set(exp) - {"input"}:
        raise SystemExit(f"{case['case']}: reference keys {sorted(ref)}")
    return mx, worst


# ---------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help=f"output directory (default {DEFAULT_OUT}, "
                                  f"or {DEFAULT_FULL_OUT} with --full)")
    ap.add_argument("--only", action="append", help="generate only this case (repeatable)")
    ap.add_argument("--full", action="store_true",
                    help="224x224 full-width checkpoints for manual checks (never commit)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--check", action="store_true",
                    help="only re-run the self-check on existing fixtures")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        cases = json.loads(sys.stdin.read())
        res = worker(args.worker, cases, args.out)
        print(json.dumps(res))
        return

    cases = full_cases() if args.full else all_cases()
    if args.list:
        for c in cases:
            print(c["case"])
        return
    if args.only:
        known = {c["case"] for c in cases}
        for o in args.only:
            if o not in known:
                raise SystemExit(f"unknown case {o!r} (see --list)")
        cases = [c for c in cases if c["case"] in args.only]
    out_dir = os.path.abspath(args.out or (DEFAULT_FULL_OUT if args.full else DEFAULT_OUT))
    if args.full and out_dir.startswith(REPO + os.sep):
        print("warning: full-size fixtures are large; do not commit them", file=sys.stderr)
    os.makedirs(out_dir, exist_ok=True)

    if args.check:
        man = {e["case"]: e for e in json.load(open(os.path.join(out_dir, "manifest.json")))}
        results = [man[c["case"]] for c in cases if c["case"] in man]
        for r in results:
            mx, err = self_check(r, out_dir)
            print(f"{r['case']:30s} max|logit| {mx:8.3f}  ref err {err:.1e}")
        print(f"self-check passed for {len(results)} case(s)")
        return
    results = run_workers(cases, out_dir)

    order = [c["case"] for c in (full_cases() if args.full else all_cases())]
    man_path = os.path.join(out_dir, "manifest.json")
    manifest = {}
    if os.path.exists(man_path):
        for e in json.load(open(man_path)):
            if e["case"] in order:
                manifest[e["case"]] = e
    keys = ["case", "flavour", "framework", "unit", "units", "widths", "stem_width",
            "classes", "batch", "height", "width", "max_abs_logit"]
    for r in results:
        manifest[r["case"]] = {k: r[k] for k in keys}
    entries = [manifest[c] for c in order if c in manifest]
    with open(man_path, "w") as f:
        json.dump(entries, f, indent=1)
        f.write("\n")

    print(f"{'case':30s} {'framework':41s} {'max|logit|':>10s} {'ref err':>8s} "
          f"{'weights':>8s} {'io':>7s}")
    total = 0
    for r in results:
        mx, err = self_check(r, out_dir)
        ws = os.path.getsize(os.path.join(out_dir, f"{r['case']}.weights.safetensors"))
        ios = os.path.getsize(os.path.join(out_dir, f"{r['case']}.io.safetensors"))
        total += ws + ios
        print(f"{r['case']:30s} {r['framework']:41s} {mx:10.3f} {err:8.1e} "
              f"{ws / 1e6:7.2f}M {ios / 1e6:6.2f}M")
    print(f"self-check passed for {len(results)} case(s); {total / 1e6:.2f} MB written")


if __name__ == "__main__":
    main()
