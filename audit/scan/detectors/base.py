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
from audit.neighbors import NeighborGraph


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


@dataclass(frozen=True, eq=False)
class ScanInputs:
    """What the scan built once, for every detector.

    ``eligible``: bool ``N``, the image is not blank (pixel std at least the flat threshold), so it
    may be a member of a chain or path. ``points``: the rows an incremental scan proposes from
    (the new batch and the stored rows it lands next to); None in a full scan. ``full_pool`` is
    False in an incremental scan: pool-wide statistics (cluster sizes) are then unavailable."""

    features: Features
    graph: NeighborGraph
    ids: tuple[str, ...]
    eligible: np.ndarray
    labeled: LabeledRows | None = None
    points: np.ndarray | None = None
    full_pool: bool = True

    def __len__(self) -> int:
        return len(self.features)


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
    return cls(**options)


def check_number(owner: str, name: str, value: Any, low: float, high: float | None = None, *,
                 integer: bool = False, low_open: bool = False) -> None:
    """Boundary validation for config fields, in scikit-learn's words."""
    is_num = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.integer, np.floating))
    ok = is_num and not isinstance(value, bool) and np.isfinite(float(value))
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (high is None or v <= high)
    if not ok:
        what = "an int" if integer else "a number"
        lo = f"> {low:g}" if low_open else f">= {low:g}"
        allowed = f"{what} {lo}" + ("" if high is None else f" and <= {high:g}")
        raise invalid_parameter(name, owner, allowed, value)


def members_union(outputs: Mapping[str, DetectorOutput], min_severity: Severity) -> set[int]:
    """Row indices of every member of the earlier findings at or above ``min_severity``."""
    return {m.index for out in outputs.values() for f in out.findings
            if f.severity.rank >= min_severity.rank for m in f.members}
