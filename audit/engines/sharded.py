"""The scan's costly stages cut into shards, with results identical to the local engine.

    blocks (sources.py) ──► PCA on the seeded sample rows (driver) ──► projection + pixel std per shard
        ──► IVF quantizer trained once on faiss's own sample (driver) ──► shard indexes, every
            query searched in every shard, lists merged by (distance, id) ──► the kNN graph
        ──► the invariant view (|FFT| rows, PCA on the same sample, projection per shard, kNN)
        ──► detectors on the driver (audit.scan.pipeline.run_detectors), rows read from the blocks

Why the results are the same bits as the local engine's (tests/audit/engines check it):

* The sample: :func:`audit.features.sample_rows` / :func:`audit.neighbors.ivf_training_rows` are
  the local engine's own draws; the fit runs on the driver with the local code.
* Batches: a BLAS matrix product of a few rows can round differently from the same rows inside a
  large product, so every shard is a union of whole batches of the local engine's partition
  (``batch_rows(D)`` rows for the projection, 16 384 for the invariant view, 1 024 database rows
  for an exact index: faiss's distance block) and processes them in the same order and size.
* kNN: every query is searched in every shard with the same query batches; a shard returns its
  k+1 best by (distance, id), and merging those lists by (distance, id) gives the global k+1 best
  (faiss orders ties by id). An IVF query probes the same lists in every shard (one quantizer), so
  the union of what the shards scan is what one index scans.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from audit.engines.blocks import ShardedRows, block_args, gather
from audit.engines.executor import Executor, Progress, Task, TaskFailed
from audit.engines.sources import Pool
from audit.errors import AuditError
from audit.features import Features, Projection, batch_rows, fit_projection, fit_projection_on, sample_rows
from audit.neighbors import _QUERY_BATCH, NeighborGraph, drop_self, ivf_lists, ivf_training_rows, train_ivf
from audit.scan.detectors.base import INVARIANT_DIM, INVARIANT_PAD, View
from audit.scan.pipeline import ScanConfig, ScanContext

FLAT_BLOCK = 1024  # faiss's database block in an exact search: shard boundaries on multiples of it
INVARIANT_BLOCK = 16_384  # the rows per block of ScanInputs' invariant view
MAX_TASK_BYTES = 256 << 20  # pixel bytes one projection task gathers (bounds a worker's memory)


def ranges(n: int, unit: int, parts: int, max_rows: int | None = None) -> list[tuple[int, int]]:
    """About ``parts`` row ranges covering ``0..n``, each a whole number of ``unit`` rows (the
    last one shorter), at most ``max_rows`` rows each when given."""
    units = -(-n // unit)
    per = max(1, -(-units // max(1, parts)))
    if max_rows is not None:
        per = max(1, min(per, max_rows // unit))
    return [(lo * unit, min(n, (lo + per) * unit)) for lo in range(0, units, per)]


def _run(ex: Executor, stage: str, tasks: list[Task], progress: Progress | None) -> list:
    out = ex.run(stage, tasks, progress)
    for t, r in zip(tasks, out):
        if isinstance(r, TaskFailed):
            raise AuditError(f"the {stage} stage failed on the cluster: a shard of {t.weight:,} rows failed "
                             f"{r.attempts} times ({r.reason}); nothing was reported from a partial scan")
    return out


# --- tasks (top-level functions: a cluster ships them by reference) -------------------------


def threads() -> dict[str, int]:
    """This process's thread count per BLAS and OpenMP library (by file-name prefix). A matrix
    product splits its rows over the threads, and rows at a split round differently from rows
    inside a block: workers run with the driver's counts so their products are the local
    engine's, bit for bit (Ray starts its workers with one thread)."""
    from threadpoolctl import threadpool_info

    out: dict[str, int] = {}
    for lib in threadpool_info():
        if lib.get("user_api") in ("blas", "openmp"):
            out[lib["prefix"]] = min(out.get(lib["prefix"], 1 << 30), int(lib.get("num_threads", 1)))
    return out


def _limits(counts: dict[str, int]):
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=dict(counts))


def project_task(threads: dict, proj: Projection, start: int, stop: int, channels: int, layout: list, *blocks):
    """Projected rows and pixel std of rows ``start..stop`` (batches of the local partition)."""
    rows = gather(start, stop, channels, layout, *blocks)
    with _limits(threads):
        return proj.transform_with_std(rows)


def invariant_task(threads: dict, proj: Projection, shape: tuple, start: int, stop: int, layout: list,
                   *blocks) -> np.ndarray:
    from audit.invariance import invariant_rows

    out = []
    with _limits(threads):  # audit.invariance imported first: the limits reach the libraries loaded
        for s in range(start, stop, INVARIANT_BLOCK):
            rows = gather(s, min(stop, s + INVARIANT_BLOCK), shape[2], layout, *blocks)
            out.append(proj.transform(invariant_rows(rows, shape, INVARIANT_PAD)))
    return np.concatenate(out)


def search_task(threads: dict, index_bytes: np.ndarray | None, projected: np.ndarray, start: int, stop: int,
                kk: int, keep_index: bool):
    """One database shard: its index (the trained empty IVF given, or exact), then every query
    searched in it, in the local engine's query batches. ``(sqdist, ids)`` ``N×kk``, ids global."""
    import faiss  # noqa: F401  (loaded before the limits: they apply to the libraries loaded then)

    with _limits(threads):
        return _search(index_bytes, projected, start, stop, kk, keep_index)


def _search(index_bytes, projected, start, stop, kk, keep_index):
    import faiss

    x = np.ascontiguousarray(projected[start:stop])
    if index_bytes is None:
        index = faiss.IndexFlatL2(x.shape[1])
        index.add(x)
        offset = start
    else:
        index = faiss.deserialize_index(index_bytes)
        index.add_with_ids(x, np.arange(start, stop, dtype=np.int64))
        offset = 0
    n = len(projected)
    dist = np.empty((n, kk), np.float32)
    ids = np.empty((n, kk), np.int64)
    for s in range(0, n, _QUERY_BATCH):
        d_, i_ = index.search(np.ascontiguousarray(projected[s : s + _QUERY_BATCH]), kk)
        dist[s : s + len(d_)] = d_
        ids[s : s + len(d_)] = np.where(i_ >= 0, i_ + offset, -1)
    return dist, ids, (faiss.serialize_index(index) if keep_index and index_bytes is not None else None)


# --- stages ---------------------------------------------------------------------------------


def merge_lists(parts: list[tuple[np.ndarray, np.ndarray]], kk: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``kk`` best of every shard's lists by (distance, id). Shards are in row order and each
    list is sorted by (distance, id), so a stable sort on distance keeps ids ascending in ties."""
    dist = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    order = np.argsort(dist, axis=1, kind="stable")[:, :kk]
    return np.take_along_axis(dist, order, 1), np.take_along_axis(ids, order, 1)


def sharded_knn(x: np.ndarray, k: int, config: ScanConfig, ex: Executor, progress: Progress | None,
                stage: str = "neighbors", keep_index: bool = False) -> NeighborGraph:
    """:func:`audit.neighbors.knn_graph` of float32 rows ``x`` with the database in shards."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    nlist = ivf_lists(n, config.exact_max)
    trained = None
    if nlist is not None:
        take = ivf_training_rows(n, nlist, config.seed)
        trained = train_ivf(x if take is None else x[take], nlist, nprobe=config.nprobe, seed=config.seed)
    kk, keep = min(k + 1, n), min(k, max(n - 1, 0))
    x_ref = ex.put(x)
    blob = None if trained is None else ex.put(faiss.serialize_index(trained))
    shards = ranges(n, FLAT_BLOCK, ex.workers)
    tasks = [Task(search_task, (threads(), blob, x_ref, lo, hi, kk, keep_index), weight=hi - lo) for lo, hi in shards]
    results = _run(ex, stage, tasks, progress)
    idx = -np.ones((n, k), np.int64)
    sq = np.full((n, k), np.inf, np.float32)
    for s in range(0, n, _QUERY_BATCH):
        part = [(r[0][s : s + _QUERY_BATCH], r[1][s : s + _QUERY_BATCH]) for r in results]
        d_, i_ = merge_lists(part, kk)
        d_, i_ = drop_self(d_, i_, np.arange(s, s + len(d_), dtype=np.int64), keep)
        idx[s : s + len(d_), :keep] = i_
        sq[s : s + len(d_), :keep] = np.where(i_ < 0, np.inf, np.maximum(d_, 0))
    index, kind = None, "flat" if trained is None else "ivf"
    if keep_index:  # the store needs one index: the shards' inverted lists merged (FAISS's recipe)
        if trained is None:
            index = faiss.IndexFlatL2(x.shape[1])
            index.add(x)
        else:
            index = trained
            for r in results:
                index.merge_from(faiss.deserialize_index(r[2]), 0)
    return NeighborGraph(indices=idx, sqdist=sq, projected=x, index=index, kind=kind)


def build_sharded(pool: Pool, config: ScanConfig, ex: Executor, *, progress: Progress | None = None,
                  timings: dict[str, float] | None = None,
                  keep_index: bool = False) -> tuple[ScanContext, dict[str, View]]:
    """The local engine's :func:`~audit.scan.pipeline.build_context` on sharded rows, plus the
    views detectors would build on the driver (the invariant view) built sharded too."""
    config.validate()
    timings = {} if timings is None else timings
    n = len(pool)
    h, w, c = pool.shape
    d_in = h * w * c
    rows = ShardedRows(pool.blocks, n, d_in, c, ex)
    t0 = time.perf_counter()
    take = sample_rows(n, config.projection_sample, config.seed)
    sample = rows[take]
    proj = fit_projection_on(np.asarray(sample, np.float64), dim=config.projection_dim, seed=config.seed)
    proj_ref = ex.put(proj)
    b = batch_rows(d_in)
    tasks = []
    for lo, hi in ranges(n, b, 2 * ex.workers, max(b, MAX_TASK_BYTES // max(d_in, 1))):
        layout, refs = block_args(pool.blocks, lo, hi)
        tasks.append(Task(project_task, (threads(), proj_ref, lo, hi, c, layout, *refs), weight=hi - lo))
    parts = _run(ex, "features", tasks, progress)
    projected = np.concatenate([p[0] for p in parts])
    std = np.concatenate([p[1] for p in parts])
    features = Features(rows=rows, projected=projected, projection=proj, row_std=std)
    timings["features"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    graph = sharded_knn(projected, min(config.k, n - 1), config, ex, progress, keep_index=keep_index)
    timings["neighbors"] = time.perf_counter() - t0
    views: dict[str, View] = {}
    if _wants_invariant(config) and n >= 3:
        t0 = time.perf_counter()
        views["invariant"] = _invariant_view(pool, rows, sample, take, config, ex, progress)
        timings["invariant view"] = time.perf_counter() - t0
    return ScanContext(features, graph, pool.ids, config, pool.shape), views


def _wants_invariant(config: ScanConfig) -> bool:
    return "path" in config.detectors and "invariant" in config.detector_config("path").views


def _invariant_view(pool: Pool, rows: ShardedRows, sample: np.ndarray, take: np.ndarray, config: ScanConfig,
                    ex: Executor, progress: Progress | None) -> View:
    """ScanInputs' invariant view (audit/scan/detectors/base.py), the same recipe in shards."""
    from audit.invariance import invariant_rows

    n = len(pool)
    # the view draws its sample as the pixel PCA does (same n, sample size and seed): reuse the rows
    same = sample_rows(n, config.projection_sample, config.seed)
    sample = sample if np.array_equal(same, take) else rows[same]
    proj = fit_projection(invariant_rows(sample, pool.shape, INVARIANT_PAD),
                          dim=min(config.projection_dim, INVARIANT_DIM), seed=config.seed)
    proj_ref = ex.put(proj)
    tasks = []
    for lo, hi in ranges(n, INVARIANT_BLOCK, 2 * ex.workers):
        layout, refs = block_args(pool.blocks, lo, hi)
        tasks.append(Task(invariant_task, (threads(), proj_ref, pool.shape, lo, hi, layout, *refs), weight=hi - lo))
    projected = np.concatenate(_run(ex, "invariant view", tasks, progress))
    graph = sharded_knn(projected, min(config.k, n - 1), config, ex, progress, stage="invariant neighbors")
    return View("invariant", projected, graph)


class PoolIds:
    """The ImageSet attributes :func:`~audit.scan.pipeline.run_detectors` reads, for a pool that
    is not in this process."""

    def __init__(self, pool: Pool) -> None:
        self.ids, self.unreadable, self.root, self.shape = pool.ids, pool.unreadable, pool.root, pool.shape
        self.skipped, self.notes, self.summary = pool.skipped, pool.notes, pool.summary

    def __len__(self) -> int:
        return len(self.ids)


def scan_sharded(pool: Pool, config: ScanConfig, ex: Executor, *, labeled: Any = None,
                 progress: Progress | None = None, embeddings: np.ndarray | None = None,
                 keep_index: bool = False):
    """``(AuditResult, ScanContext)`` of a sharded scan: the stages above, then every detector on
    the driver (:func:`~audit.scan.pipeline.run_detectors`, unchanged)."""
    from audit.scan.pipeline import check_labeled, run_detectors

    from audit.errors import EmptyDatasetError

    if len(pool) < 3:
        raise EmptyDatasetError(f"need at least 3 images to look for interpolation chains; got {len(pool)}")
    info = PoolIds(pool)
    if labeled is not None:
        check_labeled(info, labeled)
    timings: dict[str, float] = {}
    ctx, views = build_sharded(pool, config, ex, progress=progress, timings=timings, keep_index=keep_index)
    result = run_detectors(ctx.features, ctx.graph, info, config, labeled=labeled, progress=progress,
                           timings=timings, embeddings=embeddings, views=views)
    return result, ctx
