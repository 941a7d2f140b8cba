"""Incremental scanning for ingestion: check a new batch against an already scanned pool
(paper 5.2) without rescanning it.

A STORE is a folder of immutable versions (layout, lock, checksums and crash safety:
:mod:`audit.scan.store_layout`); one version holds

    meta.json        format name + version of the index data, image shape, counts, projection dim, index kind
    ids.json         the pool's ids, in row order
    rows.npy         uint8 N×D pixel rows, memory-mapped: confirmation reads only the rows it needs
    eligible.npy     bool N, not a flat/blank image (colinearity members)
    mean.npy         float32 D, PCA mean       } the projection, so new images land in the
    components.npy   float32 D×d, PCA basis    } same space as the stored ones
    projected.npy    float32 N×d
    index.faiss      the FAISS index over ``projected`` (CPU form)
    knn_indices.npy  int64 N×k   } optional: the pool's kNN graph; without them (stores written
    knn_sqdist.npy   float32 N×k } before they existed) the old rows are searched again
    manifest.json    size and sha256 of each file above, verified on every load

``scan_against`` adds the batch to the index, builds kNN lists for the new rows and the old rows
they land next to (the stored list of such an old row merged with the new rows that have it
among their own k nearest: a second index search of up to 16 × batch old rows cost 20+ s at 1M,
the merge well under a second), proposes triples centred on those rows only, and grows chains over old+new
(the line scan covers every stored row in the projected space). Results index the combined pool:
rows ``0..N-1`` are the stored images, ``N..`` the batch. Only ``bridge`` and ``near_duplicate``
run: cluster statistics need the whole pool's graph.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from audit.data.imageset import ImageSet
from audit.errors import CheckpointError, ShapeMismatchError
from audit.features import Features, Projection, pixel_rows, row_std
from audit.findings import AuditResult
from audit.neighbors import NeighborGraph, drop_self, search
from audit.scan.pipeline import Progress, ScanConfig, ScanContext, build_context, check_labeled, run_detectors
from audit.scan.store_io import LAZY_BLOCK, LazyVerifier, check_size, read_small, verify
from audit.scan.store_rows import Concat, StackedRows, VerifiedRows, write_rows
from audit.scan.store_layout import DEFAULT_LOCK_TIMEOUT, StoreWriter, check_store_path, open_version, read_current

FORMAT = "ssl-poison-audit/scan-index"
VERSION = 1
_FILES = ("meta.json", "ids.json", "rows.npy", "eligible.npy", "mean.npy", "components.npy",
          "projected.npy", "index.faiss")
_KNN = ("knn_indices.npy", "knn_sqdist.npy")
EAGER_ROWS = 256 << 20  # rows.npy up to this size is verified whole on load (0.2 s); beyond, as rows are read


def save_index(context: ScanContext | ImageSet, path: str | Path, config: ScanConfig = ScanConfig(), *,
               eligible: np.ndarray | None = None, lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT) -> Path:
    """Write a new version of STORE (module docstring) holding this pool; returns its path.

    ``context`` is what :func:`audit.scan.pipeline.scan_with_context` returned (nothing is
    rebuilt), or an ImageSet, for which features and index are built here with ``config``. A
    path that is not a store (nor absent, nor an empty folder) is refused before any work."""
    check_store_path(path, write=True)
    if isinstance(context, ImageSet):
        context = build_context(context, config)
    with StoreWriter(path, lock_timeout) as writer:
        _write_version(writer, context, eligible, (context.graph.indices, context.graph.sqdist))
    return Path(path)


def _write_version(writer: StoreWriter, context: ScanContext, eligible: np.ndarray | None,
                   knn: tuple[np.ndarray, np.ndarray] | None) -> None:
    """Write and publish one version with the kNN lists given explicitly (None: none stored)."""
    import faiss

    f = context.features
    cfg = context.config.colinearity
    if eligible is None:
        eligible = f.pixel_std() >= cfg.flat_std  # never np.asarray(rows): a memory-mapped pool stays on disk
    index = context.graph.index
    if context.graph.kind.startswith("gpu-"):
        index = faiss.index_gpu_to_cpu(index)
    shape = context.shape
    meta = {"format": FORMAT, "version": VERSION, "n": len(f), "shape": list(shape),
            "dim": f.projection.dim, "index_kind": context.graph.kind.replace("gpu-", ""), "k": context.graph.k}
    writer.begin()
    writer.write_file("rows.npy", lambda fh: write_rows(fh, f.rows), block=LAZY_BLOCK)
    writer.write_file("eligible.npy", lambda fh: np.save(fh, np.asarray(eligible, bool)))
    writer.write_file("mean.npy", lambda fh: np.save(fh, f.projection.mean))
    writer.write_file("components.npy", lambda fh: np.save(fh, f.projection.components))
    writer.write_file("projected.npy", lambda fh: np.save(fh, f.projected))
    writer.write_file("index.faiss", lambda fh: faiss.write_index(index, faiss.PyCallbackIOWriter(fh.write)))
    if knn is not None:
        writer.write_file("knn_indices.npy", lambda fh: np.save(fh, np.asarray(knn[0], np.int64)))
        writer.write_file("knn_sqdist.npy", lambda fh: np.save(fh, np.asarray(knn[1], np.float32)))
    writer.write_file("ids.json", lambda fh: fh.write(json.dumps(list(context.ids)).encode()))
    writer.write_file("meta.json", lambda fh: fh.write(json.dumps(meta, indent=1).encode()))
    writer.publish()


def scan_against(new: ImageSet, store_path: str | Path, config: ScanConfig = ScanConfig(), *, update: bool = False,
                 labeled: ImageSet | None = None, progress: Progress | None = None,
                 lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT) -> AuditResult:
    """Scan the batch ``new`` against STORE; with ``update`` the batch is appended to STORE
    (:func:`update_store` without a gate). Batch images whose id is already stored with the same
    pixels are scanned as the stored images they are (a note says so), never added twice; an id
    stored with other pixels raises ShapeMismatchError."""
    if update:
        return update_store(new, store_path, config, labeled=labeled, progress=progress,
                            lock_timeout=lock_timeout)[0]
    config.validate()
    t0 = time.perf_counter()
    return _scan(new, load_store(store_path), store_path, config, labeled, progress, t0, keep=False)[0]


def update_store(new: ImageSet, store_path: str | Path, config: ScanConfig = ScanConfig(), *,
                 accept: Callable[[AuditResult], bool] | None = None, labeled: ImageSet | None = None,
                 progress: Progress | None = None,
                 lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT) -> tuple[AuditResult, int]:
    """:func:`scan_against` in one pass under STORE's writer lock, held from reading the store to
    publishing the version with the batch: a concurrent writer waits (up to ``lock_timeout``
    seconds, then CheckpointError), so it scans against this batch and never overwrites it. The
    batch is appended only when ``accept(result)`` (the CI gate) says so. Returns the result and
    the number of images added (0: not accepted, or all already stored)."""
    config.validate()
    waited = []

    def on_wait(message: str) -> None:
        waited.append(time.perf_counter())
        if progress is not None:
            progress("wait for lock", 0, 1)

    with StoreWriter(store_path, lock_timeout, on_wait) as writer:
        if waited and progress is not None:
            progress("wait for lock", 1, 1)
        t0 = time.perf_counter()
        result, pending = _scan(new, load_store(store_path), store_path, config, labeled, progress, t0, keep=True)
        if pending is None or (accept is not None and not accept(result)):
            return result, 0
        t0 = time.perf_counter()
        context, eligible, knn = pending
        _write_version(writer, context, eligible, knn)
        result.timings["update"] = time.perf_counter() - t0
        return result, len(context.features.rows.new)


def _scan(new: ImageSet, st: dict, store_path: str | Path, config: ScanConfig, labeled: ImageSet | None,
          progress: Progress | None, t0: float, *, keep: bool) -> tuple[AuditResult, tuple | None]:
    """The scan of ``new`` against the loaded store ``st``; with ``keep``, also what
    :func:`_write_version` needs to append it (None when nothing is new)."""
    if tuple(new.shape) != st["shape"]:
        raise ShapeMismatchError(f"the batch's images are {'×'.join(map(str, new.shape))} but the store at "
                                 f"{store_path} holds {'×'.join(map(str, st['shape']))} images")
    new = _drop_stored(new, st, store_path)
    check_labeled(new, labeled)
    n_old, proj = len(st["ids"]), st["projection"]
    new_rows = pixel_rows(new.images) if len(new) else np.empty((0, int(np.prod(st["shape"]))), np.uint8)
    new_proj = proj.transform(new_rows)
    rows = StackedRows(st["rows"], new_rows)
    projected = np.concatenate([st["projected"], new_proj])
    features = Features(rows=rows, projected=projected, projection=proj)
    eligible = np.concatenate([st["eligible"], row_std(new_rows) >= config.colinearity.flat_std])
    index = st["index"]
    index.add(np.ascontiguousarray(new_proj))
    timings = {"load": time.perf_counter() - t0}
    t0 = time.perf_counter()
    n, k = len(projected), min(config.k, len(projected) - 1)
    new_ids = np.arange(n_old, n, dtype=np.int64)
    sq_new, idx_new = drop_self(*search(index, new_proj, k + 1), new_ids, k)
    sq_new = np.where(idx_new < 0, np.inf, np.maximum(sq_new, 0)).astype(np.float32)
    touched_old = np.unique(idx_new[(idx_new >= 0) & (idx_new < n_old)])
    stored = st["knn"]
    if stored is not None and stored[0].shape[1] == k:
        idx_old, sq_old = merge_reverse(stored, touched_old, idx_new, sq_new, new_ids)
    else:  # no stored graph (or another k): search the touched old rows again
        sq_old, idx_old = drop_self(*search(index, projected[touched_old], k + 1), touched_old, k)
    indices = -np.ones((n, k), np.int64)
    sqdist = np.full((n, k), np.inf, np.float32)
    indices[new_ids], sqdist[new_ids] = idx_new, sq_new
    indices[touched_old], sqdist[touched_old] = idx_old, sq_old
    sqdist = np.where(indices < 0, np.inf, np.maximum(sqdist, 0)).astype(np.float32)
    graph = NeighborGraph(indices=indices, sqdist=sqdist, projected=projected, index=index, kind=st["kind"])
    timings["neighbors"] = time.perf_counter() - t0
    ids = tuple(st["ids"]) + tuple(new.ids)
    pool = ImageSet(np.empty((0,) + tuple(new.shape), np.uint8), (), unreadable=new.unreadable, skipped=new.skipped,
                    notes=new.notes, summary=new.summary)
    det = tuple(d for d in config.detectors if d != "cluster") or ("bridge",)
    cfg = _replace(config, detectors=det)
    result = run_detectors(features, graph, _IdsOnly(pool, ids), cfg, labeled=labeled, progress=progress,
                           timings=timings, points=np.concatenate([touched_old, new_ids]), eligible=eligible,
                           root=str(store_path))
    if not keep or len(new) == 0:
        return result, None
    ctx = ScanContext(Features(Concat(st["rows"], new_rows), projected, proj), graph, ids, config, st["shape"])
    knn = None
    if stored is not None and stored[0].shape[1] == k:  # the whole pool's lists, touched rows updated
        full_i = np.concatenate([np.asarray(stored[0]), idx_new])
        full_d = np.concatenate([np.asarray(stored[1]), sq_new])
        full_i[touched_old], full_d[touched_old] = idx_old, sq_old
        knn = (full_i, full_d)
    return result, (ctx, eligible, knn)


def _drop_stored(new: ImageSet, st: dict, store_path: str | Path) -> ImageSet:
    """The batch without the images already stored under the same id with the same pixels (a
    rerun of an accepted batch); an id stored with other pixels is an error: one id, one image."""
    clash = set(new.ids).intersection(st["ids"])
    if not clash:
        return new
    where = {i: pos for pos, i in enumerate(st["ids"]) if i in clash}
    mine = [j for j, i in enumerate(new.ids) if i in clash]
    stored_rows = np.asarray(st["rows"][sorted(where.values())])
    by_id = dict(zip(sorted(where, key=where.get), stored_rows))
    changed = [new.ids[j] for j in mine if not np.array_equal(by_id[new.ids[j]], new.images[j].reshape(-1))]
    if changed:
        raise ShapeMismatchError(f"{len(changed)} ids of the batch are already in the store at {store_path} with other "
                                 f"pixels, e.g. {changed[0]!r}: one id holds one image; rename the new files")
    keep = [j for j, i in enumerate(new.ids) if i not in clash]
    note = (f"{len(mine)} of the batch's images are already in the store (same ids, same pixels): scanned as "
            "the stored images they are, not added again")
    return dataclasses.replace(new.subset(keep), unreadable=new.unreadable, skipped=new.skipped,
                               notes=tuple(new.notes) + (note,), summary=new.summary)


def load_store(path: str | Path, *, verify_checksums: bool = True) -> dict:
    """Validate and open the current version of STORE; raises CheckpointError naming what is
    missing or wrong (a file that does not match its checksum included). A version that a
    writer collected while it was being opened is followed to the new current one."""
    path = Path(path)
    for _ in range(8):
        before = _current_name(path)
        try:
            folder, files = open_version(path)
            return _load(path, folder, files, verify_checksums)
        except CheckpointError:
            if _current_name(path) == before:  # nothing moved under us: the store itself is wrong
                raise
    raise CheckpointError(f"scan index at {path} changed 8 times while being opened; try again")


def stored_shape(path: str | Path) -> tuple[int, int, int]:
    """(H, W, C) of the images STORE holds, from its small meta.json only: a batch scanned
    --against it is read at this size, whatever working size the batch alone would get."""
    folder, _ = open_version(Path(path))
    try:
        meta = json.loads(read_small(folder / "meta.json", 1 << 20))
        shape = tuple(int(v) for v in meta["shape"])
    except (OSError, ValueError, KeyError, TypeError):
        raise CheckpointError(f"scan index at {path} has an unreadable meta.json") from None
    if len(shape) != 3 or min(shape) < 1:
        raise CheckpointError(f"scan index at {path} is corrupt: meta.json's shape is {shape}")
    return shape  # type: ignore[return-value]


def _current_name(path: Path) -> str | None:
    try:
        cur = read_current(path)
    except CheckpointError:
        return None
    return cur[0] if cur else None


def _load(path: Path, folder: Path, files: dict | None, check: bool) -> dict:
    import faiss

    missing = [name for name in _FILES if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"scan index at {path} is incomplete: missing {', '.join(missing)}")
    has_knn = (folder / "knn_indices.npy").is_file() and (folder / "knn_sqdist.npy").is_file()
    lazy = None
    if files is not None and check:  # a v1 store has no manifest: it gains one on its next update
        names = _FILES + (_KNN if has_knn or any(n in files for n in _KNN) else ())
        check_size(folder, "rows.npy", files)
        if files["rows.npy"]["size"] > EAGER_ROWS:  # every block checked before a row of it is used
            names = tuple(n for n in names if n != "rows.npy")
            lazy = LazyVerifier(folder, "rows.npy", files["rows.npy"])
        verify(folder, files, names)
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"scan index at {path} has an unreadable meta.json: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a scan index written by ssl-poison-audit")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"scan index at {path} has format version {meta.get('version')!r}; "
                              f"this version reads {VERSION}: rebuild it with a full scan")
    try:
        ids = json.loads((folder / "ids.json").read_text())
        rows = np.load(folder / "rows.npy", mmap_mode="r")
        eligible = np.load(folder / "eligible.npy")
        mean = np.load(folder / "mean.npy")
        comps = np.load(folder / "components.npy")
        projected = np.load(folder / "projected.npy")
        index = faiss.read_index(str(folder / "index.faiss"))
        knn = None
        if has_knn:
            knn = (np.load(folder / "knn_indices.npy", mmap_mode="r"), np.load(folder / "knn_sqdist.npy", mmap_mode="r"))
    except Exception as e:  # truncated npy, bad pickle-free header, faiss read error
        raise CheckpointError(f"scan index at {path} is corrupt: {type(e).__name__}: {e}") from None
    n, shape, dim = meta.get("n"), meta.get("shape"), meta.get("dim")
    if not (_count(n) and isinstance(shape, list) and len(shape) == 3 and all(_count(v) and v > 0 for v in shape)
            and _count(dim) and dim > 0):
        raise CheckpointError(f"scan index at {path} is corrupt: meta.json has no valid n, shape and dim")
    shape, d_in = tuple(shape), int(np.prod(shape))
    ok = (isinstance(ids, list) and len(ids) == n and all(isinstance(i, str) for i in ids) and len(set(ids)) == n
          and rows.shape == (n, d_in) and rows.dtype == np.uint8
          and eligible.shape == (n,) and eligible.dtype == bool
          and mean.shape == (d_in,) and comps.shape == (d_in, dim) and projected.shape == (n, dim)
          and all(a.dtype == np.float32 for a in (mean, comps, projected)) and index.ntotal == n and index.d == dim
          and (knn is None or (knn[0].shape[0] == n and knn[0].ndim == 2 and knn[1].shape == knn[0].shape
                               and knn[0].dtype == np.int64 and knn[1].dtype == np.float32)))
    if not ok:
        raise CheckpointError(f"scan index at {path} is corrupt: its files disagree on the number, shape or type "
                              "of images")
    if lazy is not None:
        rows = VerifiedRows(rows, lazy)
    return {"ids": ids, "rows": rows, "eligible": eligible, "projection": Projection(mean, comps),
            "projected": projected, "index": index, "shape": shape, "kind": meta.get("index_kind", "flat"),
            "knn": knn}


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def merge_reverse(stored: tuple[np.ndarray, np.ndarray], touched: np.ndarray, idx_new: np.ndarray,
                  sq_new: np.ndarray, new_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """kNN lists (int64 / float32 ``T×k``) of the old rows ``touched`` (sorted, unique) once the
    batch joins: each stored list merged with the new rows that have that old row among their
    own k nearest (reverse edges), the k closest kept. A new row closer to an old row than its
    stored neighbours but without it in its own list is missed; in a bridge, consecutive points
    are each other's nearest, so the chain's edges are kept."""
    k = idx_new.shape[1]
    n_old = len(stored[0])
    rev = (idx_new >= 0) & (idx_new < n_old)
    pos = np.searchsorted(touched, idx_new[rev])  # every reverse target is in touched
    row = np.concatenate([np.repeat(np.arange(len(touched)), k), pos])
    nb = np.concatenate([np.asarray(stored[0][touched]).ravel(), np.broadcast_to(new_ids[:, None], idx_new.shape)[rev]])
    d = np.concatenate([np.asarray(stored[1][touched]).ravel(), sq_new[rev]])
    order = np.lexsort((nb, d, row))  # by row, then distance (ties by id: deterministic)
    row, nb, d = row[order], nb[order], d[order]
    rank = np.arange(len(row)) - np.searchsorted(row, row)  # position within its row's group
    keep = rank < k
    out_i = -np.ones((len(touched), k), np.int64)
    out_d = np.full((len(touched), k), np.inf, np.float32)
    out_i[row[keep], rank[keep]] = nb[keep]
    out_d[row[keep], rank[keep]] = d[keep]
    return out_i, out_d


# --- helpers -----------------------------------------------------------------------------


class _IdsOnly:
    """The few ImageSet attributes run_detectors reads (ids, unreadable, root) for old+new."""

    def __init__(self, batch: ImageSet, ids: tuple[str, ...]) -> None:
        self.ids, self.unreadable, self.root = ids, batch.unreadable, None
        self.skipped, self.notes, self.summary = batch.skipped, batch.notes, batch.summary


def _replace(config: ScanConfig, **kw) -> ScanConfig:
    import dataclasses

    return dataclasses.replace(config, **kw)


