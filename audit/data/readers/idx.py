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
