"""Independent float64 NumPy reference for the five ResNet flavours.

Built only from the rules in docs/models.md and the checkpoint's own
weight names (no framework code).  gen_fixtures.py uses it as a cross-check:
every fixture's logits and intermediate maps must agree with it, which proves
that the saved checkpoint is exactly what produced the saved outputs and that
the documented rules (stride placement, stem pool padding, shortcut source, biases,
BN eps) describe what the frameworks really do.

    forward(flavour, weights: dict[str, np.ndarray], x_nchw) -> dict of outputs
    (same keys as <case>.io.safetensors minus "input").
"""

import re

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def conv(x, w, b=None, stride=1, pad=(0, 0, 0, 0)):
    """x [N,C,H,W], w OIHW, pad (top, bottom, left, right) zeros."""
    pt, pb, pl, pr = pad
    x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    o, i, kh, kw = w.shape
    cols = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    # cols [N, C, Ho, Wo, kh, kw]
    y = np.tensordot(cols, w, axes=([1, 4, 5], [1, 2, 3]))  # [N, Ho, Wo, O]
    y = y.transpose(0, 3, 1, 2)
    if b is not None:
        y = y + b[None, :, None, None]
    return y


def maxpool3x3s2(x, pad, value):
    pt, pb, pl, pr = pad
    x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=value)
    win = sliding_window_view(x, (3, 3), axis=(2, 3))[:, :, ::2, ::2]
    return win.max(axis=(4, 5))


def tf_same_pad(n, k, s):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def bn(x, p, eps):
    g, b, m, v = p
    return (x - m[None, :, None, None]) / np.sqrt(v[None, :, None, None] + eps) * g[None, :, None, None] \
        + b[None, :, None, None]


def relu(x):
    return np.maximum(x, 0.0)


def hwio(w):
    return w.transpose(3, 2, 0, 1)


def _count(keys, pattern):
    found = set()
    for k in keys:
        m = re.match(pattern, k)
        if m:
            found.add(tuple(int(g) for g in m.groups()))
    return found


# --------------------------------------------------------------------------


def torchvision(W, x):
    f = {}
    P = lambda n: (W[n + ".weight"], W[n + ".bias"], W[n + ".running_mean"], W[n + ".running_var"])
    eps = 1e-5
    y = relu(bn(conv(x, W["conv1.weight"], stride=2, pad=(3, 3, 3, 3)), P("bn1"), eps))
    f["feat/stem_conv"] = y
    y = maxpool3x3s2(y, (1, 1, 1, 1), -np.inf)
    f["feat/stem_pool"] = y
    units = _count(W, r"layer(\d)\.(\d+)\.conv1\.weight")
    for s in range(1, 5):
        n = 1 + max(j for (st, j) in units if st == s)
        for j in range(n):
            p = f"layer{s}.{j}."
            stride = 2 if (s > 1 and j == 0) else 1
            if p + "downsample.0.weight" in W:
                sc = bn(conv(y, W[p + "downsample.0.weight"], stride=stride), P(p + "downsample.1"), eps)
            else:
                sc = y
            if p + "conv3.weight" in W:  # bottleneck, stride on conv2 (3x3)
                r = relu(bn(conv(y, W[p + "conv1.weight"]), P(p + "bn1"), eps))
                r = relu(bn(conv(r, W[p + "conv2.weight"], stride=stride, pad=(1, 1, 1, 1)), P(p + "bn2"), eps))
                r = bn(conv(r, W[p + "conv3.weight"]), P(p + "bn3"), eps)
            else:
                r = relu(bn(conv(y, W[p + "conv1.weight"], stride=stride, pad=(1, 1, 1, 1)), P(p + "bn1"), eps))
                r = bn(conv(r, W[p + "conv2.weight"], pad=(1, 1, 1, 1)), P(p + "bn2"), eps)
            y = relu(sc + r)
        f[f"feat/stage{s}"] = y
    pooled = y.mean(axis=(2, 3))
    f["feat/pooled"] = pooled
    f["logits"] = pooled @ W["fc.weight"].T + W["fc.bias"]
    return f


def timm_v2(W, x):
    f = {}
    P = lambda n: (W[n + ".weight"], W[n + ".bias"], W[n + ".running_mean"], W[n + ".running_var"])
    eps = 1e-5
    y = conv(x, W["stem.conv.weight"], stride=2, pad=(3, 3, 3, 3))
    f["feat/stem_conv"] = y
    y = maxpool3x3s2(y, (1, 1, 1, 1), -np.inf)
    f["feat/stem_pool"] = y
    units = _count(W, r"stages\.(\d)\.blocks\.(\d+)\.conv1\.weight")
    for s in range(4):
        n = 1 + max(j for (st, j) in units if st == s)
        for j in range(n):
            p = f"stages.{s}.blocks.{j}."
            stride = 2 if (s > 0 and j == 0) else 1
            pre = relu(bn(y, P(p + "norm1"), eps))
            sc = conv(pre, W[p + "downsample.conv.weight"], stride=stride) \
                if p + "downsample.conv.weight" in W else y
            if p + "conv3.weight" in W:
                r = conv(pre, W[p + "conv1.weight"])
                r = conv(relu(bn(r, P(p + "norm2"), eps)), W[p + "conv2.weight"], stride=stride, pad=(1, 1, 1, 1))
                r = conv(relu(bn(r, P(p + "norm3"), eps)), W[p + "conv3.weight"])
            else:
                r = conv(pre, W[p + "conv1.weight"], stride=stride, pad=(1, 1, 1, 1))
                r = conv(relu(bn(r, P(p + "norm2"), eps)), W[p + "conv2.weight"], pad=(1, 1, 1, 1))
            y = sc + r
        f[f"feat/stage{s + 1}"] = y
    y = relu(bn(y, P("norm"), eps))
    f["feat/post_norm"] = y
    pooled = y.mean(axis=(2, 3))
    f["feat/pooled"] = pooled
    f["logits"] = pooled @ W["head.fc.weight"][:, :, 0, 0].T + W["head.fc.bias"]
    return f


def keras(W, x, v2):
    f = {}
    P = lambda n: (W[n + "/gamma"], W[n + "/beta"], W[n + "/moving_mean"], W[n + "/moving_variance"])
    K = lambda n: hwio(W[n + "/kernel"])
    B = lambda n: W.get(n + "/bias")
    eps = 1.001e-5
    y = conv(x, K("conv1_conv"), B("conv1_conv"), stride=2, pad=(3, 3, 3, 3))
    if not v2:
        y = relu(bn(y, P("conv1_bn"), eps))
    f["feat/stem_conv"] = y
    y = maxpool3x3s2(y, (1, 1, 1, 1), 0.0)  # ZeroPadding2D(1) + VALID pool
    f["feat/stem_pool"] = y
    blocks = _count(W, r"conv(\d)_block(\d+)_1_conv/kernel")
    for s in range(2, 6):
        n = max(j for (st, j) in blocks if st == s)
        for j in range(1, n + 1):
            p = f"conv{s}_block{j}_"
            if v2:
                stride = 2 if (j == n and s < 5) else 1  # last block of conv2..conv4
                pre = relu(bn(y, P(p + "preact_bn"), eps))
                if p + "0_conv/kernel" in W:
                    sc = conv(pre, K(p + "0_conv"), B(p + "0_conv"), stride=stride)
                else:
                    sc = y[:, :, ::stride, ::stride]
                r = relu(bn(conv(pre, K(p + "1_conv"), B(p + "1_conv")), P(p + "1_bn"), eps))
                r = relu(bn(conv(r, K(p + "2_conv"), B(p + "2_conv"), stride=stride, pad=(1, 1, 1, 1)),
                            P(p + "2_bn"), eps))
                r = conv(r, K(p + "3_conv"), B(p + "3_conv"))
                y = sc + r
            else:
                stride = 2 if (j == 1 and s > 2) else 1  # first block of conv3..conv5, on the 1x1
                if p + "0_conv/kernel" in W:
                    sc = bn(conv(y, K(p + "0_conv"), B(p + "0_conv"), stride=stride), P(p + "0_bn"), eps)
                else:
                    sc = y
                r = relu(bn(conv(y, K(p + "1_conv"), B(p + "1_conv"), stride=stride), P(p + "1_bn"), eps))
                r = relu(bn(conv(r, K(p + "2_conv"), B(p + "2_conv"), pad=(1, 1, 1, 1)), P(p + "2_bn"), eps))
                r = bn(conv(r, K(p + "3_conv"), B(p + "3_conv")), P(p + "3_bn"), eps)
                y = relu(sc + r)
        f[f"feat/stage{s - 1}"] = y
    if v2:
        y = relu(bn(y, P("post_bn"), eps))
        f["feat/post_norm"] = y
    pooled = y.mean(axis=(2, 3))
    f["feat/pooled"] = pooled
    f["logits"] = pooled @ W["predictions/kernel"] + W["predictions/bias"]
    return f


def slim_v2(W, x):
    f = {}
    scope = next(k for k in W if k.endswith("/conv1/weights") and k.count("/") == 2).split("/")[0]
    P = lambda n: (W[n + "/gamma"], W[n + "/beta"], W[n + "/moving_mean"], W[n + "/moving_variance"])
    eps = 1e-5
    y = conv(x, hwio(W[f"{scope}/conv1/weights"]), W[f"{scope}/conv1/biases"], stride=2, pad=(3, 3, 3, 3))
    f["feat/stem_conv"] = y
    ph, pw = tf_same_pad(y.shape[2], 3, 2), tf_same_pad(y.shape[3], 3, 2)
    y = maxpool3x3s2(y, (ph[0], ph[1], pw[0], pw[1]), -np.inf)
    f["feat/stem_pool"] = y
    units = _count(W, re.escape(scope) + r"/block(\d)/unit_(\d+)/bottleneck_v2/conv1/weights")
    for s in range(1, 5):
        n = max(j for (st, j) in units if st == s)
        for j in range(1, n + 1):
            p = f"{scope}/block{s}/unit_{j}/bottleneck_v2/"
            stride = 2 if (j == n and s < 4) else 1
            pre = relu(bn(y, P(p + "preact"), eps))
            if p + "shortcut/weights" in W:
                sc = conv(pre, hwio(W[p + "shortcut/weights"]), W[p + "shortcut/biases"], stride=stride)
            else:
                sc = y[:, :, ::stride, ::stride]
            r = relu(bn(conv(pre, hwio(W[p + "conv1/weights"])), P(p + "conv1/BatchNorm"), eps))
            r = relu(bn(conv(r, hwio(W[p + "conv2/weights"]), stride=stride, pad=(1, 1, 1, 1)),
                        P(p + "conv2/BatchNorm"), eps))
            r = conv(r, hwio(W[p + "conv3/weights"]), W[p + "conv3/biases"])
            y = sc + r
        f[f"feat/stage{s}"] = y
    y = relu(bn(y, P(f"{scope}/postnorm"), eps))
    f["feat/post_norm"] = y
    pooled = y.mean(axis=(2, 3))
    f["feat/pooled"] = pooled
    f["logits"] = pooled @ W[f"{scope}/logits/weights"][0, 0] + W[f"{scope}/logits/biases"]
    return f


def forward(flavour, weights, x):
    W = {k: v.astype(np.float64) for k, v in weights.items() if v.dtype.kind == "f"}
    x = x.astype(np.float64)
    if flavour == "torchvision":
        return torchvision(W, x)
    if flavour == "timm-v2":
        return timm_v2(W, x)
    if flavour == "keras-v2":
        return keras(W, x, True)
    if flavour == "keras-v1":
        return keras(W, x, False)
    if flavour == "slim-v2":
        return slim_v2(W, x)
    raise ValueError(flavour)
