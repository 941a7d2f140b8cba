"""The dynamics audit's configuration and the shape every score returns (paper 5.3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audit.dynamics.knn import METHODS
from audit.errors import invalid_parameter
from audit.validate import check_choice, check_float

# The score `audit dynamics` flags with unless told otherwise: the one that separated bridges on
# real runs (docs/benchmarks.md, "audit dynamics"); the paper's influence stays in every report as
# the reference.
DEFAULT_SCORE = "chain"


@dataclass(frozen=True)
class DynamicsConfig:
    score: str = DEFAULT_SCORE  # a key of audit.dynamics.scoring.SCORES; "influence" is the paper's
    neighbors: int = 5  # paper 5.3 averages the 5 closest; "values from 2 to 10 perform similarly"
    window: tuple[int, int] | None = None  # record indices (a, b) inclusive; None = all records
    knn: str = "auto"  # exact "flat" up to 20k examples, "ivf" above (measured recall: docs/dynamics.md)
    pca_dim: int = 64  # projection dims of the ivf search (knn.py); 128 raises recall, ~1.5x time
    candidates: int = 64  # rows reranked with exact full-D distances per query (ivf)
    motion_neighbors: int = 12  # chain: the nearest motions whose offsets it compares
    smooth_neighbors: int = 4  # chain: its value is averaged with this many nearest examples' values
    motion_eps: float = 1e-4  # chain: ε of the log-probability motions (classes below ~ε do not count)
    motion_dedupe: float = 0.0  # chain: ignore neighbours closer than this × the median (squared); 0 = off
    z: float = 3.5  # flag at robust z > 3.5 (Iglewicz & Hoaglin's modified z-score cut-off)
    min_scale: float | None = None  # floor on the robust spread (log units); None = the score's own (scoring.SCORES)
    max_flagged: int | None = None  # review budget: keep at most this many of the flagged (None = no cap)
    seed: int = 0  # PCA row sample and IVF k-means of the approximate searches

    def __post_init__(self) -> None:
        owner = "DynamicsConfig"
        if not isinstance(self.neighbors, int) or self.neighbors < 1:
            raise invalid_parameter("neighbors", owner, "an int >= 1", self.neighbors)
        if self.window is not None:
            w = self.window
            if not (isinstance(w, (tuple, list)) and len(w) == 2 and all(isinstance(i, int) for i in w)
                    and 0 <= w[0] < w[1]):
                raise invalid_parameter("window", owner, "None or a pair of record indices (a, b) with 0 <= a < b", w)
        check_choice(owner, "knn", self.knn, METHODS)
        for name in ("pca_dim", "candidates", "motion_neighbors", "smooth_neighbors"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise invalid_parameter(name, owner, "an int >= 1", v)
        check_float(owner, "motion_dedupe", self.motion_dedupe, 0.0)
        check_float(owner, "motion_eps", self.motion_eps, 0.0, low_open=True)
        check_float(owner, "z", self.z, 0.0, low_open=True)
        if self.min_scale is not None:
            check_float(owner, "min_scale", self.min_scale, 0.0)
        if self.max_flagged is not None and (not isinstance(self.max_flagged, int) or self.max_flagged < 1):
            raise invalid_parameter("max_flagged", owner, "None or an int >= 1", self.max_flagged)


@dataclass(frozen=True, eq=False)
class ScoreOutput:
    """What a dynamics score returns for N examples.

    ``value`` float64 N: the measure in its own units (for ``influence``, the paper's avg
    influence: LOW = suspicious); ``suspicion`` float64 N on a log scale, HIGH = suspicious
    (what the flagging rule reads); ``neighbors`` int64 N×k: each example's closest influencers
    (-1 pads), which link flagged examples into attack instances."""

    name: str
    value: np.ndarray
    suspicion: np.ndarray
    neighbors: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)
