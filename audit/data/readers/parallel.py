"""Decoding a folder's files in worker processes, in order, surviving a worker that dies.

Why processes: decoding many small files is bound by Python's per-file work under the GIL, so
threads do not help; they hurt (60k 28×28 PNGs on 2 cores, wall: 1 thread 3.7 s, 2 threads
5.0 s, the previous 8 threads 8.3 s). Two forked processes spend the same CPU as one (4.2 s in
the workers + 0.7 s here, against 3.9-4.4 s in one process) and split it over both cores
(``docs/benchmarks.md``). Processes are forked on Linux (a few ms each, nothing re-imported);
elsewhere they are spawned. Jobs of fewer than :data:`MIN_FILES_FOR_PROCESSES` files stay in
this process, where starting workers would cost more than it saves.

Memory: each worker holds one decoded image at a time (at most ``max_pixels`` pixels, ~8 bytes
a pixel while converting) and sends back only thumbnails; this process holds the thumbnails.
Peak memory therefore does not depend on the images' resolution.

A worker that dies (a decoder crashing on hostile bytes, the OOM killer) breaks the pool; the
chunks that had not come back are run again, split in halves, until the file that kills a
worker is alone: it is reported as unreadable (``decoder crashed``) and the rest is decoded.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterator

import numpy as np

from audit.data.readers.decode import decode_chunk
from audit.threads import cpu_count

MIN_FILES_FOR_PROCESSES = 256
MAX_WORKERS = 8
CRASHED = "decoder crashed (its worker process died; hostile or corrupt file)"
Job = tuple[int, list[str], list[bool]]  # (index of the first file, paths, follow flags)


def worker_count(requested: int | None, n_files: int) -> int:
    """0 (decode in this process) or the number of worker processes."""
    if requested is not None:
        return min(int(requested), MAX_WORKERS)
    if n_files < MIN_FILES_FOR_PROCESSES:
        return 0
    n = min(cpu_count(), MAX_WORKERS)
    return n if n > 1 else 0


def chunk_size(n_files: int, workers: int) -> int:
    """Files per task: enough tasks to balance the load (16 per worker), at most 1,024 a task so
    one slow file does not hold back a large share of the pool. Each task costs this process a
    message to unpickle and a batch to file: 60k 28×28 PNGs read in 0.91× the wall time with
    1,024 than with the earlier 256 (A/B, 9 pairs); 1,875 gave nothing more."""
    return max(8, min(1024, n_files // max(1, 16 * max(workers, 1)) or 8))


def _context():
    return mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def decode_all(paths: list[str], follow: list[bool], size: tuple[int, int], max_pixels: int, workers: int,
               on_done: Callable[[int], None] | None = None) -> Iterator[tuple]:
    """Yield :func:`~audit.data.readers.decode.decode_chunk` results for consecutive chunks
    covering ``paths``, in file order. ``on_done(n)`` is called as files finish (any order)."""
    step = chunk_size(len(paths), workers)
    jobs: list[Job] = [(i, paths[i : i + step], follow[i : i + step]) for i in range(0, len(paths), step)]
    if workers == 0:
        for _, ps, fs in jobs:
            res = decode_chunk(ps, fs, size, max_pixels)
            if on_done:
                on_done(len(ps))
            yield res
        return
    ready: dict[int, tuple] = {}
    nxt = 0
    for start, res in _run(jobs, size, max_pixels, workers, on_done):
        ready[start] = res
        while nxt in ready:  # hand results on in file order, as soon as they are contiguous
            res = ready.pop(nxt)
            nxt += len(res[2])
            yield res


def _run(jobs: list[Job], size, max_pixels: int, workers: int, on_done) -> Iterator[tuple[int, tuple]]:
    """Run jobs in a process pool, yielding ``(start, result)`` as they finish. After a worker
    dies, the rest runs in one worker, in order: the first job that did not come back is the
    one that killed it; it is split in halves until the file is alone and reported."""
    queue, serial = list(jobs), False
    while queue:
        failed: list[Job] = []
        with ProcessPoolExecutor(max_workers=1 if serial else min(workers, len(queue)), mp_context=_context()) as ex:
            futures = {ex.submit(decode_chunk, ps, fs, size, max_pixels): (start, ps, fs) for start, ps, fs in queue}
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    job = futures.pop(fut)  # drop the future with its result once handed on
                    try:
                        res = fut.result()
                    except BrokenProcessPool:
                        failed.append(job)
                        continue
                    if on_done:
                        on_done(len(job[1]))
                    yield job[0], res
        failed.sort(key=lambda j: j[0])
        if failed and not serial:  # several jobs were running: any of them may be the culprit
            serial, queue = True, failed
        elif failed:
            (start, ps, fs), rest = failed[0], failed[1:]
            if len(ps) == 1:
                if on_done:
                    on_done(1)
                yield start, (np.zeros(0, np.uint8), [0], [(CRASHED, 0, (0, 0), "")])
                queue = rest
            else:
                h = len(ps) // 2
                queue = [(start, ps[:h], fs[:h]), (start + h, ps[h:], fs[h:])] + rest
        else:
            queue = []
