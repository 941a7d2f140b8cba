"""One reader per on-disk format, in one explicit registry (STYLE.md 3).

Each :class:`Reader` says, by looking at a path (content first, names only where the format
has no magic number), whether it reads it as one image set (``sniff``/``read``) and whether it
reads it as a dataset with splits (``sniff_splits``/``read_splits``). ``audit.data.load`` asks
them in registry order; the generic ``folder`` reader is asked last for splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from audit.data.imageset import ImageSet, Splits
from audit.data.readers import arrays, cifar, folder, idx, stl10, svhn
from audit.data.readers._common import ReadOptions, index_ids
from audit.errors import DataError
from audit.registry import Registry


@dataclass(frozen=True)
class Reader:
    name: str
    handles: str  # what a user sees in "supported formats" messages
    sniff: Callable[[Path], bool]
    read: Callable[[Path, ReadOptions], ImageSet]
    sniff_splits: Callable[[Path], bool] | None = None
    read_splits: Callable[[Path, ReadOptions], Splits] | None = None


def _idx_set(path: Path, opts: ReadOptions) -> ImageSet:
    images, labels = idx.read_idx3_file(path, opts.max_bytes)
    return ImageSet(images, index_ids(len(images)), labels, root=path)


def _idx_sniff_dir(path: Path) -> bool:
    return "train" in idx.find_idx_splits(path)


def _idx_splits(path: Path, opts: ReadOptions) -> Splits:
    parts = {}
    for split, f in idx.find_idx_splits(path).items():
        images, labels = idx.read_idx3_file(f, opts.max_bytes)
        if labels is None:
            raise DataError(f"{f}: no idx1 labels file beside it")
        parts[split] = ImageSet(images, index_ids(len(images), f"{split}/"), labels, root=path)
    return Splits(train=parts["train"], test=parts.get("test"), name=path.name)


READERS: Registry[Reader] = Registry("reader")
READERS.register("folder", Reader(
    "folder", "a directory of PNG/JPEG/BMP/WebP/GIF images (train/ + test/ or labeled/ class folders for a dataset)",
    lambda p: p.is_dir(), folder.read_folder, folder.sniff_split_folder, folder.read_split_folder))
READERS.register("npz", Reader(
    "npz", ".npz with images (or x / x_train) [+ labels, ids]; x_train/y_train/x_test/y_test for a dataset",
    arrays.sniff_npz, arrays.read_npz, arrays.sniff_npz_splits, arrays.read_npz_splits))
READERS.register("npy", Reader(
    "npy", ".npy image array N×H×W, N×H×W×C or N×C×H×W", arrays.sniff_npy, arrays.read_npy))
READERS.register("idx", Reader(
    "idx", "IDX idx3-ubyte[.gz] file, or an MNIST-style directory of idx3/idx1 pairs",
    idx.sniff_idx3, _idx_set, _idx_sniff_dir, _idx_splits))
READERS.register("cifar", Reader(
    "cifar", "CIFAR-10/100 python batch file, or a cifar-10-batches-py / cifar-100-python directory",
    cifar.sniff_batch, cifar.read_batch_set, cifar.sniff_dir, cifar.read_dir))
READERS.register("svhn", Reader(
    "svhn", "SVHN *_32x32.mat file, or a directory with train_32x32.mat / test_32x32.mat",
    svhn.sniff_mat, svhn.read_set, svhn.sniff_dir, svhn.read_dir))
READERS.register("stl10", Reader(
    "stl10", "STL-10 *_X.bin file, or a directory with train_X.bin / test_X.bin / unlabeled_X.bin",
    stl10.sniff_x, stl10.read_set, stl10.sniff_dir, stl10.read_dir))


def supported_formats() -> str:
    return "; ".join(f"{name}: {READERS.get(name).handles}" for name in READERS)


__all__ = ["READERS", "Reader", "ReadOptions", "supported_formats"]
