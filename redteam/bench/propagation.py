"""How far the attacker's label y* spread from x' towards x* during training (paper 3.3, Figure 5).

The paper's attack works by propagation: x' (labeled y*) is learned first, then each bridge image
in turn, until x* is reached. When it fails it gets "stuck" (4.4): y* covers the bridge up to some
α and no further. Every bench trial therefore stores, at each prediction record:

* ``front``: how far along the bridge, in α from x', the model predicts y*: the α of the last
  bridge image of the unbroken run of y* predictions that starts at x' (α ascending). None when
  the first bridge image is not predicted y* (nothing has propagated yet), and on the clean
  control (no bridge).
* ``share``: the fraction of bridge images predicted y*, wherever they are.
* ``target_prob``: P(y* | x*) of the EMA model.
* ``line_front``: the same front on a *probe line*: :data:`PROBE_POINTS` evenly spaced blends of
  x' and x* (rounded to uint8 like the linear attack) that the model is asked about at every
  record and never trains on. On the clean control this is **the clean boundary**: where a model
  that never saw a bridge stops calling the line y*.
* ``clean_boundary``: the clean control's ``line_front`` at the latest control record at or
  before this step (same trial index: same x', x*, y*, labeled set and pool), when the control
  finished first; the front is read against it.
* ``hard_from``: the x*-end region of the probe line that is confidently x*'s true class (top
  probability >= :data:`HARD_CONFIDENCE`, FixMatch's threshold): the smallest α from which every
  probe point up to x* is, None when x* itself is not. The issue's "the x* end hardens".

Everything is a pure function of recorded probabilities, so the front of a kept recording can be
recomputed (``--keep-predictions``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from audit.data.imageset import ImageSet
from audit.errors import ShapeMismatchError
from redteam.attacks.linear import interpolate

PROBE_POINTS = 101  # α = 0, 0.01, ..., 1: a front resolved to 0.01, 101 images per record (cheap)
HARD_CONFIDENCE = 0.95  # FixMatch's τ: past it an image trains as its own pseudo-label
PROBE_PREFIX = "probe/alpha="


def probe_line(source: np.ndarray, target: np.ndarray, points: int = PROBE_POINTS) -> tuple[np.ndarray, ImageSet]:
    """``(alphas, images)``: ``points`` evenly spaced blends from x' (α 0) to x* (α 1), uint8 like
    the linear attack's bridge, as an :class:`ImageSet` the recorder can observe."""
    alphas = np.linspace(0.0, 1.0, points)
    imgs = interpolate(source, target, alphas)
    return alphas, ImageSet(images=imgs, ids=[f"{PROBE_PREFIX}{a:.4f}" for a in alphas])


def fronts(probs: np.ndarray, alphas: np.ndarray, label: int) -> np.ndarray:
    """Per record, the α of the last point of the unbroken run of ``label`` predictions starting at
    the smallest α; NaN where the first point is not predicted ``label``.

    ``probs``: ``M×R×C`` (points × records × classes, the layout of recorded predictions),
    ``alphas``: ``M`` (any order; points are read in ascending α). Returns float64 ``R``."""
    probs, alphas = _check(probs, alphas)
    order = np.argsort(alphas, kind="stable")
    hit = probs[order].argmax(axis=2) == label  # M×R
    a = alphas[order]
    out = np.full(hit.shape[1], np.nan)
    for r in range(hit.shape[1]):
        col = hit[:, r]
        if col[0]:
            misses = np.flatnonzero(~col)
            out[r] = a[-1] if misses.size == 0 else a[misses[0] - 1]
    return out


def shares(probs: np.ndarray, label: int) -> np.ndarray:
    """Per record, the fraction of points predicted ``label`` (``M×R×C`` in, float64 ``R`` out)."""
    probs = np.asarray(probs)
    return (probs.argmax(axis=2) == label).mean(axis=0).astype(np.float64)


def hard_from(probs: np.ndarray, alphas: np.ndarray, label: int, confidence: float = HARD_CONFIDENCE) -> np.ndarray:
    """Per record, the smallest α from which every point up to the largest α has
    P(``label``) >= ``confidence``; NaN where the largest-α point itself does not."""
    probs, alphas = _check(probs, alphas)
    order = np.argsort(alphas, kind="stable")[::-1]  # from x* backwards
    sure = probs[order][:, :, label] >= confidence
    a = alphas[order]
    out = np.full(sure.shape[1], np.nan)
    for r in range(sure.shape[1]):
        col = sure[:, r]
        if col[0]:
            misses = np.flatnonzero(~col)
            out[r] = a[-1] if misses.size == 0 else a[misses[0] - 1]
    return out


def hold(steps: Sequence[int], values: Sequence[float | None], at: Sequence[int]) -> list[float | None]:
    """``values`` recorded at ``steps``, read at each step of ``at``: the latest value at or
    before it (None before the first record, or where that value is None)."""
    steps = np.asarray(steps, dtype=np.int64)
    out: list[float | None] = []
    for s in at:
        k = int(np.searchsorted(steps, s, side="right")) - 1
        out.append(None if k < 0 else values[k])
    return out


@dataclass(frozen=True)
class Propagation:
    """One trial's propagation record (module doc); every series has one value per record."""

    steps: tuple[int, ...]
    target_prob: tuple[float, ...]
    line_front: tuple[float | None, ...]
    hard_from: tuple[float | None, ...]
    front: tuple[float | None, ...] | None = None  # None on the clean control (no bridge)
    share: tuple[float, ...] | None = None
    clean_boundary: tuple[float | None, ...] | None = None  # None: no finished control to read it from
    bridge_alphas: tuple[float, ...] = field(default=())  # the main bridge's α values, ascending

    @property
    def final_front(self) -> float | None:
        return (self.front or (None,))[-1]

    @property
    def max_front(self) -> float | None:
        vals = [v for v in self.front or () if v is not None]
        return max(vals) if vals else None

    def settled_at(self, tolerance: float = 0.05) -> int | None:
        """The first record step from which the front stays within ``tolerance`` of its final
        value (how early propagation stopped); None without a final front."""
        final = self.final_front
        if final is None:
            return None
        step = self.steps[-1]
        for s, v in zip(reversed(self.steps), reversed(self.front or ())):
            if v is None or abs(v - final) > tolerance:
                break
            step = s
        return step

    def to_json(self) -> dict:
        return {"steps": list(self.steps), "front": _list(self.front), "share": _list(self.share),
                "target_prob": _list(self.target_prob), "line_front": _list(self.line_front),
                "clean_boundary": _list(self.clean_boundary), "hard_from": _list(self.hard_from),
                "bridge_alphas": _list(self.bridge_alphas)}

    @classmethod
    def from_json(cls, d: dict) -> "Propagation":
        t = (lambda v: None if v is None else tuple(v))
        return cls(steps=tuple(d["steps"]), target_prob=tuple(d["target_prob"]), line_front=tuple(d["line_front"]),
                   hard_from=tuple(d["hard_from"]), front=t(d.get("front")), share=t(d.get("share")),
                   clean_boundary=t(d.get("clean_boundary")), bridge_alphas=tuple(d.get("bridge_alphas") or ()))

    def with_clean_boundary(self, control: "Propagation | None") -> "Propagation":
        """This record with the control's probe-line front held at each of its steps."""
        if control is None:
            return self
        return replace(self, clean_boundary=tuple(hold(control.steps, control.line_front, self.steps)))


def measure(steps: np.ndarray, line_probs: np.ndarray, line_alphas: np.ndarray, y_star: int, true_label: int,
            bridge_probs: np.ndarray | None = None, bridge_alphas: np.ndarray | None = None) -> Propagation:
    """A :class:`Propagation` from the probe line's recorded probabilities (``M×R×C``, α from 0 to
    1, so the last point is x*) and, on a poisoned trial, the main bridge's (``B×R×C``)."""
    line_probs, line_alphas = _check(line_probs, line_alphas)
    last = int(np.argmax(line_alphas))
    front = share = None
    alphas: tuple[float, ...] = ()
    if bridge_probs is not None and bridge_alphas is not None and len(bridge_alphas):
        front = _opt(fronts(bridge_probs, bridge_alphas, y_star))
        share = tuple(float(v) for v in shares(bridge_probs, y_star))
        alphas = tuple(round(float(a), 6) for a in np.sort(np.asarray(bridge_alphas, dtype=np.float64)))
    return Propagation(steps=tuple(int(s) for s in steps),
                       target_prob=tuple(float(v) for v in line_probs[last, :, y_star]),
                       line_front=_opt(fronts(line_probs, line_alphas, y_star)),
                       hard_from=_opt(hard_from(line_probs, line_alphas, true_label)),
                       front=front, share=share, bridge_alphas=alphas)


def _check(probs: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs, alphas = np.asarray(probs), np.asarray(alphas, dtype=np.float64)
    if probs.ndim != 3 or alphas.shape != (probs.shape[0],) or probs.shape[0] == 0:
        raise ShapeMismatchError(f"propagation needs M×R×C probabilities and M alphas (M >= 1); got {probs.shape} "
                         f"and {alphas.shape}")
    return probs, alphas


def _opt(values: np.ndarray) -> tuple[float | None, ...]:
    return tuple(None if math.isnan(v) else round(float(v), 6) for v in values)


def _list(values: Sequence | None) -> list | None:
    return None if values is None else list(values)
