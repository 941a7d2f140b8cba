"""Incremental scanning for ingestion: check a new batch against an already scanned pool
(paper 5.2) without rescanning it.

A STORE is a directory written atomically (a temporary sibling, then renamed into place):

    meta.json        format name + version, image shape, counts, projection dim, index kind
    ids.json         the pool's ids, in row order
    rows.npy         uint8 N×D pixel rows, memory-mapped: confirmation reads only the rows it needs
    eligible.npy     bool N, not a flat/blank image (colinearity members)
    mean.npy         float32 D, PCA mean       } the projection, so new images land in the
    components.npy   float32 D×d, PCA basis    } same space as the stored ones
    projected.npy    float32 N×d
    index.faiss      the FAISS index over ``projected`` (CPU form)

``scan_against`` adds the batch to the index, builds kNN lists for the new rows and the old rows
they land next to, proposes triples centred on those rows only, and grows chains over old+new
(the line scan covers every stored row in the projected space). Results index the combined pool:
rows ``0..N-1`` are the stored images, ``N..`` the batch. Only ``bridge`` and ``near_duplicate``
run: cluster statistics need the whole pool's graph.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from audit.data.imageset import ImageSet
from audit.errors import CheckpointError, ShapeMismatchError
from audit.features import Features, Projection, pixel_rows
from audit.findings import AuditResult
from audit.neighbors import NeighborGraph, drop_self, search
from audit.scan.pipeline import Progress, ScanConfig, ScanContext, build_context, check_labeled, run_detectors

FORMAT = "ssl-poison-audit/scan-index"
VERSION = 1
_FILES = ("meta.json", "ids.json", "rows.npy", "eligible.npy", "mean.npy", "components.npy",
          "projected.npy", "index.faiss")


class _StackedRows:
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


def save_index(context: ScanContext | ImageSet, path: str | Path, config: ScanConfig = ScanConfig(), *,
               eligible: np.ndarray | None = None) -> Path:
    """Write STORE (module docstring); returns its path.

    ``context`` is what :func:`audit.scan.pipeline.scan_with_context` returned (nothing is
    rebuilt), or an ImageSet, for which features and index are built here with ``config``."""
    import faiss

    if isinstance(context, ImageSet):
        context = build_context(context, config)
    f = context.features
    cfg = context.config.colinearity
    if eligible is None:
        eligible = np.asarray(f.rows).std(axis=1) >= cfg.flat_std
    index = context.graph.index
    if context.graph.kind.startswith("gpu-"):
        index = faiss.index_gpu_to_cpu(index)
    shape = context.shape
    meta = {"format": FORMAT, "version": VERSION, "n": len(f), "shape": list(shape),
            "dim": f.projection.dim, "index_kind": context.graph.kind.replace("gpu-", ""), "k": context.graph.k}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        _write_rows(tmp / "rows.npy", f.rows)
        np.save(tmp / "eligible.npy", np.asarray(eligible, bool))
        np.save(tmp / "mean.npy", f.projection.mean)
        np.save(tmp / "components.npy", f.projection.components)
        np.save(tmp / "projected.npy", f.projected)
        faiss.write_index(index, str(tmp / "index.faiss"))
        (tmp / "ids.json").write_text(json.dumps(list(context.ids)))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))  # written last: marks completeness
        _swap_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def scan_against(new: ImageSet, store_path: str | Path, config: ScanConfig = ScanConfig(), *, update: bool = False,
                 labeled: ImageSet | None = None, progress: Progress | None = None) -> AuditResult:
    """Scan the batch ``new`` against STORE; with ``update`` the batch is appended to STORE."""
    config.validate()
    t0 = time.perf_counter()
    st = load_store(store_path)
    if tuple(new.shape) != st["shape"]:
        raise ShapeMismatchError(f"the batch's images are {'×'.join(map(str, new.shape))} but the store at "
                                 f"{store_path} holds {'×'.join(map(str, st['shape']))} images")
    clash = sorted(set(new.ids) & set(st["ids"]))
    if clash:
        raise ShapeMismatchError(f"{len(clash)} ids of the batch are already in the store, e.g. {clash[0]!r}")
    check_labeled(new, labeled)
    n_old, proj = len(st["ids"]), st["projection"]
    new_rows = pixel_rows(new.images)
    new_proj = proj.transform(new_rows)
    rows = _StackedRows(st["rows"], new_rows)
    projected = np.concatenate([st["projected"], new_proj])
    features = Features(rows=rows, projected=projected, projection=proj)
    eligible = np.concatenate([st["eligible"], new_rows.std(axis=1) >= config.colinearity.flat_std])
    index = st["index"]
    index.add(np.ascontiguousarray(new_proj))
    timings = {"load": time.perf_counter() - t0}
    t0 = time.perf_counter()
    n, k = len(projected), min(config.k, len(projected) - 1)
    new_ids = np.arange(n_old, n, dtype=np.int64)
    sq_new, idx_new = drop_self(*search(index, new_proj, k + 1), new_ids, k)
    touched_old = np.unique(idx_new[(idx_new >= 0) & (idx_new < n_old)])
    sq_old, idx_old = drop_self(*search(index, projected[touched_old], k + 1), touched_old, k)
    indices = -np.ones((n, k), np.int64)
    sqdist = np.full((n, k), np.inf, np.float32)
    indices[new_ids], sqdist[new_ids] = idx_new, sq_new
    indices[touched_old], sqdist[touched_old] = idx_old, sq_old
    sqdist = np.where(indices < 0, np.inf, np.maximum(sqdist, 0)).astype(np.float32)
    graph = NeighborGraph(indices=indices, sqdist=sqdist, projected=projected, index=index, kind=st["kind"])
    timings["neighbors"] = time.perf_counter() - t0
    ids = tuple(st["ids"]) + tuple(new.ids)
    pool = ImageSet(np.empty((0,) + tuple(new.shape), np.uint8), (), unreadable=new.unreadable)
    det = tuple(d for d in config.detectors if d != "cluster") or ("bridge",)
    cfg = _replace(config, detectors=det)
    result = run_detectors(features, graph, _IdsOnly(pool, ids), cfg, labeled=labeled, progress=progress,
                           timings=timings, points=np.concatenate([touched_old, new_ids]), eligible=eligible,
                           root=str(store_path))
    if update:
        t0 = time.perf_counter()
        ctx = ScanContext(Features(_Concat(st["rows"], new_rows), projected, proj), graph, ids, config, st["shape"])
        save_index(ctx, store_path, eligible=eligible)
        result.timings["update"] = time.perf_counter() - t0
    return result


def load_store(path: str | Path) -> dict:
    """Validate and open STORE; raises CheckpointError naming what is missing or wrong."""
    import faiss

    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"no scan index at {path}: create one with a full scan first (save_index)")
    missing = [name for name in _FILES if not (path / name).is_file()]
    if missing:
        raise CheckpointError(f"scan index at {path} is incomplete: missing {', '.join(missing)}")
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"scan index at {path} has an unreadable meta.json: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a scan index written by ssl-poison-audit")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"scan index at {path} has format version {meta.get('version')!r}; "
                              f"this version reads {VERSION}: rebuild it with a full scan")
    try:
        ids = json.loads((path / "ids.json").read_text())
        rows = np.load(path / "rows.npy", mmap_mode="r")
        eligible = np.load(path / "eligible.npy")
        mean = np.load(path / "mean.npy")
        comps = np.load(path / "components.npy")
        projected = np.load(path / "projected.npy")
        index = faiss.read_index(str(path / "index.faiss"))
    except Exception as e:  # truncated npy, bad pickle-free header, faiss read error
        raise CheckpointError(f"scan index at {path} is corrupt: {type(e).__name__}: {e}") from None
    n, shape = meta.get("n"), tuple(meta.get("shape", ()))
    d_in = int(np.prod(shape)) if shape else -1
    ok = (isinstance(ids, list) and len(ids) == n and rows.shape == (n, d_in) and rows.dtype == np.uint8
          and eligible.shape == (n,) and mean.shape == (d_in,) and comps.shape == (d_in, meta.get("dim"))
          and projected.shape == (n, meta.get("dim")) and index.ntotal == n)
    if not ok:
        raise CheckpointError(f"scan index at {path} is corrupt: its files disagree on the number or shape of images")
    return {"ids": ids, "rows": rows, "eligible": eligible, "projection": Projection(mean, comps),
            "projected": projected, "index": index, "shape": shape, "kind": meta.get("index_kind", "flat")}


# --- helpers -----------------------------------------------------------------------------


class _IdsOnly:
    """The few ImageSet attributes run_detectors reads (ids, unreadable, root) for old+new."""

    def __init__(self, batch: ImageSet, ids: tuple[str, ...]) -> None:
        self.ids, self.unreadable, self.root = ids, batch.unreadable, None


class _Concat:
    """Rows to write on update: old (memory-mapped) then new, streamed in blocks."""

    def __init__(self, old: np.ndarray, new: np.ndarray) -> None:
        self.old, self.new = old, new
        self.shape = (len(old) + len(new), old.shape[1])

    def blocks(self, size: int = 65536):
        for s in range(0, len(self.old), size):
            yield np.asarray(self.old[s : s + size])
        yield self.new


def _write_rows(path: Path, rows) -> None:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=tuple(rows.shape))
    pos = 0
    for block in rows.blocks() if isinstance(rows, _Concat) else (rows[s : s + 65536] for s in range(0, len(rows), 65536)):
        out[pos : pos + len(block)] = block
        pos += len(block)
    out.flush()
    del out


def _swap_into_place(tmp: Path, path: Path) -> None:
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def _replace(config: ScanConfig, **kw) -> ScanConfig:
    import dataclasses

    return dataclasses.replace(config, **kw)


