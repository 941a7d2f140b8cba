"""Wrap one SSL training run with the prediction recorder (paper 3.3, 5.3), and time the recording.

:func:`record_run` trains with :class:`audit.ssl.trainer.Trainer` and, every ``record_every``
optimiser steps and at the end, records the EMA model's softmax on every (clean, un-augmented)
unlabeled image into ``out_dir/predictions/`` (:class:`audit.dynamics.recorder.Recorder`).

What is recorded, and why. The paper records after every epoch. A bridge is learned one member
after another, and a probe on FixMatch Fashion-MNIST measured consecutive members flipping ~0.2
records apart at a 75-step cadence, so on a small pool the staircase is only visible a few times
finer than one record per epoch: the cadence (:mod:`audit.dynamics.cadence`) is a number of
steps, of passes over the pool, or a share of training time. We predict with the EMA model (what
FixMatch evaluates, and smoother than the raw one) on the full pool, eval mode: every record
holds every example at the same weights. Re-using the weak-view probabilities the algorithm
computes anyway would be free, but they cover a random ~μB of N examples per step with
augmentation and train-mode BatchNorm, so a record would mix stale and fresh rows: not honest.

Cost. A record is one forward pass over N images; an epoch of FixMatch is N/(μB) steps of
B + 2μB images forward and backward, so one record per epoch costs roughly 1/6 of the epoch
whatever N (measured: docs/benchmarks.md), while a fixed step cadence costs more the larger the
pool. ``RecordedRun.record_fraction`` reports the measured share of training time spent
recording, so the cadence/cost trade-off is visible on every run.

Resume. ``resume=True`` restores the trainer's checkpoint; the observer drops records newer than
that checkpoint (``Recorder.truncate_after``), and training is deterministic from it, so the
continued run records exactly what the uninterrupted run would have: none lost, none twice.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from audit.data.imageset import ImageSet
from audit.dynamics.cadence import DEFAULT_RECORD_EVERY, Cadence, TimedRecording
from audit.dynamics.recorder import Recorder, RecorderObserver
from audit.errors import PredictionsError

PREDICTIONS_DIR = "predictions"


@dataclass(frozen=True)
class RecordedRun:
    """One recorded training run. ``train`` is the trainer's ``TrainResult``; times are seconds of
    this ``fit()`` call (a resumed run counts only what it did)."""

    out_dir: Path
    predictions: Path
    record_every: int | None  # steps between records; None when a time budget set the cadence
    records: int  # records on disk after the run
    record_seconds: float  # spent predicting + writing records
    fit_seconds: float  # the whole fit(), recording included
    train: Any  # audit.ssl.trainer.TrainResult
    trainer: Any = field(default=None, repr=False, compare=False)  # the Trainer, for predicting with its final model
    cadence: Cadence = Cadence(steps=DEFAULT_RECORD_EVERY)  # what was asked for

    @property
    def record_fraction(self) -> float:
        """Recording time over training time without it (0.1 = recording made the run 10% longer)."""
        base = self.fit_seconds - self.record_seconds
        return self.record_seconds / base if base > 0 else math.nan

    def cost_line(self) -> str:
        """What the recording cost, in words; past 10% it says how to stay within it."""
        frac = self.record_fraction
        how = self.cadence.describe()
        if self.record_every is not None and self.cadence.steps is None:
            how += f" ({self.record_every} steps)"
        hint = ""
        if frac == frac and frac > 0.10 and self.cadence.budget is None:
            hint = " (--record-budget 0.1 keeps it within 10%, or record less often)"
        return (f"recording: {self.records} records {how}, {self.record_seconds:.1f} s = {100 * frac:.1f}% of "
                f"training time{hint}")

    def to_json(self) -> dict:
        return {"out_dir": str(self.out_dir), "predictions": str(self.predictions),
                "record_every": self.record_every, "cadence": self.cadence.to_json(), "records": self.records,
                "record_seconds": round(self.record_seconds, 3), "fit_seconds": round(self.fit_seconds, 3),
                "record_fraction": None if math.isnan(self.record_fraction) else round(self.record_fraction, 4),
                "test_acc_ema": self.train.test_acc_ema, "steps": self.train.steps}


def record_run(config: Any, labeled: ImageSet, unlabeled: ImageSet, test: ImageSet | None = None, *,
               out_dir: str | Path, record_every: int | str | Cadence = DEFAULT_RECORD_EVERY, resume: bool = False,
               use_ema: bool = True, on_progress: Callable[[Any], None] | None = None,
               on_start: Callable[[int], None] | None = None, observers: Sequence[Any] = ()) -> RecordedRun:
    """Train ``config`` (an ``audit.ssl.trainer.TrainConfig``) on ``labeled`` + ``unlabeled``
    while recording predictions on ``unlabeled`` into ``out_dir/predictions``, at ``record_every``:
    a :class:`~audit.dynamics.cadence.Cadence`, a number of steps, or its text form (``"epoch"``).

    ``resume`` continues a killed run from ``out_dir/checkpoint.pt`` (records after it are
    dropped and re-made). Without ``resume``, a folder that already holds a recording is refused
    rather than mixed with a new run. ``on_start(step)`` is called once with the step training
    starts from (0, or the checkpoint's), before the first step. ``observers`` are further trainer
    observers called after the recorder, outside its timing (e.g. a probe set's recorder). Raises ``AuditError``s."""
    from audit.ssl.trainer import Trainer

    cadence = record_every if isinstance(record_every, Cadence) else Cadence.parse(record_every)
    out_dir = Path(out_dir)
    pred_dir = out_dir / PREDICTIONS_DIR
    if not resume and (pred_dir / "meta.json").exists():
        raise PredictionsError(f"{out_dir} already holds a recording ({pred_dir}); continue it with --resume "
                               "or write the new run to another --out")
    every = cadence.every(len(unlabeled), config.mu * config.batch_size)
    # a budget decides at every step whether a record is due
    config = dataclasses.replace(config, observe_every=every or 1)
    trainer = Trainer(config, labeled, unlabeled, test, out_dir=out_dir, on_progress=on_progress)  # checks data
    recorder = Recorder(pred_dir, unlabeled.ids, trainer.num_classes)
    timed = TimedRecording(RecorderObserver(recorder, unlabeled, use_ema=use_ema), list(observers), cadence.budget)
    trainer.observers.append(timed)
    if resume and not (out_dir / "checkpoint.pt").exists():
        # killed before its first checkpoint: nothing to continue from, so start over cleanly
        timed.on_resume(0)
        start = 0
    else:
        start = trainer.resume() if resume else 0  # drops records past the checkpoint, writes nothing else
    if on_start is not None:
        on_start(start)
    t0 = time.perf_counter()
    result = trainer.fit()
    fit_seconds = time.perf_counter() - t0
    recorder.close()
    return RecordedRun(out_dir, pred_dir, every, recorder.num_records, timed.seconds, fit_seconds, result, trainer,
                       cadence)
