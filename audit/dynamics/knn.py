"""k-nearest "owners" under squared L2 for the influence measures (paper 5.3), without N×N.

Influence needs, for every query row ``q_u`` (N×D), the k database owners ``v != u`` with the
smallest ``min over v's rows of ||q_u - x_r||²`` (one row per owner for the paper's measure,
one per time lag for lagged-influence). Methods:

* ``flat``: brute force, exact. At N = 60k, D = 990 it costs ~95 s on 2 idle cores (measured):
  N² = 3.6e9 distances, and FAISS's top-k selection alone costs ~1e-8 s per distance, so even a
  64-dim flat search takes tens of seconds. Over the 20 s budget.
* ``certified``: (1) project queries and database on the top ``pca_dim`` principal axes of a row
  sample (an orthogonal projection after centring, so projected distances are LOWER BOUNDS);
  (2) ``candidates`` nearest rows in the projection (flat); (3) rerank them with exact full-D
  distances; (4) a query whose k-th reranked distance is <= its largest projected candidate
  distance is proven exact, the others are searched again flat. Exact; fast only when
  trajectories compress (real ones are sigmoids plus noise, the jitter does not compress).
* ``pca``: steps 1-3 only; ``ivf``: steps 1-3 with an IVF index (``nlist = 4·sqrt(rows)``,
  ``nprobe = 16``) in the projection: sub-quadratic, approximate. Uncertain queries still get
  exact distances to real neighbours, so their average is an UPPER bound of the exact one.
* ``auto`` (default): ``flat`` up to 20k queries, ``ivf`` above. Recall@5 and the error of the
  resulting avg influence are measured by ``benchmarks/bench_influence.py recall`` and reported
  in docs/dynamics.md.

Shape contract: returns ``dist`` float32 ``N×k`` ascending, ``owner`` int64 ``N×k`` (-1 pads).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audit.errors import invalid_parameter

METHODS = ("auto", "ivf", "pca", "certified", "flat")
EXACT_MAX = 20_000  # "auto" is exact (flat) up to this many queries, "ivf" above: see module doc
IVF_NPROBE = 16  # inverted lists visited per query (of nlist = 4·sqrt(rows)); recall in docs/dynamics.md
_FLOAT_SLACK = 1e-5  # relative float32 error allowed for FAISS's ||q||²+||x||²-2q·x distances


def _faiss():
    import faiss

    return faiss


def knn_owners(queries: np.ndarray, database: np.ndarray, owners: np.ndarray, k: int, *,
               method: str = "certified", pca_dim: int = 64, candidates: int = 64,
               pca_sample: int = 10_000, seed: int = 0,
               query_owner: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """For each query u (owner ``query_owner[u]``, default u), the k nearest owners v != u
    and each one's minimum distance.

    ``database`` rows belong to ``owners`` (int64, one owner may hold several rows, e.g. one
    per time lag). ``method``: ``pca`` (steps 1-3 of the module doc: approximate), ``certified``
    (steps 1-4: exact) or ``flat`` (brute force: exact). With ``pca`` an uncertified query still
    gets exact distances to real neighbours, so its mean is an UPPER bound of the exact one;
    ``stats["certified"]`` says for how many queries the answer is provably exact."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    x = np.ascontiguousarray(database, dtype=np.float32)
    owners = np.asarray(owners, dtype=np.int64)
    rows_per_owner = int(np.bincount(owners).max()) if len(owners) else 1
    if method not in METHODS:
        raise invalid_parameter("method", "knn_owners", f"one of {', '.join(METHODS)}", method)
    if k < 1:
        raise invalid_parameter("k", "knn_owners", "an int >= 1", k)
    need = (k + 1) * rows_per_owner  # rows to fetch so k owners other than u surely appear
    n, d = q.shape
    qo = np.arange(n) if query_owner is None else np.asarray(query_owner, dtype=np.int64)
    if method == "auto":
        method = "flat" if n <= EXACT_MAX else "ivf"
    stats: dict[str, Any] = {"method": method, "dim": d, "rows": len(x)}
    if method == "flat" or len(x) <= need:
        dist, owner = _flat(q, x, owners, k, need, qo)
        stats.update(certified=0.0, exact_queries=n)
        return dist, owner, stats

    faiss = _faiss()
    if d <= pca_dim:  # already small (e.g. pixel features): the identity is the best projection
        qp, xp = q, x
        basis = np.zeros((d, d), dtype=np.float32)
    else:
        basis, mean = _pca(q, x, pca_dim, pca_sample, seed)
        qp = (q - mean) @ basis
        xp = np.ascontiguousarray((x - mean) @ basis)
    c = min(max(candidates, need), len(x))
    pdist, rows = _candidates(np.ascontiguousarray(qp), xp, c, ivf=(method == "ivf"), seed=seed)
    slack = _FLOAT_SLACK * ((qp * qp).sum(1) + float((xp * xp).sum(1).max())) + 1e-12
    bound = pdist[:, -1] - slack  # every non-candidate row is at least this far (lower bound)
    full = faiss.IndexFlatL2(d)
    full.add(x)
    true = _exact(full, q, rows)
    dist, owner = _reduce(true, owners[np.maximum(rows, 0)], qo, k)
    ok = (owner[:, -1] >= 0) & (dist[:, -1] <= bound) & (rows[:, -1] >= 0)
    if method == "ivf":
        ok[:] = False  # IVF candidates carry no lower-bound guarantee
    redo = np.flatnonzero(~ok) if method == "certified" else np.zeros(0, dtype=np.int64)
    if len(redo):
        dist[redo], owner[redo] = _flat(q[redo], x, owners, k, need, qo[redo], full)
    stats.update(certified=float(ok.mean()), exact_queries=int(len(redo)), pca_dim=int(basis.shape[1]),
                 candidates=int(c))
    return dist, owner, stats


def _candidates(qp: np.ndarray, xp: np.ndarray, c: int, *, ivf: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``c`` nearest database rows per query in the projection: flat (every pair: FAISS's
    top-k selection over N² distances costs ~1e-8 s each, ~40 s at 60k even at 64 dims), or
    IVF (sub-quadratic; an IVF list missed can drop a true candidate, so its lower bound is
    not a certificate; a missing row reads -1 with distance inf)."""
    faiss = _faiss()
    m, dim = xp.shape
    if not ivf:
        index = faiss.IndexFlatL2(dim)
        index.add(xp)
        return index.search(qp, c)
    nlist = int(max(1, min(4 * np.sqrt(m), m // 39)))  # faiss wants >= 39 training points per list
    quantizer = faiss.IndexFlatL2(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist)
    index.cp.seed = seed
    index.cp.niter = 10  # coarse lists only route queries; 10 k-means rounds vs 25 cost 1 s less at 60k
    rng = np.random.default_rng(seed)
    train = xp[rng.choice(m, min(m, 40 * nlist), replace=False)]
    index.train(np.ascontiguousarray(train))
    index.add(xp)
    index.nprobe = min(IVF_NPROBE, nlist)
    return index.search(qp, c)


def _pca(q: np.ndarray, x: np.ndarray, dim: int, sample: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``dim`` principal axes (D×dim, orthonormal) of a sample of query and database rows.
    Any orthonormal basis keeps the lower bound valid; PCA makes it tight."""
    rng = np.random.default_rng(seed)
    half = max(1, sample // 2)
    sq = q[rng.choice(len(q), min(half, len(q)), replace=False)]
    sx = x[rng.choice(len(x), min(half, len(x)), replace=False)]
    s = np.concatenate([sq, sx])
    mean = s.mean(0, dtype=np.float64).astype(np.float32)
    s = s - mean
    cov = (s.T @ s).astype(np.float64)  # float32 product (fast); eigh in float64
    w, v = np.linalg.eigh(cov)
    basis = v[:, ::-1][:, :dim]
    return np.ascontiguousarray(basis, dtype=np.float32), mean


def _flat(q: np.ndarray, x: np.ndarray, owners: np.ndarray, k: int, need: int,
          query_owner: np.ndarray, index: Any = None) -> tuple[np.ndarray, np.ndarray]:
    if index is None:
        index = _faiss().IndexFlatL2(x.shape[1])
        index.add(x)
    _, rows = index.search(q, min(need, len(x)))
    true = _exact(index, q, rows)  # recompute: FAISS's ||q||²+||x||²-2q·x loses digits
    return _reduce(true, owners[np.maximum(rows, 0)], query_owner, k)


def _exact(index: Any, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Exact squared distances from each query to its listed rows (inf where row is -1), by
    direct differences in FAISS's C++ loop (no N×c×D gather in numpy)."""
    faiss = _faiss()
    lab = np.ascontiguousarray(np.maximum(rows, 0), dtype=np.int64)
    out = np.empty(lab.shape, dtype=np.float32)
    qc = np.ascontiguousarray(q, dtype=np.float32)
    index.compute_distance_subset(len(qc), faiss.swig_ptr(qc), lab.shape[1], faiss.swig_ptr(out),
                                  faiss.swig_ptr(lab))
    out[rows < 0] = np.inf
    return out


def _reduce(dist: np.ndarray, own: np.ndarray, self_owner: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query: drop the query's own rows, keep each owner's smallest distance, return the k
    smallest owners (ascending; inf / -1 pad when fewer than k owners were seen)."""
    b = dist.shape[0]
    dist = np.where(own == self_owner[:, None], np.inf, dist)
    order = np.argsort(dist, axis=1, kind="stable")
    d_sorted = np.take_along_axis(dist, order, 1)
    o_sorted = np.take_along_axis(own, order, 1)
    out_d = np.full((b, k), np.inf, dtype=np.float32)
    out_o = np.full((b, k), -1, dtype=np.int64)
    if _distinct_rows(o_sorted):
        m = min(k, dist.shape[1])
        out_d[:, :m], out_o[:, :m] = d_sorted[:, :m], np.where(np.isfinite(d_sorted[:, :m]), o_sorted[:, :m], -1)
        return out_d, out_o
    # first occurrence of each owner in sorted order is its minimum
    for i in range(b):
        _, first = np.unique(o_sorted[i], return_index=True)
        first = np.sort(first)
        first = first[np.isfinite(d_sorted[i, first])][:k]
        out_d[i, :len(first)] = d_sorted[i, first]
        out_o[i, :len(first)] = o_sorted[i, first]
    return out_d, out_o


def _distinct_rows(o: np.ndarray) -> bool:
    """True when no row repeats an owner (one database row per owner): the fast path applies."""
    s = np.sort(o, axis=1)
    return not (s[:, 1:] == s[:, :-1]).any()
