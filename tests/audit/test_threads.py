"""audit.threads: chunks of array work in threads, results in chunk order."""

from __future__ import annotations

import threading
import time

import numpy as np

from audit.threads import in_threads


def test_results_come_back_in_chunk_order_from_several_threads():
    seen = set()

    def work(i: int) -> int:
        seen.add(threading.get_ident())
        time.sleep(0.01 * (5 - i % 5))  # later chunks finish first
        return i * i

    assert in_threads(work, range(10), threads=3) == [i * i for i in range(10)]
    assert len(seen) > 1


def test_one_thread_runs_serially_in_the_caller():
    caller = threading.get_ident()
    idents = in_threads(lambda _: threading.get_ident(), range(4), threads=1)
    assert set(idents) == {caller}


def test_an_exception_in_a_chunk_reaches_the_caller():
    def work(i: int) -> np.ndarray:
        if i == 2:
            raise ValueError("chunk 2")
        return np.zeros(i)

    try:
        in_threads(work, range(4), threads=2)
    except ValueError as exc:
        assert str(exc) == "chunk 2"
    else:
        raise AssertionError("the chunk's error was swallowed")
