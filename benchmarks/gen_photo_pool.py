"""Generate a folder of photo-like 640×480 JPEGs (issue #13): openclipart art composited on
textured backgrounds, with one linear bridge of JPEGs planted among them.

Each image: a smooth random colour field (a 6×8×3 random grid, bicubic-upscaled to 640×480,
plus Gaussian grain) with 1-3 openclipart images (RGBA/LA/palette, alpha kept) pasted at random
sizes and places; saved as JPEG (quality 85, 4:2:0) in sub-folders of 1,000. Deterministic: image
i depends only on (seed, i). The bridge: two more such images x' and x* (not in the pool),
``rint((1-a)·x' + a·x*)`` for ``--bridge`` values of a (density 1.5-x, ends included), saved as
JPEG quality 95 under ordinary names at random places; x' is also written as a lossless PNG in
``<out>-labeled/source/`` (for ``--labeled``) beside 9 other classes of one clean image each.
Ground truth: ``<out>-manifest.json``.

    python benchmarks/gen_photo_pool.py --out /work/data/photos100k --n 100000
"""

from __future__ import annotations

import argparse
import warnings
import json
import os
import subprocess
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 640, 480
warnings.simplefilter("ignore", Image.DecompressionBombWarning)
ART_COUNT = 600  # clip-art images cached (thumbnails of at most ART_SIDE), shared by fork
ART_SIDE = 360
_ART: list[Image.Image] = []


def load_art(seed: int, count: int = ART_COUNT) -> list[Image.Image]:
    """``count`` openclipart PNGs (Debian package openclipart-png) of at most 2 Mpx, chosen with
    the seed, as RGBA thumbnails of at most ART_SIDE pixels a side."""
    out = subprocess.run(["dpkg", "-L", "openclipart-png"], capture_output=True, text=True, check=True).stdout
    files = sorted(p for p in out.splitlines() if p.endswith(".png") and os.path.isfile(p) and not os.path.islink(p))
    rng = np.random.default_rng(seed)
    art = []
    for k in rng.permutation(len(files)):
        try:
            with Image.open(files[k]) as im:
                if im.size[0] * im.size[1] > 2_000_000:
                    continue
                im = im.convert("RGBA")
        except Exception:
            continue
        im.thumbnail((ART_SIDE, ART_SIDE), Image.Resampling.BOX)
        art.append(im)
        if len(art) == count:
            break
    return art


def render(seed: int, i: int) -> Image.Image:
    """Image i: textured background + 1-3 clip-art images."""
    rng = np.random.default_rng([seed, i])
    grid = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    bg = np.asarray(Image.fromarray(grid).resize((W, H), Image.Resampling.BICUBIC), np.int16)
    bg = bg + rng.integers(-6, 7, bg.shape, dtype=np.int16)  # grain
    im = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    for _ in range(int(rng.integers(1, 4))):
        art = _ART[int(rng.integers(len(_ART)))].copy()
        side = int(rng.integers(120, ART_SIDE))
        art.thumbnail((side, side), Image.Resampling.BILINEAR)
        x, y = int(rng.integers(0, max(1, W - art.size[0]))), int(rng.integers(0, max(1, H - art.size[1])))
        im.paste(art, (x, y), art)
    return im


def _write(args: tuple) -> int:
    seed, lo, hi, out = args
    for i in range(lo, hi):
        path = Path(out) / f"d{i // 1000:03d}" / f"{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        render(seed, i).save(path, "JPEG", quality=85)
    return hi - lo


def density_alphas(n: int) -> np.ndarray:
    """n values of a in [0, 1], ends included, placed by the inverse CDF of density 1.5-x."""
    # CDF of 1.5-x normalised on [0,1] (integral 1): F(a) = 1.5a - a^2/2; invert for u in [0,1]
    u = np.linspace(0, 1, n)
    return 1.5 - np.sqrt(2.25 - 2 * u)


def plant_bridge(out: Path, seed: int, n_pool: int, count: int) -> dict:
    src = np.asarray(render(seed + 1, 0), np.float64)
    dst = np.asarray(render(seed + 1, 1), np.float64)
    rng = np.random.default_rng(seed + 2)
    alphas = density_alphas(count)
    ids = []
    for j, a in enumerate(alphas):
        i = n_pool + j
        folder = f"d{int(rng.integers(0, max(1, n_pool // 1000))):03d}"
        rel = f"{folder}/{i:06d}.jpg"
        (out / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.rint((1 - a) * src + a * dst).astype(np.uint8)).save(out / rel, "JPEG", quality=95)
        ids.append(rel)
    lab = Path(str(out) + "-labeled")
    (lab / "source").mkdir(parents=True, exist_ok=True)
    Image.fromarray(src.astype(np.uint8)).save(lab / "source" / "xprime.png")
    for c in range(9):
        (lab / f"other{c}").mkdir(parents=True, exist_ok=True)
        render(seed + 3, c).save(lab / f"other{c}" / "clean.png")
    return {"bridge_ids": ids, "alphas": [float(a) for a in alphas], "source_labeled_id": "source/xprime.png"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/work/data/photos100k"))
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--bridge", type=int, default=100, help="bridge images planted (0: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    t0 = time.perf_counter()
    _ART[:] = load_art(a.seed)  # before the fork: every worker shares the cache
    step = 500
    jobs = [(a.seed, lo, min(lo + step, a.n), str(a.out)) for lo in range(0, a.n, step)]
    with Pool(a.workers) as pool:
        done = 0
        for k in pool.imap_unordered(_write, jobs):
            done += k
            if done % 10_000 < step:
                print(f"{done} images, {time.perf_counter() - t0:.0f} s", flush=True)
    manifest = {"n_pool": a.n, "seed": a.seed, "size": [H, W]}
    if a.bridge:
        manifest.update(plant_bridge(a.out, a.seed, a.n, a.bridge))
    Path(str(a.out) + "-manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"wrote {a.n} + {a.bridge} JPEGs under {a.out} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
