"""Paper 5.3's influence measure, exactly.

Definition (DESIGN.md, paper 5.3). After record i the model gives ``f_i(u_j)`` (softmax, C).
``∂f_i = f_{i+1} - f_i``; ``μ_j^(a,b) = [∂f_a(u_j) … ∂f_{b-1}(u_j), f_b(u_j)]`` ((b-a+1)·C values);
``Influence(u_i, u_j) = ||μ_i^(0,K-2) - μ_j^(1,K-1)||²`` ("u_i changes, u_j follows one record
later"); ``avg influence(u)`` = mean of ``Influence(u, v)`` over the 5 v != u closest by that
measure. Low = suspicious (paper: poisoned < 2e-4, clean ~2e-2 on CIFAR-10).

Computed with FAISS without an N×N matrix: the database holds every ``μ_v^(1,K-1)``, the
queries are every ``μ_u^(0,K-2)`` (both N × (K-1)·C float32), searched for 6 rows, the row
v == u dropped (u's own shifted vector is a different vector and can be close, but the
definition excludes it). :mod:`audit.dynamics.knn` has the search (``docs/dynamics.md`` its
measured accuracy above 20k examples, where it is approximate).

Shape contract: ``probs`` float32 ``N×K×C``; results are length-N arrays and N×k neighbours.
"""

from __future__ import annotations

import numpy as np

from audit.dynamics.config import DynamicsConfig, ScoreOutput
from audit.dynamics.knn import nearest

_TINY = 1e-12  # keeps log() finite for an exact duplicate trajectory (influence 0)


def mu_pair(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(μ^(0,K-2), μ^(1,K-1))`` for every example, each float32 ``N × (K-1)·C``."""
    p = np.asarray(probs, dtype=np.float32)
    n, k, c = p.shape
    d = np.diff(p, axis=1)  # ∂f_0 .. ∂f_{K-2}: N×(K-1)×C
    q = np.concatenate([d[:, : k - 2], p[:, k - 2 : k - 1]], axis=1).reshape(n, -1)
    x = np.concatenate([d[:, 1 : k - 1], p[:, k - 1 : k]], axis=1).reshape(n, -1)
    return np.ascontiguousarray(q), np.ascontiguousarray(x)


def influence_pair(probs: np.ndarray, i: int, j: int) -> float:
    """``Influence(u_i, u_j)`` for one pair, straight from the definition (tests, reports)."""
    q, x = mu_pair(probs[[i, j]])
    return float(((q[0].astype(np.float64) - x[1]) ** 2).sum())


def avg_influence(probs: np.ndarray, config: DynamicsConfig = DynamicsConfig(),
                  features: np.ndarray | None = None) -> ScoreOutput:
    """Paper 5.3 exactly: avg influence of each example over its ``config.neighbors`` closest."""
    q, x = mu_pair(probs)
    dist, nbr, stats = nearest(q, x, config.neighbors, method=config.knn, dim=config.pca_dim,
                               candidates=config.candidates, seed=config.seed)
    value = _row_mean(dist)
    return ScoreOutput("influence", value, -np.log(value + _TINY), nbr, stats)


def _row_mean(dist: np.ndarray) -> np.ndarray:
    d = np.where(np.isfinite(dist), dist, np.nan).astype(np.float64)
    return np.nan_to_num(np.nanmean(d, axis=1), nan=np.inf) if d.size else np.zeros(len(dist))
