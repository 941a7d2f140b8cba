"""STL-10 binary files: ``{train,test,unlabeled}_X.bin`` and ``{train,test}_y.bin``.

``*_X.bin`` is uint8, 3×96×96 per image, each plane stored column-major (MATLAB order), so
``reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)`` gives N×96×96×3 (H, W, C) upright images.
``*_y.bin`` is uint8 labels 1..10, mapped to 0..9. ``class_names.txt`` gives the names.
The unlabeled pool (100k images, 2.8 GB) is read only when present. Files are memory-mapped
and converted in slices straight to the requested size (for ``load_images``: the working size,
see ``resolution``), so the 100k pool at 40×40 needs 0.58 GB, not 2.8 GB; the budget is checked
on the output before anything is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audit.data.imageset import ImageSet, Splits
from audit.data.readers._common import (
    DEFAULT_MAX_BYTES, check_budget, index_ids, is_regular, resize_one, read_regular,
)
from audit.data.readers.resolution import scaled
from audit.errors import DataError

SIDE = 96
IMAGE_BYTES = 3 * SIDE * SIDE


def sniff_x(path: Path) -> bool:
    """An ``*_X.bin`` file whose size is a whole number of 3×96×96 images."""
    try:
        return is_regular(path) and path.name.endswith("_X.bin") and path.stat().st_size % IMAGE_BYTES == 0
    except OSError:
        return False


def read_x(path: Path, size: tuple[int, int] | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """uint8 N×H×W×3 from an ``*_X.bin`` file: 96×96, or ``size`` through the working-size map."""
    if not is_regular(path):
        raise DataError(f"{path}: not a regular file")
    nbytes = path.stat().st_size
    if nbytes % IMAGE_BYTES:
        raise DataError(f"{path}: {nbytes} bytes is not a whole number of 3×96×96 images")
    n = nbytes // IMAGE_BYTES
    h, w = size or (SIDE, SIDE)
    check_budget(n, h * w * 3, max_bytes, str(path), what=f"{n:,} STL-10 images at {h}×{w}×3")
    try:
        raw = np.memmap(path, dtype=np.uint8, mode="r", shape=(n * IMAGE_BYTES,))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    planes = raw.reshape(n, 3, SIDE, SIDE)
    out = np.empty((n, h, w, 3), np.uint8)
    for s in range(0, n, 1024):
        part = np.ascontiguousarray(planes[s : s + 1024].transpose(0, 3, 2, 1))
        out[s : s + len(part)] = part if (h, w) == (SIDE, SIDE) else np.stack([resize_one(im, (h, w)) for im in part])
    return out


def read_y(path: Path, n: int) -> np.ndarray:
    """int64 labels 0..9 from a ``*_y.bin`` file of n labels 1..10."""
    y = np.frombuffer(read_regular(path, 16 * n + 16), dtype=np.uint8).astype(np.int64)
    if len(y) != n:
        raise DataError(f"{path}: {len(y)} labels for {n} images")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise DataError(f"{path}: STL-10 labels must lie in 1..10; found {y.min()}..{y.max()}")
    return y - 1


def _class_names(root: Path) -> tuple[str, ...] | None:
    f = root / "class_names.txt"
    if not f.is_file():
        return None
    text = read_regular(f, 1 << 20).decode("utf-8", "replace")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    return names or None


def read_set(path: Path, opts=None) -> ImageSet:
    """One ``*_X.bin`` file, with labels from the ``*_y.bin`` beside it when there is one, at the
    requested size or the working size (``opts.size``, else 96×96 capped at ``opts.max_side``)."""
    size = None if opts is None else (opts.size or scaled((SIDE, SIDE), opts.max_side))
    images = read_x(path, size, opts.max_bytes if opts is not None else DEFAULT_MAX_BYTES)
    y_path = path.with_name(path.name[: -len("_X.bin")] + "_y.bin")
    labels = read_y(y_path, len(images)) if y_path.is_file() else None
    names = _class_names(path.parent) if labels is not None else None
    n, (h, w) = len(images), images.shape[1:3]
    resized = (h, w) != (SIDE, SIDE)
    notes = (f"resized {n} of {n} images to {h}×{w}",) if resized else ()
    summary = {"native_sizes": [{"size": f"{SIDE}x{SIDE}", "count": n}]}
    if resized:
        summary["resized"] = {"count": n, "from": f"{SIDE}x{SIDE}", "to": f"{h}x{w}"}
    return ImageSet(images, index_ids(n), labels, root=path, class_names=names, notes=notes, summary=summary)


def sniff_dir(path: Path) -> bool:
    return path.is_dir() and any((path / f"{s}_X.bin").is_file() for s in ("train", "unlabeled"))


def read_dir(path: Path, opts=None) -> Splits:
    names = _class_names(path)
    parts: dict[str, ImageSet | None] = {}
    for split in ("train", "test", "unlabeled"):
        x = path / f"{split}_X.bin"
        if not x.is_file():
            parts[split] = None
            continue
        images = read_x(x, None, opts.max_bytes if opts is not None else DEFAULT_MAX_BYTES)
        labels = None
        if split != "unlabeled":
            y = path / f"{split}_y.bin"
            if not y.is_file():
                raise DataError(f"{path}: {x.name} has no {y.name} beside it")
            labels = read_y(y, len(images))
        parts[split] = ImageSet(images, index_ids(len(images), f"{split}/"), labels, root=path,
                                class_names=names if labels is not None else None)
    if parts["train"] is None:
        raise DataError(f"{path}: no train_X.bin (an STL-10 directory needs the labeled train split)")
    return Splits(train=parts["train"], test=parts["test"], unlabeled=parts["unlabeled"], name="stl10")
