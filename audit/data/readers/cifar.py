"""CIFAR-10 / CIFAR-100 "python version" batches: pickled dicts, read without trusting pickle.

A pickle can run any callable it names. :class:`SafeUnpickler` admits only the globals that a
real CIFAR batch needs to rebuild numpy arrays, and refuses every other one with
UnsafePickleError naming it, before anything is called.

Real files were pickled by Python 2 at protocol 2: keys are byte strings (``b'data'``,
``b'labels'`` or ``b'fine_labels'``), ``data`` is uint8 N×3072 in CHW order (1024 red, 1024
green, 1024 blue, each row-major 32×32). Python 3 writes bytes at protocol <= 2 as
``_codecs.encode(text, 'latin1')``; that global is admitted only with the latin-1 codec.

Directories: ``cifar-10-batches-py/`` (``data_batch_1..5``, ``test_batch``, ``batches.meta``)
and ``cifar-100-python/`` (``train``, ``test``, ``meta``).
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path

import numpy as np

from audit.data.imageset import ImageSet, Splits
from audit.data.readers._common import head, index_ids
from audit.errors import DataError, UnsafePickleError

try:  # numpy >= 2 moved the array internals to numpy._core; pickles still name numpy.core
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    """``_codecs.encode`` restricted to what protocol-2 bytes need: text -> latin-1 bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise UnsafePickleError(f"refused _codecs.encode with codec {encoding!r}: only latin1 is allowed")
    return codecs.encode(text, "latin1")


_ARRAY_GLOBALS = {
    "_reconstruct": _multiarray._reconstruct,
    "scalar": _multiarray.scalar,
}
ALLOWED = {
    **{(mod, name): obj for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
       for name, obj in _ARRAY_GLOBALS.items()},
    # protocol 5 pickles of contiguous arrays go through _frombuffer (bytes + dtype + shape)
    ("numpy.core.numeric", "_frombuffer"): getattr(_numeric, "_frombuffer", None),
    ("numpy._core.numeric", "_frombuffer"): getattr(_numeric, "_frombuffer", None),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}
ALLOWED = {k: v for k, v in ALLOWED.items() if v is not None}


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler whose only callables are the allow-listed array constructors."""

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refused to unpickle global '{module}.{name}': a CIFAR batch holds only numpy "
                "arrays, lists and strings (the file may be malicious)"
            ) from None

    def persistent_load(self, pid):
        raise UnsafePickleError("refused a pickle persistent id: not part of a CIFAR batch")


def safe_load(path: Path) -> dict:
    """The dict stored in a CIFAR pickle, keys decoded to str; only allow-listed globals."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        obj = SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path}: {exc}") from None
    except Exception as exc:  # truncated or garbled stream: data error, not a crash
        raise DataError(f"{path}: not a readable CIFAR batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: a CIFAR batch is a dict; found {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def sniff_batch(path: Path) -> bool:
    """A pickle (protocol 2 or later) file: the only pickle format we read is CIFAR's."""
    h = head(path, 2)
    return path.is_file() and len(h) == 2 and h[0] == 0x80 and 2 <= h[1] <= 5


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray | None, str]:
    """uint8 N×32×32×3, int64 labels (fine labels for CIFAR-100) or None, and which key gave them."""
    d = safe_load(path)
    if "data" not in d:
        raise DataError(f"{path}: no 'data' entry; keys are {', '.join(sorted(d))}")
    data = np.asarray(d["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: 'data' must be uint8 N×3072 (32×32×3 in CHW order); got {data.dtype} {data.shape}")
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    for key in ("labels", "fine_labels"):
        if key in d:
            labels = np.asarray(d[key], dtype=np.int64).reshape(-1)
            if len(labels) != len(images):
                raise DataError(f"{path}: {len(labels)} labels for {len(images)} images")
            return images, labels, key
    return images, None, ""


def _names(path: Path, key: str) -> tuple[str, ...] | None:
    if not path.is_file():
        return None
    names = safe_load(path).get(key)
    if names is None:
        return None
    return tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names)


def read_batch_set(path: Path, opts=None) -> ImageSet:
    """One batch file as an ImageSet with ids ``00000``…; class names from a meta file beside it."""
    images, labels, key = read_batch(path)
    meta = ("meta", "fine_label_names") if key == "fine_labels" else ("batches.meta", "label_names")
    return ImageSet(images, index_ids(len(images)), labels, root=path,
                    class_names=_names(path.parent / meta[0], meta[1]) if labels is not None else None)


_LAYOUTS = {  # name: (train files, test files, meta file, meta key)
    "cifar-10": ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta", "label_names"),
    "cifar-100": (["train"], ["test"], "meta", "fine_label_names"),
}


def _layout(root: Path) -> str | None:
    if not root.is_dir():
        return None
    if (root / "data_batch_1").is_file() or (root / "test_batch").is_file():
        return "cifar-10"
    if (root / "train").is_file() and (root / "meta").is_file():
        return "cifar-100"
    return None


def sniff_dir(path: Path) -> bool:
    return _layout(path) is not None


def read_dir(path: Path, opts=None) -> Splits:
    """CIFAR-10 or CIFAR-100 directory -> Splits(train, test); ids ``train/00000``, ``test/00000``."""
    kind = _layout(path)
    if kind is None:
        raise DataError(f"{path}: not a CIFAR-10 or CIFAR-100 python directory")
    train_files, test_files, meta, meta_key = _LAYOUTS[kind]
    names = _names(path / meta, meta_key)
    parts = {}
    for split, files in (("train", train_files), ("test", test_files)):
        present = [path / f for f in files if (path / f).is_file()]
        if not present:
            parts[split] = None
            continue
        batches = [read_batch(p) for p in present]
        if any(b[1] is None for b in batches):
            raise DataError(f"{path}: a {split} batch has no labels")
        images = np.concatenate([b[0] for b in batches])
        labels = np.concatenate([b[1] for b in batches])
        parts[split] = ImageSet(images, index_ids(len(images), f"{split}/"), labels, root=path, class_names=names)
    if parts["train"] is None:
        raise DataError(f"{path}: no training batch ({', '.join(train_files)})")
    return Splits(train=parts["train"], test=parts["test"], name=kind)
