"""Motion-chain: an example whose prediction *motion* lies between two others', on a line.

Why (measured, docs/benchmarks.md "audit dynamics"): on Fashion-MNIST at CPU scale the paper's
lag-1 influence does not separate a bridge (AUROC 0.60-0.75) because clean near-duplicates move
as alike as neighbouring bridge members. What does separate is the *shape* of the set of
motions. A bridge is a one-parameter family (α from the labeled source x' to the target x*), so
its members' training trajectories form a curve: each member's motion sits between its
predecessor's and its successor's, which lie on opposite sides of it. A clean image's closest
motions form a blob around it, in directions that are not opposite.

Definition, for predictions ``f_k(u)`` recorded at K points:

1. motion ``m_u = [log(f_{k+1}(u) + ε) - log(f_k(u) + ε)]_{k=0..K-2}`` ((K-1)·C values;
   log space so that a class rising from 0.001 to 0.01 counts, ε = ``motion_eps``);
2. u's ``motion_neighbors`` nearest motions v ≠ u (FAISS, :func:`audit.dynamics.knn.nearest`);
3. ``between(u) = -min over pairs (v, w) of cos(m_v - m_u, m_w - m_u)``: 1 when two neighbours
   are exactly opposite (u on a line between them), ~0 for directions at random. Optionally
   (``motion_dedupe`` r > 0, off by default) a neighbour whose squared distance is below r times
   u's median one is u's near-duplicate and is left out: a tight group of copies with shared
   motion noise otherwise looks like a short segment (the synthetic pool of the tests,
   ``tests/audit/dynamics/simulate.py``, flags its duplicate groups at r = 0; the real clean run of the
   benchmark flags none, and r = 0.05 costs real bridges a few members);
4. ``value(u) = ½ between(u) + ½ mean between(v)`` over u's ``smooth_neighbors`` nearest: the
   members of a bridge all sit on it, so averaging lifts its two ends and quiets lone clean
   examples that happen to lie between two others. The nearest are motions, or images when
   ``features`` (pixels) are given: then pixels choose *whose* dynamics are averaged, the
   measure itself stays a dynamics one (a dense clean cluster of images with blob-shaped
   motions stays low).

Higher = more suspicious; ``suspicion = value`` (already on a bounded [-1, 1] scale).
Shape contract: ``probs`` float32 ``N×K×C``; ``features`` float ``N×d`` rows aligned with it.
"""

from __future__ import annotations

import numpy as np

from audit.dynamics.config import DynamicsConfig, ScoreOutput
from audit.dynamics.knn import nearest
from audit.errors import PredictionsError

_CHUNK = 2048  # rows of the pairwise-cosine step at a time (N·k·D floats would not fit at 60k)


def motions(probs: np.ndarray, eps: float) -> np.ndarray:
    """Log-space prediction motion of every example: float32 ``N × (K-1)·C``."""
    p = np.asarray(probs, dtype=np.float32)
    n = p.shape[0]
    return np.ascontiguousarray(np.diff(np.log(p + np.float32(eps)), axis=1).reshape(n, -1))


def betweenness(x: np.ndarray, nbr: np.ndarray) -> np.ndarray:
    """``-min cos`` over pairs of u's neighbour offsets ``x[v] - x[u]`` (``nbr`` int N×k, -1 pads
    ignored); float64 N in [-1, 1]; -1 where u has fewer than two neighbours."""
    n, k = nbr.shape
    out = np.full(n, -1.0)
    if k < 2:
        return out
    iu = np.triu_indices(k, 1)
    for a in range(0, n, _CHUNK):
        b = min(n, a + _CHUNK)
        idx = nbr[a:b]
        off = x[np.maximum(idx, 0)] - x[a:b, None, :]  # chunk×k×D
        norm = np.linalg.norm(off, axis=2, keepdims=True)
        off /= np.maximum(norm, 1e-12)
        cos = np.matmul(off, off.transpose(0, 2, 1))[:, iu[0], iu[1]]  # batched BLAS
        valid = ((idx >= 0) & (norm[..., 0] > 0))
        cos[~(valid[:, iu[0]] & valid[:, iu[1]])] = np.inf
        best = cos.min(1)
        out[a:b] = np.where(np.isfinite(best), -best, -1.0)
    return out


def motion_chain(probs: np.ndarray, config: DynamicsConfig = DynamicsConfig(),
                 features: np.ndarray | None = None) -> ScoreOutput:
    """Motion-chain value per example (module doc)."""
    p = np.asarray(probs, dtype=np.float32)
    n = p.shape[0]
    if features is not None and len(features) != n:
        raise PredictionsError(f"chain: features have {len(features)} rows for {n} examples.")
    x = motions(p, config.motion_eps)
    k = min(config.motion_neighbors, n - 1)
    dist, nbr, stats = nearest(x, x, k, method=config.knn, dim=config.pca_dim, candidates=config.candidates,
                               seed=config.seed)
    compared = nbr
    if config.motion_dedupe > 0:
        typical = np.nanmedian(np.where(nbr >= 0, dist, np.nan), axis=1, keepdims=True)
        compared = np.where(dist < config.motion_dedupe * typical, -1, nbr)
    between = betweenness(x, compared)
    m = min(config.smooth_neighbors, k)  # >= 1: score_predictions needs 2 examples, so k >= 1
    if features is None:
        smooth = nbr[:, :m]
    else:
        f = np.ascontiguousarray(features, dtype=np.float32).reshape(n, -1)
        _, smooth, _ = nearest(f, f, m, method=config.knn, dim=config.pca_dim, candidates=config.candidates,
                               seed=config.seed)
    s = between[np.maximum(smooth, 0)]
    s[smooth < 0] = np.nan
    around = np.nan_to_num(np.nanmean(s, axis=1), nan=-1.0)
    value = 0.5 * between + 0.5 * around
    stats.update(smooth_space="motion" if features is None else "features", smooth_neighbors=m)
    # the instance grouping links an example to its nearest motions (its neighbours on the chain)
    return ScoreOutput("chain", value, value.astype(np.float64), nbr[:, :max(m, 2)], stats)
