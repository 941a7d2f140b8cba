"""Strong-augmentation throughput: batched tensor Strong vs per-image PIL RandAugment, and the
forward+backward time of the models at a FixMatch batch (64 labeled + 2 × 448 unlabeled).

    python benchmarks/bench_augment.py                 # threads=2, 7 repeats, median reported
    python benchmarks/bench_augment.py --threads 1 --skip-models

The PIL baseline is what the reference FixMatch implementations run per image in their data
loader workers: flip, reflect-pad + random crop, two RandAugment ops with a random magnitude
(PIL.ImageOps / ImageEnhance / Image.transform), Cutout, then conversion to a float tensor
batch. Both sides start from the same uint8 N×H×W×C batch and end at float32 B×C×H×W.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from audit.ssl.augment import Strong, to_float
from audit.ssl.models import build_model, count_parameters

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "fashion-mnist-200.npz"
BATCH = 448  # FixMatch: 7 × 64 unlabeled images per step


# --- the per-image PIL baseline (FixMatch's RandAugment variant, as in USB / kekmodel) ----
def _affine(img, coeffs, fill):
    return img.transform(img.size, Image.AFFINE, coeffs, resample=Image.BILINEAR, fillcolor=fill)


def _pil_ops(fill):
    def enh(cls):
        return lambda img, v: cls(img).enhance(0.95 - 0.9 * v)

    def sym(v):
        return v if random.random() < 0.5 else -v

    return [
        lambda img, v: ImageOps.autocontrast(img),
        enh(ImageEnhance.Brightness),
        enh(ImageEnhance.Color),
        enh(ImageEnhance.Contrast),
        lambda img, v: ImageOps.equalize(img),
        lambda img, v: img,
        lambda img, v: ImageOps.posterize(img, 8 - round(4 * v)),
        lambda img, v: img.rotate(sym(30 * v), resample=Image.BILINEAR, fillcolor=fill),
        enh(ImageEnhance.Sharpness),
        lambda img, v: _affine(img, (1, sym(0.3 * v), 0, 0, 1, 0), fill),
        lambda img, v: _affine(img, (1, 0, 0, sym(0.3 * v), 1, 0), fill),
        lambda img, v: ImageOps.solarize(img, int(256 * (1 - v))),
        lambda img, v: _affine(img, (1, 0, sym(0.3 * v) * img.size[0], 0, 1, 0), fill),
        lambda img, v: _affine(img, (1, 0, 0, 0, 1, sym(0.3 * v) * img.size[1]), fill),
    ]


def pil_strong(images: np.ndarray) -> torch.Tensor:
    """uint8 N×H×W×C → float32 N×C×H×W, one image at a time in PIL."""
    n, h, w, c = images.shape
    gray = c == 1
    fill = 128 if gray else (128, 128, 128)
    ops = _pil_ops(fill)
    ph, pw = round(0.125 * h), round(0.125 * w)
    out = np.empty((n, h, w, c), np.uint8)
    for i in range(n):
        a = images[i]
        if random.random() < 0.5:
            a = a[:, ::-1]
        a = np.pad(a, ((ph, ph), (pw, pw), (0, 0)), mode="reflect")
        y, x = random.randint(0, 2 * ph), random.randint(0, 2 * pw)
        img = Image.fromarray(np.ascontiguousarray(a[y:y + h, x:x + w, 0] if gray else a[y:y + h, x:x + w]))
        for op in random.choices(ops, k=2):
            img = op(img, random.random())
        s = random.random() * 0.5
        sh, sw = round(s * h), round(s * w)
        if sh and sw:
            top, left = int(random.random() * h) - sh // 2, int(random.random() * w) - sw // 2
            ImageDraw.Draw(img).rectangle([left, top, left + sw - 1, top + sh - 1], fill=fill)
        arr = np.asarray(img)
        out[i] = arr[..., None] if gray else arr
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255)


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _paired_times(fn_a, fn_b, repeats: int) -> tuple[list[float], list[float]]:
    """Wall times of ``fn_a`` and ``fn_b`` run alternately, so that both see the same load on a
    shared machine (the ratio of each pair is far steadier than either time alone)."""
    fn_a(), fn_b()  # warm-up
    ta, tb = [], []
    for _ in range(repeats):
        for fn, out in ((fn_a, ta), (fn_b, tb)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return ta, tb


def bench_augment(repeats: int) -> None:
    fm = np.load(FIXTURE)["images"]
    datasets = {
        "fashion-mnist 28x28x1": np.resize(fm, (BATCH, *fm.shape[1:])),
        "random 32x32x3": np.random.default_rng(0).integers(0, 256, (BATCH, 32, 32, 3), dtype=np.uint8),
    }
    strong = Strong()
    gen = torch.Generator().manual_seed(0)
    random.seed(0)
    print(f"strong augmentation, batch {BATCH}, median of {repeats} alternating pairs")
    print(f"{'data':24} {'batched img/s':>14} {'PIL img/s':>10} {'ratio':>7} {'ratio range':>13}")
    for name, imgs in datasets.items():
        t_ours, t_pil = _paired_times(lambda: strong(to_float(imgs), gen), lambda: pil_strong(imgs), repeats)
        ratios = sorted(p / o for o, p in zip(t_ours, t_pil))
        print(f"{name:24} {BATCH / statistics.median(t_ours):14.0f} {BATCH / statistics.median(t_pil):10.0f} "
              f"{statistics.median(ratios):6.1f}x {ratios[0]:5.1f}-{ratios[-1]:.1f}x")


def bench_models(repeats: int, names: list[str]) -> None:
    n = 64 + 2 * BATCH
    print(f"\nforward+backward+SGD step, batch {n} (64 + 2x{BATCH}), median of {repeats}")
    for name, c, size in [("cnn", 1, 28), ("wrn28_2", 1, 28), ("wrn28_2", 3, 32)]:
        if name not in names:
            continue
        torch.manual_seed(0)
        model = build_model(name, 10, c, size)
        opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)
        x = torch.rand(n, c, size, size)
        y = torch.randint(0, 10, (n,))

        def step():
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        t = _median_time(step, repeats)
        print(f"{name:8} {c}x{size}x{size}  params {count_parameters(model):>9,}  {t:7.3f} s/step")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--model-repeats", type=int, default=3)
    ap.add_argument("--skip-models", action="store_true")
    ap.add_argument("--models", default="cnn,wrn28_2", help="comma-separated model names to time")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    bench_augment(args.repeats)
    if not args.skip_models:
        bench_models(args.model_repeats, args.models.split(","))


if __name__ == "__main__":
    main()
