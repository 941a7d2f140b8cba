"""The FAISS k-nearest-neighbour graph, built once per scan and shared by every detector.

Paper 5.2 proposes colinear triples and clusters from pixel-space neighbourhoods; this module
computes those neighbourhoods in the projected space (:mod:`audit.features`).

Index choice (measured on 2 cores, 60k Fashion-MNIST, d = 64): an exact ``IndexFlatL2``
all-pairs search costs ~5-7 s and grows as N², an ``IndexIVFFlat`` with ``nlist = 2·sqrt(N)``
and ``nprobe = 12`` under 1 s (training included) with 99.2% recall of the 16 nearest
neighbours. So pools up to ``exact_max`` (20k: about 1 s exact) use the exact index, larger ones
IVF. Fewer, larger lists than the earlier ``4·sqrt(N)`` with ``nprobe`` 16 scan about as many
entries per query and find more of the true neighbours, while k-means (∝ nlist²) costs a
quarter: 1M synthetic 32×32×3 (2,000 queries against an exact search) recall@16 0.983 -> 0.998,
training 6.8 -> 2.1 s; 60k Fashion-MNIST 0.9910 -> 0.9916 in pixels, 0.9761 -> 0.9792 in the
invariant view, at 0.1-0.2 s less per graph (docs/benchmarks.md).
A GPU index is used when faiss was built with GPU support and a GPU is visible; CPU otherwise.

Shape contract: ``indices`` int64 ``N×k`` (row i never contains i; -1 pads rows that have fewer
than k other points), ``sqdist`` float32 ``N×k`` squared projected distances, ascending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from audit.errors import invalid_parameter

EXACT_MAX = 20_000  # above this many points an exact all-pairs search costs > 1 s on 2 cores
IVF_NPROBE = 12  # lists searched per query, of 2·sqrt(N): recall@16 0.992 at 60k, 0.998 at 1M (10: 0.987, 0.990)
# k-means of the IVF coarse quantizer: its cost is niter · (train points) · nlist · d, i.e. it grows
# as N^1.5 when every point trains (at 1M, nlist 2000: minutes of CPU). A sample of 40 points
# per list (faiss warns below 39) and 10 iterations cost 7 CPU s at 100k (vs 23 s with faiss's
# defaults: up to 256 points per list, 25 iterations) at the same recall@16 (measured on 2 cores,
# synthetic 32×32×3 pool; see docs/benchmarks.md). 5 iterations halve that again (measured at the
# earlier nlist 4·sqrt(N)): recall@16 of
# 2,000 queries on the 1M synthetic pool 0.9822 at 10 and at 5 (training 8.0 -> 3.8 s); 60k
# Fashion-MNIST (5,000 queries) 0.9923 -> 0.9916 in pixels, 0.9777 -> 0.9769 in the invariant view.
IVF_TRAIN_PER_LIST = 40
IVF_NITER = 5
_QUERY_BATCH = 16_384


def _faiss():
    import faiss

    return faiss


def gpu_available() -> bool:
    """True when this faiss build has GPU support and sees at least one GPU."""
    faiss = _faiss()
    try:
        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except Exception:  # a CPU build without the symbol, or a broken driver: stay on CPU
        return False


def build_index(x: np.ndarray, *, exact_max: int = EXACT_MAX, nprobe: int = IVF_NPROBE,
                use_gpu: bool | None = None, seed: int = 0) -> tuple[Any, str]:
    """A FAISS index over float32 ``N×d`` rows; returns ``(index, kind)`` with kind one of
    ``flat``, ``ivf``, optionally prefixed ``gpu-``."""
    faiss = _faiss()
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    nlist = ivf_lists(n, exact_max)
    if nlist is None:
        index, kind = faiss.IndexFlatL2(d), "flat"
    else:
        take = ivf_training_rows(n, nlist, seed)
        index = train_ivf(x if take is None else x[take], nlist, nprobe=nprobe, seed=seed)
        kind = "ivf"
    if use_gpu is None:
        use_gpu = gpu_available()
    if use_gpu:
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, 0, index)
        kind = "gpu-" + kind
    index.add(x)
    return index, kind


def ivf_lists(n: int, exact_max: int = EXACT_MAX) -> int | None:
    """The IVF list count for ``n`` points, or None when they get an exact index."""
    if n <= exact_max:
        return None
    return int(min(2 * np.sqrt(n), n // 39))  # faiss wants >= 39 training points per list


def ivf_training_rows(n: int, nlist: int, seed: int) -> np.ndarray | None:
    """int64 rows the IVF quantizer trains on, in faiss's own order (None: every row, in order).

    This is the sample faiss's k-means draws itself (``rand_perm(n, seed)``, the first
    ``nlist · IVF_TRAIN_PER_LIST``): a sharded scan fetches exactly these rows and trains the
    same quantizer once (FAISS's recipe for indexes split over machines)."""
    m = nlist * IVF_TRAIN_PER_LIST
    if n <= m:
        return None
    faiss = _faiss()
    perm = np.empty(n, np.int32)  # faiss's k-means draws an int permutation too
    faiss.rand_perm(faiss.swig_ptr(perm), n, seed)
    return perm[:m].astype(np.int64)


def train_ivf(sample: np.ndarray, nlist: int, *, nprobe: int = IVF_NPROBE, seed: int = 0) -> Any:
    """An empty ``IndexIVFFlat`` whose quantizer is trained on ``sample`` (float32 ``S×d``)."""
    faiss = _faiss()
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    d = sample.shape[1]
    quantizer = faiss.IndexFlatL2(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist)
    index.cp.seed = seed
    index.cp.niter = IVF_NITER
    index.cp.max_points_per_centroid = IVF_TRAIN_PER_LIST
    index.train(sample)
    index.nprobe = nprobe
    return index


@dataclass(frozen=True, eq=False)
class NeighborGraph:
    """kNN graph over the projected rows, plus the index for later queries."""

    indices: np.ndarray  # int64 N×k, -1 padded
    sqdist: np.ndarray  # float32 N×k, squared distances in the projected space
    projected: np.ndarray  # float32 N×d, the indexed rows
    index: Any  # the faiss index over ``projected``
    kind: str  # flat / ivf / gpu-flat / gpu-ivf

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def query(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(sqdist, indices)`` of the k nearest indexed rows to each query row (float32 ``M×d``)."""
        return search(self.index, q, k)

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Directed edge list ``(src, dst, sqdist)`` without padding."""
        src = np.repeat(np.arange(len(self), dtype=np.int64), self.k)
        dst = self.indices.ravel()
        ok = dst >= 0
        return src[ok], dst[ok], self.sqdist.ravel()[ok]

    def to_sparse(self, weights: str = "distance"):
        """Symmetric scipy CSR ``N×N`` with the projected distance on each kNN edge (linear in N)."""
        from scipy import sparse

        src, dst, sq = self.edges()
        w = np.sqrt(np.maximum(sq, 0)) if weights == "distance" else np.ones(len(src), np.float32)
        n = len(self)
        m = sparse.coo_matrix((w, (src, dst)), shape=(n, n)).tocsr()
        return m.maximum(m.T).tocsr()


def search(index: Any, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Batched ``index.search``; returns float32 squared distances and int64 indices."""
    q = np.ascontiguousarray(q, dtype=np.float32)
    dist = np.empty((len(q), k), np.float32)
    idx = np.empty((len(q), k), np.int64)
    for s in range(0, len(q), _QUERY_BATCH):
        d_, i_ = index.search(q[s : s + _QUERY_BATCH], k)
        dist[s : s + _QUERY_BATCH], idx[s : s + _QUERY_BATCH] = d_, i_
    return dist, idx


def drop_self(sqdist: np.ndarray, idx: np.ndarray, self_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own id from a (k+1)-wide result, keeping the first k others in order."""
    keep = idx != self_ids[:, None]
    # rows where self was not returned (ties, IVF misses) keep their first k entries
    over = keep.sum(axis=1) > k
    last = np.argmax(np.cumsum(keep, axis=1) > k, axis=1)
    keep[over, last[over]] = False
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sqdist, order, 1), np.take_along_axis(idx, order, 1)


def knn_graph(projected: np.ndarray, k: int = 16, *, exact_max: int = EXACT_MAX, nprobe: int = IVF_NPROBE,
              use_gpu: bool | None = None, seed: int = 0) -> NeighborGraph:
    """Build the index once and the kNN graph of every row (self excluded)."""
    if not isinstance(k, int) or k < 1:
        raise invalid_parameter("k", "knn_graph", "an int >= 1", k)
    x = np.ascontiguousarray(projected, dtype=np.float32)
    n = len(x)
    index, kind = build_index(x, exact_max=exact_max, nprobe=nprobe, use_gpu=use_gpu, seed=seed)
    kk, keep = min(k + 1, n), min(k, max(n - 1, 0))
    # search and drop self batch by batch into the N×k outputs: the (k+1)-wide results and
    # drop_self's temporaries then exist for one batch only (about 1 GB of them at 1M images)
    idx = -np.ones((n, k), np.int64)  # tiny pools keep -1 padding so every consumer sees N×k
    sq = np.full((n, k), np.inf, np.float32)
    for s in range(0, n, _QUERY_BATCH):
        q = x[s : s + _QUERY_BATCH]
        d_, i_ = index.search(q, kk)
        d_, i_ = drop_self(d_, i_, np.arange(s, s + len(q), dtype=np.int64), keep)
        idx[s : s + len(q), :keep] = i_
        sq[s : s + len(q), :keep] = np.where(i_ < 0, np.inf, np.maximum(d_, 0))
    return NeighborGraph(indices=idx, sqdist=sq, projected=x, index=index, kind=kind)
