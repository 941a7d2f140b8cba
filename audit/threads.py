"""Chunks of array work on every core, in threads.

numpy's array loops, BLAS, pocketfft and FAISS release the GIL, so independent chunks of
vectorised work (each large enough that Python's own share is small) run side by side in threads
without copying the pool into processes. Results come back in chunk order, so a threaded run
gives exactly what the serial loop gives.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_THREADS = 8


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def in_threads(fn: Callable[[T], R], chunks: Iterable[T], threads: int | None = None) -> list[R]:
    """``[fn(c) for c in chunks]``, the calls spread over ``threads`` (default: every core, at
    most :data:`MAX_THREADS`); serial when there is one chunk or one core."""
    chunks = list(chunks)
    n = min(threads or cpu_count(), MAX_THREADS, len(chunks))
    if n <= 1:
        return [fn(c) for c in chunks]
    with ThreadPoolExecutor(n) as ex:
        return list(ex.map(fn, chunks))
