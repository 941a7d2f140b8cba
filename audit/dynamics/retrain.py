"""Remove what was flagged, retrain from scratch on the rest, rescore (paper 5.3: "at cost of
doubling the training time ... training once with poisoned examples, and a second time after
removing them"; "multiple rounds of this procedure might improve its success rate further").

Round 0 is the run on the pool as given. Round r >= 1 removes every image flagged so far
(cumulative: an image flagged once never comes back; the loop stops early when a round flags
nothing new, since a deterministic retrain on the same pool would repeat it), trains a fresh model with the same
configuration and seed in ``out_dir/round-r``, records and scores again. Each round reports what
it removed, how many of those were poison when ground truth is known (a ``redteam inject``
manifest, read by :mod:`audit.groundtruth`), the clean test accuracy, and whether the attack's
target x* still gets y*.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from audit.data.imageset import ImageSet
from audit.dynamics.config import DynamicsConfig
from audit.dynamics.predictions import check_ids, load_predictions
from audit.dynamics.cadence import DEFAULT_RECORD_EVERY, Cadence
from audit.dynamics.run import RecordedRun, record_run
from audit.dynamics.scoring import records_for_epochs, score_predictions
from audit.errors import DataError, invalid_parameter
from audit.findings import AuditResult, Finding
from audit.groundtruth import Manifest


@dataclass(frozen=True)
class Round:
    """One round: the pool it trained on, what it removed before training, what it found."""

    index: int
    pool_size: int
    removed: tuple[str, ...]  # removed before this round (flagged by the previous round)
    poison_removed: int | None  # of ``removed``; None without ground truth
    poison_left: int | None  # poison still in this round's pool
    test_acc: float | None  # EMA model, clean test set
    attack_success: bool | None  # x* classified as y* at the end of this round's training
    flagged: tuple[str, ...]
    result: AuditResult
    run: RecordedRun | None = None  # None when scoring predictions recorded elsewhere

    def to_json(self) -> dict[str, Any]:
        return {"round": self.index, "pool_size": self.pool_size, "removed": len(self.removed),
                "removed_ids": list(self.removed), "poison_removed": self.poison_removed,
                "poison_left": self.poison_left, "test_acc": self.test_acc, "attack_success": self.attack_success,
                "flagged": len(self.flagged),
                "recording": None if self.run is None else self.run.to_json()}


@dataclass(frozen=True)
class DynamicsRun:
    """Every round of an ``audit dynamics`` run and the combined result the reports render."""

    rounds: tuple[Round, ...]
    result: AuditResult
    extra: dict[str, Any] = field(default_factory=dict)


def score_folder(pred_source: str | Path, unlabeled: ImageSet, config: DynamicsConfig, *,
                 epochs: tuple[int, int] | None = None, pixel_links: bool = False,
                 root: str = "") -> AuditResult:
    """Load predictions (a recording, .npz, .npy, or a run folder holding ``predictions/``),
    check their ids against ``unlabeled`` (reordered to the folder), apply the epoch window,
    score with the paper's influence as reference."""
    src = Path(pred_source)
    if (src / "predictions" / "meta.json").exists() and not (src / "meta.json").exists():
        src = src / "predictions"  # the run folder `audit dynamics --out RUN` wrote
    pred = check_ids(load_predictions(src), unlabeled)
    if epochs is not None:
        config = replace(config, window=records_for_epochs(pred, *epochs))
    features = unlabeled.pixels() if pixel_links else None
    return score_predictions(pred, config, features=features, root=root or str(pred_source), reference=True)


def audit_rounds(train_config: Any, labeled: ImageSet, unlabeled: ImageSet, test: ImageSet | None, *,
                 out_dir: str | Path, config: DynamicsConfig, rounds: int = 0,
                 record_every: int | str | Cadence = DEFAULT_RECORD_EVERY, resume: bool = False,
                 epochs: tuple[int, int] | None = None, pixel_links: bool = False,
                 truth: Manifest | None = None, root: str = "",
                 on_round: Callable[[int, int, int], None] | None = None,
                 on_progress: Callable[[Any], None] | None = None) -> DynamicsRun:
    """Train + record + score, then ``rounds`` times remove the flagged and do it again.

    ``on_round(round, start_step, pool_size)`` is called before each round's training.
    ``resume`` continues each round's folder that already holds a recording."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise invalid_parameter("rounds", "audit dynamics", "an int >= 0", rounds)
    out_dir = Path(out_dir)
    removed_all: list[str] = []
    done: list[Round] = []
    pool = unlabeled
    for r in range(rounds + 1):
        removed = tuple(i for i in done[-1].flagged if i not in removed_all) if done else ()
        if done and not removed:
            break  # nothing new flagged: training is deterministic, another round would repeat this one
        removed_all.extend(removed)
        if removed:
            keep = np.flatnonzero(~np.isin(np.asarray(unlabeled.ids, dtype=object), removed_all))
            pool = unlabeled.subset(keep)
        if len(pool) < 3:
            raise DataError(f"round {r}: only {len(pool)} unlabeled images left after removing the flagged ones")
        rdir = out_dir if r == 0 else out_dir / f"round-{r}"
        here = resume and (rdir / "predictions" / "meta.json").exists()
        run = record_run(train_config, labeled, pool, test, out_dir=rdir, record_every=record_every, resume=here,
                         on_progress=on_progress,
                         on_start=None if on_round is None else (lambda s, r=r, n=len(pool): on_round(r, s, n)))
        result = score_folder(run.predictions, pool, config, epochs=epochs, pixel_links=pixel_links,
                              root=root or str(rdir))
        done.append(_round(r, pool, removed, result, run, test, truth))
    return DynamicsRun(tuple(done), combine(done, unlabeled))


def _round(r: int, pool: ImageSet, removed: Sequence[str], result: AuditResult, run: RecordedRun | None,
           test: ImageSet | None, truth: Manifest | None) -> Round:
    poison_removed = poison_left = attack = None
    if truth is not None:
        poison_removed = sum(i in truth.poison_ids for i in removed)
        poison_left = sum(i in truth.poison_ids for i in pool.ids)
        t = truth.target_index(test)
        if t is not None and run is not None:
            probs = run.trainer.predict(test.images[t:t + 1])  # type: ignore[union-attr]
            attack = bool(int(probs[0].argmax()) == truth.target_label)
    acc = None if run is None else run.train.test_acc_ema
    return Round(r, len(pool), tuple(removed), poison_removed, poison_left, acc, attack,
                 tuple(result.flagged()), result, run)


def combine(rounds: Sequence[Round], unlabeled: ImageSet) -> AuditResult:
    """Round 0's result (the pool as given: its per-image scores, params) with the findings of
    later rounds appended, their member indices mapped back to rows of ``unlabeled`` and their
    evidence marked with the round. ``params["rounds"]`` summarises every round."""
    first = rounds[0].result
    row = {i: k for k, i in enumerate(unlabeled.ids)}
    findings: list[Finding] = []
    for rd in rounds:
        for f in rd.result.findings:
            if rd.index:
                members = tuple(replace(m, index=row[m.id]) for m in f.members)
                f = replace(f, members=members, evidence={**f.evidence, "round": rd.index},
                            summary=f"[round {rd.index}] {f.summary}")
            findings.append(f)
    params = dict(first.params)
    params["rounds"] = [rd.to_json() for rd in rounds]
    return replace(first, findings=tuple(findings), params=params)


def single_round(result: AuditResult, pool: ImageSet, truth: Manifest | None) -> DynamicsRun:
    """A :class:`DynamicsRun` for predictions recorded elsewhere (nothing trained here)."""
    rd = _round(0, pool, (), result, None, None, truth)
    return DynamicsRun((rd,), combine([rd], pool))


__all__ = ["DynamicsRun", "Round", "audit_rounds", "combine", "score_folder", "single_round"]
