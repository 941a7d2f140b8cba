"""The one progress display of every command (``audit`` and ``redteam``), and the consoles it and
the reports use.

On a terminal: rich bars on stderr, one per stage (``read``, ``neighbors``, ``bridge``, a
training round, a bench trial), with the stage's stats (loss, accuracy). A stage called again
after it ended runs again (the bench's one trial bar, trial after trial). Off a terminal (a CI log, a pipe):
plain lines, never redrawn: one when a stage that ran a second or more (or a training run) ends, and one every
``PLAIN_EVERY`` seconds while a long stage runs (``train: 1200/5000 (24%), 61 s, about 190 s
left; loss 0.412``), so a log shows a long training is alive. ``--quiet``: nothing.

Consoles off a terminal get a width no line reaches (:func:`console`): rich would otherwise wrap
tables and file names at 80 columns in a log.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress as _Bars, TextColumn, TimeElapsedColumn
from rich.progress import TimeRemainingColumn

PLAIN_EVERY = 10.0  # seconds between plain progress lines of one stage in a log
PLAIN_MIN = 1.0  # a stage shorter than this gets no "done" line in a log
LOG_WIDTH = 10_000  # columns of a console that is not a terminal: no wrapping


def console(*, stderr: bool = False, quiet: bool = False) -> Console:
    """A rich console on stdout/stderr; off a terminal, wide enough that nothing wraps."""
    c = Console(stderr=stderr, quiet=quiet, soft_wrap=True) if stderr else Console(file=sys.stdout, quiet=quiet,
                                                                                  soft_wrap=True)
    if not c.is_terminal:
        c = Console(file=sys.stderr if stderr else sys.stdout, quiet=quiet, soft_wrap=True, width=LOG_WIDTH)
    return c


class Progress:
    """Context manager; call it as ``progress(stage, done, total, stats="")``.

    ``clock`` is injectable for tests (the plain lines' cadence)."""

    def __init__(self, con: Console, *, every: float = PLAIN_EVERY,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.console, self.every, self.clock = con, every, clock
        self.plain = not con.quiet and not con.is_terminal
        self.bars = _Bars(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("{task.fields[stats]}", markup=False), TimeElapsedColumn(), TimeRemainingColumn(),
                          console=con, transient=True, disable=con.quiet or not con.is_terminal)
        self.tasks: dict[str, Any] = {}
        self.started: dict[str, float] = {}
        self.last_line: dict[str, float] = {}
        self.always: set[str] = set()  # stages whose end is logged however short (training runs)

    def __enter__(self) -> "Progress":
        self.bars.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bars.stop()

    def __call__(self, stage: str, done: int, total: int, stats: str = "") -> None:
        now = self.clock()
        if stage not in self.tasks:
            self.tasks[stage] = self.bars.add_task(stage, total=total or None, completed=done, stats=stats)
            self.started[stage] = self.last_line[stage] = now
        elif stage not in self.started and not (total and done >= total):  # ended before: runs again
            self.started[stage] = self.last_line[stage] = now
        self.bars.update(self.tasks[stage], completed=done, total=total or None, stats=stats)
        if not self.plain or stage not in self.started:
            return
        took = now - self.started[stage]
        if total and done >= total:
            del self.started[stage]
            if took >= PLAIN_MIN or stage in self.always:
                self.note(f"{stage}: {total}/{total} done in {took:.1f} s" + (f"; {stats}" if stats else ""))
        elif now - self.last_line[stage] >= self.every:
            self.last_line[stage] = now
            self.note(f"{stage}: {_count(done, total)}, {took:.0f} s{_left(done, total, took)}"
                       + (f"; {stats}" if stats else ""))

    def note(self, text: str) -> None:
        """A plain line (above the bars on a terminal)."""
        self.console.print(text, highlight=False, markup=False)

    # --- training (audit train / audit dynamics) -------------------------------------------
    def training(self, algo: str, steps: int) -> "TrainingProgress":
        return TrainingProgress(self, algo, steps)


class TrainingProgress:
    """Adapts the trainer's callbacks: ``round(r, start_step, pool_size)`` (audit dynamics
    rounds) and ``step(info)`` (``audit.ssl.trainer.ProgressInfo``)."""

    def __init__(self, progress: Progress, algo: str, steps: int) -> None:
        self.progress, self.algo, self.steps = progress, algo, steps
        self.stage = algo

    def round(self, r: int, start: int, pool: int) -> None:
        self.stage = f"{self.algo} round {r} ({pool} images)" if r else f"{self.algo} ({pool} images)"
        self.progress.always.add(self.stage)
        if self.progress.plain:
            self.progress.note(f"{self.stage}: training from step {start} of {self.steps}")
        self.progress(self.stage, start, self.steps)

    def step(self, info: Any) -> None:
        self.progress(self.stage, info.step, self.steps, train_stats(info))


@contextmanager
def training_progress(con: Console, algo: str, steps: int) -> Iterator[TrainingProgress]:
    """``with training_progress(err, "fixmatch", 1000) as p:`` then ``p.round`` / ``p.step``."""
    with Progress(con) as progress:
        yield progress.training(algo, steps)


def train_stats(info: Any) -> str:
    """``loss 0.412  mask 0.81  acc 93.1%`` from a trainer ProgressInfo."""
    stats = f"loss {info.loss:.3f}"
    logs = getattr(info, "logs", None) or {}
    if "mask_rate" in logs:
        stats += f"  mask {logs['mask_rate']:.2f}"
    if getattr(info, "test_acc", None) is not None:
        stats += f"  acc {100 * info.test_acc:.1f}%"
    return stats


def _count(done: int, total: int) -> str:
    return f"{done}/{total} ({100 * done / total:.0f}%)" if total else str(done)


def _left(done: int, total: int, took: float) -> str:
    if not total or done <= 0 or done >= total:
        return ""
    return f", about {took * (total - done) / done:.0f} s left"
