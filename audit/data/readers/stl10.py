"""STL-10 binary files: ``{train,test,unlabeled}_X.bin`` and ``{train,test}_y.bin``.

``*_X.bin`` is uint8, 3×96×96 per image, each plane stored column-major (MATLAB order), so
``reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)`` gives N×96×96×3 (H, W, C) upright images.
``*_y.bin`` is uint8 labels 1..10, mapped to 0..9. ``class_names.txt`` gives the names.
The unlabeled pool (100k images, 2.8 GB) is read only when present.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audit.data.imageset import ImageSet, Splits
from audit.data.readers._common import index_ids
from audit.errors import DataError

SIDE = 96
IMAGE_BYTES = 3 * SIDE * SIDE


def sniff_x(path: Path) -> bool:
    """An ``*_X.bin`` file whose size is a whole number of 3×96×96 images."""
    try:
        return path.is_file() and path.name.endswith("_X.bin") and path.stat().st_size % IMAGE_BYTES == 0
    except OSError:
        return False


def read_x(path: Path) -> np.ndarray:
    """uint8 N×96×96×3 from an ``*_X.bin`` file."""
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if raw.size % IMAGE_BYTES:
        raise DataError(f"{path}: {raw.size} bytes is not a whole number of 3×96×96 images")
    return np.ascontiguousarray(raw.reshape(-1, 3, SIDE, SIDE).transpose(0, 3, 2, 1))


def read_y(path: Path, n: int) -> np.ndarray:
    """int64 labels 0..9 from a ``*_y.bin`` file of n labels 1..10."""
    y = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if len(y) != n:
        raise DataError(f"{path}: {len(y)} labels for {n} images")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise DataError(f"{path}: STL-10 labels must lie in 1..10; found {y.min()}..{y.max()}")
    return y - 1


def _class_names(root: Path) -> tuple[str, ...] | None:
    f = root / "class_names.txt"
    if not f.is_file():
        return None
    names = tuple(line.strip() for line in f.read_text(errors="replace").splitlines() if line.strip())
    return names or None


def read_set(path: Path, opts=None) -> ImageSet:
    """One ``*_X.bin`` file, with labels from the ``*_y.bin`` beside it when there is one."""
    images = read_x(path)
    y_path = path.with_name(path.name[: -len("_X.bin")] + "_y.bin")
    labels = read_y(y_path, len(images)) if y_path.is_file() else None
    names = _class_names(path.parent) if labels is not None else None
    return ImageSet(images, index_ids(len(images)), labels, root=path, class_names=names)


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
        images = read_x(x)
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
