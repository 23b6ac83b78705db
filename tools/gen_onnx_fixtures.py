#!/usr/bin/env python3
"""ONNX ResNet fixtures: real exporter output and ONNX-model-zoo (MXNet Gluon) mirrors.

What it writes (tests/fixtures/onnx/)
-------------------------------------
<case>.onnx             the plain model (never the feature-output variant used for the reference)
<case>.io.safetensors   float32 NCHW: ``input`` [N,3,H,W], ``logits`` [N,classes] and, where the
                        stage outputs can be identified, ``feat/stage1..4`` = the output of the last
                        residual Add (+ its ReLU for v1) of each stage, all computed by onnxruntime
                        (CPU) on a copy of the model whose graph also outputs those values
manifest.json           one object per case (see tools/README.md)

Cases
-----
tv_resnet18ish_opset13   torchvision ResNet(BasicBlock, [1,1,1,1]) with widths 8,16,24,32 (stem 8),
                         exported with the legacy TorchScript exporter (dynamo=False), eval mode,
                         do_constant_folding=True, opset 13, input ``input`` (dynamic batch)
tv_resnet50ish_dynamo    torchvision Bottleneck net [2,1,1,1], inner widths 4,8,12,16, stem 8, exported
                         with torch's default (torch.export-based "dynamo") exporter, its default opset
timm_resnetv2_opset17    timm resnetv2_50 (PreActBottleneck) layers [1,1,1,1], channels 32,64,96,128
                         (inner 8,16,24,32), stem 8, legacy exporter, opset 17
zoo_v1_basic_opset7      onnx.helper mirrors of the ONNX model zoo's resnet*-v1-7 / -v2-7 (MXNet Gluon
zoo_v1_bottleneck_opset7 model_zoo.vision ResNetV1/ResNetV2 exported by mxnet's mx2onnx): Gluon names
zoo_v2_basic_opset12     (resnetv17_conv0_fwd, resnetv17_stage1_conv0_weight, ...), separate
zoo_v2_bottleneck_opset7 BatchNormalization nodes, input ``data``, output ``resnetv??_dense0_fwd``
zoo_v1_bottleneck_opset7_f16
                         zoo_v1_bottleneck_opset7 through onnxconverter_common's
                         convert_float_to_float16(keep_io_types=True); its reference is onnxruntime on
                         the FLOAT32 model holding exactly the f16-rounded weights
not_a_resnet             Conv -> Sigmoid -> GlobalAveragePool -> Flatten -> Gemm (error path; no io)

The Gluon structure mirrored (apache/mxnet python/mxnet/gluon/model_zoo/vision/resnet.py, the
version with the stride on the first 1x1 of BottleneckV1; older versions had it on the 3x3):
* ResNetV1: conv0 7x7/2 pad 3 (no bias) -> batchnorm0 -> relu0 -> pool0 MaxPool 3/2 pad 1 ->
  stages -> pool1 GlobalAvgPool -> dense0 (Dense flattens: mx2onnx emits ``flatten_<idx>`` Flatten +
  Gemm(transB=1)).
  BasicBlockV1: conv 3x3(stride) -> BN -> relu -> conv 3x3 -> BN; downsample conv 1x1(stride) + BN
  when channels change; ``residual + x`` -> Activation relu.
  BottleneckV1: conv 1x1 **stride here, WITH bias** -> BN -> relu -> conv 3x3 (no bias) -> BN -> relu
  -> conv 1x1 **with bias** -> BN; the 1x1 body convs use Gluon's default use_bias=True (the zoo's
  resnet50-v1 has e.g. resnetv17_stage2_conv6_bias [512]); downsample 1x1 (no bias) + BN;
  ``x + residual`` -> relu.
* ResNetV2: batchnorm0 on ``data`` (scale=False, center=False: gamma 1, beta 0 stored, running
  stats real) -> conv0 7x7/2 -> batchnorm1 -> relu0 -> pool0 -> stages -> batchnorm2 -> relu1 ->
  pool1 GlobalAvgPool -> flatten0 (x.reshape((0, -1)): ONNX Reshape ``resnetv24_flatten0_reshape0``
  with an int64 shape initializer ``reshape_attr_tensor<idx>`` = [0, -1]) -> dense0 (Flatten + Gemm).
  BottleneckV2: bn1 -> relu -> [downsample 1x1(stride, no bias) on this pre-activated x] -> conv1
  1x1 -> bn2 -> relu -> conv2 3x3(stride) -> bn3 -> relu -> conv3 1x1 (no biases) -> ``x + residual``
  (no ReLU).  BasicBlockV2: bn1 -> relu -> [downsample] -> conv1 3x3(stride) -> bn2 -> relu -> conv2.
* Names: layers count per scope (network: conv/batchnorm/relu/pool/dense/flatten; each stage
  ``stage<k>_`` shares one counter per kind across its units), op outputs are ``<layer>_fwd``; the
  ops written in hybrid_forward are ``stage<k>_activation<n>`` and ``stage<k>__plus<n>``; mx2onnx
  names the Dense's Flatten ``flatten_<idx>`` with idx = the op's index in the MXNet json (data +
  every parameter + every op before it: 473 for resnet50-v1, as in the zoo file).  The prefix is
  Gluon's per-process counter: resnetv15_ (18) / resnetv17_ (50) for v1, resnetv22_ (18) /
  resnetv24_ (50) for v2 as in the zoo files; a loader should not depend on it.
* BatchNormalization: epsilon 1e-5 (Gluon default), momentum 0.9, opset 7 with spatial=1.
  Initializers are stored in TensorProto.float_data (mx2onnx's make_tensor(..., raw=False)); the
  torch exports use raw_data; the f16 file holds FLOAT16 bit patterns in int32_data (one value per
  int32, as onnxconverter_common writes them).
  Opset-7 files are IR version 3 with every initializer also listed in graph.input (as the zoo's
  -7 files); the opset-12 one is IR 7 without that.  The batch dimension is symbolic (``N``;
  the zoo's -7 files fix data to [1,3,224,224], our io files have batch 2).

Weights/inputs follow gen_fixtures.py (ParamGen and make_input seeded by crc32 of the case name;
residual branch's last BN gamma (v1) / last conv (v2) x 0.3).

Usage:  OMP_NUM_THREADS=1 /root/formats-venv/bin/python tools/gen_onnx_fixtures.py
        (venv: tools/requirements-formats.txt)
"""

import argparse
import copy
import json
import math
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np

TOOLS = Path(__file__).resolve().parent
REPO = TOOLS.parent
sys.dont_write_bytecode = True
sys.path.insert(0, str(TOOLS))
import gen_fixtures as gf  # noqa: E402
import ref_resnet as rr  # noqa: E402

OUT = REPO / "tests" / "fixtures" / "onnx"


def _case(**kw):
    kw.setdefault("batch", 2)
    return kw


TORCH_CASES = [
    _case(case="tv_resnet18ish_opset13", flavour="torchvision", unit="basic", units=[1, 1, 1, 1],
          widths=[8, 16, 24, 32], stem_width=8, classes=10, height=32, width=32, opset=13,
          exporter="legacy"),
    _case(case="tv_resnet50ish_dynamo", flavour="torchvision", unit="bottleneck", units=[2, 1, 1, 1],
          widths=[4, 8, 12, 16], stem_width=8, classes=7, height=32, width=32, opset=None,
          exporter="dynamo"),
    _case(case="timm_resnetv2_opset17", flavour="timm-v2", unit="bottleneck", units=[1, 1, 1, 1],
          widths=[8, 16, 24, 32], stem_width=8, classes=6, height=32, width=32, opset=17,
          exporter="legacy"),
]
ZOO_CASES = [
    _case(case="zoo_v1_basic_opset7", version=1, unit="basic", units=[1, 1, 1, 1],
          widths=[8, 16, 24, 32], stem_width=8, classes=10, height=32, width=32, opset=7,
          prefix="resnetv15_"),
    _case(case="zoo_v1_bottleneck_opset7", version=1, unit="bottleneck", units=[2, 1, 1, 1],
          widths=[4, 8, 12, 16], stem_width=8, classes=9, height=40, width=40, opset=7,
          prefix="resnetv17_"),
    _case(case="zoo_v2_basic_opset12", version=2, unit="basic", units=[1, 1, 1, 1],
          widths=[8, 16, 24, 32], stem_width=8, classes=8, height=32, width=32, opset=12,
          prefix="resnetv22_"),
    _case(case="zoo_v2_bottleneck_opset7", version=2, unit="bottleneck", units=[2, 1, 1, 1],
          widths=[4, 8, 12, 16], stem_width=8, classes=11, height=40, width=40, opset=7,
          prefix="resnetv24_"),
]


def stage_out_channels(c):
    return [w * (4 if c["unit"] == "bottleneck" else 1) for w in c["widths"]]


# ---------------------------------------------------------------------------
# onnxruntime helpers
# ---------------------------------------------------------------------------


def ort_session(model_bytes):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def with_outputs(model, names):
    """Copy of the model whose graph additionally outputs `names` (float tensors)."""
    import onnx
    from onnx import TensorProto, helper

    m = copy.deepcopy(model)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(helper.make_tensor_value_info(n, TensorProto.FLOAT, None))
    return m


def run_ort(model, x, extra=()):
    import onnx

    m = with_outputs(model, extra) if extra else model
    sess = ort_session(m.SerializeToString())
    inp = sess.get_inputs()[0].name
    outs = sess.run(None, {inp: x})
    return {o.name: v for o, v in zip(sess.get_outputs(), outs)}


def float_node_outputs(model):
    """Names of float tensors produced by nodes (via shape inference), in graph order."""
    import onnx
    from onnx import TensorProto

    inf = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in
             list(inf.graph.value_info) + list(inf.graph.output) + list(inf.graph.input)}
    res = []
    for node in model.graph.node:
        for o in node.output:
            if o and types.get(o) == TensorProto.FLOAT:
                res.append((o, node))
    return res


def head_nodes(model, after):
    """The nodes after the value `after` (the last stage output): op, attributes, small int64
    constant inputs.  Shows how each producer writes the pool/flatten/classifier head."""
    import onnx
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer
              if t.data_type == onnx.TensorProto.INT64}
    idx = next(i for i, n in enumerate(model.graph.node) if after in n.output)
    res = []
    for n in model.graph.node[idx + 1:]:
        d = {"op": n.op_type}
        for a in n.attribute:
            v = onnx.helper.get_attribute_value(a)
            d[a.name] = v.decode() if isinstance(v, bytes) else (list(v) if isinstance(v, (list, tuple)) or
                                                                 type(v).__name__ == "RepeatedScalarContainer" else v)
        ci = {i: consts[i].tolist() for i in n.input if i in consts}
        if ci:
            d["int64_inputs"] = ci
        res.append(d)
    return res


def summarize(model):
    ops = Counter(n.op_type for n in model.graph.node)
    init_names = {i.name for i in model.graph.initializer}
    real_inputs = [i for i in model.graph.input if i.name not in init_names]

    def shape_of(vi):
        return [d.dim_param if d.dim_param else d.dim_value for d in vi.type.tensor_type.shape.dim]

    import onnx
    dtypes = Counter(onnx.helper.tensor_dtype_to_np_dtype(i.data_type).name for i in model.graph.initializer)
    storage = Counter()
    for t in model.graph.initializer:  # which TensorProto field holds the values
        fields = [f.name for f, _ in t.ListFields() if f.name in
                  ("raw_data", "float_data", "int32_data", "int64_data", "double_data")]
        storage[f"{onnx.TensorProto.DataType.Name(t.data_type)} in {'+'.join(fields) or 'nothing'}"] += 1
    return dict(
        ir_version=model.ir_version,
        opset=max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
        onnx_producer=f"{model.producer_name} {model.producer_version}".strip(),
        input_name=real_inputs[0].name, input_shape=shape_of(real_inputs[0]),
        output_name=model.graph.output[0].name, output_shape=shape_of(model.graph.output[0]),
        initializers_listed_as_inputs=len(model.graph.input) - len(real_inputs),
        initializer_dtypes=dict(dtypes),
        initializer_storage=dict(sorted(storage.items())),
        op_types=dict(sorted(ops.items())),
    )


# ---------------------------------------------------------------------------
# torch exports (torchvision / timm)
# ---------------------------------------------------------------------------


def torch_model(c):
    fcase = dict(c)
    if c["flavour"] == "torchvision":
        model = gf.build_torchvision(fcase)
        stages = [model.layer1, model.layer2, model.layer3, model.layer4]
    else:
        model = gf.build_timm(fcase)
        stages = list(model.stages)
    model.eval()
    gf.torch_randomize(model, fcase)
    return model, stages


def export_torch(c, path):
    import torch

    model, stages = torch_model(c)
    x = gf.make_input(c)
    feats = {}
    hs = [m.register_forward_hook(lambda m, i, o, k=k: feats.__setitem__(k, o.detach().numpy().copy()))
          for k, m in enumerate(stages)]
    with torch.no_grad():
        ref_logits = model(torch.from_numpy(x)).numpy()
    for h in hs:
        h.remove()
    xt = torch.from_numpy(x)
    if c["exporter"] == "legacy":
        torch.onnx.export(model, (xt,), str(path), dynamo=False, opset_version=c["opset"],
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                          do_constant_folding=True, training=torch.onnx.TrainingMode.EVAL)
        producer = (f"torch {torch.__version__.split('+')[0]} torch.onnx.export(dynamo=False, "
                    f"opset_version={c['opset']}, do_constant_folding=True, dynamic batch)")
    else:
        prog = torch.onnx.export(model, (xt,), dynamo=True, input_names=["input"],
                                 output_names=["logits"], external_data=False)
        prog.save(str(path), external_data=False)
        producer = (f"torch {torch.__version__.split('+')[0]} torch.onnx.export(dynamo=True) "
                    "(torch.export-based exporter, default opset, optimize=True, static shapes)")
    return model, x, ref_logits, [feats[k] for k in range(4)], producer


def identify_stage_values(model, x, torch_feats, v2):
    """Find, for each stage, the graph value equal to the framework's stage output, produced by a
    Relu (v1: add + relu) or an Add (v2)."""
    cands = float_node_outputs(model)
    names = [n for n, _ in cands]
    got = run_ort(model, x, names)
    want_op = "Add" if v2 else "Relu"
    found = []
    for s, tf in enumerate(torch_feats):
        match = [n for n, node in cands if node.op_type == want_op and got[n].shape == tf.shape
                 and np.allclose(got[n], tf, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(tf).max()))]
        if len(match) != 1:
            raise SystemExit(f"stage {s + 1}: {len(match)} candidate values {match}")
        found.append(match[0])
    return found


# ---------------------------------------------------------------------------
# Gluon mirrors built with onnx.helper
# ---------------------------------------------------------------------------


class Gluon:
    """Builds the graph the way mx2onnx lays out a Gluon ResNet, with Gluon's names."""

    def __init__(self, c):
        from onnx import TensorProto, helper

        self.c = c
        self.p = c["prefix"]
        self.opset = c["opset"]
        self.nodes, self.inits = [], []
        self.counters = {}
        self.json_idx = 1  # MXNet json: node 0 is 'data'
        self.g = gf.ParamGen(c["case"])
        self.rs = gf.residual_scale(c)
        self.helper, self.TP = helper, TensorProto
        self.stage_values = []

    def name(self, scope, kind):
        key = (scope, kind)
        n = self.counters.get(key, 0)
        self.counters[key] = n + 1
        return f"{self.p}{scope}{kind}{n}"

    def param(self, name, arr):
        self.inits.append(self.helper.make_tensor(name, self.TP.FLOAT, arr.shape,
                                                  arr.astype(np.float32).ravel().tolist()))
        self.json_idx += 1
        return name

    def op(self, op_type, inputs, name, **attrs):
        self.nodes.append(self.helper.make_node(op_type, inputs, [name], name=name, **attrs))
        self.json_idx += 1
        return name

    # layers ---------------------------------------------------------------
    def conv(self, scope, x, cin, cout, k, stride, bias, scale=1.0):
        n = self.name(scope, "conv")
        w = self.param(n + "_weight", self.g.conv((cout, cin, k, k), cin * k * k, scale))
        ins = [x, w]
        if bias:
            ins.append(self.param(n + "_bias", self.g.bias(cout)))
        p = k // 2
        return self.op("Conv", ins, n + "_fwd", kernel_shape=[k, k], strides=[stride, stride],
                       pads=[p, p, p, p], dilations=[1, 1], group=1)

    def bn(self, scope, x, c, scale=1.0, plain=False):
        n = self.name(scope, "batchnorm")
        if plain:  # BatchNorm(scale=False, center=False): gamma 1, beta 0 stored
            gamma, beta = np.ones(c, np.float32), np.zeros(c, np.float32)
        else:
            gamma, beta = self.g.gamma(c, scale), self.g.beta(c)
        ins = [x, self.param(n + "_gamma", gamma), self.param(n + "_beta", beta),
               self.param(n + "_running_mean", self.g.mean(c)),
               self.param(n + "_running_var", self.g.var(c))]
        attrs = dict(epsilon=1e-5, momentum=0.9)
        if self.opset < 9:
            attrs["spatial"] = 1
        return self.op("BatchNormalization", ins, n + "_fwd", **attrs)

    def relu_layer(self, scope, x):
        return self.op("Relu", [x], self.name(scope, "relu") + "_fwd")

    def activation(self, scope, x):  # F.Activation in hybrid_forward
        return self.op("Relu", [x], self.name(scope, "activation"))

    def plus(self, scope, a, b):
        return self.op("Add", [a, b], self.name(scope, "_plus"))

    # blocks ---------------------------------------------------------------
    def v1_unit(self, sc, x, cin, cout, stride, downsample, bottleneck):
        if bottleneck:
            mid = cout // 4
            r = self.conv(sc, x, cin, mid, 1, stride, bias=True)
            r = self.relu_layer(sc, self.bn(sc, r, mid))
            r = self.conv(sc, r, mid, mid, 3, 1, bias=False)
            r = self.relu_layer(sc, self.bn(sc, r, mid))
            r = self.conv(sc, r, mid, cout, 1, 1, bias=True)
            r = self.bn(sc, r, cout, scale=self.rs)
        else:
            r = self.conv(sc, x, cin, cout, 3, stride, bias=False)
            r = self.relu_layer(sc, self.bn(sc, r, cout))
            r = self.conv(sc, r, cout, cout, 3, 1, bias=False)
            r = self.bn(sc, r, cout, scale=self.rs)
        res = x
        if downsample:
            res = self.bn(sc, self.conv(sc, x, cin, cout, 1, stride, bias=False), cout)
        s = self.plus(sc, r, res) if bottleneck else self.plus(sc, res, r)
        return self.activation(sc, s)

    def v2_unit(self, sc, x, cin, cout, stride, downsample, bottleneck):
        # creation order of the layers (names) = __init__ order: bn1, conv1, bn2, conv2, [bn3, conv3],
        # downsample; execution order differs (downsample right after the first activation).
        mid = cout // 4 if bottleneck else cout
        bn_names = [self.name(sc, "batchnorm") for _ in range(3 if bottleneck else 2)]
        conv_names = [self.name(sc, "conv") for _ in range(3 if bottleneck else 2)]
        ds_name = self.name(sc, "conv") if downsample else None

        def bn_named(n, y, c):
            ins = [y, self.param(n + "_gamma", self.g.gamma(c)), self.param(n + "_beta", self.g.beta(c)),
                   self.param(n + "_running_mean", self.g.mean(c)),
                   self.param(n + "_running_var", self.g.var(c))]
            attrs = dict(epsilon=1e-5, momentum=0.9)
            if self.opset < 9:
                attrs["spatial"] = 1
            return self.op("BatchNormalization", ins, n + "_fwd", **attrs)

        def conv_named(n, y, ci, co, k, s, scale=1.0):
            w = self.param(n + "_weight", self.g.conv((co, ci, k, k), ci * k * k, scale))
            p = k // 2
            return self.op("Conv", [y, w], n + "_fwd", kernel_shape=[k, k], strides=[s, s],
                           pads=[p, p, p, p], dilations=[1, 1], group=1)

        pre = self.activation(sc, bn_named(bn_names[0], x, cin))
        res = conv_named(ds_name, pre, cin, cout, 1, stride) if downsample else x
        if bottleneck:
            r = conv_named(conv_names[0], pre, cin, mid, 1, 1)
            r = self.activation(sc, bn_named(bn_names[1], r, mid))
            r = conv_named(conv_names[1], r, mid, mid, 3, stride)
            r = self.activation(sc, bn_named(bn_names[2], r, mid))
            r = conv_named(conv_names[2], r, mid, cout, 1, 1, scale=self.rs)
        else:
            r = conv_named(conv_names[0], pre, cin, cout, 3, stride)
            r = self.activation(sc, bn_named(bn_names[1], r, cout))
            r = conv_named(conv_names[1], r, cout, cout, 3, 1, scale=self.rs)
        return self.plus(sc, r, res)

    def build(self):
        import onnx
        from onnx import helper

        c = self.c
        v2 = c["version"] == 2
        bottleneck = c["unit"] == "bottleneck"
        outs = stage_out_channels(c)
        channels = [c["stem_width"]] + outs
        x = "data"
        if v2:
            x = self.bn("", x, 3, plain=True)
        x = self.conv("", x, 3, channels[0], 7, 2, bias=False)
        x = self.relu_layer("", self.bn("", x, channels[0]))
        x = self.op("MaxPool", [x], self.name("", "pool") + "_fwd", kernel_shape=[3, 3],
                    strides=[2, 2], pads=[1, 1, 1, 1])
        cin = channels[0]
        for i, n_units in enumerate(c["units"]):
            sc = f"stage{i + 1}_"
            stride = 1 if i == 0 else 2
            cout = channels[i + 1]
            unit = self.v2_unit if v2 else self.v1_unit
            x = unit(sc, x, cin, cout, stride, cout != cin, bottleneck)
            for _ in range(n_units - 1):
                x = unit(sc, x, cout, cout, 1, False, bottleneck)
            self.stage_values.append(x)
            cin = cout
        if v2:
            x = self.relu_layer("", self.bn("", x, cin))
        x = self.op("GlobalAveragePool", [x], self.name("", "pool") + "_fwd")
        if v2:
            n = self.name("", "flatten")
            shape_name = f"reshape_attr_tensor{self.json_idx}"
            self.inits.append(helper.make_tensor(shape_name, self.TP.INT64, [2], [0, -1]))
            self.nodes.append(helper.make_node("Reshape", [x, shape_name], [n + "_reshape0"],
                                               name=n + "_reshape0"))
            self.json_idx += 1
            x = n + "_reshape0"
        dn = self.name("", "dense")
        w = self.param(dn + "_weight", self.g.fc((c["classes"], cin), cin))
        b = self.param(dn + "_bias", self.g.bias(c["classes"]))
        fl = f"flatten_{self.json_idx}"
        self.nodes.append(helper.make_node("Flatten", [x], [fl], name=fl))
        out = dn + "_fwd"
        self.nodes.append(helper.make_node("Gemm", [fl, w, b], [out], name=out, alpha=1.0, beta=1.0,
                                           transA=0, transB=1))
        inputs = [helper.make_tensor_value_info("data", self.TP.FLOAT, ["N", 3, c["height"], c["width"]])]
        if c["opset"] < 9:
            # IR version 3: every initializer is also a graph input (as in the zoo's -7 files)
            for t in self.inits:
                inputs.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        outputs = [helper.make_tensor_value_info(out, self.TP.FLOAT, ["N", c["classes"]])]
        graph = helper.make_graph(self.nodes, "mxnet_converted_model", inputs, outputs, self.inits)
        model = helper.make_model(graph, producer_name="resnet-wgpu gen_onnx_fixtures.py (Gluon mirror)",
                                  opset_imports=[helper.make_opsetid("", c["opset"])])
        model.ir_version = 3 if c["opset"] < 9 else 7
        onnx.checker.check_model(model, full_check=True)
        return model


def gluon_reference(model, c, x):
    """Independent float64 forward of Gluon ResNetV1/V2 from the initializers (by name)."""
    from onnx import numpy_helper

    W = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer
         if t.data_type in (1, 10)}
    p = c["prefix"]
    eps = 1e-5
    x = x.astype(np.float64)
    v2 = c["version"] == 2
    bott = c["unit"] == "bottleneck"
    BN = lambda n, y: rr.bn(y, (W[n + "_gamma"], W[n + "_beta"], W[n + "_running_mean"], W[n + "_running_var"]), eps)
    CV = lambda n, y, s=1: rr.conv(y, W[n + "_weight"], W.get(n + "_bias"), stride=s,
                                   pad=(W[n + "_weight"].shape[2] // 2,) * 4)
    f = {}
    if v2:
        x = BN(p + "batchnorm0", x)
        y = rr.relu(BN(p + "batchnorm1", CV(p + "conv0", x, 2)))
    else:
        y = rr.relu(BN(p + "batchnorm0", CV(p + "conv0", x, 2)))
    y = rr.maxpool3x3s2(y, (1, 1, 1, 1), -np.inf)
    for i, n_units in enumerate(c["units"]):
        sp = f"{p}stage{i + 1}_"
        conv_i = bn_i = 0
        for j in range(n_units):
            stride = 2 if (i > 0 and j == 0) else 1
            nconv = 3 if bott else 2
            cout = stage_out_channels(c)[i]
            has_ds = j == 0 and y.shape[1] != cout  # Gluon: downsample iff channels change
            cv = [f"{sp}conv{conv_i + k}" for k in range(nconv + (1 if has_ds else 0))]
            if v2:
                bn = [f"{sp}batchnorm{bn_i + k}" for k in range(nconv)]
                pre = rr.relu(BN(bn[0], y))
                res = CV(cv[-1], pre, stride) if has_ds else y
                if bott:
                    r = rr.relu(BN(bn[1], CV(cv[0], pre)))
                    r = rr.relu(BN(bn[2], CV(cv[1], r, stride)))
                    r = CV(cv[2], r)
                else:
                    r = rr.relu(BN(bn[1], CV(cv[0], pre, stride)))
                    r = CV(cv[1], r)
                y = r + res
                bn_i += nconv
            else:
                bn = [f"{sp}batchnorm{bn_i + k}" for k in range(len(cv))]
                if bott:  # stride on the first 1x1
                    r = rr.relu(BN(bn[0], CV(cv[0], y, stride)))
                    r = rr.relu(BN(bn[1], CV(cv[1], r)))
                    r = BN(bn[2], CV(cv[2], r))
                else:
                    r = rr.relu(BN(bn[0], CV(cv[0], y, stride)))
                    r = BN(bn[1], CV(cv[1], r))
                res = BN(bn[-1], CV(cv[-1], y, stride)) if has_ds else y
                y = rr.relu(r + res)
                bn_i += len(cv)
            conv_i += len(cv)
        f[f"feat/stage{i + 1}"] = y
    if v2:
        y = rr.relu(BN(f"{p}batchnorm2", y))
    pooled = y.mean(axis=(2, 3))
    f["logits"] = pooled @ W[p + "dense0_weight"].T + W[p + "dense0_bias"]
    return f


# ---------------------------------------------------------------------------


def f16_convert(model):
    """convert_float_to_float16(keep_io_types=True).  The converter treats every graph input as
    I/O, so on an IR-3 file (initializers also listed in graph.input, as the zoo's -7 files) it
    keeps the weight inputs float32, inserts one Cast per weight and still converts the
    initializers to float16: an invalid model (checker: 'Inferred elem type differs').  So the
    initializer inputs are dropped before converting and listed again (now float16) afterwards."""
    from onnx import helper
    from onnxconverter_common import float16

    m = copy.deepcopy(model)
    init_names = {t.name for t in m.graph.initializer}
    keep = [i for i in m.graph.input if i.name not in init_names]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    ir = m.ir_version
    m.ir_version = max(ir, 4)
    m16 = float16.convert_float_to_float16(m, keep_io_types=True)
    if ir < 4:
        for t in m16.graph.initializer:
            m16.graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        m16.ir_version = ir
    return m16


def f16_convert_naive_problem(model):
    """What the converter does with the IR-3 file as it is (recorded in the manifest)."""
    import onnx
    from onnxconverter_common import float16

    m16 = float16.convert_float_to_float16(copy.deepcopy(model), keep_io_types=True)
    casts = sum(1 for n in m16.graph.node if n.op_type == "Cast")
    try:
        onnx.checker.check_model(m16, full_check=True)
        return f"converting the IR-3 file directly works ({casts} Cast nodes)"
    except Exception as e:  # noqa: BLE001
        return (f"converting the IR-3 file directly gives {casts} Cast nodes (one per weight input) and an "
                f"invalid model: {str(e).splitlines()[0][:160]}")


def f32_with_weights_of(model32, model16):
    """model32 with every float initializer replaced by the f16 model's value (as float32)."""
    from onnx import numpy_helper

    w16 = {t.name: numpy_helper.to_array(t) for t in model16.graph.initializer}
    m = copy.deepcopy(model32)
    for i, t in enumerate(m.graph.initializer):
        if t.data_type == 1:
            v = w16[t.name]
            assert v.dtype == np.float16, (t.name, v.dtype)
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(v.astype(np.float32), t.name))
    return m


def not_a_resnet():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = gf.ParamGen("not_a_resnet")
    w = g.conv((8, 3, 3, 3), 27)
    fc = g.fc((5, 8), 8)
    inits = [numpy_helper.from_array(w, "conv.weight"), numpy_helper.from_array(g.bias(8), "conv.bias"),
             numpy_helper.from_array(fc, "fc.weight"), numpy_helper.from_array(g.bias(5), "fc.bias")]
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["c"], name="conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Sigmoid", ["c"], ["s"], name="sigmoid"),
        helper.make_node("GlobalAveragePool", ["s"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "not_a_resnet",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])], inits)
    m = helper.make_model(graph, producer_name="resnet-wgpu gen_onnx_fixtures.py",
                          opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    onnx.checker.check_model(m, full_check=True)
    return m


def save_io(path, io):
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in io.items()}, str(path))


def check_io(c, io, v2):
    n, h, w = c["batch"], c["height"], c["width"]
    ch = stage_out_channels(c)
    hh, ww = (h + 1) // 2, (w + 1) // 2
    hh, ww = (hh + 1) // 2, (ww + 1) // 2
    for s in range(4):
        if s > 0:
            hh, ww = (hh + 1) // 2, (ww + 1) // 2
        k = f"feat/stage{s + 1}"
        assert io[k].shape == (n, ch[s], hh, ww), (c["case"], k, io[k].shape)
    assert io["logits"].shape == (n, c["classes"])
    for k, v in io.items():
        assert v.dtype == np.float32 and np.all(np.isfinite(v)), (c["case"], k)
    mx = float(np.abs(io["logits"]).max())
    assert 0.5 < mx < 100.0, (c["case"], mx)
    return mx


def main():
    import onnx
    import onnxruntime
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = []
    versions = f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}"

    # --- torch exports -----------------------------------------------------
    for c in TORCH_CASES:
        name = c["case"]
        path = OUT / f"{name}.onnx"
        torch.manual_seed(gf.seed_for(name, "torch"))
        tmodel, x, t_logits, t_feats, producer = export_torch(c, path)
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        v2 = c["flavour"] == "timm-v2"
        stage_names = identify_stage_values(model, x, t_feats, v2)
        outs = run_ort(model, x, stage_names)
        plain = run_ort(model, x)
        out_name = model.graph.output[0].name
        assert np.array_equal(plain[out_name], outs[out_name])
        io = {"input": x, "logits": outs[out_name]}
        for s, n in enumerate(stage_names):
            io[f"feat/stage{s + 1}"] = outs[n]
        mx = check_io(c, io, v2)
        err = float(np.abs(io["logits"] - t_logits).max() / max(1.0, np.abs(t_logits).max()))
        assert err < 1e-4, (name, err)
        save_io(OUT / f"{name}.io.safetensors", io)
        summ = summarize(model)
        bn_left = summ["op_types"].get("BatchNormalization", 0)
        notes = []
        if c["flavour"] == "torchvision":
            notes.append("BN folded into Conv (every Conv has a bias input)" if bn_left == 0 else
                         f"{bn_left} BatchNormalization nodes remain")
        else:
            notes.append(f"{bn_left} BatchNormalization nodes remain (the pre-activation norm1 of each unit "
                         "and the final norm act on the residual stream); norm2/norm3 follow a conv and are "
                         "folded into it" if bn_left else "all BN folded")
        from onnx import numpy_helper
        W = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        sd = {k: v.detach().numpy() for k, v in tmodel.state_dict().items()}
        same = [k for k in sd if k in W and W[k].shape == sd[k].shape and np.array_equal(W[k], sd[k])]
        differ = [k for k in sd if k in W and not (W[k].shape == sd[k].shape and np.array_equal(W[k], sd[k]))]
        anon = sum(1 for k in W if k.startswith("onnx::"))
        if differ:
            notes.append(f"{len(differ)} initializers keep the torch parameter name but hold BN-FOLDED values "
                         f"(e.g. {differ[0]}; folded biases are '<name>_bias')")
        notes.append(f"{len(same)} initializers equal the torch parameter of the same name"
                     + (f"; {anon} anonymous 'onnx::...' initializers (the folded conv weights/biases)" if anon else ""))
        if "Identity" in summ["op_types"]:
            notes.append("Identity nodes present")
        notes.append(f"stage outputs: {', '.join(stage_names)}")
        notes.append(f"max |ORT - torch| logits {err:.1e} (relative)")
        entry = dict(case=name, file=f"{name}.onnx", io=f"{name}.io.safetensors", producer=producer,
                     opset=summ["opset"], family="v2" if v2 else "v1", unit=c["unit"], units=c["units"],
                     widths=c["widths"], stem_width=c["stem_width"], classes=c["classes"],
                     stride_in="3x3", batch=c["batch"], height=c["height"], width=c["width"],
                     initializer_dtype="float32", notes="; ".join(notes), max_abs_logit=mx,
                     feat_values={f"feat/stage{s + 1}": n for s, n in enumerate(stage_names)},
                     head=head_nodes(model, stage_names[-1]), **{
                         k: v for k, v in summ.items() if k != "opset"})
        manifest.append(entry)
        print(f"{name:30s} opset {summ['opset']:2d} max|logit| {mx:7.3f}  torch err {err:.1e}  ops {summ['op_types']}",
              flush=True)

    # --- Gluon mirrors -----------------------------------------------------
    models32 = {}
    for c in ZOO_CASES:
        name = c["case"]
        gb = Gluon(c)
        model = gb.build()
        models32[name] = (model, gb.stage_values, c)
        x = gf.make_input(c)
        outs = run_ort(model, x, gb.stage_values)
        out_name = model.graph.output[0].name
        io = {"input": x, "logits": outs[out_name]}
        for s, n in enumerate(gb.stage_values):
            io[f"feat/stage{s + 1}"] = outs[n]
        v2 = c["version"] == 2
        mx = check_io(c, io, v2)
        ref = gluon_reference(model, c, x)
        worst = 0.0
        for k, v in ref.items():
            e = float(np.abs(io[k] - v).max() / max(1.0, np.abs(v).max()))
            worst = max(worst, e)
            assert e < 1e-4, (name, k, e)
        onnx.save(model, str(OUT / f"{name}.onnx"))
        save_io(OUT / f"{name}.io.safetensors", io)
        summ = summarize(model)
        stride_in = "1x1" if (c["version"] == 1 and c["unit"] == "bottleneck") else "3x3"
        notes = ["MXNet Gluon model-zoo mirror built node by node with onnx.helper (names as mx2onnx writes them)",
                 "separate BatchNormalization nodes (epsilon 1e-5, momentum 0.9"
                 + (", spatial 1)" if c["opset"] < 9 else ")")]
        if c["version"] == 1 and c["unit"] == "bottleneck":
            notes.append("the bottleneck's two 1x1 body convs have biases (Gluon default use_bias=True); "
                         "3x3, stem and downsample convs have none")
        else:
            notes.append("no conv biases")
        if v2:
            notes.append("leading BatchNormalization on data with gamma 1, beta 0 and real running stats; "
                         "head GlobalAveragePool -> Reshape [0,-1] (resnet..._flatten0_reshape0) -> Flatten -> Gemm")
        else:
            notes.append("head GlobalAveragePool -> Flatten -> Gemm(transB=1)")
        if c["opset"] < 9:
            notes.append("IR version 3: all initializers are also listed in graph.input")
        notes.append(f"stage outputs: {', '.join(gb.stage_values)}")
        notes.append(f"float64 Gluon reference max rel err {worst:.1e}")
        entry = dict(case=name, file=f"{name}.onnx", io=f"{name}.io.safetensors",
                     producer="onnx.helper mirror of MXNet Gluon ResNetV%d (mx2onnx layout)" % c["version"],
                     opset=summ["opset"], family="v%d" % c["version"], unit=c["unit"], units=c["units"],
                     widths=c["widths"], stem_width=c["stem_width"], classes=c["classes"], stride_in=stride_in,
                     batch=c["batch"], height=c["height"], width=c["width"], initializer_dtype="float32",
                     notes="; ".join(notes), max_abs_logit=mx,
                     feat_values={f"feat/stage{s + 1}": n for s, n in enumerate(gb.stage_values)},
                     head=head_nodes(model, gb.stage_values[-1]),
                     **{k: v for k, v in summ.items() if k != "opset"})
        manifest.append(entry)
        print(f"{name:30s} opset {summ['opset']:2d} max|logit| {mx:7.3f}  ref err {worst:.1e}  ops {summ['op_types']}",
              flush=True)

    # --- f16 variant -------------------------------------------------------
    import onnxconverter_common
    base = "zoo_v1_bottleneck_opset7"
    model32, stage_values, c = models32[base]
    name = base + "_f16"
    m16 = f16_convert(model32)
    onnx.checker.check_model(m16, full_check=True)
    onnx.save(m16, str(OUT / f"{name}.onnx"))
    m32r = f32_with_weights_of(model32, m16)
    x = gf.make_input(c)  # same input as the base case
    outs = run_ort(m32r, x, stage_values)
    out_name = model32.graph.output[0].name
    io = {"input": x, "logits": outs[out_name]}
    for s, n in enumerate(stage_values):
        io[f"feat/stage{s + 1}"] = outs[n]
    mx = check_io(c, io, False)
    ref = gluon_reference(m32r, c, x)
    for k, v in ref.items():
        assert float(np.abs(io[k] - v).max() / max(1.0, np.abs(v).max())) < 1e-4, (name, k)
    base_io = run_ort(model32, x)[out_name]
    rounding_effect = float(np.abs(base_io - io["logits"]).max())
    try:
        f16_run = run_ort(m16, x)
        f16_note = (f"onnxruntime also runs the f16 file itself (f16 arithmetic): max |diff| to the reference "
                    f"{float(np.abs(f16_run[m16.graph.output[0].name] - io['logits']).max()):.3g}")
    except Exception as e:  # noqa: BLE001
        f16_note = f"onnxruntime cannot run the f16 file itself: {type(e).__name__}: {str(e)[:200]}"
    save_io(OUT / f"{name}.io.safetensors", io)
    summ = summarize(m16)
    cast_nodes = [(n.name, list(n.input), list(n.output)) for n in m16.graph.node if n.op_type == "Cast"]
    notes = [f"onnxconverter_common {onnxconverter_common.__version__} float16.convert_float_to_float16("
             "keep_io_types=True) of zoo_v1_bottleneck_opset7 with the initializer inputs dropped before and "
             "re-listed (as float16) after the conversion; " + f16_convert_naive_problem(model32),
             f"Cast nodes: {cast_nodes}",
             "reference = onnxruntime on the float32 model holding exactly the f16-rounded weights (f32 arithmetic)",
             f"rounding the weights to f16 moves the logits by max {rounding_effect:.3g}",
             f16_note]
    entry = dict(case=name, file=f"{name}.onnx", io=f"{name}.io.safetensors",
                 producer="zoo_v1_bottleneck_opset7 -> onnxconverter_common float16 (keep_io_types=True)",
                 opset=summ["opset"], family="v1", unit=c["unit"], units=c["units"], widths=c["widths"],
                 stem_width=c["stem_width"], classes=c["classes"], stride_in="1x1", batch=c["batch"],
                 height=c["height"], width=c["width"], initializer_dtype="float16", notes="; ".join(notes),
                 max_abs_logit=mx, feat_values={f"feat/stage{s + 1}": n for s, n in enumerate(stage_values)},
                 head=head_nodes(m16, stage_values[-1]),
                 **{k: v for k, v in summ.items() if k != "opset"})
    manifest.append(entry)
    print(f"{name:30s} opset {summ['opset']:2d} max|logit| {mx:7.3f}  ops {summ['op_types']}", flush=True)
    print("   ", f16_note)

    # --- not a resnet ------------------------------------------------------
    m = not_a_resnet()
    onnx.save(m, str(OUT / "not_a_resnet.onnx"))
    xr = gf.make_input(dict(case="not_a_resnet", batch=1, height=32, width=32))
    run_ort(m, xr)  # must run
    summ = summarize(m)
    manifest.append(dict(case="not_a_resnet", file="not_a_resnet.onnx", io=None,
                         producer="onnx.helper", opset=summ["opset"], family=None, unit=None, units=None,
                         widths=None, stem_width=None, classes=5, stride_in=None, batch=None, height=32,
                         width=32, initializer_dtype="float32",
                         notes="valid non-ResNet graph (Conv -> Sigmoid -> GlobalAveragePool -> Flatten -> Gemm) "
                               "for the loader's error path", max_abs_logit=None,
                         **{k: v for k, v in summ.items() if k != "opset"}))
    for e in manifest:
        e["versions"] = versions + f", torch {torch.__version__.split('+')[0]}"
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    for p in OUT.iterdir():  # safetensors writes 0600 files
        p.chmod(0o644)
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"done: {len(manifest)} cases, {total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
