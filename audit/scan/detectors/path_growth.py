"""Growing a found path by aligned distance (the ``path`` detector's last step, invariant view).

Why: links are proposed by mutual nearest neighbours of |FFT| magnitudes. In a dense pool that
proposal misses shifted bridge members: at 60k Fashion-MNIST a member's closest fellow member in
aligned pixel distance is often ranked 60th-500th among the pool's magnitudes, so it gets no
mutual link and the path breaks into pieces or drops its ends (±2 px bridges: image recall 0.86).
Once a path is found, though, the question per image is cheap and exact: is it tight, in aligned
distance, to the path itself?

How: each round takes the path's newest members, finds the ``k`` nearest images of each in the
invariant view (exact search of the projected rows: the same answer under every engine), and
measures the aligned distance of every (candidate, member) pair. An image joins when it has
tight links (``r <= tightness × reference``, the view's own threshold) to at least ``links``
members: one tight link is what any natural look-alike of one member may have; two place it
inside the path. Rounds stop when nothing joins. A clean pool has no path, so this costs nothing
there; a reported path costs ``k × members`` aligned distances a round (a 30-image bridge: ~15k,
0.1-0.2 s) and a pass over the view's rows per 16 members (at 1M, ~15 s for a 500-image path:
measured on lines before the detector stopped growing paths that bridge findings hold).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

Aligned = Callable[[np.ndarray, np.ndarray], np.ndarray]
_ROWS = 16  # path members whose distances to every row are held at once (16 × N float32)


def grow(members: np.ndarray, projected: np.ndarray, eligible: np.ndarray, d_ref: np.ndarray,
         aligned: Aligned, threshold: float, *, k: int, links: int, rounds: int):
    """``(added, src, dst, r)``: the images that join ``members`` (int64, sorted) and their tight
    links (candidate, member, looseness), for the path's ordering. ``d_ref``: each image's
    distance to its K-th neighbour in this view (the links' scale); ``aligned(a, b)``: float
    aligned distances of pairs."""
    n = len(projected)
    inside = np.zeros(n, bool)
    inside[members] = True
    hits = np.zeros(n, np.int64)  # tight links to path members so far, over every round
    frontier = np.asarray(members, np.int64)
    tight_s, tight_d, tight_r = [], [], []
    sq = np.einsum("ij,ij->i", projected, projected)  # float32: it only picks candidates
    for _ in range(rounds):
        # each (candidate, member) pair is measured once: a round's members are new in it
        c, m = _candidates(frontier, projected, sq, min(k, n - 1))
        ok = ~inside[c] & eligible[c]
        c, m = c[ok], m[ok]
        if len(c) == 0:
            break
        scale = np.minimum(d_ref[c], d_ref[m])  # inf where a tiny pool has fewer than K others
        r = np.where(np.isfinite(scale), aligned(c, m) / np.maximum(scale, 1e-9), np.inf)
        tight = r <= threshold
        np.add.at(hits, c[tight], 1)
        tight_s.append(c[tight])
        tight_d.append(m[tight])
        tight_r.append(r[tight])
        new = np.flatnonzero((hits >= links) & ~inside)
        if len(new) == 0:
            break
        inside[new] = True
        frontier = new
    s = np.concatenate(tight_s) if tight_s else np.empty(0, np.int64)
    joined = inside[s]  # links of the images that joined, whichever round found them
    if not joined.any():
        empty = np.empty(0, np.int64)
        return empty, empty, empty, np.empty(0)
    s, d, r = s[joined], np.concatenate(tight_d)[joined], np.concatenate(tight_r)[joined]
    return np.unique(s), s, d, r


def _candidates(rows: np.ndarray, projected: np.ndarray, sq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(candidate, member) pairs: each member's ``k`` nearest rows, itself excluded (exact)."""
    cs, ms = [], []
    for s in range(0, len(rows), _ROWS):
        r = rows[s : s + _ROWS]
        d = sq[r][:, None] + sq[None, :] - 2.0 * (projected[r] @ projected.T)
        d[np.arange(len(r)), r] = np.inf
        near = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else np.tile(np.arange(d.shape[1]), (len(r), 1))
        cs.append(near.ravel())
        ms.append(np.repeat(r, near.shape[1]))
    return np.concatenate(cs).astype(np.int64), np.concatenate(ms).astype(np.int64)
