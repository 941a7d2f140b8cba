"""What a sharded scan asks of the machinery that runs its tasks, and the in-process version.

A stage is a list of tasks (a top-level function and its arguments). An executor runs them,
possibly on other machines, and hands back each task's result in submission order, or a
:class:`TaskFailed` where a task kept failing after its retries: the stage decides what a
failure means (a decode shard's files become unreadable entries; a failed projection or search
shard ends the scan with a clear error). Nothing is ever silently dropped.

Objects put with :meth:`Executor.put` (pixel blocks, the projection, the projected rows) stay
where the executor keeps them and are passed to tasks by reference, as Ray does: arguments that
are references are resolved before the task runs.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any, Callable, Sequence

Progress = Callable[[str, int, int], None]
DEFAULT_RETRIES = 3  # a task is run at most this many times more after a failure


@dataclass(frozen=True)
class TaskFailed:
    """A task that failed on every try; ``reason`` is one line for the user."""

    reason: str
    attempts: int


@dataclass(frozen=True)
class Task:
    fn: Callable
    args: tuple
    weight: int = 1  # what the task counts for in progress (files, rows)
    returns: int = 1  # results kept as separate objects (a decode task: pixels, metadata)


class Executor:
    """The interface; see the module docstring."""

    workers: int = 1

    def put(self, value: Any) -> Any:
        raise NotImplementedError

    def get(self, ref: Any) -> Any:
        raise NotImplementedError

    def run(self, stage: str, tasks: Sequence[Task], progress: Progress | None = None) -> list:
        """Each task's result (a tuple of references when ``returns > 1``: the caller fetches what
        it needs with :meth:`get`) or :class:`TaskFailed`, in task order."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class Local:
    """A value held in this process (what a reference is for :class:`SerialExecutor`)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def resolve(args: tuple) -> tuple:
    return tuple(a.value if isinstance(a, Local) else a for a in args)


class SerialExecutor(Executor):
    """Every task in this process, one after another, with the same retry and failure rules as a
    cluster: the shard arithmetic can be tested (and used) without Ray."""

    def __init__(self, retries: int = DEFAULT_RETRIES, workers: int = 1) -> None:
        self.retries = retries
        self.workers = workers  # how many shards stages plan for (tests: several shards, one process)

    def put(self, value: Any) -> Local:
        return Local(value)

    def get(self, ref: Any) -> Any:
        return ref.value if isinstance(ref, Local) else ref

    def run(self, stage: str, tasks: Sequence[Task], progress: Progress | None = None) -> list:
        total = sum(t.weight for t in tasks)
        done = 0
        _tick(progress, stage, 0, total)
        out = []
        for t in tasks:
            out.append(self._one(t))
            done += t.weight
            _tick(progress, stage, done, total)
        return out

    def _one(self, t: Task):
        last = ""
        for attempt in range(1, self.retries + 2):
            try:
                res = t.fn(*resolve(t.args))
            except Exception as exc:  # the task's failure is data for the stage, not the end of the scan
                last = one_line(exc)
                continue
            return tuple(Local(r) for r in res) if t.returns > 1 else res
        return TaskFailed(last, self.retries + 1)


def one_line(exc: BaseException) -> str:
    """``Type: message`` of the innermost cause, on one line (a worker's traceback is not a reason)."""
    msg = " ".join(str(exc).split())
    if not msg:
        msg = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return f"{type(exc).__name__}: {msg[:300]}"


def _tick(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)
