"""Where a sharded scan keeps the pool's pixel rows, and how rows are read back from there.

A pool is a list of BLOCKS of consecutive rows (row ``start`` .. ``start + n``):

* an object block: uint8 ``n×(H·W·c)`` in the executor's object store, on the worker that
  decoded it (``c`` is 1 when every image of the block is gray: widened to the pool's ``C`` as it
  is read, by replication, as the local reader does);
* a file block: rows of an ``.npy`` every worker can open (memory-mapped, never copied).

Tasks receive the blocks overlapping their row range and :func:`gather` the rows they need.
Detectors on the driver read rows through :class:`ShardedRows`, which asks each block for only
the rows requested (colinearity confirmation, path alignment, near-duplicate checks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from audit.engines.executor import Executor, Task, TaskFailed
from audit.errors import AuditError


@dataclass(frozen=True)
class NpySlice:
    """Rows ``start .. stop`` of the ``.npy`` at ``path`` (N×H×W×C uint8), read where used."""

    path: str
    start: int
    stop: int

    def rows(self, local: np.ndarray | None = None) -> np.ndarray:
        mm = np.load(self.path, mmap_mode="r")
        part = mm[self.start : self.stop]
        part = part.reshape(len(part), -1)
        return np.asarray(part if local is None else part[local])


@dataclass(frozen=True)
class Block:
    start: int  # first row
    n: int  # rows
    channels: int  # channels of the rows as stored (1 or 3)
    ref: Any  # an executor reference to a uint8 n×(H·W·c) array, or an NpySlice


def widen(rows: np.ndarray, c_from: int, c_to: int) -> np.ndarray:
    """uint8 ``n×(H·W·c_from)`` rows as ``c_to`` channels: a gray image replicated into 3."""
    if c_from == c_to:
        return rows
    if c_from == 1 and c_to == 3:
        return np.repeat(rows, 3, axis=1)
    raise ValueError(f"cannot turn {c_from}-channel rows into {c_to}")


def _rows(value: Any, local: np.ndarray | None = None) -> np.ndarray:
    if isinstance(value, NpySlice):
        return value.rows(local)
    return value if local is None else value[local]


def gather(start: int, stop: int, channels: int, layout: list[tuple[int, int, int]], *values) -> np.ndarray:
    """uint8 rows ``start .. stop`` at ``channels``, from the blocks ``values`` (resolved) whose
    ``(start, n, channels)`` are ``layout``; one copy of the range, the blocks are not modified."""
    parts = []
    for (b0, bn, bc), v in zip(layout, values):
        lo, hi = max(start, b0), min(stop, b0 + bn)
        if lo < hi:
            parts.append(widen(_rows(v, np.arange(lo - b0, hi - b0)) if isinstance(v, NpySlice)
                               else _rows(v)[lo - b0 : hi - b0], bc, channels))
    if len(parts) == 1:
        return np.ascontiguousarray(parts[0])
    return np.concatenate(parts)


def take(value: Any, local: np.ndarray, c_from: int, c_to: int) -> np.ndarray:
    """The task behind :class:`ShardedRows`: rows ``local`` of one block, at ``c_to`` channels."""
    return widen(np.ascontiguousarray(_rows(value, np.asarray(local, np.int64))), c_from, c_to)


def overlapping(blocks: list[Block], start: int, stop: int) -> list[Block]:
    return [b for b in blocks if b.start < stop and b.start + b.n > start]


def block_args(blocks: list[Block], start: int, stop: int) -> tuple[list, list]:
    """``(layout, refs)`` of the blocks a task over rows ``start .. stop`` needs."""
    bs = overlapping(blocks, start, stop)
    return [(b.start, b.n, b.channels) for b in bs], [b.ref for b in bs]


class ShardedRows:
    """Read-only uint8 ``N×D`` rows kept in blocks; ``rows[idx]`` reads only those rows, from
    every block at once (one small task per block touched)."""

    dtype = np.dtype(np.uint8)

    def __init__(self, blocks: list[Block], n: int, width: int, channels: int, executor: Executor) -> None:
        self.blocks, self.ex, self.channels = blocks, executor, channels
        self.shape = (int(n), int(width))
        self.starts = np.array([b.start for b in blocks], np.int64)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        n = self.shape[0]
        if isinstance(index, slice):
            index = np.arange(*index.indices(n))
        idx = np.asarray(index, dtype=np.int64)
        flat = idx.ravel()
        flat = np.where(flat < 0, flat + n, flat)
        if len(flat) and (flat.min() < 0 or flat.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        out = np.empty((len(flat), self.shape[1]), np.uint8)
        which = np.searchsorted(self.starts, flat, side="right") - 1
        tasks, where = [], []
        for j in np.unique(which):
            sel = np.flatnonzero(which == j)
            b = self.blocks[j]
            local = flat[sel] - b.start
            if isinstance(b.ref, NpySlice):  # a file every machine reads: no task needed
                out[sel] = take(b.ref, local, b.channels, self.channels)
                continue
            tasks.append(Task(take, (b.ref, local, b.channels, self.channels), weight=len(sel)))
            where.append(sel)
        for sel, res in zip(where, self.ex.run("read rows", tasks) if tasks else []):
            if isinstance(res, TaskFailed):
                raise AuditError(f"could not read {len(sel)} pixel rows back from the cluster after "
                                 f"{res.attempts} tries: {res.reason}")
            out[sel] = res
        return out.reshape(idx.shape + (self.shape[1],))
