"""``scan``: the static inspection of an unlabeled pool (paper 5.2), top to bottom.

    ImageSet ──► features (uint8 rows, PCA projection) ──► kNN graph (FAISS, built once)
             ──► colinearity chains ("bridge", error) ──► clusters ("cluster", warning)
             ──► near-duplicate groups ("near_duplicate", info) ──► AuditResult

Every detector receives the same :class:`~audit.features.Features` and
:class:`~audit.neighbors.NeighborGraph`; none rebuilds them.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from audit.data.imageset import ImageSet
from audit.errors import EmptyDatasetError, ShapeMismatchError, invalid_parameter
from audit.features import Features, build_features
from audit.findings import AuditResult, Finding, Member, Severity
from audit.neighbors import EXACT_MAX, IVF_NPROBE, NeighborGraph, knn_graph
from audit.scan.clusters import ClusterConfig, find_clusters
from audit.scan.colinearity import Chain, ColinearityConfig, find_chains, line_fit
from audit.scan.duplicates import DuplicateConfig, near_duplicate_groups

Progress = Callable[[str, int, int], None]
DETECTORS = ("bridge", "cluster", "near_duplicate")


@dataclass(frozen=True)
class ScanConfig:
    projection_dim: int = 64  # PCA keeps 88% of Fashion-MNIST variance; kNN cost grows with it
    projection_sample: int = 10_000  # images the PCA is fitted on (seeded)
    k: int = 16  # neighbours per image: a bridge point's ±8 chain neighbours
    exact_max: int = EXACT_MAX  # pools up to this size get an exact FAISS index, larger IVF
    nprobe: int = IVF_NPROBE
    use_gpu: bool | None = None  # None: GPU when faiss has it and a GPU is visible
    seed: int = 0
    detectors: tuple[str, ...] = DETECTORS
    colinearity: ColinearityConfig = field(default_factory=ColinearityConfig)
    clusters: ClusterConfig = field(default_factory=ClusterConfig)
    duplicates: DuplicateConfig = field(default_factory=DuplicateConfig)

    def validate(self) -> None:
        for name in ("projection_dim", "projection_sample", "k"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise invalid_parameter(name, "ScanConfig", "an int >= 1", v)
        bad = [d for d in self.detectors if d not in DETECTORS]
        if bad or not self.detectors:
            raise invalid_parameter("detectors", "ScanConfig", f"a non-empty subset of {DETECTORS}", self.detectors)


@dataclass(frozen=True, eq=False)
class ScanContext:
    """What a scan built, for :mod:`audit.scan.store` to save: features, graph, ids."""

    features: Features
    graph: NeighborGraph
    ids: tuple[str, ...]
    config: ScanConfig
    shape: tuple[int, int, int]  # H, W, C of one image


def scan(images: ImageSet, config: ScanConfig = ScanConfig(), *, labeled: ImageSet | None = None,
         progress: Progress | None = None) -> AuditResult:
    """Scan one pool; see the module docstring. Findings sorted by severity then score."""
    return scan_with_context(images, config, labeled=labeled, progress=progress)[0]


def scan_with_context(images: ImageSet, config: ScanConfig = ScanConfig(), *, labeled: ImageSet | None = None,
                      progress: Progress | None = None) -> tuple[AuditResult, ScanContext]:
    """:func:`scan`, also returning the built features and graph (for ``save_index``)."""
    timings: dict[str, float] = {}
    ctx = build_context(images, config, labeled=labeled, progress=progress, timings=timings)
    result = run_detectors(ctx.features, ctx.graph, images, config, labeled=labeled, progress=progress,
                           timings=timings)
    return result, ctx


def build_context(images: ImageSet, config: ScanConfig = ScanConfig(), *, labeled: ImageSet | None = None,
                  progress: Progress | None = None, timings: dict[str, float] | None = None) -> ScanContext:
    """Validate, then build the shared features and kNN graph once."""
    config.validate()
    check_inputs(images, labeled)
    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    _tick(progress, "features", 0, 1)
    features = build_features(images.images, dim=config.projection_dim, sample=config.projection_sample,
                              seed=config.seed)
    timings["features"] = time.perf_counter() - t0
    _tick(progress, "features", 1, 1)
    t0 = time.perf_counter()
    _tick(progress, "neighbors", 0, 1)
    graph = knn_graph(features.projected, min(config.k, len(images) - 1), exact_max=config.exact_max,
                      nprobe=config.nprobe, use_gpu=config.use_gpu, seed=config.seed)
    timings["neighbors"] = time.perf_counter() - t0
    _tick(progress, "neighbors", 1, 1)
    return ScanContext(features, graph, images.ids, config, tuple(images.shape))


def check_inputs(images: ImageSet, labeled: ImageSet | None) -> None:
    if len(images) < 3:
        raise EmptyDatasetError(
            f"need at least 3 images to look for interpolation chains; got {len(images)}"
        )
    check_labeled(images, labeled)


def check_labeled(images: ImageSet, labeled: ImageSet | None) -> None:
    if labeled is not None and labeled.shape != images.shape:
        raise ShapeMismatchError(
            f"labeled images are {'×'.join(map(str, labeled.shape))} but the scanned pool is "
            f"{'×'.join(map(str, images.shape))}; both must have the same H×W×C"
        )


def run_detectors(features: Features, graph: NeighborGraph, images: ImageSet, config: ScanConfig, *,
                  labeled: ImageSet | None, progress: Progress | None, timings: dict[str, float],
                  points: np.ndarray | None = None, eligible: np.ndarray | None = None,
                  root: str | None = None) -> AuditResult:
    """Run the enabled detectors on shared features/graph; ``points`` limits triple proposals to
    those rows (incremental scans: only the new batch); ``eligible`` (bool N, not blank) is
    computed from the rows when not given."""
    n = len(features)
    ids = images.ids
    findings: list[Finding] = []
    scores: dict[str, np.ndarray] = {}
    chained = np.zeros(n, bool)
    total = len(config.detectors)
    extra: dict[str, Any] = {}
    for i, name in enumerate(config.detectors):
        _tick(progress, name, i, total)
        t0 = time.perf_counter()
        if name == "bridge":
            cfg = config.colinearity
            if eligible is None:
                eligible = _std_ok(features, cfg)
            chains, counts = find_chains(features, graph, eligible, cfg, points=points)
            lab = LabeledRows.build(labeled, features) if labeled is not None and chains else None
            s = np.zeros(n)
            for c in chains:
                f = chain_finding(c, features, ids, lab, cfg)
                findings.append(f)
                s[c.members] = np.maximum(s[c.members], f.score)
                chained[c.members] = True
            scores["bridge"] = s
            extra["bridge"] = counts
        elif name == "cluster":
            clusters, s, stats = find_clusters(graph, config.clusters)
            scores["cluster"] = s
            extra["cluster"] = stats
            findings += [cluster_finding(c, s, ids) for c in clusters]
        else:
            groups = near_duplicate_groups(features, graph, config.duplicates)
            s = np.zeros(n)
            for g in groups:
                s[g] = len(g)
            scores["near_duplicate"] = s
            extra["near_duplicate_groups"] = len(groups)
            findings += [duplicate_finding(g, ids, config.duplicates.max_diff) for g in groups
                         if not chained[g].all()]
        timings[name] = time.perf_counter() - t0
    _tick(progress, "done", total, total)
    findings.sort(key=lambda f: (-f.severity.rank, -f.score))
    params = dataclasses.asdict(config)
    params["index"] = graph.kind
    params["stats"] = extra
    return AuditResult(tool="scan", root=root if root is not None else str(images.root or ""), ids=tuple(ids),
                       findings=tuple(findings), unreadable=images.unreadable, scores=scores, params=params,
                       timings=timings, skipped=getattr(images, "skipped", ()), notes=tuple(getattr(images, "notes", ())),
                       inputs=dict(getattr(images, "summary", {}) or {}))


def _std_ok(features: Features, cfg: ColinearityConfig) -> np.ndarray:
    # the std came with the projection pass: no second read of the pixels
    return features.pixel_std() >= cfg.flat_std


def _tick(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


# --- findings ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LabeledRows:
    """The labeled set in the scan's spaces, built once per scan: uint8 rows ``L×D`` and their
    projection ``L×d``."""

    images: ImageSet
    rows: np.ndarray
    projected: np.ndarray

    @staticmethod
    def build(labeled: ImageSet, features: Features) -> "LabeledRows":
        rows = labeled.images.reshape(len(labeled), -1)
        return LabeledRows(labeled, rows, features.projection.transform(rows))


def match_source(chain: Chain, features: Features, lab: LabeledRows, cfg: ColinearityConfig) -> dict | None:
    """The labeled image on the chain's line at (or just beyond) one end, within the chain's
    tolerance: that end is the source x'. Returns {end: 0|1, index, id, label, residual}."""
    labeled, lab_rows, lp = lab.images, lab.rows, lab.projected
    e0, e1 = features.full([chain.members[0], chain.members[-1]])
    proj = features.projection
    best = None
    for end, e in ((0, e0), (1, e1)):
        pe = proj.transform(e[None])[0]
        near = np.argsort(((lp - pe) ** 2).sum(axis=1))[:5]
        x = lab_rows[near].astype(np.float32)
        t, r, abs_tol, _ = line_fit(x, e0, e1, cfg)
        tol = np.maximum(abs_tol, cfg.noise_factor * chain.extra.get("noise", 0.0) * np.sqrt(1 + (1 - t) ** 2 + t**2))
        off = t if end == 0 else 1 - t  # how far inside the chain (negative: beyond the end)
        ok = (r <= tol) & (off <= 0.05) & (off >= -0.25)
        for j in np.flatnonzero(ok):
            cand = {"end": end, "index": int(near[j]), "id": labeled.ids[int(near[j])],
                    "label": None if labeled.labels is None else int(labeled.labels[near[j]]),
                    "residual": float(r[j]), "offset": float(abs(off[j]))}
            if best is None or cand["offset"] < best["offset"]:
                best = cand
    return best


def chain_finding(chain: Chain, features: Features, ids: tuple[str, ...], lab: LabeledRows | None,
                  cfg: ColinearityConfig) -> Finding:
    members, alphas, ratio = chain.members, chain.alphas, chain.residuals / np.maximum(chain.tolerances, 1e-9)
    src = match_source(chain, features, lab, cfg) if lab is not None else None
    labeled = lab.images if lab is not None else None
    if src is not None and src["end"] == 1:
        members, alphas, ratio = members[::-1], 1.0 - alphas[::-1], ratio[::-1]
    first, last = ("source", "target") if src is not None else ("endpoint", "endpoint")
    n = len(members)
    linearity = float(np.clip(1.0 - 0.5 * np.median(ratio), 0.0, 1.0))
    score = n * linearity  # a 3-point chain scores ~3, a paper-sized bridge (60+) ~60
    out = []
    for j, (m, a) in enumerate(zip(members, alphas)):
        role = first if j == 0 else last if j == n - 1 else None
        out.append(Member(id=ids[m], index=int(m), alpha=float(a), role=role,
                          score=float(np.clip(1.0 - ratio[j], 0.0, 1.0))))
    evidence: dict[str, Any] = {
        "alphas": [round(float(a), 4) for a in alphas],
        "endpoints": [ids[members[0]], ids[members[-1]]],
        "length_px": chain.length,
        "max_residual_px": float(chain.residuals.max()),
        "max_residual_ratio": float(ratio.max()),
        "exact_rounding": chain.extra.get("exact", False),
        "noise_px": chain.extra.get("noise", 0.0),
    }
    if src is not None:
        evidence["source_labeled_id"] = src["id"]
        evidence["source_class"] = src["label"]
        if labeled is not None and labeled.class_names is not None and src["label"] is not None:
            evidence["source_class_name"] = labeled.class_names[src["label"]]
    who = f"from labeled {src['id']} " if src is not None else ""
    summary = (f"{n} images on one pixel-space line {who}between {ids[members[0]]} and {ids[members[-1]]} "
               f"(max residual {chain.residuals.max():.1f} px over a {chain.length:.0f} px span)")
    return Finding(kind="bridge", severity=Severity.ERROR, score=score, members=tuple(out), summary=summary,
                   evidence=evidence)


def cluster_finding(c, score: np.ndarray, ids: tuple[str, ...]) -> Finding:
    s = float(score[c.members[0]])
    members = tuple(Member(id=ids[m], index=int(m), score=float(score[m])) for m in c.members)
    return Finding(kind="cluster", severity=Severity.WARNING, score=s, members=members,
                   summary=f"{len(c.members)} images in one tight cluster (mean link {c.mean_edge:.1f}, "
                           f"pool threshold size >= {c.size_threshold:.0f}, link <= {c.tight_threshold:.1f})",
                   evidence={"size": len(c.members), "mean_edge": c.mean_edge,
                             "size_threshold": c.size_threshold, "tight_threshold": c.tight_threshold})


def duplicate_finding(group: np.ndarray, ids: tuple[str, ...], max_diff: int) -> Finding:
    members = tuple(Member(id=ids[m], index=int(m)) for m in group)
    return Finding(kind="near_duplicate", severity=Severity.INFO, score=float(len(group)), members=members,
                   summary=f"{len(group)} near-identical images (max pixel difference <= {max_diff})",
                   evidence={"size": len(group)})
