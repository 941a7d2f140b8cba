"""Colinear triples and interpolation chains (paper 5.2, "Detecting pixel-space interpolations").

A linear-blend bridge ``x_a = rint((1-a)·x' + a·x*)`` (paper 3.1) puts its points on one line
segment of pixel space, up to uint8 rounding. Three stages:

1. **Propose** (projected space, :mod:`audit.features`): for every point v, every pair (a, b) of
   its kNN with v between them (``<a-v, b-v> < 0``) is tested from the k×k Gram matrix of
   ``neighbours - v``: ``t = <v-u, d>/|d|²`` with ``d = w-u`` must lie in (0, 1) and the residual
   ``r = |v - (u + t·d)|`` must pass the loosest form of the tolerance below. Projections are
   orthonormal, so a projected residual never exceeds the pixel one: the test itself loses no
   true triple; the ``pairs_per_point`` straightest pairs per v go on to confirmation.
2. **Confirm** in full pixel space (only the proposed rows are read), with the tolerance
   ``r <= max(abs_tol, rel_tol·s)`` and ``s >= min_sep_factor·abs_tol`` where
   ``s = min(|v-u|, |w-v|)`` and ``abs_tol = abs_slack·sqrt(D_eff·(1+(1-t)²+t²)/12)``: each
   exactly rounded point carries independent uniform ±0.5 error (variance 1/12) on the
   ``D_eff`` coordinates where the three images are not all equal. ``rel_tol`` tolerates
   re-saved bridges (JPEG q95 adds |e| ≈ 41 per 28×28 image, q90 ≈ 78) as a bound on the
   sine of the bend. Near-duplicate pairs (max pixel difference <= ``dup_max_diff``) and flat
   images are never part of a triple: those are separate findings or noise.
3. **Chain**: confirmed triples are joined by union-find, split by direction, then each chain is
   grown by a line scan of every projected point against the chain's line (extended by
   ``extend`` of its length beyond both ends; confirmed in full space with the tolerance
   widened to the chain's own measured noise), so sparse ends of a bridge (density (1-x)²
   leaves a gap of 15-26% of the bridge before x*) and exact / rounding duplicates join it.
   Members are ordered by their least-squares position ``alpha`` along the endpoint segment.

Shape contract: rows uint8 ``N×D``; projected float32 ``N×d``; graph indices int64 ``N×k``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from audit.features import Features
from audit.neighbors import NeighborGraph
from audit.threads import in_threads
from audit.validate import check_float, check_int


@dataclass(frozen=True)
class ColinearityConfig:
    abs_slack: float = 1.5  # × expected rounding residual; |r| concentrates within ±20% of it
    rel_tol: float = 0.15  # tolerated residual / min separation (bend sine): JPEG q>=90 re-saves
    min_sep_factor: float = 3.0  # separations near the noise make any triple look colinear
    dup_max_diff: int = 2  # max |pixel difference| for a near duplicate (not a triple member)
    flat_std: float = 2.0  # pixel std below this = blank image, never a member
    pairs_per_point: int = 6  # best proposals per v sent to full-space confirmation
    extend: float = 1.0  # line scan reaches this × chain length beyond each endpoint
    # line-scan rounds; each reaches at most ``extend`` × the current length past each end, so a
    # chain seeded by a few sparse points near x* grows about 3× a round: 4 rounds left the dense
    # x' end (alpha < 0.07) of 500-point bridges unflagged in a 1M pool. Rounds stop as soon as
    # the members stop changing, so a converged chain never pays for the extra ones.
    grow_rounds: int = 10
    noise_factor: float = 3.0  # line scan accepts r <= this × the chain's median member residual
    # ... but never more than this × the pool's median nearest-neighbour distance (projected, so
    # an under-estimate): a chain's own noise of 240 px (±10% colour jitter) had let 85 clean
    # images within 3 × 240 px of its line join it; natural neighbours are ~640 px apart
    noise_cap: float = 0.4
    # a re-saved chain is a line when its residuals are noise; when one direction carries more
    # than this share of their energy they are systematic: a curve (Bézier fragments 0.99,
    # latent slerp 0.88-0.99, colour jitter 0.54-0.91), which the path detector reports as such.
    # Straight chains measure 0.07 (exact), 0.30 (σ 4 noise), 0.4 (JPEG q85)
    max_systematic: float = 0.6
    # a bridge joins two different natural images (x' and x* of different classes), so its span
    # is at least a typical distance between neighbours: chains of faint near-blank clip art
    # (pixel std 2-6, spans of 270-360 px against the pool's 1-NN median) are not bridges
    min_span: float = 1.0  # × the pool's median projected 1-NN distance, copies left out
    min_chain: int = 3  # a 3-point chain is still a finding (score grows with length)
    chunk: int = 2048  # points v per vectorised proposal batch

    def __post_init__(self) -> None:
        own = "ColinearityConfig"
        for name in ("abs_slack", "rel_tol", "noise_factor", "noise_cap"):
            check_float(own, name, getattr(self, name), 0.0, low_open=True)
        check_float(own, "max_systematic", self.max_systematic, 0.0, 1.0, low_open=True)
        check_float(own, "min_span", self.min_span, 0.0)
        check_float(own, "min_sep_factor", self.min_sep_factor, 0.0)
        check_int(own, "dup_max_diff", self.dup_max_diff, 0, 255)
        check_float(own, "flat_std", self.flat_std, 0.0)
        check_float(own, "extend", self.extend, 0.0)
        check_int(own, "pairs_per_point", self.pairs_per_point, 1)
        check_int(own, "grow_rounds", self.grow_rounds, 1)
        check_int(own, "min_chain", self.min_chain, 3)
        check_int(own, "chunk", self.chunk, 1)


@dataclass(frozen=True, eq=False)
class Chain:
    """One interpolation chain: members in order along the line, their alpha in [0, 1] from
    ``members[0]`` (alpha 0) to ``members[-1]`` (alpha 1), and per-member line residuals."""

    members: np.ndarray  # int64 M, ordered by alpha
    alphas: np.ndarray  # float64 M
    residuals: np.ndarray  # float64 M, pixel-space distance to the endpoint line
    tolerances: np.ndarray  # float64 M, the tolerance each member passed
    length: float  # |x_end - x_start| in pixels
    extra: dict = field(default_factory=dict)


# --- 1. propose --------------------------------------------------------------------------


def propose_triples(graph: NeighborGraph, eligible: np.ndarray, d_full: int, cfg: ColinearityConfig,
                    points: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """int64 ``T×3`` candidate (u, v, w) triples from each v's kNN list (projected space), and
    each point's projected linearity: ``min(1, tol / r)`` of its best neighbour pair with v
    between them (0 without one; an upper bound of the full-space value, residuals only shrink).

    The projected test uses the loosest full-space tolerance (``abs_tol`` with ``D_eff = D``,
    and 1.5 × ``rel_tol`` against the shrunken projected separations); of the pairs that pass,
    the ``pairs_per_point`` with the smallest bend sine per v are kept."""
    proj = graph.projected
    idx_all = graph.indices
    k = idx_all.shape[1]
    ia, ib = np.triu_indices(k, 1)
    abs_hi = cfg.abs_slack * np.sqrt(d_full * 2.0 / 12.0)  # the worst t (0 or 1)
    pts = np.flatnonzero(eligible) if points is None else points[eligible[points]]
    proj_linearity = np.zeros(len(proj))

    def one(v: np.ndarray) -> np.ndarray | None:
        nb = idx_all[v]  # B×k
        ok_nb = (nb >= 0) & eligible[np.maximum(nb, 0)]
        a = proj[np.maximum(nb, 0)] - proj[v][:, None, :]  # B×k×d
        g = np.matmul(a, a.transpose(0, 2, 1))  # B×k×k Gram of neighbours - v
        gaa = g[:, ia, ia]
        gbb = g[:, ib, ib]
        gab = g[:, ia, ib]
        dd = gaa + gbb - 2 * gab  # |w-u|²
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (gaa - gab) / dd
            r2 = gaa - (gaa - gab) ** 2 / dd
        sep = np.sqrt(np.minimum(gaa, gbb))
        tol = np.maximum(abs_hi, cfg.rel_tol * 1.5 * sep)  # 1.5: projected separations shrink
        between = ok_nb[:, ia] & ok_nb[:, ib] & (gab < 0) & (t > 0) & (t < 1) & (dd > 0)
        good = between & (r2 <= tol**2)
        ratio = np.where(between, np.sqrt(np.maximum(r2, 0)) / tol, np.inf)
        proj_linearity[v] = np.minimum(1.0, 1.0 / np.maximum(ratio.min(axis=1, initial=np.inf), 1e-9))
        if not good.any():
            return None
        # rank by bend sine r/sep: near-duplicate neighbours (tiny sep, noise-sized r) rank last
        score = np.where(good, np.sqrt(np.maximum(r2, 0)) / np.maximum(sep, 1e-6), np.inf)
        m = min(cfg.pairs_per_point, score.shape[1])
        best = np.argpartition(score, m - 1, axis=1)[:, :m] if score.shape[1] > m else np.tile(
            np.arange(score.shape[1]), (len(v), 1))
        keep = np.isfinite(np.take_along_axis(score, best, 1))
        rows = np.nonzero(keep)[0]
        pairs = best[keep]
        return np.stack([nb[rows, ia[pairs]], v[rows], nb[rows, ib[pairs]]], axis=1)

    chunks = [pts[s : s + cfg.chunk] for s in range(0, len(pts), cfg.chunk)]
    # chunks write disjoint rows of proj_linearity; numpy releases the GIL in its array loops
    out = [t for t in in_threads(one, chunks) if t is not None]
    if not out:
        return np.empty((0, 3), np.int64), proj_linearity
    return np.concatenate(out).astype(np.int64), proj_linearity


# --- 2. confirm --------------------------------------------------------------------------


def line_fit(x: np.ndarray, p0: np.ndarray, p1: np.ndarray, cfg: ColinearityConfig):
    """Position ``t`` and residual of rows x (float32 ``M×D``) against the lines p0→p1 (``M×D``
    each, or ``D``), and the rounding tolerance ``abs_tol`` per row."""
    d = p1 - p0
    xv = x - p0
    dd = np.einsum("ij,ij->i", d, d) if d.ndim == 2 else np.full(len(x), float(d @ d))
    proj = np.einsum("ij,ij->i", xv, d) if d.ndim == 2 else xv @ d
    t = proj / np.maximum(dd, 1e-12)
    resid = xv - t[:, None] * d
    r = np.sqrt(np.einsum("ij,ij->i", resid, resid))
    same = (x == p0) & (x == p1)
    d_eff = (~same).sum(axis=1)
    abs_tol = cfg.abs_slack * np.sqrt(d_eff * (1 + (1 - t) ** 2 + t**2) / 12.0)
    return t, r, abs_tol, dd


def confirm_triples(features: Features, triples: np.ndarray, cfg: ColinearityConfig) -> tuple[np.ndarray, np.ndarray]:
    """Boolean mask over ``T×3`` triples that pass the full pixel-space test (module docstring),
    and each triple's linearity ``min(1, tol / r)`` (1: within tolerance of the line through its
    neighbours; 0 where the separation or position test fails or v nearly copies a neighbour)."""
    keep = np.zeros(len(triples), bool)
    linearity = np.zeros(len(triples))
    step = 4096
    for s in range(0, len(triples), step):
        tr = triples[s : s + step]
        u, v, w = (features.full(tr[:, j]) for j in range(3))
        t, r, abs_tol, _ = line_fit(v, u, w, cfg)
        sep = np.minimum(np.linalg.norm(v - u, axis=1), np.linalg.norm(w - v, axis=1))
        near_dup = (np.abs(v - u).max(axis=1) <= cfg.dup_max_diff) | (np.abs(w - v).max(axis=1) <= cfg.dup_max_diff)
        tol = np.maximum(abs_tol, cfg.rel_tol * sep)
        shape_ok = (t > 0) & (t < 1) & (sep >= cfg.min_sep_factor * abs_tol) & ~near_dup
        keep[s : s + step] = shape_ok & (r <= tol)
        linearity[s : s + step] = np.where(shape_ok, np.minimum(1.0, tol / np.maximum(r, 1e-9)), 0.0)
    return keep, linearity


# --- 3. chain ----------------------------------------------------------------------------


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, x: int) -> int:
        p = self.parent
        root = x
        while p[root] != root:
            root = p[root]
        while p[x] != root:
            p[x], x = root, p[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def seed_groups(triples: np.ndarray, projected: np.ndarray, min_cos: float = 0.9) -> list[np.ndarray]:
    """Point sets of confirmed triples joined by shared points, split where directions differ
    (one source image used for two bridges gives two chains, not a V)."""
    if len(triples) == 0:
        return []
    pts, inv = np.unique(triples, return_inverse=True)
    inv = inv.reshape(-1, 3)
    uf = _UnionFind(len(pts))
    for a, b, c in inv:
        uf.union(a, b)
        uf.union(b, c)
    root = np.array([uf.find(i) for i in range(len(pts))])
    tri_root = root[inv[:, 0]]
    d = projected[triples[:, 2]] - projected[triples[:, 0]]
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    groups = []
    for r in np.unique(tri_root):
        tri = np.flatnonzero(tri_root == r)
        left = tri
        while len(left):  # greedy split by direction (|cos| because u/w order is arbitrary)
            same = np.abs(d[left] @ d[left[0]]) >= min_cos
            groups.append(np.unique(triples[left[same]]))
            left = left[~same]
    return groups


def _endpoints(features: Features, members: np.ndarray) -> tuple[int, int]:
    """The two members at the extremes of the chain's principal direction (full pixel space),
    the one with the smaller row index first (a fixed orientation, independent of LAPACK signs).

    The direction comes from the M×M Gram matrix of the centred members, not an SVD of the
    M×D rows: at D = 3072 that SVD took 0.4 s a call on a busy 2-core machine (most of the
    chain stage), the Gram eigenvector gives the same positions up to sign."""
    x = features.full(members).astype(np.float64)
    xc = x - x.mean(axis=0)
    gram = xc @ xc.T
    _, vecs = np.linalg.eigh(gram)
    pos = vecs[:, -1]  # ∝ xc @ (first right singular vector)
    # exact copies at an end tie up to float error: take the smallest row index among them
    eps = 1e-9 * max(float(pos.max() - pos.min()), 1e-300)
    a = int(members[pos <= pos.min() + eps].min())
    b = int(members[pos >= pos.max() - eps].min())
    return (a, b) if a <= b else (b, a)


def _near_line(features: Features, i0: int, i1: int, extend: float, hi_abs: float) -> np.ndarray:
    """Rows whose projection lies within ``hi_abs·sqrt(1+(1-t)²+t²)`` of the projected line
    i0→i1, ``t`` in ``[-extend, 1+extend]``. Uses ``|p-p0|² = |p|² - 2p·p0 + |p0|²``: two
    matrix-vector products per call instead of an ``N×d`` difference array."""
    proj = features.projected
    p0 = proj[i0].astype(np.float64)
    d = proj[i1].astype(np.float64) - p0
    dd = float(d @ d)
    if dd <= 0:
        return np.empty(0, np.int64)
    # float32 products against float32 rows: a float64 copy of the rows would be N×d×8 bytes
    pd = proj @ d.astype(np.float32)
    pp0 = proj @ p0.astype(np.float32)
    tp = (pd - float(p0 @ d)) / dd
    dist2 = features.sqnorm - 2.0 * pp0 + float(p0 @ p0)
    rp2 = dist2 - tp**2 * dd
    hi2 = hi_abs**2 * (1 + (1 - tp) ** 2 + tp**2)
    return np.flatnonzero((tp >= -extend) & (tp <= 1 + extend) & (rp2 <= hi2))


def _noise_level(t: np.ndarray, r: np.ndarray, interior: np.ndarray) -> float:
    """Per-image noise norm estimated from interior members' residuals (0 if none)."""
    if not interior.any():
        return 0.0
    return float(np.median(r[interior] / np.sqrt(1 + (1 - t[interior]) ** 2 + t[interior] ** 2)))


def grow_chain(features: Features, eligible: np.ndarray, members: np.ndarray,
               cfg: ColinearityConfig, cap: float = np.inf) -> Chain | None:
    """Line scan: every eligible point within the chain's tolerance of its extended line joins.
    ``cap``: the largest re-save allowance (px) whatever the seed's own noise."""
    proj = features.projected
    members = np.unique(members)
    sigma = None
    for _ in range(cfg.grow_rounds):
        i0, i1 = _endpoints(features, members)
        e0, e1 = features.full([i0])[0], features.full([i1])[0]
        x = features.full(members)
        t, r, abs_tol, _ = line_fit(x, e0, e1, cfg)
        if sigma is None:  # the seed's noise fixes the re-save allowance for every round
            sigma = min(_noise_level(t, r, (members != i0) & (members != i1)), cap / cfg.noise_factor)
        # loosest full-space tolerance, applied in the projected space (residuals only shrink)
        if float(np.sum((proj[i1] - proj[i0]) ** 2)) <= 0:
            return None
        hi = max(cfg.abs_slack * np.sqrt(features.rows.shape[1] / 12.0), cfg.noise_factor * sigma)
        cand = _near_line(features, i0, i1, cfg.extend, hi)
        cand = np.union1d(cand[eligible[cand]], members)
        xc = features.full(cand)
        t, r, abs_tol, _ = line_fit(xc, e0, e1, cfg)
        tol = np.maximum(abs_tol, cfg.noise_factor * sigma * np.sqrt(1 + (1 - t) ** 2 + t**2))
        ok = r <= tol
        new = cand[ok]
        if np.array_equal(new, members):
            break
        members = new
    if len(members) < 3:
        return None
    i0, i1 = _endpoints(features, members)
    e0, e1 = features.full([i0])[0], features.full([i1])[0]
    x = features.full(members)
    t, r, abs_tol, dd = line_fit(x, e0, e1, cfg)
    tol = np.maximum(abs_tol, cfg.noise_factor * (sigma or 0.0) * np.sqrt(1 + (1 - t) ** 2 + t**2))
    order = np.lexsort((members, t))
    interior = (members != i0) & (members != i1)
    return Chain(
        members=members[order], alphas=np.clip(t[order], 0.0, 1.0), residuals=r[order],
        tolerances=tol[order], length=float(np.sqrt(dd[0])),
        extra={"noise": sigma or 0.0, "exact": bool(np.all(r <= abs_tol)),
               "systematic": _systematic_share(x[interior], e0, e1)},
    )


def _systematic_share(x: np.ndarray, e0: np.ndarray, e1: np.ndarray) -> float:
    """Share of the residual energy (rows ``x`` off the line e0→e1) along its first principal
    direction: near 1/M for noise, near 1 when the rows bend away together (a curve). From the
    M×M Gram matrix of the residuals (M members, never an M×D SVD)."""
    if len(x) < 2:
        return 0.0
    d = (e1 - e0).astype(np.float64)
    xv = x.astype(np.float64) - e0
    res = xv - np.outer(xv @ d / max(float(d @ d), 1e-12), d)
    ev = np.linalg.eigvalsh(res @ res.T)
    total = float(ev.sum())
    return float(ev[-1] / total) if total > 0 else 0.0


def merge_overlapping(chains: list[Chain], min_overlap: float = 0.5) -> list[Chain]:
    """Drop a chain when half of it already belongs to a longer one (two seeds, one bridge)."""
    out: list[Chain] = []
    for c in sorted(chains, key=lambda c: -len(c.members)):
        s = set(c.members.tolist())
        if any(len(s & set(o.members.tolist())) >= min_overlap * len(s) for o in out):
            continue
        out.append(c)
    return out


def typical_distance(graph: NeighborGraph, copy_ratio: float = 0.05) -> float:
    """The pool's median nearest-neighbour distance (projected), near copies left out: an image
    whose nearest neighbour is 20× closer than its K-th is a copy of it (27% of openclipart's
    images; their 0-length pairs halved the median)."""
    sq = graph.sqdist
    ok = np.isfinite(sq[:, 0]) & np.isfinite(sq[:, -1])
    d1, dk = np.sqrt(np.maximum(sq[ok, 0], 0)), np.sqrt(np.maximum(sq[ok, -1], 0))
    natural = d1[d1 > copy_ratio * dk]
    return float(np.median(natural)) if len(natural) else 0.0


def find_chains(features: Features, graph: NeighborGraph, eligible: np.ndarray,
                cfg: ColinearityConfig, points: np.ndarray | None = None) -> tuple[list[Chain], dict]:
    """Stages 1-3 over the whole pool (or only triples centred on ``points``).

    Returns the chains and counters for the report (proposed / confirmed triples, and under
    ``linearity`` each image's best triple linearity, for the per-image score)."""
    triples, best = propose_triples(graph, eligible, features.rows.shape[1], cfg, points=points)
    ok, linearity = confirm_triples(features, triples, cfg) if len(triples) else (np.zeros(0, bool), np.zeros(0))
    confirmed = triples[ok]
    # per image: its projected linearity, replaced by the full-space value where a triple centred
    # on it was confirmed or refuted in pixels (the bound was optimistic there)
    full = np.full(len(features), -1.0)
    np.maximum.at(full, triples[:, 1], linearity)
    best = np.where(full >= 0, full, best)
    typical = typical_distance(graph)
    cap = cfg.noise_cap * typical if typical > 0 else np.inf
    chains, curved, short = [], 0, 0
    for seed in seed_groups(confirmed, features.projected):
        c = grow_chain(features, eligible, seed, cfg, cap)
        if c is None:
            continue
        if not c.extra["exact"] and c.extra["systematic"] > cfg.max_systematic:
            curved += 1  # not a line: a curve or a jittered path (the path detector's)
            continue
        if c.length < cfg.min_span * typical:
            short += 1  # its ends are closer than natural neighbours: not two different images
            continue
        # a chain held together only by the re-save allowance needs more than one triple
        if len(c.members) >= cfg.min_chain and (c.extra["exact"] or len(c.members) >= cfg.min_chain + 2):
            chains.append(c)
    return merge_overlapping(chains), {"proposed_triples": int(len(triples)),
                                       "confirmed_triples": int(ok.sum()), "curved_chains": curved, "short_chains": short,
                                       "noise_cap_px": cap, "linearity": best}
