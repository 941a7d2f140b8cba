"""The contract every scan detector keeps (paper 5.2; STYLE.md 2, 3 and 7).

A detector is one file in this folder, registered under its file name in
``audit.scan.detectors.DETECTORS``; that name is also the ``kind`` of its findings and the value
``audit scan --detectors`` takes. It receives the inputs the scan built once and shares with
every detector (:class:`ScanInputs`: pixel rows and their projection, the kNN graph, which images
may be members of a chain, the labeled set in the same spaces) and returns a
:class:`DetectorOutput`: its findings, a per-image score for EVERY image (higher = more
suspicious, NaN = no opinion; what a reviewer sorts by and a benchmark computes AUROC from) and
statistics for the report. A detector never rebuilds features or the graph, and never reads
files. Its config is a frozen dataclass that validates itself in ``__post_init__``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Mapping

import numpy as np

from audit.data.imageset import ImageSet
from audit.errors import invalid_parameter
from audit.features import Features
from audit.findings import Finding, Severity
from audit.neighbors import EXACT_MAX, IVF_NPROBE, NeighborGraph
from audit.validate import check_float

# The name docs/detectors.md gave detector plug-ins before audit.validate; new code imports from there.
check_number = check_float


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

    def class_name(self, label: int | None) -> str | None:
        names = self.images.class_names
        return None if label is None or names is None or not 0 <= label < len(names) else names[label]

    def source_evidence(self, src: dict | None) -> dict:
        """The evidence keys a finding with a labeled source x' carries (none without one)."""
        if src is None:
            return {}
        out = {"source_labeled_id": src["id"], "source_class": src["label"]}
        name = self.class_name(src["label"])
        if name is not None:
            out["source_class_name"] = name
        return out


@dataclass(frozen=True)
class GraphSettings:
    """How the scan builds a projection and kNN graph; a second view reuses them."""

    dim: int = 64
    sample: int = 10_000
    k: int = 16
    exact_max: int = EXACT_MAX
    nprobe: int = IVF_NPROBE
    use_gpu: bool | None = None
    seed: int = 0


@dataclass(frozen=True, eq=False)
class View:
    """One space the pool is looked at in: projected rows float32 ``N×d`` and their kNN graph."""

    name: str
    projected: np.ndarray
    graph: NeighborGraph


VIEWS = ("pixels", "invariant", "features")
# the invariant view only proposes candidates (aligned pixel distances decide), so fewer
# dimensions do: its kNN search, the largest cost the view adds, shrinks with them
INVARIANT_DIM = 32

# invariant view: no zero padding. Standardising makes a black background a non-zero constant,
# and a zero frame around it would not move with the content; without one, a shift that keeps
# the content inside the image is a circular shift of the standardised image (the background
# wraps around), which leaves the magnitudes exactly equal
INVARIANT_PAD = 0


@dataclass(frozen=True, eq=False)
class ScanInputs:
    """What the scan built once, for every detector.

    ``shape``: (H, W, C) of one image (``features.rows`` are ``H·W·C`` long). ``eligible``: bool
    ``N``, the image is not blank (pixel std at least the flat threshold), so it may be a member of
    a chain or path. ``points``: the rows an incremental scan proposes from (the new batch and the
    stored rows it lands next to); None in a full scan. ``full_pool`` is False in an incremental
    scan: pool-wide statistics (cluster sizes) and views beyond ``pixels`` are then unavailable.
    :meth:`view` builds other spaces on first use and shares them with every later detector."""

    features: Features
    graph: NeighborGraph
    ids: tuple[str, ...]
    eligible: np.ndarray
    shape: tuple[int, int, int] | None = None
    labeled: LabeledRows | None = None
    points: np.ndarray | None = None
    full_pool: bool = True
    settings: GraphSettings = GraphSettings()
    embeddings: np.ndarray | None = None  # float32 N×d the user brought (--features), or None
    _views: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.features)

    def view(self, name: str) -> View | None:
        """``pixels`` (the scan's own projection and graph), ``invariant`` (|FFT| of standardised
        images, :mod:`audit.invariance`) or ``features`` (the user's embeddings, PCA-reduced when
        wider than the scan's dimension), built once; None where a view cannot be built here (an
        incremental scan, rows that are not images, no embeddings given)."""
        if name == "pixels":
            return View("pixels", self.features.projected, self.graph)
        if name not in self._views:
            self._views[name] = self._build(name)
        return self._views[name]

    def _build(self, name: str) -> View | None:
        if name not in VIEWS:
            raise invalid_parameter("view", "the scan", f"one of {', '.join(VIEWS)}", name)
        if not self.full_pool or len(self) < 3:
            return None
        from audit.features import fit_projection
        from audit.invariance import invariant_rows
        from audit.neighbors import knn_graph

        st = self.settings
        if name == "features":
            if self.embeddings is None:
                return None
            e = np.asarray(self.embeddings, np.float32)
            if e.shape[1] > st.dim:
                e = fit_projection(e, dim=st.dim, sample=st.sample, seed=st.seed).transform(e)
            graph = knn_graph(e, min(st.k, len(self) - 1), exact_max=st.exact_max, nprobe=st.nprobe,
                              use_gpu=st.use_gpu, seed=st.seed)
            return View("features", graph.projected, graph)
        if self.shape is None:
            return None
        rows = self.features.rows
        rng = np.random.default_rng(st.seed)
        take = np.sort(rng.choice(len(self), size=min(len(self), st.sample), replace=False))
        proj = fit_projection(invariant_rows(rows[take], self.shape, INVARIANT_PAD), dim=min(st.dim, INVARIANT_DIM), seed=st.seed)
        projected = np.empty((len(self), proj.dim), np.float32)
        step = 16_384
        for s in range(0, len(self), step):
            projected[s : s + step] = proj.transform(invariant_rows(rows[s : s + step], self.shape, INVARIANT_PAD))
        graph = knn_graph(projected, min(st.k, len(self) - 1), exact_max=st.exact_max, nprobe=st.nprobe,
                          use_gpu=st.use_gpu, seed=st.seed)
        return View("invariant", projected, graph)


@dataclass
class DetectorOutput:
    findings: list[Finding]
    scores: np.ndarray  # float64 N: per-image score, higher = more suspicious, NaN = no opinion
    stats: dict[str, Any] = field(default_factory=dict)


class Detector(ABC):
    """Subclasses set ``name`` (= file name = registry key = finding kind), ``Config`` (a frozen
    dataclass) and ``severity``, and implement :meth:`run`."""

    name: ClassVar[str]
    Config: ClassVar[type]
    severity: ClassVar[Severity]
    needs_full_pool: ClassVar[bool] = False  # True: skipped by incremental (--against) scans
    summary: ClassVar[str] = ""  # one line for --help and docs

    def __init__(self, config: Any = None) -> None:
        self.config = self.Config() if config is None else config
        if not isinstance(self.config, self.Config):
            raise invalid_parameter("config", f"the {self.name} detector", f"a {self.Config.__name__}",
                                    type(self.config).__name__)

    @abstractmethod
    def run(self, inputs: ScanInputs, earlier: Mapping[str, DetectorOutput]) -> DetectorOutput:
        """Findings and per-image scores; ``earlier`` holds the outputs of detectors that ran before
        this one in registry order (e.g. near duplicates inside a bridge are not reported twice)."""


def config_from(cls: type, options: Mapping[str, Any], owner: str):
    """A detector's frozen config from ``{field: value}`` overrides; unknown fields are named with
    the valid ones (the dataclass's own ``__post_init__`` checks the values)."""
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise invalid_parameter(unknown[0], owner, f"one of its options ({', '.join(names)})", options[unknown[0]])
    # a JSON list (``--set path.views=["pixels"]``) for a tuple field becomes a tuple: configs stay hashable
    tuples = {f.name for f in fields(cls) if isinstance(f.default, tuple)}
    return cls(**{k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in options.items()})


def members_union(outputs: Mapping[str, DetectorOutput], min_severity: Severity) -> set[int]:
    """Row indices of every member of the earlier findings at or above ``min_severity``."""
    return {m.index for out in outputs.values() for f in out.findings
            if f.severity.rank >= min_severity.rank for m in f.members}
