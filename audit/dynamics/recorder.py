"""Prediction recorder: every unlabeled example's softmax after each observation (paper 3.3, 5.3).

Paper 3.3 "saves all intermediate model predictions after every epoch"; 5.3 scores examples
from them. This module writes them to disk while training runs (``predictions.py`` reads them).

On-disk layout (format version 1), a directory::

    run/predictions/
        meta.json           {"format", "version", "num_classes", "dtype", "ids": [N],
                             "records": [{"step", "epoch", "file"}, ...]}  (record order)
        step_0000000500.npy  one record: N×C probabilities in ``dtype`` (float16 by default)
        ...

One ``.npy`` per record keeps appends O(N·C) and lets a resumed run drop records by deleting
files. Every write is atomic: the data file is written to a temp name, fsynced and
``os.replace``d into place, and only then is ``meta.json`` replaced the same way. ``meta.json``
is the single source of truth: a file it does not list (left by a run killed between the two
replaces) is deleted on the next open, so a reader never sees half a record.

Shape contracts: ``record(step, probs)`` takes probabilities ``N×C`` (rows sum to 1);
:func:`audit.dynamics.predictions.load_predictions` returns float32 ``N×K×C`` (K records).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from audit.atomic import atomic_open, write_atomic
from audit.dynamics.predictions import FORMAT, META, ROW_SUM_TOL, VERSION, read_meta
from audit.errors import PredictionsError, invalid_parameter

if TYPE_CHECKING:  # a type only: the data readers are not needed to read predictions
    from audit.data.imageset import ImageSet

_ALLOWED_DTYPES = ("float16", "float32")


class Recorder:
    """Append probabilities ``N×C`` per training step to a recording directory.

    ``Recorder(path, ids, num_classes)`` creates the recording or reopens it (resume: ids,
    num_classes and dtype must match, else :class:`PredictionsError`). Steps must increase;
    :meth:`truncate_after` drops records newer than a checkpoint before a resumed run continues.
    """

    def __init__(self, path: str | Path, ids: Sequence[str], num_classes: int, *,
                 dtype: Any = np.float16) -> None:
        self.path = Path(path)
        self.ids = tuple(str(i) for i in ids)
        self.num_classes = int(num_classes)
        self.dtype = np.dtype(dtype)
        if self.dtype.name not in _ALLOWED_DTYPES:
            raise invalid_parameter("dtype", "Recorder", f"one of {', '.join(_ALLOWED_DTYPES)}", self.dtype.name)
        if self.num_classes < 2:
            raise invalid_parameter("num_classes", "Recorder", "an int >= 2", num_classes)
        if not self.ids or len(set(self.ids)) != len(self.ids):
            raise invalid_parameter("ids", "Recorder", "a non-empty sequence of unique ids", f"{len(self.ids)} ids")
        self._records: list[dict[str, Any]] = []
        self._closed = False
        if (self.path / META).exists():
            self._reopen()
        else:
            if self.path.exists() and not self.path.is_dir():
                raise PredictionsError(f"Cannot record predictions to {self.path}: it is a file, not a directory.")
            self.path.mkdir(parents=True, exist_ok=True)
            self._write_meta()
        self._remove_orphans()

    # --- state ---------------------------------------------------------------------------
    @property
    def steps(self) -> list[int]:
        return [int(r["step"]) for r in self._records]

    @property
    def epochs(self) -> list[int | None]:
        return [r.get("epoch") for r in self._records]

    @property
    def num_records(self) -> int:
        return len(self._records)

    @property
    def last_step(self) -> int | None:
        return int(self._records[-1]["step"]) if self._records else None

    # --- writing -------------------------------------------------------------------------
    def record(self, step: int, probs: np.ndarray, *, epoch: int | None = None) -> None:
        """Append one record: probabilities ``N×C`` after training step ``step`` (> last step)."""
        if self._closed:
            raise PredictionsError(f"Recorder for {self.path} is closed.")
        step = int(step)
        last = self.last_step
        if step < 0 or (last is not None and step <= last):
            raise PredictionsError(f"Cannot record step {step} in {self.path}: steps must increase and the "
                                   f"last recorded step is {last}. Resuming? call truncate_after(checkpoint_step).")
        probs = np.asarray(probs)
        n, c = len(self.ids), self.num_classes
        if probs.shape != (n, c):
            raise PredictionsError(f"Cannot record step {step}: expected probabilities of shape ({n}, {c}) "
                                   f"(unlabeled examples × classes); got {probs.shape}.")
        if not np.isfinite(probs).all():
            raise PredictionsError(f"Cannot record step {step}: {int((~np.isfinite(probs)).sum())} NaN/inf values.")
        dev = np.abs(probs.sum(axis=1, dtype=np.float64) - 1.0).max()
        if dev > ROW_SUM_TOL:
            raise PredictionsError(f"Cannot record step {step}: rows must sum to 1 (softmax); worst row is "
                                   f"off by {dev:.3g}.")
        name = f"step_{step:010d}.npy"
        _atomic_save(self.path / name, np.ascontiguousarray(probs, dtype=self.dtype))
        self._records.append({"step": step, "epoch": None if epoch is None else int(epoch), "file": name})
        try:
            self._write_meta()
        except BaseException:
            self._records.pop()
            raise

    def truncate_after(self, step: int) -> int:
        """Drop every record with a step > ``step`` (a resumed run restarts from that checkpoint).
        Returns the number of records dropped. ``meta.json`` is rewritten first, so a kill in
        between leaves only orphan files, which the next open removes."""
        keep = [r for r in self._records if int(r["step"]) <= int(step)]
        dropped = self._records[len(keep):]
        if not dropped:
            return 0
        self._records = keep
        self._write_meta()
        for r in dropped:
            (self.path / r["file"]).unlink(missing_ok=True)
        return len(dropped)

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------
    def _reopen(self) -> None:
        meta = read_meta(self.path)
        if tuple(meta["ids"]) != self.ids:
            raise PredictionsError(f"The recording in {self.path} was made for {len(meta['ids'])} other ids "
                                   f"(first mismatch: {_first_mismatch(meta['ids'], self.ids)}); use a new directory.")
        if int(meta["num_classes"]) != self.num_classes:
            raise PredictionsError(f"The recording in {self.path} has {meta['num_classes']} classes, "
                                   f"not {self.num_classes}.")
        if meta["dtype"] != self.dtype.name:
            raise PredictionsError(f"The recording in {self.path} stores {meta['dtype']}, not {self.dtype.name}.")
        self._records = list(meta["records"])
        missing = [r["file"] for r in self._records if not (self.path / r["file"]).exists()]
        if missing:
            raise PredictionsError(f"The recording in {self.path} lists {len(missing)} missing record file(s), "
                                   f"e.g. {missing[0]}.")

    def _remove_orphans(self) -> None:
        listed = {r["file"] for r in self._records}
        for p in self.path.iterdir():
            if (p.name.startswith("step_") and p.suffix == ".npy" and p.name not in listed) or p.name.startswith(".tmp-"):
                p.unlink(missing_ok=True)

    def _write_meta(self) -> None:
        meta = {"format": FORMAT, "version": VERSION, "num_classes": self.num_classes,
                "dtype": self.dtype.name, "ids": list(self.ids), "records": self._records}
        _atomic_write_bytes(self.path / META, json.dumps(meta).encode())


class RecorderObserver:
    """A trainer observer (``audit.ssl.trainer.Trainer(observers=[...])``) that records the
    model's softmax on the un-augmented unlabeled images at every observation.

    Each ``TrainEvent`` calls ``event.trainer.predict(images, model=...)`` (float32 ``N×C``) with
    the EMA model (``use_ema=True``, what the paper's FixMatch evaluates) or the raw one, and
    appends it at ``event.step``. The final event is skipped when its step was already recorded
    (training length a multiple of ``observe_every``). ``on_resume(step)`` drops records newer
    than the checkpoint the trainer resumed from, so a resumed run neither loses nor duplicates.
    """

    def __init__(self, recorder: Recorder, images: ImageSet, *, use_ema: bool = True,
                 batch_size: int | None = None) -> None:
        if tuple(images.ids) != recorder.ids:
            raise PredictionsError(f"RecorderObserver: the recorder at {recorder.path} was opened for "
                                   f"{len(recorder.ids)} ids that are not the {len(images)} unlabeled images "
                                   f"({_first_mismatch(recorder.ids, images.ids)}).")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise invalid_parameter("batch_size", "RecorderObserver", "None (the trainer's choice) or an int >= 1",
                                    batch_size)
        self.recorder = recorder
        self.images = images
        self.use_ema = bool(use_ema)
        self.batch_size = batch_size

    def __call__(self, event: Any) -> None:
        if event.final and self.recorder.last_step == int(event.step):
            return
        model = event.model if self.use_ema else event.raw_model
        probs = event.trainer.predict(self.images, model=model, batch_size=self.batch_size)
        self.recorder.record(int(event.step), probs, epoch=int(event.epoch))

    def on_resume(self, step: int) -> None:
        self.recorder.truncate_after(int(step))


def _first_mismatch(a: Sequence[str], b: Sequence[str]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"position {i}: '{x}' vs '{y}'"
    return f"lengths {len(a)} vs {len(b)}"


def _fsync_dir(path: Path) -> None:
    try:  # makes the rename itself durable; not supported on every OS/filesystem
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_save(dest: Path, arr: np.ndarray) -> None:
    with atomic_open(dest) as fh:
        np.save(fh, arr, allow_pickle=False)
    _fsync_dir(dest.parent)  # the rename itself must survive a crash before meta.json names it


def _atomic_write_bytes(dest: Path, data: bytes) -> None:
    write_atomic(dest, data)
    _fsync_dir(dest.parent)
