#!/usr/bin/env python3
"""The browser peer benchmark's TensorFlow.js model: the same weights as ``resnet50.onnx``.

Reads ``resnet50.safetensors`` (the torchvision state_dict that ``tools/gen_browser_peer.py``
wrote beside the ONNX export), folds every batch norm into its conv (eps 1e-5, as torch's
exporter folds them into the ONNX file), builds torchvision's ResNet-50 (v1.5: stride on the 3x3)
as a tf_keras functional model and converts it with tensorflowjs's converter into a graph model,
``tfjs/model.json`` + weight shards, in the same folder.

The Keras model takes NCHW input, as the other engines do, and transposes it to NHWC as its
first layer (on the GPU, inside the timed run). Torch's symmetric padding is explicit
(``ZeroPadding2D`` + ``valid`` convs and pooling): Keras' ``same`` pads a stride-2 conv only on
the bottom/right. Zero padding before the max pool equals torch's -inf padding there, since its
input has just been through a ReLU. Before converting, the model's logits on ``input.bin`` must
match onnxruntime's (``expected.bin``) within 1e-4 relative.

Environment: its own virtualenv (tensorflowjs pins TensorFlow through tensorflow-decision-forests;
``tools/requirements-browser-peer-tfjs.txt``)::

    python3 -m venv target/peer-web/tfjs-venv
    target/peer-web/tfjs-venv/bin/pip install -r tools/requirements-browser-peer-tfjs.txt
    target/peer-web/tfjs-venv/bin/python tools/gen_browser_peer_tfjs.py [--dir DIR]
"""

import argparse
import json
import pathlib
import shutil
import sys
import tempfile
import types

import numpy as np
import tensorflow as tf
import tf_keras as keras
from safetensors.numpy import load_file

# tensorflowjs' SavedModel converter imports tensorflow_decision_forests unconditionally (to load
# models with decision-forest ops, which this one has none of), and the TFDF that pip resolves
# for it (1.12.0, through ydf 0.16) was generated for protobuf >= 6.31 while TensorFlow 2.19
# pins protobuf < 6: the import fails with a protobuf VersionError. An empty stand-in module
# lets the converter load.
sys.modules.setdefault("tensorflow_decision_forests", types.ModuleType("tensorflow_decision_forests"))
import tensorflowjs  # noqa: E402
from tensorflowjs.converters.tf_saved_model_conversion_v2 import convert_tf_saved_model  # noqa: E402

EPS = 1e-5


def fold(sd, conv, bn):
    """Conv ``conv`` (OIHW, no bias) with batch norm ``bn`` folded in: (HWIO kernel, bias)."""
    w = sd[f"{conv}.weight"].astype(np.float64)
    scale = sd[f"{bn}.weight"] / np.sqrt(sd[f"{bn}.running_var"].astype(np.float64) + EPS)
    bias = sd[f"{bn}.bias"] - sd[f"{bn}.running_mean"] * scale
    w = w * scale[:, None, None, None]
    return [w.transpose(2, 3, 1, 0).astype(np.float32), bias.astype(np.float32)]


def build(sd):
    weights = {}

    def conv(x, name, filters, k, stride, relu, torch_conv, torch_bn):
        pad = k // 2
        if pad and (stride > 1 or k > 3):
            x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
            padding = "valid"
        else:
            padding = "same" if pad else "valid"
        layer = keras.layers.Conv2D(
            filters, k, strides=stride, padding=padding, activation="relu" if relu else None,
            name=name,
        )
        weights[name] = fold(sd, torch_conv, torch_bn)
        return layer(x)

    inp = keras.Input(shape=(3, 224, 224), name="input")
    x = keras.layers.Permute((2, 3, 1), name="nchw_to_nhwc")(inp)
    x = conv(x, "conv1", 64, 7, 2, True, "conv1", "bn1")
    x = keras.layers.ZeroPadding2D(1, name="pool_pad")(x)
    x = keras.layers.MaxPooling2D(3, 2, name="maxpool")(x)
    for stage, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for b in range(blocks):
            stride = 2 if stage > 1 and b == 0 else 1
            t = f"layer{stage}.{b}"
            n = f"layer{stage}_{b}"
            y = conv(x, f"{n}_conv1", planes, 1, 1, True, f"{t}.conv1", f"{t}.bn1")
            y = conv(y, f"{n}_conv2", planes, 3, stride, True, f"{t}.conv2", f"{t}.bn2")
            y = conv(y, f"{n}_conv3", planes * 4, 1, 1, False, f"{t}.conv3", f"{t}.bn3")
            if b == 0:
                x = conv(
                    x, f"{n}_down", planes * 4, 1, stride, False,
                    f"{t}.downsample.0", f"{t}.downsample.1",
                )
            x = keras.layers.ReLU(name=f"{n}_relu")(keras.layers.Add(name=f"{n}_add")([x, y]))
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    x = keras.layers.Dense(1000, name="fc")(x)
    model = keras.Model(inp, x, name="resnet50")
    for name, w in weights.items():
        model.get_layer(name).set_weights(w)
    model.get_layer("fc").set_weights([sd["fc.weight"].T.copy(), sd["fc.bias"]])
    return model


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", type=pathlib.Path, default=root / "target/peer-web/model")
    args = ap.parse_args()
    d = args.dir
    meta = json.loads((d / "meta.json").read_text())
    sd = load_file(str(d / "resnet50.safetensors"))
    model = build(sd)

    n, size, classes = meta["batch"], meta["size"], meta["classes"]
    x = np.fromfile(d / "input.bin", dtype="<f4").reshape(n, 3, size, size)
    expected = np.fromfile(d / "expected.bin", dtype="<f4").reshape(n, classes)
    got = model.predict(x, batch_size=n, verbose=0)
    rel = float(np.abs(got - expected).max() / np.abs(expected).max())
    print(f"keras vs onnxruntime: {rel:.2e} relative")
    assert rel < 1e-4, f"the Keras model differs from onnxruntime by {rel:.2e} relative"

    out = d / "tfjs"
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        tf.saved_model.save(model, tmp)
        convert_tf_saved_model(tmp, str(out), signature_def="serving_default",
                               saved_model_tags="serve")
    meta["tfjs"] = {
        "tensorflowjs": tensorflowjs.__version__,
        "tensorflow": tf.__version__,
        "keras_vs_onnxruntime_rel": rel,
    }
    (d / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {out}: {sorted(p.name for p in out.iterdir())}")


if __name__ == "__main__":
    main()
