#!/usr/bin/env python3
"""Preprocessing fixtures computed by the frameworks' own preprocessing code.

Writes into tests/fixtures/preprocess/ (override with --out):

  images     rgb_300x200.jpg  rgb_199x257.png  gray_64x48.png  rgba_120x90.png
             gray16_80x60.png  rgb16_80x60.png          (names are <kind>_<width>x<height>)
  expected.safetensors
             "<image-file>/<rule>"      float32 CHW, exactly what the framework returned
             "<image-file>/decoded_rgb" uint8 HWC, PIL `Image.open(p).convert("RGB")` (what every
                                        framework below starts from), for the images whose decode
                                        is not trivially exact
  rules.json what each rule did, step by step, with the numbers actually used, plus the max error
             of an independent numpy re-implementation of those rules (self-check).

Rules (see rules.json for the exact semantics):
  torchvision        Resize(256) + CenterCrop(224) + ToTensor + Normalize(ImageNet)      (PIL input)
  torchvision_32     Resize(32)  + CenterCrop(32)  + same
  keras_v2           keras.utils.load_img(p, target_size=(224,224)) + img_to_array
                     + keras.applications.resnet_v2.preprocess_input   ("tf": x/127.5 - 1)
  keras_v2_noresize  same without target_size
  keras_v1           same load_img'd array + keras.applications.resnet.preprocess_input
                     ("caffe": RGB->BGR, minus (103.939,116.779,123.68)); output channel order BGR
  keras_v1_noresize  same without target_size
  timm_v2            timm create_transform(**resolve_data_config({}, model=resnetv2_50))

Usage:  python tools/gen_preprocess_fixtures.py       (venv: tools/requirements-digits.txt)
Everything is deterministic (fixed seeds; JPEG encoding by the pinned Pillow/libjpeg-turbo).
"""

import argparse
import json
import math
import os
import struct
import zlib
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")  # keras 3: no TensorFlow needed for these utils

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image, JpegImagePlugin, features
from safetensors.numpy import save_file
from torchvision import transforms as T

import keras
from keras.applications import resnet as keras_resnet
from keras.applications import resnet_v2 as keras_resnet_v2
import timm
from timm.data import create_transform, resolve_data_config

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

# (file, rules). 224x224 tensors are 588 KiB each, so the 224 rules run on a subset of the
# images; torchvision_32 runs on all of them; the *_noresize rules on two small ones.
PLAN = {
    "rgb_300x200.jpg": ["torchvision", "torchvision_32", "keras_v1"],
    "rgb_199x257.png": ["torchvision_32", "keras_v2", "timm_v2"],
    "gray_64x48.png": ["torchvision_32", "keras_v2_noresize", "keras_v1_noresize"],
    "rgba_120x90.png": ["torchvision_32"],
    "gray16_80x60.png": ["torchvision_32"],
    "rgb16_80x60.png": ["torchvision_32", "keras_v2_noresize", "keras_v1_noresize"],
}
DECODED = ["rgb_300x200.jpg", "gray_64x48.png", "rgba_120x90.png", "gray16_80x60.png",
           "rgb16_80x60.png"]


# --------------------------------------------------------------------------------------------
# Synthetic images
# --------------------------------------------------------------------------------------------

def synth(h, w, channels, seed):
    """Smooth gradients + high-frequency patterns + noise, float64 in [0, 1], shape HxWxC."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = x / max(w - 1, 1), y / max(h - 1, 1)
    out = np.empty((h, w, channels))
    for c in range(channels):
        base = [u, v, 1.0 - 0.6 * u - 0.3 * v, 0.5 + 0.5 * u * v][c % 4]
        base = 0.15 + 0.7 * base
        # fine diagonal stripes (period ~3.3 px) in the top band
        stripes = 0.18 * np.sin(2 * np.pi * (x + (c + 1) * y) / 3.3) * (v < 0.3)
        # 1-pixel checkerboard in the left-middle block
        checker = 0.2 * (((x.astype(int) + y.astype(int)) % 2) * 2 - 1) * ((u < 0.35) & (v > 0.35) & (v < 0.7))
        # zone plate (chirp) in the bottom-right: frequency rises to Nyquist
        r2 = ((x - w * 0.75) ** 2 + (y - h * 0.8) ** 2) / (min(h, w) ** 2)
        zone = 0.2 * np.cos(np.pi * r2 * min(h, w) * 0.9 + c) * ((u > 0.5) & (v > 0.55))
        out[..., c] = base + stripes + checker + zone
    out += rng.normal(0.0, 0.012, out.shape)
    return np.clip(out, 0.0, 1.0)


def to_u8(f):
    return np.floor(f * 255.0 + 0.5).astype(np.uint8)


def write_png16(path, arr):
    """Minimal 16-bit PNG writer (Pillow cannot write 16-bit RGB). arr: HxW or HxWx3 uint16."""
    h, w = arr.shape[:2]
    color_type = 0 if arr.ndim == 2 else 2
    raw = b"".join(b"\x00" + arr[r].astype(">u2").tobytes() for r in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    Path(path).write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b""))


def make_images(out):
    Image.fromarray(to_u8(synth(200, 300, 3, 1)), "RGB").save(out / "rgb_300x200.jpg", quality=95)
    Image.fromarray(to_u8(synth(257, 199, 3, 2)), "RGB").save(out / "rgb_199x257.png", optimize=True)
    Image.fromarray(to_u8(synth(48, 64, 1, 3)[..., 0]), "L").save(out / "gray_64x48.png", optimize=True)
    rgba = to_u8(synth(90, 120, 4, 4))
    yy, xx = np.mgrid[0:90, 0:120]
    alpha = np.clip(xx * 255.0 / 119.0, 0, 255)            # 0 at the left edge, 255 at the right
    alpha[(yy // 10 + xx // 10) % 2 == 1] = 0               # fully transparent squares: RGB kept there
    alpha[:8, :] = 255
    rgba[..., 3] = np.floor(alpha + 0.5).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(out / "rgba_120x90.png", optimize=True)
    # 16-bit: a gamma-4 ramp over the full 0..65535 range, so ~1/4 of the gray image lies below
    # 256 (where Pillow's I;16 -> L clipping keeps structure) and the rest above it.
    g = synth(60, 80, 1, 5)[..., 0]
    write_png16(out / "gray16_80x60.png", np.floor((g ** 4) * 65535.0 + 0.5).astype(np.uint16))
    c = synth(60, 80, 3, 6)
    write_png16(out / "rgb16_80x60.png", np.floor(c * 65535.0 + 0.5).astype(np.uint16))


# --------------------------------------------------------------------------------------------
# Framework rules (the real framework code)
# --------------------------------------------------------------------------------------------

def tv_transform(resize, crop):
    return T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor(), T.Normalize(MEAN, STD)])


_TIMM = {}


def timm_transform():
    if not _TIMM:
        model = timm.create_model("resnetv2_50", pretrained=False)
        cfg = resolve_data_config({}, model=model)
        _TIMM["cfg"] = cfg
        _TIMM["tf"] = create_transform(**cfg)
        _TIMM["pretrained_cfg"] = model.pretrained_cfg.get("tag", None) if hasattr(model, "pretrained_cfg") else None
    return _TIMM["tf"], _TIMM["cfg"]


def run_rule(path, rule):
    if rule in ("torchvision", "torchvision_32"):
        n = 224 if rule == "torchvision" else 32
        r = 256 if rule == "torchvision" else 32
        with Image.open(path) as im:
            return tv_transform(r, n)(im.convert("RGB")).numpy()
    if rule.startswith("keras_"):
        target = None if rule.endswith("_noresize") else (224, 224)
        img = keras.utils.load_img(str(path), target_size=target)
        arr = keras.utils.img_to_array(img)  # float32 HWC
        fn = keras_resnet_v2.preprocess_input if rule.startswith("keras_v2") else keras_resnet.preprocess_input
        x = fn(arr.copy())
        return np.ascontiguousarray(np.asarray(x, dtype=np.float32).transpose(2, 0, 1))
    if rule == "timm_v2":
        tf, _ = timm_transform()
        with Image.open(path) as im:
            return tf(im.convert("RGB")).numpy()
    raise ValueError(rule)


# --------------------------------------------------------------------------------------------
# Independent re-implementation of the rules (numpy), to check rules.json is complete
# --------------------------------------------------------------------------------------------

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
    """Pillow precompute_coeffs: per output pixel, (first source index, float weights)."""
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
        for v in w:  # sequential f64 sum, as in C
            ww += v
        w = np.array([v / ww for v in w]) if ww != 0.0 else np.array(w)
        rows.append((xmin, w))
    return rows


def pil_resize_u8(img, out_w, out_h, kind, fixed=True):
    """Pillow ImagingResample on an 8-bit HxWxC image: horizontal pass, then vertical pass,
    8-bit intermediate; fixed point with 22 fractional bits (fixed=True) or plain float math
    with one final rounding (fixed=False, what a straightforward port would do)."""
    def one_pass(a, out_n, axis):
        in_n = a.shape[axis]
        if out_n == in_n:
            return a
        res = []
        for xmin, w in pil_coeffs(in_n, out_n, kind):
            src = np.take(a, np.arange(xmin, xmin + len(w)), axis=axis).astype(np.float64 if not fixed else np.int64)
            shape = [1] * a.ndim
            shape[axis] = len(w)
            if fixed:
                k = np.where(w < 0, np.trunc(-0.5 + w * (1 << PRECISION_BITS)),
                             np.trunc(0.5 + w * (1 << PRECISION_BITS))).astype(np.int64)
                acc = (1 << (PRECISION_BITS - 1)) + (src * k.reshape(shape)).sum(axis=axis)
                res.append(np.clip(acc >> PRECISION_BITS, 0, 255))
            else:
                res.append((src * w.reshape(shape)).sum(axis=axis))
        return np.stack(res, axis=axis)

    t = one_pass(img.astype(np.int64) if fixed else img.astype(np.float64), out_w, 1)
    t = one_pass(t, out_h, 0)
    if not fixed:
        t = np.clip(np.floor(t + 0.5), 0, 255)
    return t.astype(np.uint8)


def pil_resize_nearest(img, out_w, out_h):
    h, w = img.shape[:2]
    xs = ((2 * np.arange(out_w) + 1) * w) // (2 * out_w)
    ys = ((2 * np.arange(out_h) + 1) * h) // (2 * out_h)
    return img[ys][:, xs]


def shorter_side(w, h, size):
    # torchvision _compute_resized_output_size: long side truncated
    if w <= h:
        return size, int(size * h / w)
    return int(size * w / h), size


def center_crop_box(w, h, crop):
    top = int(round((h - crop) / 2.0))  # Python round: half to even
    left = int(round((w - crop) / 2.0))
    return left, top


def ref_rule(decoded, rule, fixed=True):
    """decoded: HxWx3 uint8 from PIL convert('RGB'). Returns CHW float32 and geometry info."""
    h, w = decoded.shape[:2]
    info = {"input_wh": [w, h]}
    if rule in ("torchvision", "torchvision_32", "timm_v2"):
        if rule == "timm_v2":
            _, cfg = timm_transform()
            crop = cfg["input_size"][1]
            size = math.floor(crop / cfg["crop_pct"])
            kind, mean, std = "bicubic", cfg["mean"], cfg["std"]
        else:
            size, crop = (256, 224) if rule == "torchvision" else (32, 32)
            kind, mean, std = "bilinear", MEAN, STD
        nw, nh = shorter_side(w, h, size)
        r = pil_resize_u8(decoded, nw, nh, kind, fixed) if (nw, nh) != (w, h) else decoded
        left, top = center_crop_box(nw, nh, crop)
        c = r[top:top + crop, left:left + crop]
        x = c.astype(np.float32) / np.float32(255.0)
        x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
        info.update(resized_wh=[nw, nh], crop_left_top=[left, top], crop=[crop, crop])
        return np.ascontiguousarray(x.transpose(2, 0, 1)), info
    if rule.startswith("keras_"):
        a = decoded if rule.endswith("_noresize") else pil_resize_nearest(decoded, 224, 224)
        x = a.astype(np.float32)
        if rule.startswith("keras_v2"):
            x = x / np.float32(127.5) - np.float32(1.0)
        else:
            x = x[..., ::-1] - np.asarray(CAFFE_MEAN_BGR, np.float32)
        info.update(resized_wh=[a.shape[1], a.shape[0]])
        return np.ascontiguousarray(x.transpose(2, 0, 1)), info
    raise ValueError(rule)


# --------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "preprocess"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    make_images(out)

    tensors = {}
    tensor_info = {}
    images_info = {}
    checks = {}
    for fname, rules in PLAN.items():
        path = out / fname
        with Image.open(path) as im:
            opened_mode = im.mode
            raw = np.array(im)
            sampling = JpegImagePlugin.get_sampling(im) if im.format == "JPEG" else None
            decoded = np.array(im.convert("RGB"))
        images_info[fname] = {
            "width": decoded.shape[1], "height": decoded.shape[0],
            "bytes": path.stat().st_size,
            "pil_mode_as_opened": opened_mode,
            "pil_array_dtype_as_opened": str(raw.dtype),
            "jpeg_subsampling": {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}.get(sampling) if sampling is not None else None,
        }
        if fname in DECODED:
            tensors[f"{fname}/decoded_rgb"] = np.ascontiguousarray(decoded)
            tensor_info[f"{fname}/decoded_rgb"] = {"dtype": "uint8", "layout": "HWC",
                                                   "shape": list(decoded.shape)}
        for rule in rules:
            y = run_rule(path, rule)
            name = f"{fname}/{rule}"
            tensors[name] = np.ascontiguousarray(y.astype(np.float32))
            ref_fixed, geo = ref_rule(decoded, rule, fixed=True)
            ref_float, _ = ref_rule(decoded, rule, fixed=False)
            assert ref_fixed.shape == y.shape, (name, ref_fixed.shape, y.shape)
            tensor_info[name] = {"dtype": "float32", "layout": "CHW", "shape": list(y.shape), **geo}
            checks[name] = {
                "max_abs_diff_reference_pil_fixed_point": float(np.abs(ref_fixed - y).max()),
                "max_abs_diff_reference_float_resample": float(np.abs(ref_float - y).max()),
                "mean_abs_diff_reference_float_resample": float(np.abs(ref_float - y).mean()),
            }
            print(f"{name:40s} {str(tuple(y.shape)):16s} ref(fixed) {checks[name]['max_abs_diff_reference_pil_fixed_point']:.3g}"
                  f"  ref(float) {checks[name]['max_abs_diff_reference_float_resample']:.3g}", flush=True)

    save_file(tensors, str(out / "expected.safetensors"), metadata={"format": "np"})

    # 16-bit / RGBA facts, measured (not assumed)
    probe = {}
    with Image.open(out / "gray16_80x60.png") as im:
        a16 = np.array(im).astype(np.int64)
        a8 = np.array(im.convert("RGB"))[..., 0].astype(np.int64)
        probe["gray16"] = {
            "mode": im.mode,
            "convert_rgb_equals_min_v_255": bool((a8 == np.minimum(a16, 255)).all()),
            "fraction_of_pixels_clipped_to_255": float((a16 > 255).mean()),
        }
    raw16 = _read_png16(out / "rgb16_80x60.png")
    with Image.open(out / "rgb16_80x60.png") as im:
        a8 = np.array(im).astype(np.int64)
        probe["rgb16"] = {
            "mode": im.mode,
            "equals_v_shr_8": bool((a8 == (raw16 >> 8)).all()),
            "equals_round_v_div_257": bool((a8 == (raw16 + 128) // 257).all()),
            "pixels_where_shr8_and_round_div257_differ": int(((raw16 >> 8) != (raw16 + 128) // 257).sum()),
        }
    with Image.open(out / "rgba_120x90.png") as im:
        rgba = np.array(im)
        probe["rgba"] = {"convert_rgb_equals_rgb_channels": bool((np.array(im.convert("RGB")) == rgba[..., :3]).all()),
                         "alpha_min": int(rgba[..., 3].min()), "alpha_max": int(rgba[..., 3].max())}
    _, timm_cfg = timm_transform()
    rules = build_rules_json(images_info, tensor_info, checks, probe, timm_cfg)
    (out / "rules.json").write_text(json.dumps(rules, indent=1) + "\n")
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(json.dumps(probe, indent=1))
    print(f"wrote {out} ({total / 1024:.1f} KiB)")


def _read_png16(path):
    """Decode our own 16-bit PNGs (filter 0 rows, one IDAT) to check what Pillow did."""
    b = Path(path).read_bytes()
    pos, idat, hdr = 8, b"", None
    while pos < len(b):
        n = struct.unpack(">I", b[pos:pos + 4])[0]
        tag, data = b[pos + 4:pos + 8], b[pos + 8:pos + 8 + n]
        if tag == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", data)
        elif tag == b"IDAT":
            idat += data
        pos += 12 + n
    w, h, _, ct, *_ = hdr
    ch = 1 if ct == 0 else 3
    rows = zlib.decompress(idat)
    stride = 1 + w * ch * 2
    arr = np.stack([np.frombuffer(rows[r * stride + 1:(r + 1) * stride], ">u2") for r in range(h)])
    return arr.reshape(h, w, ch).astype(np.int64) if ch == 3 else arr.reshape(h, w).astype(np.int64)


def build_rules_json(images_info, tensor_info, checks, probe, timm_cfg):
    pil_resample = {
        "implementation": "Pillow ImagingResample (src/libImaging/Resample.c), called via Image.resize(size, filter)",
        "separable": "horizontal pass first (skipped if the width is unchanged), then vertical pass "
                     "(skipped if the height is unchanged); the intermediate image is uint8 (rounded+clipped)",
        "scale": "scale = in_size / out_size per axis; filterscale = max(scale, 1) (so downscaling widens "
                 "the filter = antialiasing, always on for PIL; upscaling uses the plain kernel)",
        "support": "filter_support * filterscale (bilinear 1, bicubic 2)",
        "taps": "for output index i: center = (i + 0.5) * scale; xmin = max(int(center - support + 0.5), 0); "
                "xmax = min(int(center + support + 0.5), in_size); weight[j] = filter((j + xmin - center + 0.5) * (1.0 / filterscale)) "
                "for j in 0..xmax-xmin, then each divided by their (sequential f64) sum; all in f64, int() truncates toward zero (edge taps are dropped and the rest renormalised, "
                "i.e. no padding/clamping of the source)",
        "filters": {"bilinear": "1 - |x| for |x| < 1", "bicubic": "Keys cubic with a = -0.5: |x|<1: (a+2)|x|^3 - (a+3)|x|^2 + 1; "
                    "1<=|x|<2: a(|x|^3 - 5|x|^2 + 8|x| - 4)"},
        "fixed_point_8bit": "weights -> int32 k = trunc(w * 2^22 + 0.5) (w >= 0) or trunc(w * 2^22 - 0.5) (w < 0); "
                            "acc = 2^21 + sum(pixel_u8 * k); out = clamp(acc >> 22 (arithmetic), 0, 255)",
        "note": "the float re-implementation (same weights, f64, no intermediate rounding, one final round-half-up) "
                "differs from Pillow by at most 1/255 in [0,1] units per pixel in most places; see 'verification'",
    }
    pil_nearest = {
        "implementation": "Pillow Image.resize(size, NEAREST) -> ImagingScaleAffine (Geometry.c)",
        "source_index": "src = floor((i + 0.5) * in_size / out_size), computed by Pillow as a running f64 sum "
                        "x0 = 0.5*scale, x += scale; equal to the integer formula ((2i+1)*in_size) // (2*out_size) "
                        "whenever (i+0.5)*scale is not an exact integer (true for every size used here)",
        "no_filtering": "pure pixel selection, no antialias, no rounding",
    }
    decode = {
        "how": "PIL.Image.open(path) then .convert('RGB') (torchvision/timm users; keras.utils.load_img does "
               "exactly this when img.mode != 'RGB', before resizing)",
        "L (8-bit gray)": "R = G = B = L",
        "RGBA": "alpha dropped, RGB kept as stored (no compositing on a background, no premultiplication); measured: "
                + json.dumps(probe.get("rgba")),
        "16-bit gray PNG": "Pillow opens it as mode 'I;16' (uint16); convert('RGB') goes through L by CLIPPING: "
                           "v8 = min(v16, 255) (not scaling!) - almost every pixel of a normal 16-bit image becomes 255. "
                           "Measured: " + json.dumps(probe.get("gray16")),
        "16-bit RGB PNG": "Pillow opens it directly as mode 'RGB' keeping the high byte: v8 = v16 >> 8 (truncation, "
                          "not (v16*255+32767)//65535 or (v16+128)//257 rounding). Measured: " + json.dumps(probe.get("rgb16")),
        "JPEG": f"Pillow's bundled libjpeg-turbo {features.version('libjpeg_turbo')} (libjpeg API {features.version('jpg')}), "
                "default decoder settings: JDCT_ISLOW integer IDCT, fancy (triangle) chroma upsampling; the test JPEG "
                "uses Pillow's default 4:2:0 subsampling at quality 95. Other decoders differ: measured once with the Rust "
                "`image` crate 0.25.10 (zune-jpeg 0.5.15) on this file: max 15 levels, mean 0.31, 21% of samples differ "
                "(chroma upsampling; the same picture saved 4:4:4 differs by at most 3). Compare against "
                "'<jpg>/decoded_rgb' to separate decode from resize.",
    }
    torch_norm = ("ToTensor: float32(u8) / 255 (torch div), CHW; Normalize: (x - mean) / std in float32 "
                  "(tensor.sub_(mean).div_(std))")
    rules = {
        "about": "Preprocessing fixtures computed with the frameworks' own code by tools/gen_preprocess_fixtures.py. "
                 "Tensors in expected.safetensors are named '<image-file>/<rule>' (float32, CHW, batch dimension "
                 "omitted) and '<image-file>/decoded_rgb' (uint8, HWC: what PIL's convert('RGB') gave, i.e. the "
                 "common input of every rule). Image names are <kind>_<width>x<height>.",
        "versions": {
            "python": f"{os.sys.version.split()[0]}",
            "torch": torch.__version__, "torchvision": torchvision.__version__,
            "keras": keras.__version__, "keras_backend": keras.backend.backend(),
            "timm": timm.__version__, "pillow": PIL.__version__, "numpy": np.__version__,
            "libjpeg_turbo": features.version("libjpeg_turbo"), "zlib": features.version("zlib"),
        },
        "decode": decode,
        "pil_resample_bilinear_bicubic": pil_resample,
        "pil_resample_nearest": pil_nearest,
        "rules": {
            "torchvision": {
                "code": "T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), "
                        "T.Normalize((0.485,0.456,0.406),(0.229,0.224,0.225))])(Image.open(p).convert('RGB'))",
                "resize": "shorter side -> 256, longer side -> int(256 * long / short) (truncated, not rounded); "
                          "if already that size, no resampling",
                "interpolation": "bilinear (InterpolationMode.BILINEAR -> PIL Image.BILINEAR), see pil_resample_bilinear_bicubic",
                "antialias": "yes: on PIL images torchvision always gets PIL's antialiased resampling (antialias=True default is moot)",
                "crop": "224x224 at top = int(round((H - 224) / 2)), left = int(round((W - 224) / 2)) with Python's "
                        "round (half to even: 4.5 -> 4, 39.5 -> 40); images smaller than the crop would be zero-padded first",
                "normalise": torch_norm,
                "mean": list(MEAN), "std": list(STD), "scale": "1/255",
                "channel_order": "RGB", "layout": "CHW",
            },
            "torchvision_32": {
                "code": "same as torchvision with T.Resize(32), T.CenterCrop(32)",
                "resize": "shorter side -> 32, longer side -> int(32 * long / short)",
                "interpolation": "bilinear, antialiased (PIL)", "crop": "32x32, offsets as torchvision",
                "normalise": torch_norm, "mean": list(MEAN), "std": list(STD),
                "channel_order": "RGB", "layout": "CHW",
            },
            "keras_v2": {
                "code": "keras.applications.resnet_v2.preprocess_input(keras.utils.img_to_array("
                        "keras.utils.load_img(p, target_size=(224, 224))))",
                "resize": "load_img: convert('RGB') if mode != 'RGB', then img.resize((224, 224), PIL NEAREST) - "
                          "interpolation='nearest' is load_img's default; aspect ratio NOT kept (squash), no crop",
                "interpolation": "nearest (see pil_resample_nearest)", "antialias": "no",
                "normalise": "mode 'tf', float32 in place: x /= 127.5; x -= 1.0  (range [-1, 1])",
                "mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5],
                "channel_order": "RGB", "layout": "stored CHW (Keras returns HWC; transposed here only)",
            },
            "keras_v2_noresize": {"code": "as keras_v2 with load_img(p) (no target_size)",
                                  "resize": "none", "normalise": "x / 127.5 - 1 (float32)",
                                  "channel_order": "RGB", "layout": "CHW"},
            "keras_v1": {
                "code": "keras.applications.resnet.preprocess_input(keras.utils.img_to_array("
                        "keras.utils.load_img(p, target_size=(224, 224))))",
                "resize": "as keras_v2 (nearest, squash to 224x224)",
                "normalise": "mode 'caffe', float32: x = x[..., ::-1] (RGB -> BGR); then channel 0 (B) -= 103.939, "
                             "1 (G) -= 116.779, 2 (R) -= 123.68; no scaling",
                "mean_bgr": list(CAFFE_MEAN_BGR), "std": None,
                "channel_order": "BGR (as the framework returns it: channel 0 is blue)", "layout": "CHW",
            },
            "keras_v1_noresize": {"code": "as keras_v1 with load_img(p) (no target_size)", "resize": "none",
                                  "normalise": "BGR, minus (103.939, 116.779, 123.68)", "channel_order": "BGR",
                                  "layout": "CHW"},
            "timm_v2": {
                "code": "cfg = timm.data.resolve_data_config({}, model=timm.create_model('resnetv2_50')); "
                        "timm.data.create_transform(**cfg)(Image.open(p).convert('RGB'))",
                "resolved_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in timm_cfg.items()},
                "transform": str(_TIMM["tf"]).replace("\n", " "),
                "resize": f"scale_size = floor({timm_cfg['input_size'][1]} / {timm_cfg['crop_pct']}) = "
                          f"{math.floor(timm_cfg['input_size'][1] / timm_cfg['crop_pct'])}: torchvision Resize(scale_size) "
                          "on the shorter side, longer side int(scale_size * long / short)",
                "interpolation": "bicubic (PIL Image.BICUBIC, a = -0.5, antialiased), see pil_resample_bilinear_bicubic",
                "antialias": "yes (PIL)",
                "crop": f"torchvision CenterCrop({timm_cfg['input_size'][1]}), offsets as torchvision",
                "normalise": "ToTensor (x/255) then Normalize(mean, std) in float32",
                "mean": list(timm_cfg["mean"]), "std": list(timm_cfg["std"]),
                "channel_order": "RGB", "layout": "CHW",
                "note": "resolve_data_config uses input_size (224), not the pretrained cfg's test_input_size 288 / "
                        "test_crop_pct 1.0, unless use_test_size=True is passed",
            },
        },
        "images": images_info,
        "tensors": tensor_info,
        "verification": {
            "what": "ref = numpy re-implementation of the rules above starting from '<img>/decoded_rgb'-equivalent "
                    "pixels; 'pil_fixed_point' emulates Pillow's integer resampling exactly, 'float_resample' uses "
                    "the same weights in f64 with a single final rounding",
            "max_abs_diff": checks,
            "suggested_tolerance": "an implementation that emulates Pillow's fixed-point resampling (as the "
                                   "numpy reference here does: 0 difference on every tensor) can test at 1e-5 abs "
                                   "on normalised values. Float resampling with the same weights but no 8-bit "
                                   "intermediate: measured max 1 level for bilinear (1/255/std = 0.0175 with ImageNet "
                                   "std) and 3 levels for bicubic (0.0235 with std 0.5: the clipped uint8 intermediate "
                                   "matters where the bicubic overshoots); see max_abs_diff. NEAREST and *_noresize "
                                   "rules are exact. JPEG through another decoder: see decode.JPEG.",
        },
    }
    return rules


if __name__ == "__main__":
    main()
