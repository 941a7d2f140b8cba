"""What every reader shares: read options, the dtype rule for array formats, and the one place
where an ImageSet is brought to a requested size and channel count.

Resizing uses PIL's bilinear filter on purpose: it is a linear map of the pixels, so an
interpolation chain ``x_a = (1-a)·x' + a·x*`` stays (up to uint8 rounding) a chain after it, and
the colinearity scan (paper 5.2) still sees it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
from PIL import Image

from audit.data.imageset import ImageSet
from audit.errors import DataError, invalid_parameter

DEFAULT_MAX_PIXELS = 40_000_000  # per image; well above any real photo, well below a bomb's 10^10
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ReadOptions:
    """What a caller may ask of any reader (validated once, in :func:`check_options`)."""

    size: tuple[int, int] | None = None  # (H, W) every image is resized to; None: keep / majority
    channels: int | None = None  # 1 or 3; None: 1 if every image is gray, else 3
    max_pixels: int = DEFAULT_MAX_PIXELS  # refuse any single image with more H·W than this
    progress: Progress | None = None  # called as progress(done, total) while decoding folders
    include_hidden: bool = False  # folders only: read names starting with '.' too


def check_options(owner: str, size, channels, max_pixels) -> None:
    """Boundary validation for the options every ``load_*`` function takes."""
    if size is not None:
        ok = (
            isinstance(size, (tuple, list))
            and len(size) == 2
            and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in size)
        )
        if not ok:
            raise invalid_parameter("size", owner, "None or a pair of positive ints (H, W)", size)
    if channels is not None and channels not in (1, 3):
        raise invalid_parameter("channels", owner, "None, 1 or 3", channels)
    if not isinstance(max_pixels, (int, np.integer)) or isinstance(max_pixels, bool) or max_pixels <= 0:
        raise invalid_parameter("max_pixels", owner, "a positive int", max_pixels)


def index_ids(n: int, prefix: str = "") -> tuple[str, ...]:
    """``00000``, ``00001``, ... (at least 5 digits, more when n needs them), sortable as strings."""
    width = max(5, len(str(max(n - 1, 0))))
    return tuple(f"{prefix}{i:0{width}d}" for i in range(n))


def to_uint8(arr: np.ndarray, where: str) -> np.ndarray:
    """uint8 from an array format's pixels.

    Rule: uint8 as is; integers must lie in [0, 255]; floats must be finite and either all in
    [0, 1] (scaled by 255) or all in [0, 255] (kept), then rounded half to even. An array whose
    maximum is <= 1 is read as [0, 1]: a [0, 255] image that dark is not a real image.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    if arr.size == 0:
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{where}: integer pixels must lie in [0, 255]; found [{lo}, {hi}]")
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise DataError(f"{where}: float pixels contain NaN or infinity")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0:
            raise DataError(f"{where}: float pixels must lie in [0, 1] or [0, 255]; found [{lo:g}, {hi:g}]")
        if hi <= 1.0:
            return np.rint(arr * 255.0).astype(np.uint8)
        if hi <= 255.0:
            return np.rint(arr).astype(np.uint8)
        raise DataError(f"{where}: float pixels must lie in [0, 1] or [0, 255]; found [{lo:g}, {hi:g}]")
    raise DataError(f"{where}: pixels of dtype {arr.dtype} are not supported (uint8, integers or floats)")


def majority_size(sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """The most common (H, W); a tie goes to the larger area, then the larger H."""
    counts = Counter(sizes)
    return max(counts, key=lambda hw: (counts[hw], hw[0] * hw[1], hw[0]))


def resize_one(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 H×W×C -> uint8 size[0]×size[1]×C with PIL's (linear) bilinear filter."""
    h, w = size
    if image.shape[2] == 1:
        out = Image.fromarray(image[:, :, 0], mode="L").resize((w, h), Image.Resampling.BILINEAR)
        return np.asarray(out)[:, :, None]
    out = Image.fromarray(image, mode="RGB").resize((w, h), Image.Resampling.BILINEAR)
    return np.asarray(out)


def gray_to_rgb(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(images, 3, axis=3))


def rgb_to_gray(images: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma, the weights PIL's ``convert('L')`` uses, rounded."""
    w = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.rint(images.astype(np.float32) @ w).clip(0, 255).astype(np.uint8)[..., None]


def conform(s: ImageSet, size: tuple[int, int] | None, channels: int | None) -> ImageSet:
    """``s`` with every image at ``size`` (H, W) and ``channels``; a note records each change."""
    images, notes = s.images, list(s.notes)
    if size is not None and tuple(images.shape[1:3]) != tuple(size):
        size = (int(size[0]), int(size[1]))
        images = np.stack([resize_one(im, size) for im in images]) if len(images) else (
            np.zeros((0, *size, images.shape[3]), np.uint8))
        notes.append(f"resized {len(images)} of {len(images)} images to {size[0]}×{size[1]}")
    if channels is not None and images.shape[3] != channels:
        if channels == 3:
            images = gray_to_rgb(images)
            notes.append("replicated 1 gray channel to 3")
        else:
            images = rgb_to_gray(images)
            notes.append("converted colour to gray (ITU-R 601-2 luma)")
    if images is s.images:
        return s
    return replace(s, images=np.ascontiguousarray(images), notes=tuple(notes))


def harmonise(sets: list[ImageSet | None]) -> list[ImageSet | None]:
    """Splits of one dataset share one shape: the first set's (H, W), and 3 channels if any set
    has colour."""
    present = [s for s in sets if s is not None]
    if not present:
        return sets
    size = present[0].shape[:2]
    channels = max(s.shape[2] for s in present)
    return [None if s is None else conform(s, size, channels) for s in sets]


def head(path, n: int) -> bytes:
    """The first ``n`` bytes of a file (fewer if it is shorter; empty if unreadable)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""
