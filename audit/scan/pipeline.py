"""``scan``: the static inspection of an unlabeled pool (paper 5.2), top to bottom.

    ImageSet ──► features (uint8 rows, PCA projection) ──► kNN graph (FAISS, built once)
             ──► detectors (audit/scan/detectors/, one file each, registry order) ──► AuditResult

Every detector receives the same :class:`~audit.scan.detectors.ScanInputs` (features, graph,
which images may be chain members, the labeled set in the same spaces); none rebuilds them.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from audit.data.imageset import ImageSet
from audit.errors import EmptyDatasetError, ShapeMismatchError, invalid_parameter
from audit.features import Features, build_features
from audit.findings import AuditResult, Finding, Severity
from audit.neighbors import EXACT_MAX, IVF_NPROBE, NeighborGraph, knn_graph
from audit.scan.detectors import DEFAULT_DETECTORS, DETECTORS, DetectorOutput, LabeledRows, ScanInputs
from audit.scan.detectors.base import GraphSettings, config_from

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ScanConfig:
    projection_dim: int = 64  # PCA keeps 88% of Fashion-MNIST variance; kNN cost grows with it
    projection_sample: int = 10_000  # images the PCA is fitted on (seeded)
    k: int = 16  # neighbours per image: a bridge point's ±8 chain neighbours
    exact_max: int = EXACT_MAX  # pools up to this size get an exact FAISS index, larger IVF
    nprobe: int = IVF_NPROBE
    use_gpu: bool | None = None  # None: GPU when faiss has it and a GPU is visible
    seed: int = 0
    detectors: tuple[str, ...] = DEFAULT_DETECTORS  # run in registry order, whatever order given
    # per-detector options: name -> that detector's Config, or a dict of its fields to override
    options: Mapping[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        for name in ("projection_dim", "projection_sample", "k"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise invalid_parameter(name, "ScanConfig", "an int >= 1", v)
        if not self.detectors or isinstance(self.detectors, str):
            raise invalid_parameter("detectors", "ScanConfig", f"a non-empty tuple of {', '.join(DETECTORS)}",
                                    self.detectors)
        for d in self.detectors:
            DETECTORS.get(d)  # Unknown detector 'x'. Available: ...
        for d in self.options:
            DETECTORS.get(d)
            self.detector_config(d)

    def detector_config(self, name: str) -> Any:
        """The named detector's config: its defaults, the Config given in ``options``, or the
        defaults with the overrides of a dict in ``options`` (validated by the Config)."""
        cls = DETECTORS.get(name).Config
        given = self.options.get(name)
        if given is None:
            return cls()
        if isinstance(given, cls):
            return given
        if isinstance(given, Mapping):
            return config_from(cls, given, f"the {name} detector")
        raise invalid_parameter(name, "ScanConfig.options", f"a {cls.__name__} or a dict of its fields",
                                type(given).__name__)

    @property
    def colinearity(self):
        """The bridge detector's config (its ``flat_std`` decides which images may be chain members)."""
        return self.detector_config("bridge")

    def ordered_detectors(self) -> list[str]:
        return [d for d in DETECTORS if d in self.detectors]


@dataclass(frozen=True, eq=False)
class ScanContext:
    """What a scan built, for :mod:`audit.scan.store` to save: features, graph, ids."""

    features: Features
    graph: NeighborGraph
    ids: tuple[str, ...]
    config: ScanConfig
    shape: tuple[int, int, int]  # H, W, C of one image


def scan(images: ImageSet, config: ScanConfig = ScanConfig(), *, labeled: ImageSet | None = None,
         progress: Progress | None = None, embeddings: np.ndarray | None = None) -> AuditResult:
    """Scan one pool; see the module docstring. Findings sorted by severity then score.

    ``embeddings``: optional float ``N×d`` per-image features of the user's own (row i for image
    i, e.g. :func:`audit.data.embeddings.load_embeddings`); detectors that take a ``features``
    view (``path``) then look in that space too."""
    return scan_with_context(images, config, labeled=labeled, progress=progress, embeddings=embeddings)[0]


def scan_with_context(images: ImageSet, config: ScanConfig = ScanConfig(), *, labeled: ImageSet | None = None,
                      progress: Progress | None = None,
                      embeddings: np.ndarray | None = None) -> tuple[AuditResult, ScanContext]:
    """:func:`scan`, also returning the built features and graph (for ``save_index``)."""
    timings: dict[str, float] = {}
    ctx = build_context(images, config, labeled=labeled, progress=progress, timings=timings)
    result = run_detectors(ctx.features, ctx.graph, images, config, labeled=labeled, progress=progress,
                           timings=timings, embeddings=embeddings)
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
                  root: str | None = None, embeddings: np.ndarray | None = None,
                  views: Mapping[str, Any] | None = None) -> AuditResult:
    """Run the enabled detectors (registry order) on the shared features and graph; ``points``
    limits proposals to those rows (incremental scans: only the new batch and its neighbours,
    detectors that need the whole pool are skipped); ``eligible`` (bool N, not blank) is computed
    from the rows when not given; ``views`` are views another engine already built (name ->
    ``View``, see :mod:`audit.engines.sharded`), used instead of building them here."""
    n = len(features)
    if embeddings is not None and np.shape(embeddings)[0] != n:
        raise ShapeMismatchError(f"{np.shape(embeddings)[0]} embedding rows for {n} images")
    if eligible is None:
        eligible = features.pixel_std() >= config.colinearity.flat_std  # from the projection pass
    lab = LabeledRows.build(labeled, features) if labeled is not None else None
    settings = GraphSettings(dim=config.projection_dim, sample=config.projection_sample, k=config.k,
                             exact_max=config.exact_max, nprobe=config.nprobe, use_gpu=config.use_gpu, seed=config.seed)
    shape = tuple(images.shape) if hasattr(images, "shape") else None
    inputs = ScanInputs(features=features, graph=graph, ids=tuple(images.ids), eligible=eligible, shape=shape,
                        labeled=lab, points=points, full_pool=points is None, settings=settings,
                        embeddings=embeddings, _views=dict(views or {}))
    names = [d for d in config.ordered_detectors() if inputs.full_pool or not DETECTORS.get(d).needs_full_pool]
    outputs: dict[str, DetectorOutput] = {}
    for i, name in enumerate(names):
        _tick(progress, name, i, len(names))
        t0 = time.perf_counter()
        detector = DETECTORS.get(name)(config.detector_config(name))
        out = detector.run(inputs, dict(outputs))
        if np.shape(out.scores) != (n,):
            raise ShapeMismatchError(f"the {name} detector returned {np.shape(out.scores)} scores for {n} images")
        outputs[name] = out
        timings[name] = time.perf_counter() - t0
    _tick(progress, "done", len(names), len(names))
    findings = fold_contained([f for out in outputs.values() for f in out.findings])
    findings.sort(key=lambda f: (-f.severity.rank, -f.score))
    params: dict[str, Any] = {k: getattr(config, k) for k in ("projection_dim", "projection_sample", "k",
                                                               "exact_max", "nprobe", "use_gpu", "seed")}
    params["detectors"] = list(names)
    params["options"] = {d: dataclasses.asdict(config.detector_config(d)) for d in names}
    params["index"] = graph.kind
    params["stats"] = {d: out.stats for d, out in outputs.items()}
    return AuditResult(tool="scan", root=root if root is not None else str(images.root or ""), ids=tuple(images.ids),
                       findings=tuple(findings), unreadable=images.unreadable,
                       scores={d: np.asarray(out.scores, np.float64) for d, out in outputs.items()}, params=params,
                       timings=timings, skipped=getattr(images, "skipped", ()), notes=tuple(getattr(images, "notes", ())),
                       inputs=dict(getattr(images, "summary", {}) or {}))


# an error finding this much inside a larger one (at least FOLD_SIZE times its size) is a piece
# of it: the straight segments of a two-segment hop inside the path that holds both
FOLD_SHARE = 0.8
FOLD_SIZE = 1.25


def fold_contained(findings: list[Finding]) -> list[Finding]:
    """Error findings that are pieces of a larger error finding, folded into it: the larger one
    keeps them in ``evidence["includes"]`` (kind, size, summary), so one attack is one finding."""
    errors = sorted((f for f in findings if f.severity is Severity.ERROR), key=lambda f: -len(f.members))
    kept: list[Finding] = []
    sets: list[set[int]] = []
    pieces: dict[int, list[dict]] = {}
    for f in errors:
        own = {m.index for m in f.members}
        host = next((j for j, (g, s) in enumerate(zip(kept, sets))
                     if len(g.members) >= FOLD_SIZE * len(own) and len(own & s) >= FOLD_SHARE * len(own)), None)
        if host is None:
            kept.append(f)
            sets.append(own)
        else:
            pieces.setdefault(host, []).append({"kind": f.kind, "size": len(own), "summary": f.summary})
    kept = [dataclasses.replace(g, evidence={**g.evidence, "includes": pieces[j]}) if j in pieces else g
            for j, g in enumerate(kept)]
    return kept + [f for f in findings if f.severity is not Severity.ERROR]


def _tick(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)
