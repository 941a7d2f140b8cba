"""NumPy files: ``.npy`` (one image array) and ``.npz`` (named arrays).

``.npz`` keys, first match wins: images ``images``, ``x``, ``X``, ``x_train``, ``data``; labels
``labels``, ``y``, ``Y``, ``y_train``, ``targets``; ids ``ids`` (strings). A split file holds
``x_train``/``y_train`` and ``x_test``/``y_test`` (optionally ``x_unlabeled``).

Layout heuristic for a 3- or 4-dimensional array: N×H×W is gray; N×H×W×C when the last dim is 1
or 3 (this wins when both fit, e.g. N×3×32×3); N×C×H×W when dim 1 is 1 or 3 and the last is
not. Pixels follow :func:`~audit.data.readers._common.to_uint8` (uint8; integers in [0, 255];
floats in [0, 1] scaled by 255, or in [0, 255]).

Always ``allow_pickle=False``: an object array is refused, never unpickled. Shapes are checked
from the headers before any data is read: a tiny file that claims a 10^10-pixel image, a 1.5 MB
``.npz`` whose members inflate to 2,000,000 images, a zero-sized dimension, or arrays whose
total (with the uint8 copy a conversion needs) is over the memory budget are refused with one
line. Members the zip module cannot open (encrypted, deflate64, ...) are a DataError too.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from audit.data.imageset import ImageSet, Splits
from audit.data.readers._common import (
    SCAN_BYTES_PER_IMAGE, ReadOptions, budget_error, harmonise, head, index_ids, is_regular, to_uint8,
)
from audit.errors import DataError

IMAGE_KEYS = ("images", "x", "X", "x_train", "data")
LABEL_KEYS = {"images": "labels", "x": "y", "X": "Y", "x_train": "y_train", "data": "labels"}
EXTRA_LABEL_KEYS = ("labels", "y", "Y", "y_train", "targets")
_NPY_MAGIC = b"\x93NUMPY"


def sniff_npy(path: Path) -> bool:
    return is_regular(path) and head(path, 6) == _NPY_MAGIC


def sniff_npz(path: Path) -> bool:
    if not (is_regular(path) and head(path, 4) == b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith(".npy") for n in zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, NotImplementedError):
        return False


def to_nhwc(arr: np.ndarray, where: str) -> np.ndarray:
    """uint8 N×H×W×C (C in 1, 3), C-contiguous, from any layout the module docstring allows."""
    if arr.ndim == 3:
        arr = arr[..., None]
    elif arr.ndim == 4:
        if arr.shape[3] not in (1, 3):
            if arr.shape[1] in (1, 3):
                arr = arr.transpose(0, 2, 3, 1)
            else:
                raise DataError(
                    f"{where}: cannot tell the channel axis of shape {arr.shape}; "
                    "expected N×H×W, N×H×W×C or N×C×H×W with C in (1, 3)"
                )
    else:
        raise DataError(f"{where}: expected a 3- or 4-dimensional image array, got shape {arr.shape}")
    return np.ascontiguousarray(to_uint8(arr, where))


def _check_header(shape: tuple[int, ...], where: str, max_pixels: int) -> None:
    """Refuse a claimed image shape before reading its data (a compressed npz member can be a bomb)."""
    if len(shape) in (3, 4):
        if 0 in shape[1:]:
            raise DataError(f"{where}: images of shape {shape[1:]} have a zero-sized dimension")
        hw = sorted(shape[1:], reverse=True)[:2]  # the two largest non-N dims: H and W, whatever the layout
        if hw[0] * hw[1] > max_pixels:
            raise DataError(f"{where}: images of shape {shape[1:]} exceed max_pixels={max_pixels}")


def array_cost(shape: tuple[int, ...], dtype: np.dtype, image: bool) -> int:
    """Bytes an array costs once read: its data, plus the uint8 copy a conversion makes and the
    scan's per-image state for image arrays (plain ints: no overflow)."""
    n = 1
    for d in shape:
        n *= int(d)
    cost = n * int(dtype.itemsize)
    if image:
        cost += (n if dtype != np.uint8 else 0) + (int(shape[0]) if shape else 0) * SCAN_BYTES_PER_IMAGE
    return cost


_ZIP_ERRORS = (ValueError, OSError, zipfile.BadZipFile, EOFError, RuntimeError, NotImplementedError)


def _member_header(zf: zipfile.ZipFile, name: str, where: str) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    try:
        with zf.open(name + ".npy") as fh:  # header only: refuse before inflating the data
            version = fmt.read_magic(fh)
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read_header(fh)
    except _ZIP_ERRORS as exc:  # encrypted ("password required"), deflate64, corrupt header, ...
        raise DataError(f"{where}: cannot read array '{name}' ({exc})") from None
    if dtype.hasobject:
        raise DataError(f"{where}: '{name}' is an object array; refused (allow_pickle=False)")
    return tuple(int(d) for d in shape), dtype


def _load_member(zf: zipfile.ZipFile, name: str, where: str) -> np.ndarray:
    try:
        with zf.open(name + ".npy") as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)
    except MemoryError:
        raise DataError(f"{where}: array '{name}' does not fit in memory") from None
    except _ZIP_ERRORS as exc:
        raise DataError(f"{where}: cannot read array '{name}' ({exc})") from None


def read_npz_arrays(path: Path, max_pixels: int | None = None, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Every array of an npz (pickle never allowed). Every member's header is read first: image
    shapes are checked against ``max_pixels``, and the total against ``max_bytes``."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    with zf:
        names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
        total = 0
        for n in names:
            shape, dtype = _member_header(zf, n, str(path))
            image = n in IMAGE_KEYS or n.startswith("x")
            if image and max_pixels is not None:
                _check_header(shape, str(path), max_pixels)
            total += array_cost(shape, dtype, image)
        if max_bytes is not None and total > max_bytes:
            raise budget_error(total, max_bytes, str(path), f"reading its {len(names)} arrays")
        return {n: _load_member(zf, n, str(path)) for n in names}


def _labels(y: np.ndarray | None, n: int, where: str) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:  # N×1 columns, as MATLAB-born arrays often are
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n or not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise DataError(f"{where}: labels must be {n} integers; got {y.dtype} of shape {y.shape}")
    if len(y) and y.min() < 0:
        raise DataError(f"{where}: labels must be >= 0; found {int(y.min())}")
    return y.astype(np.int64)


def _ids(raw: np.ndarray | None, n: int, where: str, prefix: str = "") -> tuple[str, ...]:
    if raw is None:
        return index_ids(n, prefix)
    if raw.dtype.kind not in "US" or raw.shape != (n,):
        raise DataError(f"{where}: 'ids' must be {n} strings; got {raw.dtype} of shape {raw.shape}")
    ids = tuple(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in raw.tolist())
    if len(set(ids)) != n:
        raise DataError(f"{where}: 'ids' are not unique")
    return ids


def read_npz(path: Path, opts: ReadOptions = ReadOptions()) -> ImageSet:
    """One image set from an npz (see the key list in the module docstring)."""
    arrays = read_npz_arrays(path, opts.max_pixels, opts.max_bytes)
    key = next((k for k in IMAGE_KEYS if k in arrays), None)
    if key is None:
        raise DataError(
            f"{path}: no image array; expected one of {', '.join(IMAGE_KEYS)}; found {', '.join(arrays) or 'none'}"
        )
    images = to_nhwc(arrays[key], f"{path}['{key}']")
    y = arrays.get(LABEL_KEYS[key])
    if y is None:
        y = next((arrays[k] for k in EXTRA_LABEL_KEYS if k in arrays and len(arrays[k]) == len(images)), None)
    return ImageSet(
        images=images,
        ids=_ids(arrays.get("ids"), len(images), str(path)),
        labels=_labels(y, len(images), str(path)),
        root=path,
    )


def read_npy(path: Path, opts: ReadOptions = ReadOptions()) -> ImageSet:
    """One image set from an npy holding the image array alone (no labels).

    The file is memory-mapped read-only: a uint8 C-contiguous N×H×W(×C) array is never copied,
    so a pool larger than memory can be scanned (``audit.features`` streams over it); other
    dtypes and the N×C×H×W layout are converted in memory."""
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy image array ({exc})") from None
    _check_header(arr.shape, str(path), opts.max_pixels)
    in_place = arr.dtype == np.uint8 and arr.ndim in (3, 4) and (arr.ndim == 3 or arr.shape[3] in (1, 3))
    # a uint8 N×H×W(×C) map is used as it is (pages stay in the page cache); anything else is
    # converted into memory, so it counts against the budget
    cost = len(arr) * SCAN_BYTES_PER_IMAGE if in_place else array_cost(arr.shape, np.dtype(np.uint8), True)
    if cost > opts.max_bytes:
        raise budget_error(cost, opts.max_bytes, str(path), f"an image array of shape {arr.shape}")
    images = to_nhwc(arr, str(path))
    return ImageSet(images=images, ids=index_ids(len(images)), root=path)


def sniff_npz_splits(path: Path) -> bool:
    if not sniff_npz(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            names = {n[:-4] for n in zf.namelist()}
    except _ZIP_ERRORS:
        return False
    return "x_train" in names or bool(names & set(IMAGE_KEYS))


def read_npz_splits(path: Path, opts: ReadOptions = ReadOptions()) -> Splits:
    """x_train/y_train, x_test/y_test, x_unlabeled; or a single images/labels set as train."""
    arrays = read_npz_arrays(path, opts.max_pixels, opts.max_bytes)
    if "x_train" not in arrays:
        return Splits(train=read_npz(path, opts), name=path.stem)
    parts = []
    for split in ("train", "test", "unlabeled"):
        x = arrays.get(f"x_{split}")
        if x is None:
            parts.append(None)
            continue
        where = f"{path}['x_{split}']"
        images = to_nhwc(x, where)
        parts.append(ImageSet(
            images=images,
            ids=index_ids(len(images), f"{split}/"),
            labels=None if split == "unlabeled" else _labels(arrays.get(f"y_{split}"), len(images), where),
            root=path,
        ))
    train, test, unlabeled = harmonise(parts)
    return Splits(train=train, test=test, unlabeled=unlabeled, name=path.stem)
