"""CIFAR-10 / CIFAR-100 "python version" batches: pickled dicts, read without trusting pickle.

A pickle can run any callable it names. :class:`SafeUnpickler` admits only the globals that a
real CIFAR batch needs to rebuild numpy arrays, and refuses every other one with
UnsafePickleError naming it, before anything is called.

Real files were pickled by Python 2 at protocol 2: keys are byte strings (``b'data'``,
``b'labels'`` or ``b'fine_labels'``), ``data`` is uint8 N×3072 in CHW order (1024 red, 1024
green, 1024 blue, each row-major 32×32). Python 3 writes bytes at protocol <= 2 as
``_codecs.encode(text, 'latin1')``; that global is admitted only with the latin-1 codec.

A pickle can also be a memory bomb without running code: memo references let a few bytes
rebuild a large object many times. So every allow-listed constructor counts the bytes it builds,
and a load stops once they pass twice the file's size (a real batch builds its data once); an
array constructor may not allocate more than the file holds; the file itself must fit the
memory budget. After loading, ``data`` must be a uint8 N×3072 array no larger than the file, and
labels a flat list (or integer array) of N ints in [0, 2^31): strings, dicts, 2^80 or nested
lists are refused with a clear message instead of reaching numpy.

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
from audit.data.readers._common import DEFAULT_MAX_BYTES, check_budget, head, index_ids, is_regular, read_regular
from audit.errors import DataError, UnsafePickleError

try:  # numpy >= 2 moved the array internals to numpy._core; pickles still name numpy.core
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


class _Budget:
    """Bytes built so far by one load's constructors, and the most they may build."""

    def __init__(self, limit: int) -> None:
        self.used, self.limit = 0, limit

    def add(self, n: int) -> None:
        self.used += int(n)
        if self.used > self.limit:
            raise UnsafePickleError(f"the pickle builds more than {self.limit} bytes of arrays and strings, over "
                                    "twice its own size (a pickle memory bomb, not a CIFAR batch)")


def _globals(budget: _Budget, file_size: int) -> dict:
    """The allow-list, each constructor bound to this load's byte budget."""

    class Counted(np.ndarray):
        """An array under construction: BUILD calls its __setstate__, which we count."""

        def __setstate__(self, state):
            raw = state[-1] if isinstance(state, tuple) and state else b""
            budget.add(len(raw) if isinstance(raw, (bytes, bytearray)) else 8 * len(raw) if isinstance(raw, list) else 0)
            return super().__setstate__(state)

    def reconstruct(subtype, shape, dtype):
        if subtype is not np.ndarray:
            raise UnsafePickleError("refused an array subclass: a CIFAR batch holds plain numpy arrays")
        n = 1
        for d in (shape if isinstance(shape, tuple) else (shape,)):
            n *= int(d)
        if n > file_size:
            raise UnsafePickleError(f"refused an array of {n} elements from a {file_size}-byte file")
        return _multiarray._reconstruct(Counted, shape, dtype)

    def encode(text, encoding="utf-8", errors="strict"):
        """``_codecs.encode`` restricted to what protocol-2 bytes need: text -> latin-1 bytes."""
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
            raise UnsafePickleError(f"refused _codecs.encode with codec {encoding!r}: only latin1 is allowed")
        budget.add(len(text))
        return codecs.encode(text, "latin1")

    def dtype(*args, **kw):
        out = np.dtype(*args, **kw)
        if out.hasobject:
            raise UnsafePickleError("refused an object dtype: a CIFAR batch holds numbers only")
        return out

    def scalar(dt, *args):
        budget.add(dt.itemsize if isinstance(dt, np.dtype) else 0)
        return _multiarray.scalar(dt, *args)

    table = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = reconstruct
        table[(mod, "scalar")] = scalar
    frombuffer = getattr(_numeric, "_frombuffer", None)  # protocol 5: bytes + dtype + shape, no copy
    if frombuffer is not None:
        table[("numpy.core.numeric", "_frombuffer")] = frombuffer
        table[("numpy._core.numeric", "_frombuffer")] = frombuffer
    table[("numpy", "ndarray")] = np.ndarray
    table[("numpy", "dtype")] = dtype
    table[("_codecs", "encode")] = encode
    return table


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler whose only callables are the allow-listed array constructors, counting the
    bytes they build."""

    def __init__(self, file, *, file_size: int, **kw) -> None:
        super().__init__(file, **kw)
        self.allowed = _globals(_Budget(2 * file_size + (1 << 20)), file_size)

    def find_class(self, module: str, name: str):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refused to unpickle global '{module}.{name}': a CIFAR batch holds only numpy "
                "arrays, lists and strings (the file may be malicious)"
            ) from None

    def persistent_load(self, pid):
        raise UnsafePickleError("refused a pickle persistent id: not part of a CIFAR batch")


def safe_load(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """The dict stored in a CIFAR pickle, keys decoded to str; only allow-listed globals, a
    bounded amount of memory."""
    raw = read_regular(path, max_bytes)
    try:
        obj = SafeUnpickler(io.BytesIO(raw), file_size=len(raw), encoding="bytes").load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path}: {exc}") from None
    except MemoryError:
        raise DataError(f"{path}: not a readable CIFAR batch (it needs more memory than it should)") from None
    except Exception as exc:  # truncated or garbled stream: data error, not a crash
        raise DataError(f"{path}: not a readable CIFAR batch ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: a CIFAR batch is a dict; found {type(obj).__name__}")
    if not all(isinstance(k, (bytes, str)) for k in obj):
        raise DataError(f"{path}: a CIFAR batch's keys are strings")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def sniff_batch(path: Path) -> bool:
    """A pickle (protocol 2 or later) file: the only pickle format we read is CIFAR's."""
    if not is_regular(path):  # before any read: a FIFO must not block the sniffing
        return False
    h = head(path, 2)
    return len(h) == 2 and h[0] == 0x80 and 2 <= h[1] <= 5


def read_batch(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[np.ndarray, np.ndarray | None, str]:
    """uint8 N×32×32×3, int64 labels (fine labels for CIFAR-100) or None, and which key gave them."""
    d = safe_load(path, max_bytes)
    if "data" not in d:
        raise DataError(f"{path}: no 'data' entry; keys are {', '.join(sorted(d)[:20])}")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' must be a uint8 N×3072 array (32×32×3 in CHW order); got {got}")
    data = np.asarray(data)  # a plain ndarray (the constructor built a counting subclass)
    check_budget(len(data), 2 * 3072, max_bytes, str(path), what=f"{len(data):,} CIFAR images")
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    for key in ("labels", "fine_labels"):
        if key in d:
            return images, int_labels(d[key], len(images), f"{path}: '{key}'"), key
    return images, None, ""


def int_labels(v, n: int, where: str) -> np.ndarray:
    """int64 N from a flat list/tuple of ints or a 1-D integer array, each in [0, 2^31)."""
    if isinstance(v, np.ndarray):
        ok = v.dtype.kind in "iu" and v.ndim == 1
        arr = np.asarray(v, dtype=np.int64) if ok else None
    elif isinstance(v, (list, tuple)) and all(type(x) is int or isinstance(x, np.integer) for x in v):
        ok = all(0 <= int(x) < 2**31 for x in v)
        arr = np.array([int(x) for x in v], dtype=np.int64) if ok else None
    else:
        ok, arr = False, None
    if not ok or len(arr) != n or (n and (arr.min() < 0 or arr.max() >= 2**31)):
        size = len(v) if isinstance(v, (list, tuple, np.ndarray)) else "?"
        raise DataError(f"{where}: labels must be {n} integers in [0, 2^31) (a list or an integer array); "
                        f"got a {type(v).__name__} of {size}")
    return arr


def _names(path: Path, key: str) -> tuple[str, ...] | None:
    if not path.is_file():
        return None
    names = safe_load(path).get(key)
    if names is None:
        return None
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{path}: '{key}' must be a list of strings")
    return tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names)


def read_batch_set(path: Path, opts=None) -> ImageSet:
    """One batch file as an ImageSet with ids ``00000``…; class names from a meta file beside it."""
    images, labels, key = read_batch(path, opts.max_bytes if opts is not None else DEFAULT_MAX_BYTES)
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
        batches = [read_batch(p, opts.max_bytes if opts is not None else DEFAULT_MAX_BYTES) for p in present]
        if any(b[1] is None for b in batches):
            raise DataError(f"{path}: a {split} batch has no labels")
        images = np.concatenate([b[0] for b in batches])
        labels = np.concatenate([b[1] for b in batches])
        parts[split] = ImageSet(images, index_ids(len(images), f"{split}/"), labels, root=path, class_names=names)
    if parts["train"] is None:
        raise DataError(f"{path}: no training batch ({', '.join(train_files)})")
    return Splits(train=parts["train"], test=parts["test"], name=kind)
