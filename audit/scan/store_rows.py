"""The stored pixel rows of a scan STORE (:mod:`audit.scan.store`): uint8 ``N×D``, memory-mapped
and checked against the manifest block by block as they are read, stacked with a new batch for
a scan, and streamed into a new version on update.
"""

from __future__ import annotations

import numpy as np

from audit.features import release_pages
from audit.scan.store_io import LazyVerifier


class VerifiedRows:
    """The stored uint8 ``N×D`` rows, memory-mapped, whose every 256 KiB block of ``rows.npy`` is
    checked against the manifest before a row in it is first returned: an ``--against`` scan
    reads a few hundred of a million rows, an update streams them all (and so checks them all)."""

    def __init__(self, mm: np.ndarray, verifier: LazyVerifier) -> None:
        self.base = mm  # what release_pages follows to drop the mapped pages
        self.verifier, self.shape, self.dtype = verifier, mm.shape, mm.dtype
        self.offset, self.width = int(mm.offset), int(mm.shape[1]) * mm.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        n = self.shape[0]
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step == 1:
                ranges = [(self.offset + start * self.width, self.offset + stop * self.width)] if stop > start else []
                self.verifier.check(ranges)
                return np.asarray(self.base[index])
            index = np.arange(start, stop, step)
        rows = np.asarray(index, dtype=np.int64).ravel()
        rows = np.where(rows < 0, rows + n, rows)
        self.verifier.check((self.offset + r * self.width, self.offset + (r + 1) * self.width) for r in rows.tolist()
                            if 0 <= r < n)
        return np.asarray(self.base[index])


class StackedRows:
    """Read-only ``N×D`` uint8 rows over a memory-mapped store and an in-memory batch; fancy
    indexing reads only the requested stored rows."""

    def __init__(self, old: np.ndarray, new: np.ndarray) -> None:
        self.old, self.new = old, new
        self.shape = (len(old) + len(new), old.shape[1])
        self.dtype = np.uint8

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        idx = np.asarray(index, dtype=np.int64)
        out = np.empty((len(idx), self.shape[1]), np.uint8)
        is_old = idx < len(self.old)
        if is_old.any():
            o = idx[is_old]
            order = np.argsort(o)  # sorted reads are sequential on disk
            rows = np.asarray(self.old[o[order]])
            tmp = np.empty_like(rows)
            tmp[order] = rows
            out[is_old] = tmp
        out[~is_old] = self.new[idx[~is_old] - len(self.old)]
        return out


class Concat:
    """Rows to write on update: old (memory-mapped) then new, streamed in blocks."""

    def __init__(self, old: np.ndarray, new: np.ndarray) -> None:
        self.old, self.new = old, new
        self.shape = (len(old) + len(new), old.shape[1])

    def blocks(self, size: int = 65536):
        for s in range(0, len(self.old), size):
            yield np.asarray(self.old[s : s + size])
        yield self.new


def write_rows(fh, rows) -> None:
    """``rows.npy`` written to the open file ``fh`` block by block: through a writable memory map
    every written page would stay resident (3 GB at 1M 32×32×3 images), and reading a
    memory-mapped source drops its pages after each block (:func:`release_pages`)."""
    fmt = np.lib.format
    header = {"descr": fmt.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
              "shape": tuple(int(v) for v in rows.shape)}
    blocks = rows.blocks() if isinstance(rows, Concat) else (rows[s : s + 65536] for s in range(0, len(rows), 65536))
    fmt.write_array_header_1_0(fh, header)
    for block in blocks:
        fh.write(np.ascontiguousarray(block, dtype=np.uint8).tobytes())
        release_pages(rows.old if isinstance(rows, Concat) else rows)
