"""SVHN cropped digits: ``train_32x32.mat``, ``test_32x32.mat`` (``extra_32x32.mat`` ignored).

MATLAB v5 files read with ``scipy.io.loadmat`` (no code execution: it only builds arrays).
``X`` is uint8 32×32×3×N, ``y`` is N×1 with labels 1..10 where 10 means the digit 0; we map it to
0 so label i is digit i. MATLAB v7.3 files (HDF5) are refused with a message.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audit.data.imageset import ImageSet, Splits
from audit.data.readers._common import head, index_ids
from audit.errors import DataError

CLASS_NAMES = tuple(str(i) for i in range(10))


def sniff_mat(path: Path) -> bool:
    """A MATLAB 5 file: its 116-byte text header begins with 'MATLAB'."""
    return path.is_file() and head(path, 6) == b"MATLAB"


def read_mat(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 N×32×32×3 and int64 labels in 0..9 (None when the file has no ``y``)."""
    from scipy.io import loadmat

    if head(path, 20).startswith(b"MATLAB 7.3"):
        raise DataError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; save as v5 ('-v7' or older)")
    try:
        mat = loadmat(str(path), variable_names=["X", "y"])
    except (ValueError, OSError, TypeError, NotImplementedError) as exc:
        raise DataError(f"{path}: not a readable SVHN .mat file ({exc})") from None
    if "X" not in mat:
        raise DataError(f"{path}: no 'X' variable (expected uint8 32×32×3×N)")
    x = mat["X"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[2] != 3:
        raise DataError(f"{path}: 'X' must be uint8 H×W×3×N; got {x.dtype} {x.shape}")
    images = np.ascontiguousarray(x.transpose(3, 0, 1, 2))
    if "y" not in mat:
        return images, None
    y = np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    if len(y) != len(images):
        raise DataError(f"{path}: {len(y)} labels for {len(images)} images")
    if len(y) and (y.min() < 0 or y.max() > 10):
        raise DataError(f"{path}: SVHN labels must lie in 1..10 (10 is digit 0); found {y.min()}..{y.max()}")
    return images, np.where(y == 10, 0, y)


def read_set(path: Path, opts=None) -> ImageSet:
    images, labels = read_mat(path)
    return ImageSet(images, index_ids(len(images)), labels, root=path,
                    class_names=CLASS_NAMES if labels is not None else None)


def sniff_dir(path: Path) -> bool:
    return path.is_dir() and (path / "train_32x32.mat").is_file()


def read_dir(path: Path, opts=None) -> Splits:
    parts = {}
    for split in ("train", "test"):
        f = path / f"{split}_32x32.mat"
        if not f.is_file():
            parts[split] = None
            continue
        images, labels = read_mat(f)
        if labels is None:
            raise DataError(f"{f}: no 'y' labels")
        parts[split] = ImageSet(images, index_ids(len(images), f"{split}/"), labels, root=path, class_names=CLASS_NAMES)
    if parts["train"] is None:
        raise DataError(f"{path}: no train_32x32.mat")
    return Splits(train=parts["train"], test=parts["test"], name="svhn")
