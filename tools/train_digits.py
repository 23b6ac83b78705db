#!/usr/bin/env python3
"""Train a small torchvision ResNet on scikit-learn's 8x8 digits (upscaled to 32x32).

Produces the real, working classifier under assets/digits/ that the Rust side can load and run on
PNG files it decodes itself:

  assets/digits/digits.safetensors   model.state_dict() (torchvision names, fp32, int64 counters)
  assets/digits/labels.txt           10 lines: 0..9
  assets/digits/heldout/NNN_labelL.png   the held-out split as 32x32 8-bit grayscale PNGs
  assets/digits/expected.json        framework predictions on exactly those PNG files
  assets/digits/README.md

Image pipeline (the PNG *is* the image):
  8x8 digit, values 0..16  ->  uint8 = floor(x*255/16 + 0.5)  ->  PIL "L" image
  -> PIL resize to 32x32, Image.BILINEAR (upscaling)  ->  saved as PNG (lossless).

Model: torchvision.models.resnet.ResNet(BasicBlock, [1,1,1,1], num_classes=10) with a 16-channel
stem (conv1 = Conv2d(3,16,7,2,3,bias=False), bn1 = BatchNorm2d(16)), layer1..4 rebuilt by
_make_layer with widths (16,32,64,128) and strides (1,2,2,2), fc = Linear(128,10). The stock
torchvision forward is used unchanged (stem max pool 3x3/2 pad 1 included):
32 -> conv1 16 -> maxpool 8 -> layer1 8 -> layer2 4 -> layer3 2 -> layer4 1 -> avgpool -> fc.

Preprocessing for training and evaluation = torchvision's eval transform at size 32 on the PIL
image converted to RGB (grayscale replicated):
  Resize(32) -> CenterCrop(32) -> ToTensor() -> Normalize(ImageNet mean/std)
(Resize/CenterCrop are identities for 32x32 inputs.)

Usage:  python tools/train_digits.py [--out assets/digits]
Deterministic (fixed seeds, single thread, deterministic algorithms).
"""

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import Image
from safetensors.torch import save_file
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torchvision import transforms
from torchvision.models.resnet import BasicBlock, ResNet

SEED = 20240601
SPLIT_SEED = 7
SIZE = 32
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
WIDTHS = (16, 32, 64, 128)
STRIDES = (1, 2, 2, 2)
EPOCHS = 40
BATCH = 64
LR = 2e-3
TARGET_ACC = 0.95


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)


def digit_to_pil(x8):
    """8x8 float array with values 0..16 -> 32x32 PIL 'L' image (the canonical image)."""
    u8 = np.floor(x8.astype(np.float64) * 255.0 / 16.0 + 0.5).astype(np.uint8)
    small = Image.fromarray(u8, mode="L")
    return small.resize((SIZE, SIZE), Image.BILINEAR)


def build_model():
    model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10)
    model.conv1 = nn.Conv2d(3, WIDTHS[0], kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(WIDTHS[0])
    model.inplanes = WIDTHS[0]
    model.layer1 = model._make_layer(BasicBlock, WIDTHS[0], 1, stride=STRIDES[0])
    model.layer2 = model._make_layer(BasicBlock, WIDTHS[1], 1, stride=STRIDES[1])
    model.layer3 = model._make_layer(BasicBlock, WIDTHS[2], 1, stride=STRIDES[2])
    model.layer4 = model._make_layer(BasicBlock, WIDTHS[3], 1, stride=STRIDES[3])
    model.fc = nn.Linear(WIDTHS[3], 10)
    # Same initialisation as torchvision's ResNet.__init__ applies to its own modules.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    return model


def eval_transform():
    return transforms.Compose([
        transforms.Resize(SIZE),
        transforms.CenterCrop(SIZE),
        transforms.ToTensor(),
        transforms.Normalize(mean=MEAN, std=STD),
    ])


def train_transform():
    # Light augmentation on the PIL image, then exactly the eval transform.
    return transforms.Compose([
        transforms.RandomAffine(degrees=8, translate=(0.08, 0.08), scale=(0.92, 1.08),
                                interpolation=transforms.InterpolationMode.BILINEAR),
        eval_transform(),
    ])


def evaluate(model, tensors, labels):
    model.eval()
    with torch.no_grad():
        logits = model(tensors)
    return (logits.argmax(1) == labels).float().mean().item(), logits


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "assets" / "digits"))
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    args = ap.parse_args()
    out = Path(args.out)
    seed_everything(SEED)

    digits = load_digits()
    images = [digit_to_pil(x) for x in digits.images]
    y = digits.target.astype(np.int64)
    idx = np.arange(len(y))
    train_idx, test_idx = train_test_split(idx, test_size=0.2, stratify=y, random_state=SPLIT_SEED)
    test_idx = np.sort(test_idx)
    print(f"train {len(train_idx)}  held-out {len(test_idx)}", flush=True)

    tf_eval = eval_transform()
    tf_train = train_transform()
    test_x = torch.stack([tf_eval(images[i].convert("RGB")) for i in test_idx])
    test_y = torch.from_numpy(y[test_idx])

    model = build_model()
    opt = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=1e-4)
    steps_per_epoch = (len(train_idx) + BATCH - 1) // BATCH
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, epochs=args.epochs,
                                                steps_per_epoch=steps_per_epoch)
    rng = np.random.default_rng(SEED)
    acc = 0.0
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(train_idx)
        total = 0.0
        for b in range(steps_per_epoch):
            bi = order[b * BATCH:(b + 1) * BATCH]
            xb = torch.stack([tf_train(images[i].convert("RGB")) for i in bi])
            yb = torch.from_numpy(y[bi])
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(bi)
        acc, _ = evaluate(model, test_x, test_y)
        print(f"epoch {epoch + 1:3d}  loss {total / len(train_idx):.4f}  held-out acc {acc:.4f}", flush=True)
    if acc < TARGET_ACC:
        sys.exit(f"held-out accuracy {acc:.4f} < {TARGET_ACC}")
    model.eval()

    # ---- write the assets ------------------------------------------------------------------
    heldout_dir = out / "heldout"
    heldout_dir.mkdir(parents=True, exist_ok=True)
    for old in heldout_dir.glob("*.png"):
        old.unlink()
    files = []
    for n, i in enumerate(test_idx):
        name = f"{n:03d}_label{y[i]}.png"
        images[i].save(heldout_dir / name, format="PNG", optimize=True)
        files.append((f"heldout/{name}", int(y[i])))

    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(out / "digits.safetensors"),
              metadata={"format": "pt"})  # one key: safetensors orders metadata at random
    (out / "labels.txt").write_text("".join(f"{d}\n" for d in range(10)))

    # Framework results computed from the PNG files as written (what `classify` will see).
    records = []
    correct = 0
    with torch.no_grad():
        for rel, label in files:
            with Image.open(out / rel) as im:
                x = tf_eval(im.convert("RGB")).unsqueeze(0)
            logits = model(x)[0]
            probs = torch.softmax(logits, 0)
            p5, i5 = probs.topk(5)
            top1 = int(i5[0])
            correct += int(top1 == label)
            records.append({
                "file": rel,
                "label": label,
                "top1": top1,
                "top5": [int(v) for v in i5],
                "probabilities_top5": [float(v) for v in p5],
                "logits": [float(v) for v in logits],
            })
    final_acc = correct / len(files)
    expected = {
        "preprocess": {
            "size": SIZE,
            "resize": SIZE,
            "interpolation": "bilinear",
            "mean": list(MEAN),
            "std": list(STD),
            "color": "PIL convert('RGB') of the 8-bit grayscale PNG (gray replicated to R,G,B)",
        },
        "framework": f"torch {torch.__version__} / torchvision {torchvision.__version__}",
        "model": {
            "arch": "torchvision ResNet(BasicBlock, [1,1,1,1]), stem 16 ch, widths 16,32,64,128, "
                    "strides 1,2,2,2, fc 128->10, stock forward (maxpool 3x3/2 pad 1)",
            "weights": "digits.safetensors",
            "num_classes": 10,
            "input_size": SIZE,
        },
        "accuracy": final_acc,
        "count": len(files),
        "images": records,
    }
    # One image record per line: readable diffs, compact file.
    head = {k: v for k, v in expected.items() if k != "images"}
    text = json.dumps(head, indent=1)[:-2] + ',\n "images": [\n'
    text += ",\n".join("  " + json.dumps(r) for r in records) + "\n ]\n}\n"
    json.loads(text)
    (out / "expected.json").write_text(text)
    (out / "README.md").write_text(
        "# digits: a small working ResNet classifier\n\n"
        "A torchvision `ResNet(BasicBlock, [1,1,1,1])` (16-channel stem, widths 16/32/64/128, 10 classes) "
        "trained from scratch on scikit-learn's 8x8 digits upscaled to 32x32 grayscale "
        "(`tools/train_digits.py`, Adam, deterministic seeds, stratified 80/20 split).\n"
        f"`heldout/` holds the {len(files)} held-out images as 32x32 PNGs; torchvision's eval transform "
        f"(Resize 32, CenterCrop 32, ImageNet mean/std) gives top-1 {final_acc * 100:.2f}% on them "
        f"(`expected.json`, torch {torch.__version__} / torchvision {torchvision.__version__}).\n"
    )
    total_bytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"held-out accuracy from the saved PNGs: {final_acc:.4f} ({correct}/{len(files)})")
    print(f"wrote {out} ({total_bytes / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
