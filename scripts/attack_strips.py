"""Thumbnail strips of every attack for docs/attacks.md, and what each attack costs here.

    python scripts/attack_strips.py --generator G.pt            # writes docs/img/*.png, prints timings

G.pt comes from ``redteam train-gan --dataset fashion-mnist --out G.pt`` (not committed). Without
``--generator`` the ``gan`` strip and ``gan_vs_linear.png`` are skipped. The transfer attack needs
θ_init: a small ``cnn`` is trained here for ``--theta-steps`` supervised steps (or pass ``--theta``,
a trainer model.pt). Everything runs with one torch thread, on Fashion-MNIST at ratio 0.001
(n = 60, the paper's budget), with the same x* / y* / x' for every attack (inject seed 0).

Each strip: one row per path (up to 3), 8 points of that path evenly spread in α, x' on the left,
x* on the right; 2× nearest-neighbour up-scaling, 2-pixel white gaps; a few KB each.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from audit.data.load import load_dataset
from audit.ssl.augment import to_float
from audit.ssl.models import build_model
from redteam.attacks import ATTACKS
from redteam.inject import InjectConfig, inject

OUT = Path(__file__).resolve().parent.parent / "docs" / "img"
COLS, SCALE, GAP = 8, 2, 2


def strip(rows: list[np.ndarray]) -> Image.Image:
    """rows: uint8 k×H×W×C arrays (k <= COLS) → one image, rows stacked."""
    h, w, c = rows[0].shape[1:]
    H, W = h * SCALE, w * SCALE
    canvas = np.full((len(rows) * (H + GAP) - GAP, COLS * (W + GAP) - GAP, c), 255, np.uint8)
    for r, imgs in enumerate(rows):
        for k, img in enumerate(imgs):
            big = img.repeat(SCALE, 0).repeat(SCALE, 1)
            canvas[r * (H + GAP): r * (H + GAP) + H, k * (W + GAP): k * (W + GAP) + W] = big
    return Image.fromarray(canvas[..., 0] if c == 1 else canvas, mode="L" if c == 1 else "RGB")


def path_rows(ds, max_rows: int = 3) -> list[np.ndarray]:
    m = ds.manifest
    by_name = dict(zip(ds.unlabeled.ids, ds.unlabeled.images))
    rows = []
    for pid in sorted({p.path_id for p in m.points})[:max_rows]:
        pts = [p for p in m.points if p.path_id == pid]
        pick = np.unique(np.round(np.linspace(0, len(pts) - 1, COLS)).astype(int))
        rows.append(np.stack([by_name[pts[i].path] for i in pick]))
    return rows


def save(img: Image.Image, name: str) -> int:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    (OUT / name).write_bytes(buf.getvalue())
    return len(buf.getvalue())


def train_theta(train, steps: int, path: Path) -> Path:
    torch.manual_seed(0)
    net = build_model("cnn", 10, 1, 28, widths=(16, 32, 64))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        i = torch.randint(len(train), (128,), generator=g)
        loss = F.cross_entropy(net(to_float(train.images[i.numpy()])), torch.from_numpy(train.labels[i.numpy()]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save({"model": "cnn", "num_classes": 10, "in_channels": 1, "image_size": [28, 28], "class_names": [],
                "model_options": {"widths": [16, 32, 64]}, "state_dict": net.eval().state_dict()}, path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generator", type=Path, help="G.pt from `redteam train-gan --dataset fashion-mnist`")
    ap.add_argument("--theta", type=Path, help="θ_init for transfer (trainer model.pt); default: train one")
    ap.add_argument("--theta-steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    splits = load_dataset("fashion-mnist")
    print(f"load fashion-mnist: {time.perf_counter() - t0:.1f} s")
    theta = args.theta
    if theta is None:
        t0 = time.perf_counter()
        theta = train_theta(splits.train, args.theta_steps, Path("/tmp/attack_strips_theta.pt"))
        print(f"theta_init ({args.theta_steps} supervised steps): {time.perf_counter() - t0:.1f} s")
    configs = {"transfer": ATTACKS.get("transfer").Config(model_path=str(theta))}
    if args.generator is not None:
        configs["gan"] = ATTACKS.get("gan").Config(generator=str(args.generator))
    datasets = {}
    for name in ATTACKS:
        if name == "gan" and "gan" not in configs:
            continue
        cfg = InjectConfig(dataset="fashion-mnist", ratio=0.001, attack=name, attack_config=configs.get(name),
                           seed=args.seed)
        t0 = time.perf_counter()
        ds = inject(splits, cfg)
        dt = time.perf_counter() - t0
        datasets[name] = ds
        size = save(strip(path_rows(ds)), f"{name}.png")
        meta = {k: v for k, v in ds.manifest.attack_meta.items() if k not in ("config", "shifts", "support_ids")}
        print(f"{name:17s} inject (in memory) {dt:6.1f} s   n={ds.manifest.n}   {name}.png {size} B   {meta}")
    if "gan" in datasets:
        rows = [path_rows(datasets["linear"], 1)[0], path_rows(datasets["gan"], 1)[0]]
        print(f"gan_vs_linear.png {save(strip(rows), 'gan_vs_linear.png')} B")


if __name__ == "__main__":
    main()
