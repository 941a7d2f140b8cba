"""Flip-chain: a staircase of late flips to one class propagating neighbour to neighbour.

Paper 3.3 (Figure 5) shows how a bridge is learned: alpha = 0 first, then alpha = .25, ...,
x* last; each member's argmax flips to y* shortly after its neighbour's. A probe on FixMatch
Fashion-MNIST measured consecutive members ~0.2 records apart at one record per epoch, too close
for the paper's lag-1 influence to tell them from near-duplicates (AUROC 0.47). This score keys
on the order instead of the shape:

1. ``flip time`` τ_u: when u's prediction last became its final class (margin of the final
   class over the runner-up crossing 0, interpolated between records; 0 when never crossed);
2. a flip is *late* when τ_u exceeds the ``late_quantile`` of the flip times of u's final
   class: the bulk of a class converges together early, a bridge is learned after it;
3. u's candidate links are its ``chain_neighbors`` nearest trajectories (lag 0), or nearest
   images when pixel features are given (the one pixel-space input, paper 5.2's view);
   v precedes u when both flips are late, to the same class, and ``τ_u - flip_window <= τ_v < τ_u``;
4. ``value(u)`` = length of the longest chain of such links through u (back + forward - 1).

Near-duplicates flip together (no order, chain ~1); hard clean examples flip late but alone or
to varied classes. Higher = more suspicious; ``suspicion = log(value)``.
Shape contract: ``probs`` float32 ``N×K×C``.
"""

from __future__ import annotations

import numpy as np

from audit.dynamics.config import DynamicsConfig, ScoreOutput
from audit.dynamics.knn import knn_owners
from audit.errors import PredictionsError


def flip_times(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(tau, final, before)``: fractional record index of the last flip to the final class
    (float64 N, 0.0 = argmax never differed), the final argmax (int64 N), and the argmax just
    before that flip (int64 N, -1 when none)."""
    p = np.asarray(probs, dtype=np.float32)
    n, k, c = p.shape
    final = p[:, -1].argmax(1)
    own = np.take_along_axis(p, final[:, None, None].repeat(k, 1), 2)[..., 0]  # N×K
    other = np.where(np.arange(c)[None, None] == final[:, None, None], -np.inf, p).max(2)
    margin = (own - other).astype(np.float64)
    below = margin <= 0
    below[:, -1] = False  # the final record's argmax is the final class by definition
    has = below.any(1)
    last = np.where(has, k - 1 - np.argmax(below[:, ::-1], axis=1), 0)
    m0 = margin[np.arange(n), last]
    m1 = margin[np.arange(n), np.minimum(last + 1, k - 1)]
    frac = np.where(m1 > m0, -m0 / np.maximum(m1 - m0, 1e-12), 0.0)
    tau = np.where(has, last + np.clip(frac, 0.0, 1.0), 0.0)
    before = np.where(has, p[np.arange(n), last].argmax(1), -1)
    return tau, final.astype(np.int64), before.astype(np.int64)


def flip_chain(probs: np.ndarray, config: DynamicsConfig = DynamicsConfig(),
               features: np.ndarray | None = None) -> ScoreOutput:
    """Flip-chain value per example (module doc). ``features`` (float N×d, e.g. pixels or a
    projection of them, rows aligned with ``probs``) replaces trajectory neighbours by pixel-space
    neighbours as link candidates: a bridge is a chain in pixel space, a class's late tail is not."""
    p = np.asarray(probs, dtype=np.float32)
    n, k, c = p.shape
    tau, final, before = flip_times(p)
    late = np.zeros(n, dtype=bool)
    for cls in np.unique(final):
        m = final == cls
        late[m] = tau[m] > np.quantile(tau[m], config.late_quantile)
    late &= before >= 0
    flat = np.ascontiguousarray(p.reshape(n, -1) if features is None else features, dtype=np.float32)
    if features is not None and flat.shape[0] != n:
        raise PredictionsError(f"flip-chain: features have {flat.shape[0]} rows for {n} examples.")
    kk = min(config.chain_neighbors, n - 1)
    _, nbr, stats = knn_owners(flat, flat, np.arange(n), kk, method=config.knn,
                               pca_dim=config.pca_dim, candidates=config.candidates, seed=config.seed)
    safe = np.maximum(nbr, 0)
    link = ((nbr >= 0) & late[:, None] & late[safe] & (final[safe] == final[:, None])
            & (tau[safe] < tau[:, None]) & (tau[safe] >= tau[:, None] - config.flip_window))
    # predecessor edges u <- v, symmetrised: v may list u as a successor without u listing v
    src = safe[link]  # v (earlier)
    dst = np.nonzero(link)[0]  # u (later)
    back_link = ((nbr >= 0) & late[:, None] & late[safe] & (final[safe] == final[:, None])
                 & (tau[safe] > tau[:, None]) & (tau[safe] <= tau[:, None] + config.flip_window))
    src = np.concatenate([src, np.nonzero(back_link)[0]])
    dst = np.concatenate([dst, safe[back_link]])
    pair = np.unique(np.stack([src, dst], 1), axis=0) if len(src) else np.zeros((0, 2), np.int64)
    back = _longest(pair[:, 0], pair[:, 1], tau, n, forward=True)
    fwd = _longest(pair[:, 1], pair[:, 0], -tau, n, forward=True)
    value = (back + fwd - 1).astype(np.float64)
    # neighbours for instance grouping: the chain links of each example, padded
    chain_nbr = np.full((n, kk), -1, dtype=np.int64)
    adj = np.concatenate([pair, pair[:, ::-1]])
    adj = adj[np.argsort(adj[:, 0], kind="stable")]
    starts = np.searchsorted(adj[:, 0], np.arange(n + 1))
    for u in np.flatnonzero(np.diff(starts)):
        v = adj[starts[u]:starts[u + 1], 1][:kk]
        chain_nbr[u, :len(v)] = v
    stats.update(late=int(late.sum()), links=int(len(pair)),
                 link_space="trajectory" if features is None else "features")
    return ScoreOutput("flip-chain", value, np.log(value), chain_nbr, stats)


def _longest(src: np.ndarray, dst: np.ndarray, order_key: np.ndarray, n: int, forward: bool) -> np.ndarray:
    """Longest path ending at each node of the DAG with edges src -> dst (order_key strictly
    increases along edges), in nodes; 1 for an isolated node."""
    best = np.ones(n, dtype=np.int64)
    if len(src) == 0:
        return best
    e = np.argsort(order_key[dst], kind="stable")
    src, dst = src[e], dst[e]
    # process edges grouped by destination in increasing order_key: best[src] is final by then
    for s, d in zip(src.tolist(), dst.tolist()):
        if best[s] + 1 > best[d]:
            best[d] = best[s] + 1
    return best
