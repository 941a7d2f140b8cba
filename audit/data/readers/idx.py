"""IDX files (``*-idx3-ubyte[.gz]`` images, ``*-idx1-ubyte[.gz]`` labels): MNIST, Fashion-MNIST.

Format: 2 zero bytes, a type code (0x08 = uint8), the number of dimensions, then one big-endian
uint32 per dimension, then the data.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from audit.errors import DataError

_MAX_BYTES = 1 << 33  # refuse a header that claims more than 8 GiB: a corrupt or hostile file


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in one IDX file (uint8 only, as MNIST-style files are)."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise DataError(f"{path}: IDX type code 0x{raw[2]:02x} is not supported (only uint8, 0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(dims, dtype=np.int64))
    if size > _MAX_BYTES or len(raw) - header != size:
        raise DataError(f"{path}: IDX header says {dims} ({size} bytes) but the file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def read_idx_images(path: str | Path) -> np.ndarray:
    """uint8 N×H×W×1 from an idx3 file."""
    arr = read_idx(path)
    if arr.ndim != 3:
        raise DataError(f"{path}: expected a 3-dimensional IDX image file, got {arr.ndim} dimensions")
    return arr[..., None]


def read_idx_pair(images: str | Path, labels: str | Path) -> tuple[np.ndarray, np.ndarray]:
    x = read_idx_images(images)
    y = read_idx(labels)
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{labels}: {len(y)} labels for {len(x)} images in {images}")
    return x, y.astype(np.int64)


# --- single files and MNIST-style directories -------------------------------------------------
# Names: ``train-images-idx3-ubyte[.gz]`` pairs with ``train-labels-idx1-ubyte[.gz]``; the
# ``train-images.idx3-ubyte`` spelling of some mirrors is accepted too. A prefix starting with
# ``train`` is the train split, ``t10k`` or ``test`` the test split.


def _idx_header(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return fh.read(4)
        with open(path, "rb") as fh:
            return fh.read(4)
    except (OSError, EOFError):
        return b""


def sniff_idx3(path: str | Path) -> bool:
    """A file (gzipped or not) that starts with an uint8 3-dimensional IDX header."""
    path = Path(path)
    return path.is_file() and _idx_header(path) == b"\x00\x00\x08\x03"


def labels_for(images: Path) -> Path | None:
    """The idx1 labels file that pairs with an idx3 images file, if it exists beside it."""
    name = images.name
    for a, b in (("images-idx3", "labels-idx1"), ("images.idx3", "labels.idx1")):
        if a in name:
            cand = images.with_name(name.replace(a, b))
            for c in (cand, cand.with_name(cand.name + ".gz"), cand.with_name(cand.name.removesuffix(".gz"))):
                if c.is_file():
                    return c
    return None


def read_idx3_file(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 N×H×W×1, and int64 labels when the paired idx1 file lies beside it."""
    path = Path(path)
    lab = labels_for(path)
    if lab is None:
        return read_idx_images(path), None
    return read_idx_pair(path, lab)


def find_idx_splits(root: str | Path) -> dict[str, Path]:
    """{'train': images file, 'test': images file} for the idx3 files directly under ``root``."""
    root = Path(root)
    out: dict[str, Path] = {}
    if not root.is_dir():
        return out
    for p in sorted(root.iterdir()):
        if not p.is_file() or ("idx3" not in p.name) or not sniff_idx3(p):
            continue
        low = p.name.lower()
        split = "train" if low.startswith("train") else "test" if low.startswith(("t10k", "test")) else None
        if split is not None:
            out.setdefault(split, p)
    return out
