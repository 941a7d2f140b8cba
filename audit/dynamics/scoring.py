"""Score recorded predictions, flag outliers, report attack instances (paper 5.3).

``SCORES`` is the registry of dynamics scores (``score(probs N×K×C, config) -> ScoreOutput``):

* ``chain`` (the default, ``config.DEFAULT_SCORE``): how nearly an example's prediction motion
  lies on a line between two others' (a bridge is a one-parameter family: :mod:`audit.dynamics.chain`);
* ``influence``: the paper's avg influence, exactly (:mod:`audit.dynamics.influence`), also
  reported beside any other score as the reference.

Two variants were measured and dropped, being no better than chance on real runs
(docs/benchmarks.md, "audit dynamics"): a lag-tolerant influence (AUROC 0.60, ~1 000 false
alarms per clean 5k run) and a staircase of late same-class flips (AUROC 0.43).

Flagging rule (never "top k" alone, so a clean pool can pass): on the suspicion s (log scale
for influence, chain's own bounded [-1, 1] value),
flag ``s > median(s) + z · max(1.4826 · MAD(s), min_scale)``. The median/MAD are robust to the
poison itself (0.1% of the pool); ``z = 3.5`` is Iglewicz & Hoaglin's outlier cut-off;
``min_scale`` (per score, see ``ScoreSpec``) stops a pool whose scores are all alike (MAD ~ 0)
from flagging its noise. An
optional review budget ``max_flagged`` keeps only the most suspicious of those flagged.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from audit.dynamics.chain import motion_chain
from audit.dynamics.config import DynamicsConfig, ScoreOutput
from audit.dynamics.influence import avg_influence
from audit.dynamics.instances import build_instances
from audit.dynamics.predictions import Predictions
from audit.errors import PredictionsError, invalid_parameter
from audit.findings import AuditResult
from audit.registry import Registry

# score(probs N×K×C, config, features N×d or None) -> ScoreOutput; scores that use no pixels ignore them
ScoreFn = Callable[[np.ndarray, DynamicsConfig, "np.ndarray | None"], ScoreOutput]


@dataclass(frozen=True)
class ScoreSpec:
    """A registered score and the spread floor its suspicion scale needs (``min_scale`` when
    the config leaves it None)."""

    fn: ScoreFn
    min_scale: float


SCORES: Registry[ScoreSpec] = Registry("dynamics score")
# chain values lie in [-1, 1]; a clean pool's robust spread is ~0.05-0.1: 0.05 keeps a pool whose
# values are all alike from flagging noise (measured: docs/benchmarks.md, "audit dynamics")
SCORES.register("chain", ScoreSpec(motion_chain, 0.05))
# log-influence of a clean pool spreads over ~1 nat; 0.25 keeps ratios < e^(3.5·0.25) = 2.4x quiet
SCORES.register("influence", ScoreSpec(avg_influence, 0.25))

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation


def records_for_epochs(pred: Predictions, a: int, b: int) -> tuple[int, int]:
    """Record indices ``(first, last)`` of the records made in epochs ``a..b`` inclusive. A source
    without epochs is taken to hold one record per epoch (the paper's cadence): indices = epochs."""
    if not (0 <= a < b):
        raise invalid_parameter("window", "dynamics", "an epoch range a:b with 0 <= a < b", f"{a}:{b}")
    ep = np.arange(pred.num_records) if pred.epochs is None else np.asarray(pred.epochs)
    inside = np.flatnonzero((ep >= a) & (ep <= b))
    if len(inside) < 3:
        raise PredictionsError(f"The epoch window {a}:{b} holds {len(inside)} record(s) of {pred.source or 'the predictions'} "
                               f"(epochs {int(ep.min())}..{int(ep.max())}); the influence measure needs at least 3.")
    return int(inside[0]), int(inside[-1])


def flag_outliers(suspicion: np.ndarray, config: DynamicsConfig = DynamicsConfig()) -> tuple[np.ndarray, float]:
    """``(flagged bool N, threshold)`` by the robust rule in the module doc (``min_scale`` None
    reads the default of ``config.score``)."""
    min_scale = SCORES.get(config.score).min_scale if config.min_scale is None else config.min_scale
    s = np.asarray(suspicion, dtype=np.float64)
    finite = np.isfinite(s)
    if not finite.any():
        return np.zeros(len(s), dtype=bool), float("inf")
    med = float(np.median(s[finite]))
    mad = float(np.median(np.abs(s[finite] - med))) * MAD_TO_SIGMA
    threshold = med + config.z * max(mad, min_scale)
    flagged = finite & (s > threshold)
    if config.max_flagged is not None and flagged.sum() > config.max_flagged:
        top = np.argsort(-np.where(flagged, s, -np.inf), kind="stable")[: config.max_flagged]
        flagged = np.zeros(len(s), dtype=bool)
        flagged[top] = True
    return flagged, threshold


REFERENCE_SCORE = "influence"  # the paper's exact measure: reported next to any other score


def score_predictions(pred: Predictions, config: DynamicsConfig = DynamicsConfig(), *,
                      features: np.ndarray | None = None, root: str = "", reference: bool = False) -> AuditResult:
    """Score every example, flag outliers, group them into attack instances.

    ``scores["dynamics"]`` is the per-image suspicion (float64 N, higher = more suspicious;
    for ``influence`` it is ``-log(avg influence)``). ``features`` (float N×d, rows in
    ``pred.ids`` order, e.g. ``images.pixels()``) is used only by scores that take a pixel term.
    ``reference`` adds ``params["reference"]``: the paper's avg influence of every image (by id),
    its threshold and what the same flagging rule flags with it, whatever ``config.score`` is
    (computed once when ``config.score`` is already ``influence``)."""
    score = SCORES.get(config.score).fn
    if len(pred.ids) < 2:
        raise PredictionsError(f"{pred.source or 'The predictions'} cover {len(pred.ids)} example(s); scoring compares "
                               f"examples with each other and needs at least 2.")
    timings: dict[str, float] = {}
    if config.window is not None:
        pred = pred.window(*config.window)
    t0 = time.perf_counter()
    out = score(pred.probs, config, features)
    timings["score"] = time.perf_counter() - t0
    ref = None
    if reference:
        t0 = time.perf_counter()
        ref_config = dataclasses.replace(config, score=REFERENCE_SCORE, min_scale=None, max_flagged=None)
        ref_out = out if config.score == REFERENCE_SCORE else SCORES.get(REFERENCE_SCORE).fn(pred.probs, ref_config, None)
        ref_flagged, ref_threshold = flag_outliers(ref_out.suspicion, ref_config)
        ref = {"score": REFERENCE_SCORE, "definition": "paper 5.3 avg influence over the 5 closest; low = suspicious",
               "threshold_avg_influence": float(np.exp(-ref_threshold)) if np.isfinite(ref_threshold) else None,
               "flagged": [pred.ids[i] for i in np.flatnonzero(ref_flagged)],
               "avg_influence": dict(zip(pred.ids, np.asarray(ref_out.value, dtype=np.float64).tolist()))}
        timings["reference"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    flagged, threshold = flag_outliers(out.suspicion, config)
    findings = build_instances(pred, out, flagged, threshold)
    timings["instances"] = time.perf_counter() - t0
    params = dataclasses.asdict(config)
    params.update(threshold=threshold, n_flagged=int(flagged.sum()), records=pred.num_records,
                  steps=[int(pred.steps[0]), int(pred.steps[-1])], search=out.stats)
    if ref is not None:
        params["reference"] = ref
    return AuditResult(tool="dynamics", root=root or pred.source, ids=pred.ids, findings=findings,
                       scores={"dynamics": out.suspicion.astype(np.float64)}, params=params, timings=timings)
