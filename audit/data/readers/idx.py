"""IDX files (``*-idx3-ubyte[.gz]`` images, ``*-idx1-ubyte[.gz]`` labels): MNIST, Fashion-MNIST.

Format: 2 zero bytes, a type code (0x08 = uint8), the number of dimensions, then one big-endian
uint32 per dimension, then the data.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from audit.data.readers._common import (
    DEFAULT_MAX_BYTES, NotRegularFile, budget_error, check_budget, open_regular, os_reason,
)
from audit.errors import DataError


def _open(path: Path):
    """A binary stream of the IDX bytes (gunzipped for ``.gz``), opened without blocking on a
    FIFO and only for a regular file."""
    try:
        fd, st = open_regular(path)
    except NotRegularFile as exc:
        raise DataError(f"{path}: {exc.strerror}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read IDX file ({os_reason(exc)})") from None
    fh = os.fdopen(fd, "rb")
    return (gzip.GzipFile(fileobj=fh, mode="rb") if path.name.endswith(".gz") else fh), fh, st.st_size


def read_idx(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """The array stored in one IDX file (uint8 only, as MNIST-style files are).

    The header's dimensions are checked before any data is read: a dimension of 0, a product
    over ``max_bytes`` (a 3 MB gzip file can claim 6 GB), or a raw file whose size disagrees is
    refused; the data is then read into one buffer of exactly the claimed size."""
    path = Path(path)
    stream, raw_fh, file_size = _open(path)
    try:
        with stream:
            head = _read(stream, 4, path)
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise DataError(f"{path}: not an IDX file (bad magic number)")
            if head[2] != 0x08:
                raise DataError(f"{path}: IDX type code 0x{head[2]:02x} is not supported (only uint8, 0x08)")
            ndim = head[3]
            if not 1 <= ndim <= 4:
                raise DataError(f"{path}: IDX files with {ndim} dimensions are not supported (1 to 4)")
            raw_dims = _read(stream, 4 * ndim, path)
            if len(raw_dims) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            dims = tuple(int.from_bytes(raw_dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
            if 0 in dims:
                raise DataError(f"{path}: IDX header has a dimension of 0 ({dims}): no data")
            size = 1
            for d in dims:  # Python ints: a product of four uint32 never overflows to 0 here
                size *= d
            if size > max_bytes:
                raise budget_error(size, max_bytes, str(path), f"an IDX array of shape {dims}")
            if ndim == 3:
                check_budget(dims[0], dims[1] * dims[2], max_bytes, str(path), what=f"IDX images {dims}")
            header = 4 + 4 * ndim
            if not path.name.endswith(".gz") and file_size - header != size:
                raise DataError(f"{path}: IDX header says {dims} ({size} bytes) but the file holds {file_size - header}")
            out = np.empty(size, np.uint8)  # pages are touched only as data arrives
            got = _read_into(stream, out, path)
            if got != size or stream.read(1):
                raise DataError(f"{path}: IDX header says {dims} ({size} bytes) but the file holds "
                                f"{'more' if got == size else got}")
    finally:
        raw_fh.close()
    return out.reshape(dims)


def _read(stream, n: int, path: Path) -> bytes:
    try:
        return stream.read(n)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from None


def _read_into(stream, out: np.ndarray, path: Path) -> int:
    view, got = memoryview(out), 0
    try:
        while got < len(out):
            n = stream.readinto(view[got : got + (16 << 20)])
            if not n:
                break
            got += n
    except (OSError, EOFError, gzip.BadGzipFile, ValueError) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from None
    return got


def read_idx_images(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """uint8 N×H×W×1 from an idx3 file."""
    arr = read_idx(path, max_bytes)
    if arr.ndim != 3:
        raise DataError(f"{path}: expected a 3-dimensional IDX image file, got {arr.ndim} dimensions")
    return arr[..., None]


def read_idx_pair(images: str | Path, labels: str | Path,
                  max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[np.ndarray, np.ndarray]:
    x = read_idx_images(images, max_bytes)
    y = read_idx(labels, max_bytes)
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{labels}: {len(y)} labels for {len(x)} images in {images}")
    return x, y.astype(np.int64)


# --- single files and MNIST-style directories -------------------------------------------------
# Names: ``train-images-idx3-ubyte[.gz]`` pairs with ``train-labels-idx1-ubyte[.gz]``; the
# ``train-images.idx3-ubyte`` spelling of some mirrors is accepted too. A prefix starting with
# ``train`` is the train split, ``t10k`` or ``test`` the test split.


def _idx_header(path: Path) -> bytes:
    try:
        stream, raw_fh, _ = _open(path)
    except DataError:
        return b""
    try:
        with stream:
            return stream.read(4)
    except (OSError, EOFError, gzip.BadGzipFile):
        return b""
    finally:
        raw_fh.close()


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


def read_idx3_file(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 N×H×W×1, and int64 labels when the paired idx1 file lies beside it."""
    path = Path(path)
    lab = labels_for(path)
    if lab is None:
        return read_idx_images(path, max_bytes), None
    return read_idx_pair(path, lab, max_bytes)


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
