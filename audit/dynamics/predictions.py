"""Recorded predictions as scoring reads them: load, validate, match to the unlabeled folder.

Paper 5.3 scores each unlabeled example from the model's prediction ``f_i(u_j)`` after every
record i. :class:`Predictions` holds them as float32 ``N×K×C`` (example × record × class).
Sources: a recording directory written by :class:`audit.dynamics.recorder.Recorder`, or arrays
recorded elsewhere: ``.npz`` with keys ``probs`` (N×K×C) and ``ids`` (N; optional ``steps``,
``epochs``), or ``.npy`` (N×K×C) with the ids given, or in a sibling ``<name>.ids.txt`` (one per line).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from audit.errors import PredictionsError, invalid_parameter

if TYPE_CHECKING:  # a type only: the data readers are not needed to read predictions
    from audit.data.imageset import ImageSet

FORMAT = "ssl-poison-audit.predictions"
VERSION = 1
META = "meta.json"
# float16 stores a probability with ~3 significant digits; summing C of them (plus the
# producer's own float32 rounding) can miss 1 by a few 1e-3, so rows must sum to 1 within 1e-2.
ROW_SUM_TOL = 1e-2
MIN_RECORDS = 3  # Influence compares records 0..K-2 with 1..K-1: K = 2 leaves only f_0 vs f_1


@dataclass(frozen=True, eq=False)
class Predictions:
    """Recorded predictions, validated: ``probs`` float32 ``N×K×C`` (example × record × class),
    ``steps`` int64 ``K`` strictly increasing, ``epochs`` int64 ``K`` or None."""

    ids: tuple[str, ...]
    steps: np.ndarray
    probs: np.ndarray
    epochs: np.ndarray | None = None
    source: str = ""

    @property
    def n(self) -> int:
        return int(self.probs.shape[0])

    @property
    def num_records(self) -> int:
        return int(self.probs.shape[1])

    @property
    def num_classes(self) -> int:
        return int(self.probs.shape[2])

    def window(self, a: int, b: int) -> "Predictions":
        """Records ``a..b`` inclusive (record indices, not steps), validated like the whole."""
        k = self.num_records
        if not (0 <= a < b < k):
            raise invalid_parameter("window", "dynamics", f"a pair of record indices 0 <= a < b < {k}", (a, b))
        sl = slice(a, b + 1)
        return validate_predictions(self.probs[:, sl], self.ids, self.steps[sl],
                                    None if self.epochs is None else self.epochs[sl], self.source)


def validate_predictions(probs: Any, ids: Sequence[str], steps: Any = None, epochs: Any = None,
                         source: str = "") -> Predictions:
    """Check everything scoring relies on; raise one clear :class:`PredictionsError` otherwise."""
    where = f" in {source}" if source else ""
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise PredictionsError(f"Predictions{where} must be an N×K×C array (examples × records × "
                               f"classes); got shape {probs.shape}.")
    if not np.issubdtype(probs.dtype, np.floating):
        raise PredictionsError(f"Predictions{where} must be floating point probabilities; got {probs.dtype}.")
    n, k, c = probs.shape
    ids = tuple(str(i) for i in ids)
    if len(ids) != n:
        raise PredictionsError(f"Predictions{where} have {n} rows but {len(ids)} ids.")
    if len(set(ids)) != n:
        raise PredictionsError(f"Predictions{where} have duplicate ids.")
    if k < MIN_RECORDS:
        raise PredictionsError(f"Predictions{where} have {k} records; the influence measure needs at "
                               f"least {MIN_RECORDS} (record more often, e.g. every epoch).")
    if c < 2:
        raise PredictionsError(f"Predictions{where} have {c} class(es); need at least 2.")
    probs = np.ascontiguousarray(probs, dtype=np.float32)
    finite = np.isfinite(probs)
    if not finite.all():
        j, r = np.argwhere(~finite.all(axis=2))[0]
        raise PredictionsError(f"Predictions{where} contain {int((~finite).sum())} NaN/inf values "
                               f"(first: example '{ids[j]}', record {r}).")
    if probs.min() < -ROW_SUM_TOL or probs.max() > 1 + ROW_SUM_TOL:
        raise PredictionsError(f"Predictions{where} must be probabilities in [0, 1]; got values in "
                               f"[{probs.min():.4g}, {probs.max():.4g}] (logits instead of softmax?).")
    dev = np.abs(probs.sum(axis=2, dtype=np.float64) - 1.0)
    bad = dev > ROW_SUM_TOL
    if bad.any():
        j, r = np.argwhere(bad)[0]
        raise PredictionsError(f"Predictions{where}: {int(bad.sum())} rows do not sum to 1 within "
                               f"{ROW_SUM_TOL} (worst off by {dev.max():.3g}; first: example '{ids[j]}', "
                               f"record {r}). Record softmax probabilities, not logits.")
    steps = np.arange(k, dtype=np.int64) if steps is None else np.asarray(steps, dtype=np.int64)
    if steps.shape != (k,) or (k > 1 and np.any(np.diff(steps) <= 0)):
        raise PredictionsError(f"Predictions{where}: steps must be {k} strictly increasing integers; "
                               f"got {steps.tolist()[:10]}.")
    if epochs is not None:
        epochs = np.asarray(epochs, dtype=np.int64)
        if epochs.shape != (k,):
            raise PredictionsError(f"Predictions{where}: epochs must have {k} entries; got {epochs.shape}.")
    return Predictions(ids, steps, probs, epochs, source)




def read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads((path / META).read_text())
    except (OSError, ValueError) as e:
        raise PredictionsError(f"Cannot read {path / META}: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PredictionsError(f"{path / META} is not a prediction recording (format {FORMAT!r}).")
    if meta.get("version") != VERSION:
        raise PredictionsError(f"{path / META} has format version {meta.get('version')}; this build reads {VERSION}.")
    for key in ("ids", "num_classes", "dtype", "records"):
        if key not in meta:
            raise PredictionsError(f"{path / META} lacks the '{key}' field.")
    return meta




def load_predictions(path: str | Path, *, ids: Sequence[str] | str | Path | None = None) -> Predictions:
    """Read and validate recorded predictions from a recording directory, ``.npz`` or ``.npy``.

    ``ids`` (a sequence, or a text file with one id per line) is needed only for ``.npy`` files
    without a sibling ``<name>.ids.txt``. Returns float32 ``N×K×C``."""
    path = Path(path)
    if path.is_dir():
        return _load_recording(path)
    if not path.exists():
        raise PredictionsError(f"No predictions at {path}.")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                if "probs" not in z.files:
                    raise PredictionsError(f"{path} has no 'probs' array (N×K×C); keys: {', '.join(z.files)}.")
                if ids is None and "ids" not in z.files:
                    raise PredictionsError(f"{path} has no 'ids' array; add one or pass ids.")
                probs = z["probs"]
                file_ids = _read_ids(ids) if ids is not None else [str(i) for i in z["ids"]]
                steps = z["steps"] if "steps" in z.files else None
                epochs = z["epochs"] if "epochs" in z.files else None
        except (OSError, ValueError) as e:
            raise PredictionsError(f"Cannot read {path}: {e}") from None
        return validate_predictions(probs, file_ids, steps, epochs, str(path))
    if path.suffix == ".npy":
        sidecar = path.with_suffix(".ids.txt")
        if ids is None and not sidecar.exists():
            raise PredictionsError(f"{path} holds no ids: pass ids, or write {sidecar.name} (one id per line).")
        try:
            probs = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise PredictionsError(f"Cannot read {path}: {e}") from None
        return validate_predictions(probs, _read_ids(ids if ids is not None else sidecar), None, None, str(path))
    raise PredictionsError(f"{path} is not a recording directory, .npz or .npy file.")


def check_ids(pred: Predictions, images: ImageSet) -> Predictions:
    """Match predictions to the unlabeled folder they claim to score.

    Raises :class:`PredictionsError` naming a few missing/extra ids when the sets differ;
    returns the predictions reordered to ``images.ids`` (the same object when already aligned)."""
    if pred.ids == images.ids:
        return pred
    have, want = set(pred.ids), set(images.ids)
    if have != want:
        missing = [i for i in images.ids if i not in have]
        extra = [i for i in pred.ids if i not in want]
        parts = []
        if missing:
            parts.append(f"{len(missing)} image(s) have no predictions (e.g. {', '.join(missing[:3])})")
        if extra:
            parts.append(f"{len(extra)} prediction row(s) match no image (e.g. {', '.join(extra[:3])})")
        raise PredictionsError(f"Predictions from {pred.source or 'memory'} do not match the unlabeled images: "
                               + "; ".join(parts) + ". Were they recorded on another folder?")
    row = {i: r for r, i in enumerate(pred.ids)}
    order = np.fromiter((row[i] for i in images.ids), dtype=np.int64, count=len(images.ids))
    return Predictions(images.ids, pred.steps, pred.probs[order], pred.epochs, pred.source)


def _read_ids(ids: Sequence[str] | str | Path) -> list[str]:
    if isinstance(ids, (str, Path)):
        try:
            return [line for line in Path(ids).read_text().splitlines() if line]
        except OSError as e:
            raise PredictionsError(f"Cannot read ids from {ids}: {e}") from None
    return [str(i) for i in ids]


def _load_recording(path: Path) -> Predictions:
    if not (path / META).exists():
        raise PredictionsError(f"{path} is a directory without {META}: not a prediction recording.")
    meta = read_meta(path)
    n, c, recs = len(meta["ids"]), int(meta["num_classes"]), meta["records"]
    if len(recs) < MIN_RECORDS:  # say it before reading anything
        raise PredictionsError(f"The recording in {path} has {len(recs)} records; the influence measure "
                               f"needs at least {MIN_RECORDS} (record more often, e.g. every epoch).")
    probs = np.empty((n, len(recs), c), dtype=np.float32)  # filled in place: one copy in memory
    for k, r in enumerate(recs):
        f = path / r["file"]
        try:
            arr = np.load(f, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise PredictionsError(f"Cannot read record {r['file']} of {path}: {e}") from None
        if arr.shape != (n, c):
            raise PredictionsError(f"Record {r['file']} of {path} has shape {arr.shape}, expected ({n}, {c}).")
        probs[:, k] = arr
    epochs = [r.get("epoch") for r in recs]
    epochs = None if any(e is None for e in epochs) else epochs
    return validate_predictions(probs, meta["ids"], [r["step"] for r in recs], epochs, str(path))
