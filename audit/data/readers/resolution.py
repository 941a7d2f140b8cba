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
scaled, aspect kept, so that its longer side is ``max_side``. ``DEFAULT_MAX_SIDE = 40`` was chosen
by measurement (``benchmarks/bench_real_pools.py``, ``docs/benchmarks.md``): a 30-image bridge of
400×400 RGBA clip art planted in openclipart-png, and a 100-image JPEG bridge planted in 100k
640×480 photos, are found whole, in order and with their source at 40 and 48; at 32 the clean
openclipart pool gains two bridges that are artefacts of the low resolution (97 and 21 images of
small line art that blur into near-lines); 48 costs more for nothing found (openclipart peak RSS
0.97 → 1.24 GB, photos 124 → 157 CPU-s) and 64 breaks the 1.5 GB openclipart target (1.93 GB: the
scan's PCA sample is 10k rows × 12 288 dims in float64). An explicit ``size`` always wins;
``max_side=None`` keeps the majority size whatever it is (bounded only by the memory budget).

**The map, per source size, the same for every file format** (:func:`prereduce`, :func:`fit`):
when the source is at least 8 times the working size on both sides, it is first reduced to the
means of its 8×8 blocks (``ceil(w/8)×ceil(h/8)``): a JPEG is decoded that way directly (``draft``
at DCT scale 1/8: each output pixel is its block's DC coefficient, i.e. the block mean, which
makes 640×480 photos ~8× cheaper to decode), any other file by PIL's ``reduce(8)`` after a
full decode. Then the image is resized with PIL's ``BOX`` filter (preceded by an integer
``reduce`` when the factor is large) when no side grows, with ``BILINEAR`` otherwise. So a PNG x'
and the JPEG members of its bridge go through the same map, up to JPEG's own loss and its edge
padding. (PIL's ``BOX`` is not an exact area average for fractional factors, and JPEG's 1/2 and
1/4 scales are not block means: mixing them per format would put x' off its bridge's line by up
to 95 levels, measured, so they are not used.) Other aspects are stretched (no crop, no padding:
both would make the map depend on content or drop pixels a trainer sees). An image already at
the working size is not touched (bit-exact).
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
from PIL import Image

DEFAULT_MAX_SIDE = 40  # see the module docstring: measured, not guessed
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


PRE = 8  # the block side of the first reduction (JPEG's DCT block, so a JPEG decodes straight to it)


def prereduced_size(src: tuple[int, int], size: tuple[int, int]) -> tuple[int, int] | None:
    """(w, h) after the 8×8 block-mean step for a source (w, h) and a working size (H, W), or
    None when the source is less than 8 times the working size on some side."""
    w, h = src
    if w < PRE * size[1] or h < PRE * size[0]:
        return None
    return -(-w // PRE), -(-h // PRE)


def draft_for(im: Image.Image, size: tuple[int, int]) -> bool:
    """Ask a JPEG decoder for DCT scale 1/8 (block means) when :func:`prereduced_size` calls for
    the block-mean step; True if it will decode at that scale. No-op for other formats."""
    target = prereduced_size(im.size, size)
    if target is None or im.format != "JPEG" or im.mode not in ("L", "RGB", "CMYK", "YCbCr"):
        return False
    before = im.size
    im.draft(im.mode, (before[0] // PRE, before[1] // PRE))
    if im.size != target:  # a decoder that chose another scale: decode in full, reduce after
        im.draft(im.mode, before)
        return False
    return True


def prereduce(im: Image.Image, size: tuple[int, int], src: tuple[int, int]) -> Image.Image:
    """The block-mean step for an image decoded in full from a source of size ``src`` (w, h)."""
    target = prereduced_size(src, size)
    if target is None or im.size == target:
        return im
    return im.reduce(PRE)


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
    im = Image.fromarray(image[:, :, 0], mode="L") if image.shape[2] == 1 else Image.fromarray(image, mode="RGB")
    out = np.asarray(fit(prereduce(im, size, im.size), size))
    return out[:, :, None] if out.ndim == 2 else out
