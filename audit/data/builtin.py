"""Built-in datasets, available offline: ``digits`` (scikit-learn's bundled 1797 8×8 images)
and ``fashion-mnist`` (Debian package ``dataset-fashion-mnist``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from audit.data.imageset import ImageSet, Splits
from audit.errors import DataError, invalid_parameter
from audit.registry import Registry

DIGITS_TEST_FRACTION = 0.2  # digits has no split of its own; ours is fixed (seed 0, stratified)
FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot",
)

# name -> loader(root): the names are dataset identifiers (``--dataset fashion-mnist``), kept as
# the datasets spell them; ``root`` is where a built-in's files are (None: its default place)
BUILTINS: Registry[Callable[[str | Path | None], Splits]] = Registry("built-in dataset")


@BUILTINS("digits")
def digits(root: str | Path | None = None) -> Splits:
    """scikit-learn digits as uint8 8×8×1 (values 0..16 scaled to 0..255), fixed stratified split.
    It ships inside scikit-learn: there is no ``root`` to give."""
    if root is not None:
        raise invalid_parameter("root", "load_dataset", "None for the built-in 'digits'", root)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int64)
    rng = np.random.default_rng(0)
    test_idx = []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        test_idx.extend(rng.choice(idx, size=int(round(len(idx) * DIGITS_TEST_FRACTION)), replace=False))
    is_test = np.zeros(len(labels), bool)
    is_test[test_idx] = True
    names = tuple(str(i) for i in range(10))

    def part(mask: np.ndarray, split: str) -> ImageSet:
        idx = np.flatnonzero(mask)
        return ImageSet(
            images=np.ascontiguousarray(images[idx]),
            ids=tuple(f"{split}/{i:05d}" for i in idx),
            labels=labels[idx],
            class_names=names,
        )

    return Splits(train=part(~is_test, "train"), test=part(is_test, "test"), name="digits")


@BUILTINS("fashion-mnist")
def fashion_mnist(root: str | Path | None = None) -> Splits:
    """Fashion-MNIST train (60k) and test (10k) from the IDX files under ``root``."""
    from audit.data.readers.idx import read_idx_pair

    base = Path(root) if root is not None else FASHION_MNIST_ROOT
    files = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
    out = {}
    for split, (img, lab) in files.items():
        img_p = _find(base, img)
        lab_p = _find(base, lab)
        if img_p is None or lab_p is None:
            raise DataError(
                f"Fashion-MNIST not found under {base}: install the Debian package "
                f"'dataset-fashion-mnist' (apt-get install dataset-fashion-mnist) or pass --root DIR "
                f"holding {img}[.gz] and {lab}[.gz]"
            )
        images, labels = read_idx_pair(img_p, lab_p)
        out[split] = ImageSet(
            images=images,
            ids=tuple(f"{split}/{i:05d}" for i in range(len(images))),
            labels=labels,
            class_names=FASHION_MNIST_CLASSES,
        )
    return Splits(train=out["train"], test=out["test"], name="fashion-mnist")


def _find(base: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (base / name).is_file():
            return base / name
    return None
