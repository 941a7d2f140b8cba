"""Detection and success metrics of the bench, defined once (paper 3.2 and 5; docs/bench.md).

Every detector gives a per-image score (float N, higher = more suspicious, NaN = no opinion,
ranked last); the manifest gives the truth (bool N, True = poisoned). A *threshold* flags every
image with ``score >= t``, so tied images are always flagged together: no metric here breaks a
tie in the detector's favour.

* AUROC: P(score of a random poisoned image > a random clean one), ties counting 1/2 (the
  Mann-Whitney statistic; equals ``sklearn.metrics.roc_auc_score``).
* AP: ``Σ_t (R_t − R_{t−1}) · P_t`` over the distinct thresholds in decreasing order (equals
  ``sklearn.metrics.average_precision_score``).
* TPR at FPR f: the largest TPR of a threshold whose FPR ≤ f. With 10 000 clean images f = 0.1%
  allows 10 false positives; with fewer than 1/f clean images it allows none.
* review cost: how many top-ranked images a reviewer must look at before every poisoned image has
  been seen = the number of images scoring ≥ the lowest poisoned score (ties counted against the
  detector). A detector that gives a poisoned image no score at all costs the whole pool.

With no poisoned image (the clean control) or no clean one, these are undefined: None ("n/a").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from audit.errors import InvalidParameterError, ShapeMismatchError

FPR_POINTS = (0.001, 0.01)  # the TPR@FPR operating points reported (0.1%, 1%)
WILSON_Z = 1.959963984540054  # two-sided 95%
SCORE_QUANTILES = 101  # clean scores are stored as this many quantiles (plots), poisoned ones in full


def _check(scores: np.ndarray, is_poison: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(is_poison).ravel()
    if y.dtype != bool:
        raise InvalidParameterError(f"The 'is_poison' parameter of the bench metrics must be a bool array. "
                                    f"Got {y.dtype} instead.")
    if s.shape != y.shape:
        raise ShapeMismatchError(f"{len(s)} scores for {len(y)} ground-truth labels")
    return np.where(np.isnan(s), -np.inf, s), y  # no opinion ranks below every opinion


def _curve(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative (true positives, false positives) at each distinct threshold, high to low."""
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last index of each tie group
    return np.cumsum(y)[last], np.cumsum(~y)[last]


def auroc(scores: np.ndarray, is_poison: np.ndarray) -> float | None:
    s, y = _check(scores, is_poison)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    from scipy.stats import rankdata  # average ranks: ties count 1/2

    r = rankdata(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(scores: np.ndarray, is_poison: np.ndarray) -> float | None:
    s, y = _check(scores, is_poison)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        return None
    tp, fp = _curve(s, y)
    recall = tp / n_pos
    precision = tp / (tp + fp)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def tpr_at_fpr(scores: np.ndarray, is_poison: np.ndarray, fpr: float) -> float | None:
    if not 0.0 <= fpr <= 1.0:
        raise InvalidParameterError(f"The 'fpr' parameter of tpr_at_fpr must be a float in [0, 1]. Got {fpr!r} instead.")
    s, y = _check(scores, is_poison)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    tp, fp = _curve(s, y)
    ok = fp / n_neg <= fpr + 1e-12
    return float(tp[ok].max() / n_pos) if ok.any() else 0.0


def review_cost(scores: np.ndarray, is_poison: np.ndarray) -> int | None:
    s, y = _check(scores, is_poison)
    if not y.any():
        return None
    return int((s >= s[y].min()).sum())


def wilson(k: int, n: int, z: float = WILSON_Z) -> tuple[float, float] | None:
    """95% Wilson score interval of a success rate k/n (None when n = 0): stays inside [0, 1] and
    is honest at k = 0 or k = n, where the normal approximation collapses to a point."""
    if n <= 0:
        return None
    if not 0 <= k <= n:
        raise InvalidParameterError(f"The 'k' parameter of wilson must be an int in [0, {n}]. Got {k!r} instead.")
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    # at k = 0 (k = n) the bound is exactly 0 (1); rounding could leave it a hair past p
    lo = 0.0 if k == 0 else max(0.0, mid - half)
    hi = 1.0 if k == n else min(1.0, mid + half)
    return lo, hi


@dataclass(frozen=True)
class DetectionMetrics:
    """One detector on one pool. The threshold metrics rank all N images; ``flagged_*`` count the
    images the detector itself flags (its findings at its own operating point: what a user sees)."""

    n_poison: int
    n_clean: int
    auroc: float | None
    ap: float | None
    tpr_at_fpr: dict[str, float | None]  # "0.001" -> TPR at FPR <= 0.1%
    review_cost: int | None
    flagged_poison: int
    flagged_clean: int
    poison_scores: list[float] = field(default_factory=list)  # every poisoned image's score
    clean_quantiles: list[float] = field(default_factory=list)  # SCORE_QUANTILES quantiles of the clean scores

    @property
    def flag_fpr(self) -> float | None:
        return self.flagged_clean / self.n_clean if self.n_clean else None

    def to_json(self) -> dict:
        return {"n_poison": self.n_poison, "n_clean": self.n_clean, "auroc": self.auroc, "ap": self.ap,
                "tpr_at_fpr": dict(self.tpr_at_fpr), "review_cost": self.review_cost,
                "flagged_poison": self.flagged_poison, "flagged_clean": self.flagged_clean,
                "poison_scores": [_finite(v) for v in self.poison_scores],
                "clean_quantiles": [_finite(v) for v in self.clean_quantiles]}

    @classmethod
    def from_json(cls, d: dict) -> "DetectionMetrics":
        d = dict(d)
        d["poison_scores"] = [_nan(v) for v in d.get("poison_scores", [])]
        d["clean_quantiles"] = [_nan(v) for v in d.get("clean_quantiles", [])]
        return cls(**d)


def detection_metrics(scores: np.ndarray, is_poison: np.ndarray, flagged: np.ndarray) -> DetectionMetrics:
    """All metrics of one detector (module doc); ``flagged`` bool N: what the detector reported."""
    s, y = _check(scores, is_poison)
    f = np.asarray(flagged, dtype=bool).ravel()
    if f.shape != y.shape:
        raise ShapeMismatchError(f"{len(f)} flags for {len(y)} ground-truth labels")
    raw = np.asarray(scores, dtype=np.float64).ravel()
    clean = raw[~y & ~np.isnan(raw)]
    q = np.quantile(clean, np.linspace(0, 1, SCORE_QUANTILES)).tolist() if len(clean) else []
    return DetectionMetrics(
        n_poison=int(y.sum()), n_clean=int((~y).sum()), auroc=auroc(s, y), ap=average_precision(s, y),
        tpr_at_fpr={str(p): tpr_at_fpr(s, y, p) for p in FPR_POINTS}, review_cost=review_cost(s, y),
        flagged_poison=int((f & y).sum()), flagged_clean=int((f & ~y).sum()),
        poison_scores=raw[y].tolist(), clean_quantiles=q)


def _finite(v: float) -> float | None:
    v = float(v)
    return None if math.isnan(v) else (math.copysign(1e308, v) if math.isinf(v) else v)


def _nan(v: float | None) -> float:
    return float("nan") if v is None else float(v)
