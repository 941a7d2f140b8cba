"""One bench trial, top to bottom (paper 3.2 and 5):

    inject (in memory) ──► train the victim with audit.dynamics.record_run, recording every
        unlabeled prediction (5.3) and the probe line x' → x* (propagation.py, 3.3)
        ──► attack success: the EMA model's argmax on x* == y* (3.2.1), read through the same
            ground truth ``audit dynamics --manifest`` reads; clean test accuracy
        ──► how far y* propagated along the bridge at every record (propagation.py)
        ──► audit scan of the unlabeled pool, with the labeled set (5.2)
        ──► dynamics scores of the recorded predictions (5.3)
        ──► every detector scored against the manifest's ground truth (metrics.py)

Detectors (the per-image scores the metrics rank; ``flagged`` = the images in the detector's own
findings, what a user would review):

* ``scan:bridge``, ``scan:path`` and ``scan:cluster``: ``AuditResult.scores`` of those kinds;
  flagged = members of that kind's findings. Reported separately because they answer different
  threats: bridges are exact pixel-space lines (linear attacks), paths chains of unusually tight
  links in a noise- and shift-tolerant view (adaptive attacks: noise, shifts, curves), clusters
  any tight group (jitter, translate, ...).
* ``scan``: the whole scan as a reviewer reads its report: images in an error finding (bridge,
  path) first, then warning (cluster), then info (near duplicate), each kind ordered by its own score.
  A raw max over kinds would compare a chain length with a cluster score, two unrelated units.
  Flagged = ``AuditResult.flagged()`` (warning and above: what fails the CI gate).
* ``dynamics:<score>`` for each score of ``TrialSpec.dynamics_scores``: ``scores["dynamics"]`` of
  :func:`audit.dynamics.score_predictions`; a name ending in ``+pixels`` gives the score the pool's
  pixels as its features (chain: the neighbours it averages over)
  (the variant docs/dynamics.md measured best). Flagged = members of its findings.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from audit.atomic import write_atomic
from audit.data.imageset import Splits
from audit.dynamics import DynamicsConfig, Recorder, RecorderObserver, load_predictions, score_predictions
from audit.dynamics.run import PREDICTIONS_DIR, record_run
from audit.errors import PredictionsError, RunInterrupted
from audit.findings import AuditResult
from audit.groundtruth import read_manifest
from audit.scan import ScanConfig, scan
from audit.scan.detectors import DEFAULT_DETECTORS, DETECTORS
from redteam.bench.matrix import PIXELS, TrialSpec
from redteam.bench.metrics import DetectionMetrics, detection_metrics
from redteam.bench.propagation import Propagation, measure, probe_line
from redteam.inject import InjectConfig, PoisonedDataset, inject

PROBE_DIR = "probe"  # the probe line's recording, beside the pool's (kept with --keep-predictions)
KEPT = (PREDICTIONS_DIR, PROBE_DIR, "manifest.json", "summary.json")  # what --keep-predictions keeps

Phase = Callable[[str, int, int], None]  # (phase, done, total): "inject", "train", "scan", "dynamics"
_KIND_SPAN = 1e6  # a kind's own scores stay below this, so a higher-severity kind always ranks first


@dataclass(frozen=True)
class TrialResult:
    """What one trial stored (``store.py`` writes :meth:`to_json`). ``status`` is ``ok`` or
    ``failed`` (then ``error`` says why and the measurements are None/empty)."""

    key: str
    spec: dict
    status: str
    error: str | None = None
    target: dict = field(default_factory=dict)  # test index, true label, y*, source id: the reused pair
    n_poison: int = 0
    pool_size: int = 0  # clean pool (the ratio's denominator)
    success: bool | None = None  # EMA argmax on x* == y*
    target_pred: int | None = None
    target_prob: float | None = None  # the EMA model's probability of y* on x*
    test_acc: float | None = None  # EMA model, clean test split
    detectors: dict[str, DetectionMetrics] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    propagation: Propagation | None = None  # y*'s front at every record (None: a trial stored before it)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict:
        return {"key": self.key, "status": self.status, "error": self.error, "spec": self.spec,
                "target": self.target, "n_poison": self.n_poison, "pool_size": self.pool_size,
                "success": self.success, "target_pred": self.target_pred, "target_prob": self.target_prob,
                "test_acc": self.test_acc, "detectors": {k: v.to_json() for k, v in self.detectors.items()},
                "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
                "propagation": None if self.propagation is None else self.propagation.to_json()}

    @classmethod
    def from_json(cls, d: dict) -> "TrialResult":
        d = dict(d)
        d["detectors"] = {k: DetectionMetrics.from_json(v) for k, v in d.get("detectors", {}).items()}
        d["timings"] = d.pop("timings_s", {})
        prop = d.pop("propagation", None)
        return cls(**d, propagation=None if prop is None else Propagation.from_json(prop))


def poisoned_pool(splits: Splits, spec: TrialSpec) -> PoisonedDataset:
    """The trial's data. The clean control injects a 2-image linear bridge with the same seed (so the
    same labeled set, pool, x*, y* and x' are drawn) and drops it again: the pool is exactly the
    poisoned cells' pool without poison, in the same order. ``spec.pair`` fixes x*/y*/x'; with
    ``source_choice="nearest"`` x' is the labeled y* image closest to x* in pixel space."""
    pair = spec.pair
    base = InjectConfig(dataset=spec.dataset, root=spec.root, labels_per_class=spec.labels_per_class,
                        unlabeled=spec.pool, seed=spec.seed, target=None if pair is None else pair.target,
                        target_label=None if pair is None else pair.target_label,
                        source=None if pair is None else pair.source)
    if spec.source_choice == "nearest" and base.source is None:
        base = replace(base, source=nearest_source(inject(splits, replace(base, attack="linear", count=2))))
    if not spec.is_control:
        return inject(splits, replace(base, attack=spec.attack, ratio=spec.ratio, density=spec.density))
    ds = inject(splits, replace(base, attack="linear", count=2))
    keep = np.flatnonzero(~ds.is_poison)
    pool = ds.unlabeled.subset(keep)
    manifest = replace(ds.manifest, attack="none", density="none", n=0, ratio=0.0, count=None, poisoned=(),
                       points=(), unlabeled_size=len(pool))
    return replace(ds, unlabeled=pool, is_poison=np.zeros(len(pool), bool),
                   origin=tuple(ds.origin[i] for i in keep), manifest=manifest)


def nearest_source(ds: PoisonedDataset) -> int:
    """Index in the labeled set of the image of class y* closest to x* (pixel L2)."""
    m = ds.manifest
    of_class = np.flatnonzero(ds.labeled.labels == m.target_label)
    x_star = ds.test.images[m.target.index].astype(np.float64).ravel()
    dist = [np.sum((ds.labeled.images[i].astype(np.float64).ravel() - x_star) ** 2) for i in of_class]
    return int(of_class[int(np.argmin(dist))])


def run_trial(spec: TrialSpec, splits: Splits, work_dir: Path, *, phase: Phase | None = None,
              control: Propagation | None = None, keep_dir: Path | None = None) -> TrialResult:
    """Run one trial; never raises for a failure inside it: a failed trial is a result too
    (``status="failed"``, the error in one line plus the last frames), so no cell loses it.
    A Ctrl-C / SIGTERM (``RunInterrupted``) is not a failure: it propagates and nothing is stored.
    ``control``: the propagation of this row's clean control, to read the clean boundary from.
    ``keep_dir``: move the recordings there (``keep_dir/<key>/``) instead of deleting them."""
    tick = phase or (lambda *_: None)
    timings: dict[str, float] = {}
    scratch = work_dir / spec.key
    try:
        result = _run(spec, splits, scratch, tick, timings, control)
        if keep_dir is not None:
            keep_recordings(scratch, Path(keep_dir) / spec.key)
        return result
    except RunInterrupted:  # Ctrl-C / SIGTERM stop the bench: not a result, the trial reruns next time
        raise
    except Exception as exc:  # recorded, reported, never dropped (the bench goes on)
        tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:])
        return TrialResult(key=spec.key, spec=spec.to_json(), status="failed",
                           error=f"{type(exc).__name__}: {exc}\n{tail}".strip(), timings=timings)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def keep_recordings(scratch: Path, dest: Path) -> Path:
    """Move the trial's recordings (:data:`KEPT`) to ``dest`` in one rename: a killed bench leaves
    either the whole folder or a ``.tmp-`` one (removed by the next run), never half of one."""
    tmp = dest.parent / f".tmp-{dest.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in KEPT:
        if (scratch / name).exists():
            shutil.move(str(scratch / name), str(tmp / name))
    if dest.exists():  # recomputed (--retry-failed): the new recording replaces the old
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def _run(spec: TrialSpec, splits: Splits, scratch: Path, tick: Phase, timings: dict[str, float],
         control: Propagation | None) -> TrialResult:
    t0 = time.perf_counter()
    tick("inject", 0, 1)
    ds = poisoned_pool(splits, spec)
    m = ds.manifest
    pool = ds.unlabeled.without_labels()
    if scratch.exists():
        shutil.rmtree(scratch)  # left by a killed run: a trial restarts from its beginning
    scratch.mkdir(parents=True)
    # the ground truth as `redteam inject` writes it and `audit dynamics --manifest` reads it
    write_atomic(scratch / "manifest.json", json.dumps(m.to_json(), indent=1))
    truth = read_manifest(scratch)
    is_poison = np.isin(np.asarray(pool.ids, dtype=object), list(truth.poison_ids))
    timings["inject"] = time.perf_counter() - t0

    # --- the victim, recorded (audit.dynamics.record_run) and probed along x' → x* ----------
    t0 = time.perf_counter()
    s = spec.train
    config = spec.train_config()
    # None: one record per pass over the pool, the trainer's own default
    every = s.observe_every or math.ceil(len(pool) / (s.mu * s.batch_size))
    alphas, line = probe_line(ds.labeled.images[m.source.index] if m.source.split == "labeled"
                              else ds.unlabeled.images[m.source.index], ds.test.images[m.target.index])
    probe = Recorder(scratch / PROBE_DIR, line.ids, num_classes=len(m.class_names))
    run = record_run(config, ds.labeled, pool, ds.test, out_dir=scratch, record_every=every,
                     observers=[RecorderObserver(probe, line)], on_progress=lambda p: tick("train", p.step, p.steps))
    probe.close()
    t = truth.target_index(ds.test)
    probs = run.trainer.predict(ds.test.images[[t]])[0]
    result = run.train
    timings["train"] = time.perf_counter() - t0

    # --- the two audits, scored against the ground truth ------------------------------------
    t0 = time.perf_counter()
    tick("scan", 0, 1)
    detectors = scan_detectors(scan(pool, ScanConfig(), labeled=ds.labeled), is_poison)
    timings["scan"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = load_predictions(run.predictions)
    pixels = pool.pixels()
    for i, name in enumerate(spec.dynamics_scores):
        tick("dynamics", i, len(spec.dynamics_scores))
        base = name.removesuffix(PIXELS)
        res = score_predictions(pred, DynamicsConfig(score=base), features=pixels if base != name else None)
        detectors[f"dynamics:{name}"] = detection_metrics(res.scores["dynamics"], is_poison,
                                                          _members(res, is_poison.shape[0]))
    timings["dynamics"] = time.perf_counter() - t0
    propagation = _propagation(ds, pred, load_predictions(scratch / PROBE_DIR), alphas, control)

    return TrialResult(
        key=spec.key, spec=spec.to_json(), status="ok",
        target={"test_index": m.target.index, "test_id": m.target.original_id, "true_label": m.target.label,
                "target_label": m.target_label, "source_id": m.source.original_id, "source_split": m.source.split},
        n_poison=int(is_poison.sum()), pool_size=m.unlabeled_pool_size,
        success=bool(int(probs.argmax()) == truth.target_label),  # on the control: x* called y* without poison
        target_pred=int(probs.argmax()), target_prob=float(probs[truth.target_label]), test_acc=result.test_acc_ema,
        detectors=detectors, timings=timings, propagation=propagation)


def _propagation(ds: PoisonedDataset, pred, line, alphas: np.ndarray, control: Propagation | None) -> Propagation:
    """The trial's :class:`Propagation`: the probe line's records, and the main bridge's (path 0)
    read from the pool's recording by the manifest's α of each poisoned image."""
    m = ds.manifest
    if not np.array_equal(pred.steps, line.steps):  # both observers see every event: a bug if not
        raise PredictionsError(f"the probe line was recorded at other steps than the pool ({line.steps} vs "
                               f"{pred.steps})")
    row = {i: k for k, i in enumerate(pred.ids)}
    main = [(row[p.path], p.alpha) for p in m.points if p.path_id == 0 and p.path in row]
    bridge = None if not main else pred.probs[[k for k, _ in main]]
    prop = measure(line.steps, line.probs, alphas, m.target_label, m.target.label, bridge,
                   None if not main else np.array([a for _, a in main]))
    if m.n == 0:  # the clean control: its own probe-line front is the clean boundary
        return replace(prop, clean_boundary=prop.line_front)
    return prop.with_clean_boundary(control)


def scan_detectors(res: AuditResult, is_poison: np.ndarray) -> dict[str, DetectionMetrics]:
    """``scan:KIND`` for every default scan detector that detects poison (``bridge``, ``path``,
    ``cluster``) and the combined ``scan`` (module doc): a kind of higher severity ranks first,
    within a kind its own score."""
    n = len(is_poison)
    out = {}
    combined = np.zeros(n)
    for kind in DEFAULT_DETECTORS:
        rank = DETECTORS.get(kind).severity.rank
        s = np.nan_to_num(np.asarray(res.scores.get(kind, np.zeros(n)), dtype=np.float64), nan=0.0)
        hit = s > 0
        combined[hit] = np.maximum(combined[hit], (rank + 1) * _KIND_SPAN + np.minimum(s[hit], _KIND_SPAN - 1))
        if kind != "near_duplicate":  # not a poison detector on its own; it ranks last in `scan`
            out[f"scan:{kind}"] = detection_metrics(s, is_poison, _members(res, n, kind))
    gated = set(res.flagged())
    flagged = np.array([id_ in gated for id_ in res.ids], dtype=bool)
    out["scan"] = detection_metrics(combined, is_poison, flagged)
    return out


def _members(res: AuditResult, n: int, kind: str | None = None) -> np.ndarray:
    flagged = np.zeros(n, bool)
    for f in res.findings:
        if kind is None or f.kind == kind:
            flagged[[m.index for m in f.members]] = True
    return flagged

