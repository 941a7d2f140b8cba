"""SVHN cropped digits: ``train_32x32.mat``, ``test_32x32.mat`` (``extra_32x32.mat`` ignored).

MATLAB v5 files read with ``scipy.io.loadmat`` (no code execution: it only builds arrays), from
bytes read safely (a regular file within the memory budget); the variables' shapes are read
first (``whosmat``) so a small compressed file that inflates past the budget is refused before
``loadmat`` allocates it. ``X`` is uint8 32×32×3×N, ``y`` is N×1 with labels 1..10 where 10 means the digit 0; we map it to
0 so label i is digit i. MATLAB v7.3 files (HDF5) are refused with a message.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np

from audit.data.imageset import ImageSet, Splits
from audit.data.readers._common import DEFAULT_MAX_BYTES, budget_error, head, index_ids, is_regular, read_regular
from audit.errors import DataError

CLASS_NAMES = tuple(str(i) for i in range(10))


def sniff_mat(path: Path) -> bool:
    """A MATLAB 5 file: its 116-byte text header begins with 'MATLAB'."""
    return is_regular(path) and head(path, 6) == b"MATLAB"


_MAT_ERRORS = (ValueError, OSError, TypeError, NotImplementedError, EOFError, KeyError, IndexError, AttributeError,
               OverflowError, MemoryError)


def read_mat(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 N×32×32×3 and int64 labels in 0..9 (None when the file has no ``y``)."""
    from scipy.io import loadmat

    if head(path, 20).startswith(b"MATLAB 7.3"):
        raise DataError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; save as v5 ('-v7' or older)")
    raw = read_regular(path, max_bytes)
    need = sum(8 * n for name, n in mat_sizes(raw, str(path)) if name in ("X", "y"))  # at most 8 B an element
    if need > max_bytes:
        raise budget_error(need, max_bytes, str(path), "its X and y variables")
    try:
        mat = loadmat(io.BytesIO(raw), variable_names=["X", "y"])
    except DataError:
        raise
    except _MAT_ERRORS as exc:
        raise DataError(f"{path}: not a readable SVHN .mat file ({type(exc).__name__}: {str(exc)[:200]})") from None
    if "X" not in mat:
        raise DataError(f"{path}: no 'X' variable (expected uint8 32×32×3×N)")
    x = mat["X"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[2] != 3:
        raise DataError(f"{path}: 'X' must be uint8 H×W×3×N; got {x.dtype} {x.shape}")
    images = np.ascontiguousarray(x.transpose(3, 0, 1, 2))
    if "y" not in mat:
        return images, None
    y = np.asarray(mat["y"])
    if y.dtype.kind not in "iuf" or (y.dtype.kind == "f" and not np.all(np.isfinite(y) & (y == np.rint(y)))):
        raise DataError(f"{path}: 'y' must hold integer labels 1..10; got {y.dtype}")
    y = y.reshape(-1).astype(np.int64)
    if len(y) != len(images):
        raise DataError(f"{path}: {len(y)} labels for {len(images)} images")
    if len(y) and (y.min() < 0 or y.max() > 10):
        raise DataError(f"{path}: SVHN labels must lie in 1..10 (10 is digit 0); found {y.min()}..{y.max()}")
    return images, np.where(y == 10, 0, y)


def mat_sizes(raw: bytes, where: str) -> list[tuple[str, int]]:
    """(name, element count) of each variable of a MATLAB v5 file, from the element headers only:
    a compressed element is inflated just far enough to read its dimensions (scipy's ``whosmat``
    inflates it whole, which a small file can turn into gigabytes)."""
    if len(raw) < 128:
        raise DataError(f"{where}: not a readable SVHN .mat file (shorter than a MATLAB header)")
    end = "<" if raw[126:128] == b"IM" else ">"
    out, pos = [], 128
    while pos + 8 <= len(raw):
        outer, size = struct.unpack(end + "II", raw[pos : pos + 8])
        body, kind = raw[pos + 8 : pos + 8 + size], outer
        if kind == 15:  # miCOMPRESSED: inflate the first KiB only
            try:
                body = zlib.decompressobj().decompress(body, 1024)
            except zlib.error as exc:
                raise DataError(f"{where}: not a readable SVHN .mat file (corrupt compressed element: {exc})") from None
            if len(body) < 8:
                raise DataError(f"{where}: not a readable SVHN .mat file (truncated element)")
            kind = struct.unpack(end + "I", body[:4])[0]
            body = body[8:]
        if kind == 14:  # miMATRIX: array flags, dimensions, name
            out.append(_matrix_header(body, end, where))
        pos += 8 + size + (-size % 8 if outer != 15 else 0)  # compressed elements are not padded
    return out


def _matrix_header(body: bytes, end: str, where: str) -> tuple[str, int]:
    try:
        pos = 16  # array flags: a tag and 8 bytes
        kind, size = struct.unpack(end + "II", body[pos : pos + 8])
        dims = struct.unpack(end + f"{size // 4}i", body[pos + 8 : pos + 8 + size])
        pos += 8 + size + (-size % 8)
        word = struct.unpack(end + "I", body[pos : pos + 4])[0]
        if word >> 16:  # small data element: the name sits in the tag's second word
            name = body[pos + 4 : pos + 4 + (word >> 16)]
        else:
            n = struct.unpack(end + "I", body[pos + 4 : pos + 8])[0]
            name = body[pos + 8 : pos + 8 + n]
    except struct.error:
        raise DataError(f"{where}: not a readable SVHN .mat file (truncated variable header)") from None
    count = 1
    for d in dims:
        count *= max(int(d), 0)
    return name.decode("latin1"), count


def read_set(path: Path, opts=None) -> ImageSet:
    images, labels = read_mat(path, opts.max_bytes if opts is not None else DEFAULT_MAX_BYTES)
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
        images, labels = read_mat(f, opts.max_bytes if opts is not None else DEFAULT_MAX_BYTES)
        if labels is None:
            raise DataError(f"{f}: no 'y' labels")
        parts[split] = ImageSet(images, index_ids(len(images), f"{split}/"), labels, root=path, class_names=CLASS_NAMES)
    if parts["train"] is None:
        raise DataError(f"{path}: no train_32x32.mat")
    return Splits(train=parts["train"], test=parts["test"], name="svhn")
