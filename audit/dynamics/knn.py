"""Nearest neighbours of prediction trajectories (paper 5.3), on the scan's stack.

Every dynamics score asks, for each query row ``q_u`` (N×D), for the k database rows ``x_v``,
v != u, with the smallest ``||q_u - x_v||²``: the paper's influence searches its μ vectors, the
chain score its motions and (``--pixel-links``) the pool's pixels. The search is the scan's:
:func:`audit.neighbors.build_index` (exact up to ``EXACT_MAX`` rows, IVF above, on a GPU when
faiss has one) and, above ``EXACT_MAX`` or with ``method="ivf"``, the PCA of
:func:`audit.features.fit_projection` first (``dim`` axes). Candidates are then reranked with
exact full-D distances (FAISS's ``||q||²+||x||²-2q·x`` loses the digits of the tiny distances the
influence measure lives on), so an approximate search can miss a neighbour but never reports a
distance smaller than the true one: its average influence is an upper bound of the exact one.
Recall of the approximate search: docs/dynamics.md.

Shape contract: returns ``dist`` float32 ``N×k`` ascending and ``nbr`` int64 ``N×k`` (-1 pads).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audit.errors import invalid_parameter
from audit.neighbors import EXACT_MAX, build_index, search

METHODS = ("auto", "ivf", "flat")  # auto: flat up to EXACT_MAX queries, ivf above


def nearest(queries: np.ndarray, database: np.ndarray, k: int, *, method: str = "auto", dim: int = 64,
            candidates: int = 64, seed: int = 0,
            own_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """For each query u, the k nearest database rows other than u's own (``own_rows[u]``, by
    default row u) and their exact squared distances; ``stats`` says how they were searched."""
    if method not in METHODS:
        raise invalid_parameter("method", "nearest", f"one of {', '.join(METHODS)}", method)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise invalid_parameter("k", "nearest", "an int >= 1", k)
    q = np.ascontiguousarray(queries, dtype=np.float32)
    x = np.ascontiguousarray(database, dtype=np.float32)
    n, d = q.shape
    if method == "auto":
        method = "flat" if n <= EXACT_MAX else "ivf"
    stats: dict[str, Any] = {"method": method, "dim": d, "rows": len(x)}
    if method == "flat":
        index, kind = build_index(x, exact_max=len(x))
        wanted = k + 1  # one more than asked: u's own row is dropped
        _, rows = search(index, q, min(wanted, len(x)))
    else:
        from audit.features import fit_projection

        proj = fit_projection(x, dim=min(dim, d), seed=seed)
        # IVF wants >= 39 training points per list: a forced "ivf" on a tiny set searches flat
        index, kind = build_index(proj.transform(x), exact_max=0 if len(x) >= 39 else len(x), seed=seed)
        wanted = min(max(candidates, k + 1), len(x))
        _, rows = search(index, proj.transform(q), wanted)
        stats.update(pca_dim=proj.dim, candidates=wanted)
    stats["index"] = kind
    exact = _exact(q, x, rows)
    own = np.arange(n) if own_rows is None else np.asarray(own_rows, dtype=np.int64)
    exact[rows == own[:, None]] = np.inf  # v != u
    order = np.argsort(exact, axis=1, kind="stable")[:, :k]
    dist = np.take_along_axis(exact, order, 1)
    nbr = np.where(np.isfinite(dist), np.take_along_axis(rows, order, 1), -1)
    if dist.shape[1] < k:  # fewer rows than k + 1: pad
        pad = k - dist.shape[1]
        dist = np.pad(dist, ((0, 0), (0, pad)), constant_values=np.inf)
        nbr = np.pad(nbr, ((0, 0), (0, pad)), constant_values=-1)
    return dist.astype(np.float32), nbr.astype(np.int64), stats


def _exact(q: np.ndarray, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Exact squared distances from each query to its listed rows (inf where a row is -1), by
    direct differences in FAISS's C++ loop (no N×c×D gather in numpy)."""
    import faiss

    flat = faiss.IndexFlatL2(x.shape[1])
    flat.add(x)
    lab = np.ascontiguousarray(np.maximum(rows, 0), dtype=np.int64)
    out = np.empty(lab.shape, dtype=np.float32)
    flat.compute_distance_subset(len(q), faiss.swig_ptr(q), lab.shape[1], faiss.swig_ptr(out), faiss.swig_ptr(lab))
    out[rows < 0] = np.inf
    return out
