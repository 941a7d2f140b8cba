"""The working resolution of a pool, and the one map that brings every image to it.

**Why a small working resolution is enough (paper 5.2).** A bridge is a segment in pixel space:
``x_a = (1-a)·x' + a·x*``. Every member of one bridge has the size of ``x'`` and ``x*`` (a pixel
blend of two images needs them at one size), so every member goes through the *same* map ``L_s``
chosen for that source size ``s``. When ``L_s`` is linear,
``L_s(x_a) = (1-a)·L_s(x') + a·L_s(x*)``: the bridge is still a segment, with the same
parameters ``a``, after the map (up to the uint8 rounding of the result, which the colinearity
test already tolerates). Box/area averaging, PIL's ``reduce``, a bilinear resize and JPEG's
DCT-domain scaling (``draft``: the inverse DCT of the low-frequency coefficients) are all linear
in the pixels. So a bridge can be found on small thumbnails, and the thumbnails can be decoded
straight from the file without ever holding a full-resolution copy of the pool. Images of
different sizes get different maps; that is harmless because no bridge spans two source sizes
(its members share one size by construction). A labeled set read with the pool's working size
goes through the same ``L_s``, so ``x'`` lands on the line of its bridge.

**The default (``max_side``).** The working size is the majority size of the pool (ties: larger
area, then larger height), kept as it is when its longer side is at most ``max_side`` (MNIST,
CIFAR, SVHN pools are unchanged: the 33-cell Fashion-MNIST table is computed at 28×28), else
scaled, aspect kept, so that its longer side is ``max_side``. ``DEFAULT_MAX_SIDE = 32`` was chosen
by measurement (``benchmarks/bench_real_pools.py``, ``docs/benchmarks.md``): a 30-image bridge of
400×400 RGBA clip art planted in openclipart-png is found whole, in order, with its source, at
32, 48 and 64; at 64 the PCA sample of the later scan alone costs ~1 GB (10k rows × 12 288 dims,
float64) and a 100k photo pool holds 0.9 GB of thumbnails, over the 2 GB target, where 32
holds 0.23 GB. An explicit ``size`` always wins; ``max_side=None`` keeps the majority size
whatever it is (the old behaviour; bounded only by the memory budget).

**The map, per source size** (:func:`fit`): JPEG files are decoded with ``draft`` at the
smallest DCT scale (1/2, 1/4, 1/8) that still covers the working size; the result is resized
with PIL's ``BOX`` filter (exact area averaging, preceded by an integer ``reduce`` when the
factor is large) when no side grows, with ``BILINEAR`` otherwise. Other aspects are stretched
(no crop, no padding: both would make the map depend on content or drop pixels a trainer sees).
An image already at the working size is not touched (bit-exact).
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
from PIL import Image

DEFAULT_MAX_SIDE = 32  # see the module docstring: measured, not guessed
SIZE_SAMPLE = 1024  # file headers read to choose the working size of a folder (all when fewer)
_REDUCING_GAP = 2.0  # PIL: integer-reduce first while the remaining factor stays >= this


def majority_size(sizes) -> tuple[int, int]:
    """The most common (H, W); a tie goes to the larger area, then the larger H."""
    counts = Counter(tuple(s) for s in sizes)
    return max(counts, key=lambda hw: (counts[hw], hw[0] * hw[1], hw[0]))


def scaled(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """``size`` (H, W) itself when its longer side is at most ``max_side`` (or max_side is None),
    else scaled so the longer side is ``max_side`` (aspect kept, each side at least 1)."""
    h, w = int(size[0]), int(size[1])
    if max_side is None or max(h, w) <= max_side:
        return h, w
    if h >= w:
        return max_side, max(1, round(w * max_side / h))
    return max(1, round(h * max_side / w)), max_side


def choose_size(sizes, max_side: int | None) -> tuple[tuple[int, int], tuple[int, int]]:
    """(working size, majority size) for native (H, W) sizes, under the module's policy."""
    major = majority_size(sizes)
    return scaled(major, max_side), major


def sample(items: list, k: int = SIZE_SAMPLE, seed: int = 0) -> list:
    """A seeded sample of ``k`` items (all of them, in order, when there are at most ``k``):
    the working size of a large folder is chosen from this many headers, so the choice never
    costs a second pass over 60k tiny files."""
    if len(items) <= k:
        return list(items)
    return [items[i] for i in sorted(random.Random(seed).sample(range(len(items)), k))]


def draft_for(im: Image.Image, size: tuple[int, int]) -> bool:
    """Ask a JPEG decoder for the smallest DCT scale that still covers ``size`` (H, W); True if
    it will decode smaller than the file. No-op for other formats."""
    if im.format != "JPEG" or im.mode not in ("L", "RGB", "CMYK", "YCbCr"):
        return False
    h, w = size
    if im.size[0] < 2 * w or im.size[1] < 2 * h:
        return False
    before = im.size
    im.draft(im.mode, (w, h))
    return im.size != before


def fit(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``im`` (mode L or RGB) resized to ``size`` (H, W) by the fixed linear map of the module
    docstring; the same object when it already has that size."""
    h, w = size
    if im.size == (w, h):
        return im
    shrink = im.size[0] >= w and im.size[1] >= h
    if shrink:
        return im.resize((w, h), Image.Resampling.BOX, reducing_gap=_REDUCING_GAP)
    return im.resize((w, h), Image.Resampling.BILINEAR)


def fit_array(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 H×W×C (C in 1, 3) -> uint8 size×C through :func:`fit` (the array readers' path, so
    an array and a PNG of the same pixels give the same thumbnail)."""
    if image.shape[:2] == tuple(size):
        return image
    if image.shape[2] == 1:
        return np.asarray(fit(Image.fromarray(image[:, :, 0], mode="L"), size))[:, :, None]
    return np.asarray(fit(Image.fromarray(image, mode="RGB"), size))
