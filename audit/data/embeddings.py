"""Per-image embeddings a user brings (``audit scan --features FILE``): the detectors that work on
neighbourhoods (``path``) then also look at the pool in that space, e.g. the penultimate layer
of the user's own encoder, where a generative-model bridge that bends through pixel space can be
a short, tight chain.

Formats (read without pickles):

* ``.npy``: float ``N×d``, row i for the pool's i-th image (the order ``audit scan`` lists ids
  in: sorted relative paths for a folder);
* ``.npz``: ``features`` (or ``embeddings``) float ``N×d`` and, recommended, ``ids`` (N strings):
  rows are matched to the pool by id, so order does not matter and extra rows are ignored.

Every pool image must have a row; values must be finite. Shape contract: returns float32
``len(ids)×d``.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from audit.errors import DataError, ShapeMismatchError

MAX_BYTES = 8 << 30  # an N×d float32 matrix beyond this is not a per-image embedding table
_KEYS = ("features", "embeddings")


def load_embeddings(path: str | Path, ids: Sequence[str]) -> np.ndarray:
    """float32 ``len(ids)×d`` rows of ``path`` for the pool ``ids`` (module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"--features {p}: no such file (an .npy or .npz of per-image embeddings)")
    if os.path.getsize(p) > MAX_BYTES:
        raise DataError(f"--features {p}: {os.path.getsize(p) / 2**30:.1f} GiB is larger than the "
                        f"{MAX_BYTES >> 30} GiB an embedding table may take")
    try:
        if zipfile.is_zipfile(p):
            with np.load(p, allow_pickle=False) as z:
                key = next((k for k in _KEYS if k in z.files), None)
                if key is None:
                    raise DataError(f"--features {p}: no 'features' (or 'embeddings') array; it has "
                                    f"{', '.join(z.files) or 'no arrays'}")
                rows = np.asarray(z[key])
                file_ids = [str(i) for i in z["ids"]] if "ids" in z.files else None
        else:
            rows, file_ids = np.load(p, allow_pickle=False, mmap_mode="r"), None
    except DataError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"--features {p}: not a readable .npy/.npz ({exc})") from None
    if rows.ndim != 2 or rows.shape[1] < 1 or not np.issubdtype(rows.dtype, np.number):
        raise ShapeMismatchError(f"--features {p}: expected a numeric N×d array; got {rows.dtype} {rows.shape}")
    n = len(ids)
    if file_ids is None:
        if len(rows) != n:
            raise ShapeMismatchError(f"--features {p}: {len(rows)} rows for {n} images; without an 'ids' array "
                                     "(in an .npz) rows must follow the pool's order one to one")
        out = np.asarray(rows, dtype=np.float32)
    else:
        if len(file_ids) != len(rows):
            raise ShapeMismatchError(f"--features {p}: {len(file_ids)} ids for {len(rows)} rows")
        where = {i: r for r, i in enumerate(file_ids)}
        missing = [i for i in ids if i not in where]
        if missing:
            raise ShapeMismatchError(f"--features {p}: no row for {len(missing)} of the pool's {n} images "
                                     f"(e.g. {missing[0]!r})")
        out = np.asarray(rows[[where[i] for i in ids]], dtype=np.float32)
    if not np.isfinite(out).all():
        raise DataError(f"--features {p}: NaN or infinite values in {int((~np.isfinite(out).all(axis=1)).sum())} rows")
    return out
