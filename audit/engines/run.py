"""What ``audit scan`` calls to read and scan a pool with either engine (``--engine``).

``local`` with a local path is the unchanged local engine (``load_images`` + ``scan_with_context``).
A URL (``s3://…``, ``gs://…``) is read object by object, so it goes through the sharded stages: in
this process with ``--engine local`` (:class:`~audit.engines.executor.SerialExecutor`), on a Ray
cluster with ``--engine ray``; both give the local engine's findings (tests/audit/engines).
"""

from __future__ import annotations

import dataclasses

from pathlib import Path
from typing import Any, Callable

import numpy as np

from audit.data import remote
from audit.data.imageset import ImageSet
from audit.data.readers._common import ReadOptions
from audit.engines import ENGINES
from audit.engines.executor import Executor, SerialExecutor
from audit.engines.sources import Pool, open_pool
from audit.errors import invalid_parameter


class ShardedPool:
    """A pool read by the sharded stages: its blocks, ids and reader notes, and the executor that
    keeps them (the ImageSet attributes ``audit scan`` reads: ids, unreadable, shape, len)."""

    def __init__(self, pool: Pool, executor: Executor) -> None:
        self.pool, self.executor = pool, executor
        self.ids, self.unreadable, self.shape = pool.ids, pool.unreadable, pool.shape
        self.skipped, self.notes, self.summary, self.root = pool.skipped, pool.notes, pool.summary, pool.root

    def __len__(self) -> int:
        return len(self.pool)

    def with_notes(self, notes) -> "ShardedPool":
        """As :meth:`ImageSet.with_notes`: the same blocks, ``notes`` added after the reader's."""
        return ShardedPool(dataclasses.replace(self.pool, notes=tuple(self.pool.notes) + tuple(notes)), self.executor)

    def rows(self, index) -> np.ndarray:
        from audit.engines.blocks import ShardedRows

        h, w, c = self.shape
        rows = ShardedRows(self.pool.blocks, len(self.pool), h * w * c, c, self.executor)
        return rows[np.asarray(index, np.int64)].reshape((-1, h, w, c))

    def to_imageset(self) -> ImageSet:
        """Every image in this process (a batch scanned ``--against`` a store is small)."""
        return ImageSet(images=np.ascontiguousarray(self.rows(np.arange(len(self)))), ids=self.ids,
                        unreadable=self.unreadable, notes=self.notes, skipped=self.skipped, summary=self.summary)


def executor(engine: str, address: str | None = None) -> Executor:
    if engine not in ENGINES:
        raise invalid_parameter("engine", "audit scan", f"one of {', '.join(ENGINES)}", engine)
    if engine == "local":
        if address is not None:
            raise invalid_parameter("address", "audit scan", "given only with --engine ray", address)
        return SerialExecutor()
    from audit.engines.ray import RayExecutor

    return RayExecutor(address)


def is_sharded(source: str, engine: str) -> bool:
    return engine != "local" or (remote.is_url(source) and remote.local_path(source) is None)


def read_pool(source: str, engine: str, address: str | None, opts: ReadOptions,
              progress: Callable[[str, int, int], None] | None = None) -> ShardedPool:
    ex = executor(engine, address)
    return ShardedPool(open_pool(source, ex, opts, progress), ex)


def scan_pool(images: Any, config, *, labeled=None, progress=None, embeddings=None, keep_index: bool = False):
    """``(AuditResult, ScanContext)`` with the engine ``images`` was read with."""
    if isinstance(images, ShardedPool):
        from audit.engines.sharded import scan_sharded

        return scan_sharded(images.pool, config, images.executor, labeled=labeled, progress=progress,
                            embeddings=embeddings, keep_index=keep_index)
    from audit.scan.pipeline import scan_with_context

    return scan_with_context(images, config, labeled=labeled, progress=progress, embeddings=embeddings)


def previews(images: Any, result, limit: int = 5000) -> ImageSet | None:
    """The images the HTML report shows: the whole ImageSet, or a sharded pool's flagged images
    only (read back from the workers)."""
    if not isinstance(images, ShardedPool):
        return images
    want = sorted({m.index for f in result.findings for m in f.members})[:limit]
    if not want:
        return None
    return ImageSet(images=np.ascontiguousarray(images.rows(want)), ids=tuple(images.ids[i] for i in want))


def source_text(path: Path | str) -> str:
    return str(path)
