"""``path``: bridges that are smooth but not straight (curved blends, latent-space or generative
paths) or were roughened to walk past the line test (per-image noise, JPEG re-saves, colour
jitter, small translations). Paper 5.2 expects the cat-and-mouse: this detector drops the
straight line and keeps what every bridge needs to work, a one-dimensional chain of images,
each far closer to the next than natural images are to each other, running between two
far-apart images (paper 3.1: the labels must propagate step by step from x' to x*).

Links. In a view (``pixels``: the scan's projection; ``invariant``: |FFT| of standardised images,
where brightness, contrast and small shifts cancel, see :mod:`audit.invariance`; ``features``:
the user's own embeddings, ``--features``), image i links
to its ``k_link`` nearest neighbours that have i among their ``k_mutual`` nearest (mutual
neighbours: a hub cannot collect links). A link's looseness is

    r = length / min(d_K(i), d_K(j))

with ``d_K`` the distance to the K-th neighbour (the graph's k). Along a chain, kNN distances
grow linearly (the 16th neighbour is ~8 steps away: r ≈ 0.12 on a 30-image bridge); among
natural images in a high-dimensional pool they hardly grow (r ≈ 0.8). The threshold comes from
the pool itself: a link is *tight* when r <= ``tightness`` × the pool's ``quantile`` of r, so no
scale is fitted to one dataset. In the invariant view the length is the aligned distance of the
two standardised images (best relative shift up to ``max_shift`` px), computed for the tightest
``align_fraction`` of links only (the magnitudes forget positions: they propose, pixels decide).

Paths. Components of tight links with at least ``min_size`` distinct images (near copies, links
with r <= 0.02, count once) whose extent (largest
distance between members / median link) is at least ``min_extent``: a path goes somewhere; a
group of near copies (every member next to every other) does not. Candidates of both views
that share an image are one finding; one mostly covered by earlier ``bridge`` findings is left to
them. A reported path then grows in the invariant view: an image among
a member's ``grow_k`` nearest joins when it is tight, in aligned distance, to ``grow_links``
members (:mod:`~audit.scan.detectors.path_growth`: in a dense pool the magnitudes do not propose
every shifted member as a mutual neighbour). Members are ordered along the links from one end to
the other. An end
that sits next to a labeled image (``--labeled``) is the source x'; the other end is the likely
target x*.

Per-image score (every image): how many times tighter its tightest link is than the pool's
``quantile`` of r (max over views); natural images score about 1 or less.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components, shortest_path

from audit.errors import invalid_parameter
from audit.findings import Finding, Member, Severity
from audit.scan.detectors.base import Detector, DetectorOutput, ScanInputs, View
from audit.validate import check_float, check_int

VIEWS = ("pixels", "invariant", "features")
_CHUNK = 1 << 18  # links per step of the mutual-neighbour check
DUPLICATE_R = 0.02  # a link 50× shorter than the K-th neighbour: near copies (bridge links: ~0.1)


@dataclass(frozen=True)
class PathConfig:
    # invariant catches shifted and jittered bridges (+1 kNN graph); features is the user's own
    # embedding space (--features), skipped when none was given
    views: tuple[str, ...] = VIEWS
    # links per image: 2 would do for a clean chain; 6 keeps roughened ones (noise, shifts) in one
    # piece (zero-filled shift ±2 px recall 0.54 at 2 -> 0.96 at 4; reflect-padded ±2 px 0.93 at 4
    # -> 0.97 at 6 with three quarters aligned; clean images flagged still 0)
    k_link: int = 6
    k_mutual: int = 12  # ... to images that have it among their 12 nearest: hubs get no link
    tightness: float = 0.6  # tight link: r <= 0.6 × the pool's quantile below (0.35 on Fashion-MNIST)
    quantile: float = 0.05  # natural links dominate it unless a twentieth of the pool is poison
    min_size: int = 5  # fewer images cannot carry a label across the gap (paper Table 3)
    min_extent: float = 4.0  # end to end >= 4 median links: near-copy groups have extent ~1-2
    max_shift: int = 4  # invariant view: relative shift searched (two ±2 px shifted images)
    align_fraction: float = 0.75  # invariant view: share of its links (the tightest) aligned in pixels
    # two tight groups of 2+ images joined by one link this × looser than tight are one path:
    # shifted bridges broke into pieces (±2 px reflect-padded: recall 0.85-0.98 -> see benchmarks)
    fragment_link: float = 2.0
    # a candidate this much covered by bridge findings is theirs: one straight bridge, or two
    # bridges from one source (a V, two targets: two findings say more than one path); a curve
    # or hop that merely contains straight pieces stays a path (the scan folds the pieces in)
    max_overlap: float = 0.8
    # a found path grows by aligned distance in the invariant view (path_growth.py): an image
    # among a member's grow_k nearest joins when tight to grow_links members (0: off). At 60k
    # Fashion-MNIST ±2 px bridges: image recall 0.862 -> 0.977 at grow_k 512 (seeds 0-1; seed 0,
    # IVF-searched: 0.92 at 128, 0.93 at 256); 0 clean images added on 26 variants (benchmarks §6)
    grow_k: int = 512
    grow_links: int = 2
    grow_rounds: int = 4

    def __post_init__(self) -> None:
        own = "PathConfig"
        if isinstance(self.views, str) or not self.views or any(v not in VIEWS for v in self.views):
            raise invalid_parameter("views", own, f"a non-empty tuple of {', '.join(VIEWS)}", self.views)
        check_int(own, "k_link", self.k_link, 1)
        check_int(own, "k_mutual", self.k_mutual, self.k_link)
        check_float(own, "tightness", self.tightness, 0.0, low_open=True)
        check_float(own, "quantile", self.quantile, 0.0, 1.0, low_open=True)
        check_int(own, "min_size", self.min_size, 3)
        check_float(own, "min_extent", self.min_extent, 1.0)
        check_int(own, "max_shift", self.max_shift, 0, 16)
        check_float(own, "align_fraction", self.align_fraction, 0.0, 1.0, low_open=True)
        check_float(own, "fragment_link", self.fragment_link, 1.0)
        check_float(own, "max_overlap", self.max_overlap, 0.0, 1.0)
        check_int(own, "grow_k", self.grow_k, 0)
        check_int(own, "grow_links", self.grow_links, 1)
        check_int(own, "grow_rounds", self.grow_rounds, 1)


@dataclass(frozen=True, eq=False)
class _Links:
    """One view's tight links and what they were measured against."""

    view: View
    src: np.ndarray  # int64 L
    dst: np.ndarray  # int64 L
    length: np.ndarray  # float64 L, link length (aligned pixel distance in the invariant view)
    r: np.ndarray  # float64 L, looseness of every candidate link
    reference: float  # the pool's quantile of r
    tight: np.ndarray  # bool L


class Path(Detector):
    name = "path"
    Config = PathConfig
    severity = Severity.ERROR
    summary = "a one-dimensional chain of unusually close images between two distant ones (curved, noisy, jittered or shifted bridge)"

    def run(self, inputs: ScanInputs, earlier: Mapping[str, DetectorOutput]) -> DetectorOutput:
        cfg = self.config
        n = len(inputs)
        score = np.zeros(n)
        links, stats = [], {}
        for name in cfg.views:
            view = inputs.view(name)
            if view is None:  # an incremental scan has only the stored pixel view; no --features
                stats[name] = "unavailable"
                continue
            lk = self._links(inputs, view)
            links.append(lk)
            per = np.zeros(n)
            np.maximum.at(per, lk.src, lk.reference / np.maximum(lk.r, 1e-9))
            np.maximum.at(per, lk.dst, lk.reference / np.maximum(lk.r, 1e-9))
            score = np.maximum(score, per)
            stats[name] = {"links": int(len(lk.r)), "tight": int(lk.tight.sum()), "reference_r": lk.reference}
        candidates = [c for lk in links for c in self._candidates(inputs, lk)]
        lines = [np.array([m.index for m in f.members]) for f in earlier["bridge"].findings] if "bridge" in earlier else []
        findings = []
        for group in _merge(candidates):
            members = np.unique(np.concatenate([c["members"] for c in group]))
            # lines that are a real part of it (a quarter or more), not fragments of a few images
            # that happen to line up (shifted copies that share a shift)
            held = [line for line in lines if np.isin(line, members).sum() >= 0.25 * len(members)]
            if held and np.isin(members, np.concatenate(held)).mean() >= cfg.max_overlap:
                continue  # straight lines already hold it (one bridge, or several from one source)
            # only a path that is reported grows (at 1M, growing three held 500-image lines cost 46 s)
            grown = self._grow(inputs, members, links)
            if grown is not None:  # joined images score like any image with a link that tight
                group, members = group + [grown], np.union1d(members, grown["members"])
                np.maximum.at(score, grown["links"][0], grown["reference"] / np.maximum(grown["link_r"], 1e-9))
            findings.append(self._finding(inputs, group, members, links, score))
        stats["candidates"] = len(candidates)
        return DetectorOutput(findings, score, stats)

    # --- links -------------------------------------------------------------------------------

    def _links(self, inputs: ScanInputs, view: View) -> _Links:
        cfg = self.config
        g = view.graph
        idx, sq = g.indices, g.sqdist
        n, k = idx.shape
        d_ref = np.sqrt(np.maximum(sq[:, k - 1], 0))  # distance to the K-th neighbour
        kl, km = min(cfg.k_link, k), min(cfg.k_mutual, k)
        src = np.repeat(np.arange(n), kl)
        dst = idx[:, :kl].ravel()
        length = np.sqrt(np.maximum(sq[:, :kl].ravel(), 0))
        ok = dst >= 0
        src, dst, length = src[ok], dst[ok], length[ok]
        mutual = np.zeros(len(src), bool)
        for s0 in range(0, len(src), _CHUNK):  # never a links × k_mutual gather at once (0.6 GB at 1M)
            mutual[s0 : s0 + _CHUNK] = (idx[dst[s0 : s0 + _CHUNK], :km] == src[s0 : s0 + _CHUNK, None]).any(axis=1)
        # each undirected link once: j→i is also listed when i is among j's k_link nearest
        reverse = np.zeros(len(src), bool)
        for s0 in range(0, len(src), _CHUNK):
            reverse[s0 : s0 + _CHUNK] = (idx[dst[s0 : s0 + _CHUNK], :kl] == src[s0 : s0 + _CHUNK, None]).any(axis=1)
        keep = mutual & ((src < dst) | ~reverse)
        src, dst, length = src[keep], dst[keep], length[keep]
        eligible = inputs.eligible[src] & inputs.eligible[dst]
        src, dst, length = src[eligible], dst[eligible], length[eligible]
        scale = np.maximum(np.minimum(d_ref[src], d_ref[dst]), 1e-9)
        r = length / scale
        q = cfg.quantile
        if view.name == "invariant" and len(r):
            # magnitudes propose; the aligned pixel distance of the tightest links decides
            m = max(1, int(np.ceil(cfg.align_fraction * len(r))))
            best = np.argsort(r, kind="stable")[:m]
            src, dst, scale = src[best], dst[best], scale[best]
            length = _aligned(inputs, src, dst, cfg.max_shift)
            r = length / scale
            q = min(1.0, cfg.quantile / cfg.align_fraction)  # the same share of all links
        # the reference is a natural link: links between near copies (r below DUPLICATE_R, e.g.
        # 964 groups in openclipart) would pull the quantile to 0 and switch the detector off
        natural = r[r > DUPLICATE_R]
        reference = float(np.quantile(natural, q)) if len(natural) else 0.0
        tight = r <= cfg.tightness * reference
        return _Links(view, src, dst, np.asarray(length, np.float64), r.astype(np.float64), reference, tight)

    def _candidates(self, inputs: ScanInputs, lk: _Links) -> list[dict[str, Any]]:
        cfg = self.config
        n = len(inputs)
        s, d = lk.src[lk.tight], lk.dst[lk.tight]
        if len(s) == 0:
            return []
        adj = sparse.coo_matrix((np.ones(len(s)), (s, d)), shape=(n, n)).tocsr()
        _, label = connected_components(adj, directed=False)
        sizes = np.bincount(label, minlength=n)
        # fragments: tight groups (2+ images) that one loose link joins are one path (a shifted
        # bridge breaks where two members' relative shift is largest); a lone image never joins
        loose = ~lk.tight & (lk.r <= cfg.fragment_link * cfg.tightness * lk.reference)
        ls, ld = lk.src[loose], lk.dst[loose]
        join = (label[ls] != label[ld]) & (sizes[label[ls]] >= 2) & (sizes[label[ld]] >= 2)
        if join.any():
            ls, ld = ls[join], ld[join]
            groups = sparse.coo_matrix((np.ones(len(ls)), (label[ls], label[ld])), shape=(n, n)).tocsr()
            _, merged = connected_components(groups, directed=False)
            label = merged[label]
            sizes = np.bincount(label, minlength=n)
            s, d = np.concatenate([s, ls]), np.concatenate([d, ld])  # the joining links order the path
        else:
            ls = ld = np.empty(0, np.int64)
        points = None if inputs.points is None else set(np.asarray(inputs.points).tolist())
        out = []
        proj = lk.view.projected
        used = np.concatenate([np.flatnonzero(lk.tight), np.flatnonzero(loose)[join] if len(ls) else []]).astype(np.int64)
        length, r_used = lk.length[used], lk.r[used]
        copy = r_used <= DUPLICATE_R
        # images joined by copy links count once: a group of copies is one image, not a path
        adj_copy = sparse.coo_matrix((np.ones(int(copy.sum())), (s[copy], d[copy])), shape=(n, n)).tocsr()
        _, image_of = connected_components(adj_copy, directed=False)
        for c in np.flatnonzero(sizes >= cfg.min_size):
            members = np.flatnonzero(label == c)
            if points is not None and points.isdisjoint(members.tolist()):
                continue  # an incremental scan reports what the new batch takes part in
            inside = np.isin(s, members) & ~copy
            if len(np.unique(image_of[members])) < cfg.min_size or not inside.any():
                continue
            step = float(np.median(length[inside]))
            if lk.view.name == "invariant":  # magnitudes shrink a path's length: measure it aligned
                extent = _aligned_diameter(inputs, proj, members, cfg.max_shift) / max(step, 1e-9)
            else:
                extent = _diameter(proj[members]) / max(step, 1e-9)
            if extent >= cfg.min_extent:
                links = np.isin(s, members)
                out.append({"view": lk.view.name, "members": members, "extent": float(extent),
                            "links": (s[links], d[links]), "r": float(np.median(r_used[inside])),
                            "reference": lk.reference})
        return out

    def _grow(self, inputs: ScanInputs, members: np.ndarray, links: list[_Links]) -> dict[str, Any] | None:
        """The images that join a found path in the invariant view (path_growth.py), as one more
        candidate of its group (its links order them); None when none joins or growth is off."""
        from audit.scan.detectors.path_growth import grow

        cfg = self.config
        lk = next((x for x in links if x.view.name == "invariant"), None)
        if lk is None or cfg.grow_k == 0 or lk.reference <= 0:
            return None
        g = lk.view.graph
        d_ref = np.sqrt(np.maximum(g.sqdist[:, g.k - 1], 0))
        added, s, d, r = grow(members, lk.view.projected, inputs.eligible, d_ref,
                              lambda a, b: _aligned(inputs, a, b, cfg.max_shift), cfg.tightness * lk.reference,
                              k=cfg.grow_k, links=cfg.grow_links, rounds=cfg.grow_rounds)
        if len(added) == 0:
            return None
        # extent 0: growth adds members, not the evidence of how far the path goes
        return {"view": "invariant", "members": np.union1d(added, d), "extent": 0.0, "links": (s, d),
                "r": float(np.median(r)), "reference": lk.reference, "link_r": r}

    # --- findings ----------------------------------------------------------------------------

    def _finding(self, inputs: ScanInputs, group: list[dict], members: np.ndarray, links: list[_Links],
                 score: np.ndarray) -> Finding:
        ids = inputs.ids
        order, position = _order(members, group)
        members, position = members[order], position[order]
        src = _source(inputs, members)
        if src is not None and src["end"] == 1:
            members, position = members[::-1], 1.0 - position[::-1]
        n = len(members)
        first, last = ("source", "target") if src is not None else ("endpoint", "endpoint")
        out = []
        for j, m in enumerate(members):
            role = first if j == 0 else last if j == n - 1 else None
            out.append(Member(id=ids[m], index=int(m), alpha=float(position[j]), role=role, score=float(score[m])))
        views = [v for v in VIEWS if any(c["view"] == v for c in group)]
        extent = max(c["extent"] for c in group)
        tighter = float(np.median([c["reference"] / max(c["r"], 1e-9) for c in group]))
        evidence: dict[str, Any] = {
            "views": views,
            "extent_steps": round(extent, 2),
            "tighter_than_pool": round(tighter, 2),
            "endpoints": [ids[members[0]], ids[members[-1]]],
        }
        if inputs.labeled is not None:
            evidence.update(inputs.labeled.source_evidence(src))
        who = f"from labeled {src['id']} " if src is not None else ""
        names = {"pixels": "pixel space", "invariant": "the translation- and brightness-invariant view",
                 "features": "the given feature space"}
        how = " and ".join(names[v] for v in views)
        summary = (f"{n} images on one smooth path {who}between {ids[members[0]]} and {ids[members[-1]]}: "
                   f"each {tighter:.1f}× closer to its neighbours on the path than this pool's close pairs, "
                   f"{extent:.0f} steps end to end ({how}; a curved, noisy or shifted interpolation, not a straight line)")
        return Finding(kind="path", severity=Severity.ERROR, score=float(n * np.log1p(tighter)),
                       members=tuple(out), summary=summary, evidence=evidence)


def _aligned(inputs: ScanInputs, src: np.ndarray, dst: np.ndarray, max_shift: int) -> np.ndarray:
    from audit.invariance import aligned_distance

    return aligned_distance(inputs.features.rows, inputs.shape, src, dst, max_shift).astype(np.float64)


def _diameter(x: np.ndarray) -> float:
    """Largest distance between rows, by a double sweep (exact on a path, never above it)."""
    x = x.astype(np.float64)
    a = int(np.argmax(((x - x.mean(axis=0)) ** 2).sum(axis=1)))
    da = ((x - x[a]) ** 2).sum(axis=1)
    b = int(np.argmax(da))
    return float(np.sqrt(max(da[b], ((x - x[b]) ** 2).sum(axis=1).max())))


def _aligned_diameter(inputs: ScanInputs, proj: np.ndarray, members: np.ndarray, max_shift: int) -> float:
    """The double sweep of :func:`_diameter` with aligned pixel distances (the ends are found
    from the first member; the second sweep starts at the farthest)."""
    a = members[int(np.argmax(((proj[members] - proj[members].mean(axis=0)) ** 2).sum(axis=1)))]
    da = _aligned(inputs, np.full(len(members), a), members, max_shift)
    b = members[int(np.argmax(da))]
    db = _aligned(inputs, np.full(len(members), b), members, max_shift)
    return float(max(da.max(), db.max()))


def _merge(candidates: list[dict]) -> list[list[dict]]:
    """Candidates (of any view) that share an image, as groups."""
    groups: list[list[dict]] = []
    seen: list[set] = []
    for c in candidates:
        m = set(c["members"].tolist())
        hit = [i for i, s in enumerate(seen) if s & m]
        merged = [c] + [x for i in hit for x in groups[i]]
        union = m.union(*[seen[i] for i in hit])
        groups = [g for i, g in enumerate(groups) if i not in hit] + [merged]
        seen = [s for i, s in enumerate(seen) if i not in hit] + [union]
    return groups


def _order(members: np.ndarray, group: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Members ordered along the links from one end to the other, and each one's position in
    [0, 1] (hops along the path from the first end). Ends: a double sweep over hop distances."""
    local = {int(m): i for i, m in enumerate(members)}
    rows, cols = [], []
    for c in group:
        s, d = c["links"]
        rows += [local[int(v)] for v in s]
        cols += [local[int(v)] for v in d]
    m = len(members)
    adj = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(m, m)).tocsr()
    hops = shortest_path(adj, directed=False, unweighted=True, indices=[0])[0]
    a = int(np.argmax(np.where(np.isfinite(hops), hops, -1)))
    from_a = shortest_path(adj, directed=False, unweighted=True, indices=[a])[0]
    b = int(np.argmax(np.where(np.isfinite(from_a), from_a, -1)))
    from_b = shortest_path(adj, directed=False, unweighted=True, indices=[b])[0]
    finite = np.isfinite(from_a) & np.isfinite(from_b)
    # position: hops from a, against hops from b (averaging the two halves ties on a noisy path)
    pos = np.where(finite, (from_a + (from_a[b] - from_b)) / 2.0, 0.0)
    if members[a] > members[b]:  # a fixed orientation: the end with the smaller row index first
        pos = pos.max() - pos
    order = np.lexsort((members, pos))
    span = max(pos.max() - pos.min(), 1e-9)
    return order, (pos - pos.min()) / span


def _source(inputs: ScanInputs, members: np.ndarray) -> dict | None:
    """A labeled image next to one end of the path (within its own median step): that end is x'."""
    lab = inputs.labeled
    if lab is None or len(lab.rows) == 0:
        return None
    proj = inputs.features.projected
    steps = np.sqrt(((proj[members[1:]] - proj[members[:-1]]) ** 2).sum(axis=1))
    reach = 2.0 * float(np.median(steps)) if len(steps) else 0.0
    best = None
    for end, m in ((0, members[0]), (1, members[-1])):
        d = np.sqrt(((lab.projected - proj[m]) ** 2).sum(axis=1))
        j = int(np.argmin(d))
        if d[j] <= reach and (best is None or d[j] < best["distance"]):
            label = None if lab.images.labels is None else int(lab.images.labels[j])
            best = {"end": end, "id": lab.images.ids[j], "label": label, "distance": float(d[j])}
    return best
