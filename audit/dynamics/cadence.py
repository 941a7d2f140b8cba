"""When the prediction recorder records: a number of steps, passes over the pool, or a time budget.

The paper (3.3, 5.3) records "after each epoch"; the chain score orders bridge members that flip
a few dozen steps apart, which a fixed step cadence (:data:`DEFAULT_RECORD_EVERY`) resolves on a
5k pool. A record is one forward pass over the whole pool, so its cost grows with the pool while a
step's does not: at 60k images and B 64, μ 7 one record costs about 24 training steps (measured:
docs/benchmarks.md), so a 20-step cadence more than doubles the run. Three cadences:

* ``steps``: every N optimiser steps (``--record-every 20``);
* ``passes``: every p passes over the unlabeled pool, ``ceil(p·N / (μ·B))`` steps
  (``--record-every epoch``, ``--record-every 2epochs``): follows the pool, as the paper does;
* ``budget``: as often as keeps recording within a share of training time (``--record-budget
  0.1``): a record is made when the recording time so far plus the expected cost of two more
  records (this one, and the last step's, which always records) stays within ``budget ×`` the
  training time so far; the expected cost is the mean of the records made (before the first, a
  timed prediction on a slice of the pool scaled to the whole). A run too short for its budget
  still makes the ``MIN_RECORDS`` the scores need (at a third and two thirds of the run, and
  the end): its printed share then says what they cost.

Every cadence also records at the last step.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any, Callable

from audit.dynamics.predictions import MIN_RECORDS
from audit.errors import invalid_parameter

# Steps between records when nothing is said: fine enough to order bridge members on a 5k pool
# (docs/benchmarks.md, "audit dynamics"); every run reports its own recording share.
DEFAULT_RECORD_EVERY = 20
PROBE_IMAGES = 512  # images the budget cadence times once to estimate its first record's cost
_PASSES = re.compile(r"^(\d+(?:\.\d+)?)?\s*epochs?$")


@dataclass(frozen=True)
class Cadence:
    """Exactly one of ``steps``, ``passes`` (passes over the pool), ``budget`` (share of training
    time, in (0, 1))."""

    steps: int | None = None
    passes: float | None = None
    budget: float | None = None

    def __post_init__(self) -> None:
        given = [n for n in ("steps", "passes", "budget") if getattr(self, n) is not None]
        if len(given) != 1:
            raise invalid_parameter("cadence", "Cadence", "exactly one of steps, passes, budget", given or None)
        if self.steps is not None and (isinstance(self.steps, bool) or not isinstance(self.steps, int)
                                       or self.steps < 1):
            raise invalid_parameter("steps", "Cadence", "an int >= 1", self.steps)
        if self.passes is not None and not (isinstance(self.passes, (int, float)) and 0 < self.passes <= 1e6):
            raise invalid_parameter("passes", "Cadence", "a number of passes over the pool > 0", self.passes)
        if self.budget is not None and not (isinstance(self.budget, (int, float)) and 0 < self.budget < 1):
            raise invalid_parameter("budget", "Cadence", "a share of training time in (0, 1), e.g. 0.1",
                                    self.budget)

    @classmethod
    def parse(cls, every: str | int | None = None, budget: float | None = None) -> "Cadence":
        """``--record-every`` (``"40"`` steps, ``"epoch"``, ``"2epochs"``, ``"0.5epoch"``) or
        ``--record-budget`` (a share of training time); neither: every :data:`DEFAULT_RECORD_EVERY`
        steps."""
        if every is not None and budget is not None:
            raise invalid_parameter("--record-every", "audit dynamics",
                                    "left out with --record-budget (a budget sets the cadence itself)", every)
        if budget is not None:
            return cls(budget=float(budget))
        if every is None:
            return cls(steps=DEFAULT_RECORD_EVERY)
        text = str(every).strip().lower()
        if text.isdigit() and int(text) >= 1:
            return cls(steps=int(text))
        m = _PASSES.match(text)
        if m is None or (m.group(1) is not None and float(m.group(1)) <= 0):
            raise invalid_parameter("--record-every", "audit dynamics",
                                    "a number of steps (40), 'epoch', or a number of passes over the pool "
                                    "('2epochs', '0.5epoch')", every)
        return cls(passes=float(m.group(1) or 1))

    def every(self, pool_size: int, images_per_step: int) -> int | None:
        """Steps between records for the fixed cadences; None for a budget."""
        if self.steps is not None:
            return self.steps
        if self.passes is not None:
            return max(1, math.ceil(self.passes * pool_size / images_per_step))
        return None

    def describe(self) -> str:
        if self.steps is not None:
            return f"every {self.steps} steps"
        if self.passes is not None:
            return "every pass over the pool" if self.passes == 1 else f"every {self.passes:g} passes over the pool"
        return f"within {100 * self.budget:g}% of training time"

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in (("steps", self.steps), ("passes", self.passes), ("budget", self.budget))
                if v is not None}


class TimedRecording:
    """The trainer observer ``record_run`` installs: times the recorder (and, with a budget,
    decides at every step whether a record is due), then hands the event to ``followers`` (other
    observers that record at the same steps, outside the timing)."""

    def __init__(self, recorder_observer: Any, followers: list, budget: float | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.inner, self.followers, self.budget, self.clock = recorder_observer, followers, budget, clock
        self.seconds = 0.0  # spent recording (and probing), this process
        self.calls = 0  # records made
        self._record_s = 0.0  # spent in records only
        self._train_s = 0.0  # training time between observer calls, this process
        self._last: float | None = None
        self._estimate: float | None = None  # expected seconds of one record

    def __call__(self, event: Any) -> None:
        now = self.clock()
        if self._last is not None:
            self._train_s += now - self._last
        if self.budget is None or event.final or self._due(event):
            t0 = self.clock()
            self.inner(event)
            spent = self.clock() - t0
            self.seconds += spent
            self._record_s += spent
            self.calls += 1
            self._estimate = self._record_s / self.calls
            for follower in self.followers:
                follower(event)
        self._last = self.clock()

    def _due(self, event: Any) -> bool:
        total = getattr(getattr(event.trainer, "config", None), "steps", None)
        if total and self.calls < MIN_RECORDS * event.step // total:
            return True  # behind the minimum the scores need: record whatever the budget says
        if self._estimate is None:  # time a slice once: the first record must fit the budget too
            images = self.inner.images
            n = min(len(images), PROBE_IMAGES)
            t0 = self.clock()
            event.trainer.predict(images.images[:n], model=event.model)
            probe = self.clock() - t0
            self.seconds += probe
            self._estimate = probe * len(images) / n
        # one record is kept in reserve: the last step always records, and must fit the budget too
        return self.seconds + 2 * self._estimate <= self.budget * self._train_s

    def on_resume(self, step: int) -> None:
        self.inner.on_resume(step)
        for follower in self.followers:
            hook = getattr(follower, "on_resume", None)
            if hook is not None:
                hook(step)
