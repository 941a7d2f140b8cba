"""Stage 1 of a sharded scan: the pool, read into blocks where the workers keep it.

* A folder (local, or a bucket prefix given as a URL, :mod:`audit.data.remote`): the driver
  lists it and reads a sample of headers for the working size (the local reader's own
  :func:`~audit.data.readers.folder.working_size` rule), then each decode task decodes a chunk of
  files with the data layer's decoder (the same function the local engine's worker processes run)
  and keeps the thumbnails as one block. Ray Data's ``read_images`` is not used: it decodes with
  PIL's defaults (no DCT-scaled JPEG, no box pre-reduction, no alpha over gray, no palette-gray
  detection), so its pixels differ from the local engine's and findings could too.
* An ``.npy`` on a path every worker can open: blocks are row ranges of the file, memory-mapped
  where used (the file is the shard store; nothing is copied).
* Any other format (npz, IDX, CIFAR, ...): read on the driver with ``load_images`` and put into
  the object store in blocks.

Every file's fate is the local reader's: decoded, unreadable with a reason, or skipped. A decode
task that keeps failing (its worker dies on every try: a hostile file crashing the decoder, the
OOM killer) is split in halves and run again until the file that kills it is alone; that file is
unreadable (``decode shard failed ...``), the rest are decoded, as
:mod:`audit.data.readers.parallel` does on one machine. Nothing is ever a silent hole.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from audit.data import remote
from audit.data.imageset import ImageSet, Unreadable
from audit.data.readers import decode as D
from audit.data.readers._common import SCAN_BYTES_PER_IMAGE, ReadOptions, check_budget
from audit.data.readers.folder import _empty_message, _Stats, working_size
from audit.data.readers.resolution import choose_size, sample
from audit.data.readers.walk import scan_tree
from audit.engines.blocks import Block, NpySlice
from audit.engines.executor import Executor, Progress, Task, TaskFailed
from audit.errors import DataError, EmptyDatasetError, invalid_parameter

MAX_FILES_PER_TASK = 8192  # a lost worker costs at most this many files decoded again
MIN_FILES_PER_TASK = 64
ARRAY_BLOCK_ROWS = 65_536  # rows per object block of a pool read on the driver
FAILED = "decode shard failed on every try"


@dataclass
class Pool:
    """The pool as blocks, and what the reader met (the ImageSet fields a report shows)."""

    blocks: list[Block]
    ids: tuple[str, ...]
    shape: tuple[int, int, int]
    root: str
    unreadable: tuple[Unreadable, ...] = ()
    skipped: tuple[Unreadable, ...] = ()
    notes: tuple[str, ...] = ()
    summary: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def open_pool(path: str | Path, ex: Executor, opts: ReadOptions = ReadOptions(), progress: Progress | None = None,
              decoder: Callable | None = None) -> Pool:
    """The pool at ``path`` (a local path or a URL) as blocks; ``decoder`` replaces the chunk
    decoder (tests: a decoder that crashes its worker)."""
    text = str(path)
    if remote.is_url(text) and remote.local_path(text) is None:
        fs, root = remote.filesystem(text)
        listing = remote.list_pool(fs, root, text, opts.include_hidden)
        return _folder(_RemoteFiles(fs, root, listing), text, ex, opts, progress, decoder)
    local = Path(remote.local_path(text) or text).expanduser()
    if local.is_dir():
        tree = scan_tree(local, opts.include_hidden, opts.follow_symlinks)
        return _folder(_LocalFiles(local, tree), str(local), ex, opts, progress, decoder)
    return _array(local, ex, opts, progress)


# --- folders --------------------------------------------------------------------------------


class _LocalFiles:
    def __init__(self, root: Path, tree) -> None:
        self.root, self.tree = root, tree
        self.rels = tree.files
        self.paths = [os.path.join(str(root), r) for r in tree.files]
        self.follow = [r in tree.links for r in tree.files]

    def working_size(self, opts: ReadOptions):
        return working_size(self.paths, self.follow, opts)

    def chunk(self, lo: int, hi: int) -> tuple[Callable, tuple]:
        return D.decode_chunk, (self.paths[lo:hi], self.follow[lo:hi])


class _RemoteFiles:
    def __init__(self, fs, root: str, listing: remote.Listing) -> None:
        self.fs, self.root, self.tree = fs, root, listing
        self.rels = listing.files
        self.paths = [f"{root}/{r}" if root else r for r in listing.files]
        self.sizes = listing.sizes

    def working_size(self, opts: ReadOptions):
        """:func:`~audit.data.readers.folder.working_size`'s rule on object headers."""
        if opts.size is not None:
            return tuple(opts.size), {"policy": "explicit size"}
        picked = sample(list(range(len(self.paths))))
        sizes = [s for s in remote.header_sizes(self.fs, [self.paths[i] for i in picked],
                                                [self.sizes[i] for i in picked], opts.max_pixels) if s]
        if not sizes and len(picked) < len(self.paths):
            sizes = [s for s in remote.header_sizes(self.fs, self.paths, self.sizes, opts.max_pixels) if s]
        if not sizes:
            return (1, 1), {"policy": "no readable header"}
        size, major = choose_size(sizes, opts.max_side)
        how = {"policy": "majority size" if size == major else f"majority size scaled to longer side {opts.max_side}",
               "majority_size": f"{major[0]}x{major[1]}", "headers_sampled": len(picked), "max_side": opts.max_side}
        return size, how

    def chunk(self, lo: int, hi: int) -> tuple[Callable, tuple]:
        return remote.decode_objects, (self.fs, self.paths[lo:hi], self.sizes[lo:hi])


def decode_task(decoder: Callable, args: tuple, size: tuple[int, int], max_pixels: int):
    """One decode shard: ``(rows, (channels, metas))`` with rows uint8 ``n_ok×(H·W·c)``, ``c`` 3
    when any image of the chunk is colour (gray ones replicated, as the local reader does)."""
    pixels, channels, metas = decoder(*args, size, max_pixels)
    h, w = size
    ok = [c for c in channels if c]
    c_block = 3 if 3 in ok else 1
    rows = np.empty((len(ok), h * w * c_block), np.uint8)
    off = 0
    for j, c in enumerate(ok):
        img = pixels[off : off + h * w * c].reshape(h * w, c)
        rows[j] = np.broadcast_to(img, (h * w, c_block)).reshape(-1)
        off += h * w * c
    return rows, (list(channels), list(metas))


def _folder(files, root: str, ex: Executor, opts: ReadOptions, progress: Progress | None, decoder) -> Pool:
    tree, rels = files.tree, files.rels
    if not rels:
        raise EmptyDatasetError(_empty_message(Path(root), 0, tree.unreadable, tree.skipped))
    size, how = files.working_size(opts)
    h, w = size
    n = len(rels)
    per = max(MIN_FILES_PER_TASK, min(MAX_FILES_PER_TASK, -(-n // max(1, 4 * ex.workers))))
    # the budget is per worker (a decode shard) and for the driver's per-image state: the pool
    # itself lives spread over the workers' object stores, which is the point of scaling out
    check_budget(min(per, n), h * w * (opts.channels or 3), opts.max_bytes, root,
                 what=f"{min(per, n):,} images per decode shard at the working size {h}×{w}×{opts.channels or 3}")
    if n * SCAN_BYTES_PER_IMAGE > opts.max_bytes:
        check_budget(n, 0, opts.max_bytes, root, what=f"the scan state of {n:,} images on the driver")
    t0 = time.perf_counter()
    results = _decode_all(files, [(lo, min(n, lo + per)) for lo in range(0, n, per)], ex, size, opts, progress,
                          decoder)
    stats = _Stats()
    ids, unreadable, blocks, chans = [], list(tree.unreadable), [], []
    row = 0
    for (lo, hi), (rows_ref, channels, metas, c_block) in results:
        ok = [j for j, c in enumerate(channels) if c]
        unreadable += [Unreadable(rels[lo + j], metas[j][0] or "unreadable") for j, c in enumerate(channels) if not c]
        ids += [rels[lo + j] for j in ok]
        chans += [channels[j] for j in ok]
        stats.add_many([metas[j] for j in ok], size)
        if ok:
            blocks.append(Block(row, len(ok), c_block, rows_ref))
            row += len(ok)
    unreadable.sort(key=lambda u: u.path)
    if not ids:
        raise EmptyDatasetError(_empty_message(Path(root), n, unreadable, tree.skipped))
    colour = sum(1 for c in chans if c == 3)
    channels = opts.channels or (3 if colour else 1)
    if channels == 1 and colour:
        raise invalid_parameter("channels", "the ray engine", "None or 3 for a pool with colour images", 1)
    how["decode"] = {"engine": "sharded", "workers": ex.workers, "tasks": len(results),
                     "seconds": round(time.perf_counter() - t0, 3)}
    stack = _StackCounts(chans, channels)
    notes = list(tree.notes) + stats.notes(size, how, stack)
    summary = stats.summary(n, len(ids), len(unreadable), len(tree.skipped), size, channels, how,
                            getattr(tree, "non_utf8", 0))
    summary["native_colour"] = {"gray": len(ids) - colour, "colour": colour}
    return Pool(blocks, tuple(ids), (h, w, channels), root, tuple(unreadable), tuple(tree.skipped), tuple(notes),
                summary)


class _StackCounts:
    """The counts :class:`~audit.data.readers.folder._Stack` keeps, from the channels in file order."""

    def __init__(self, chans: list[int], channels: int) -> None:
        first = next((i for i, c in enumerate(chans) if c == 3), None)
        gray = sum(1 for c in chans if c == 1) if channels == 3 else 0
        self.gray_before_colour = 0 if first is None or channels != 3 else first
        self.replicated = gray - self.gray_before_colour
        self.grayed = 0


def _decode_all(files, chunks: list[tuple[int, int]], ex: Executor, size, opts: ReadOptions,
                progress: Progress | None, decoder) -> list:
    """``[((lo, hi), (rows_ref, channels, metas, c_block))]`` in file order; failed chunks split
    until the failing file is alone (module docstring)."""
    done: dict[int, tuple] = {}
    queue = list(chunks)
    total, finished = sum(hi - lo for lo, hi in chunks), 0
    while queue:
        tasks = []
        for lo, hi in queue:
            fn, args = files.chunk(lo, hi)
            tasks.append(Task(decode_task, (decoder or fn, args, size, opts.max_pixels), weight=hi - lo, returns=2))

        def tick(stage: str, d: int, t: int) -> None:
            if progress is not None:
                progress("read", finished + d, total)

        results = ex.run("read", tasks, tick)
        again = []
        for (lo, hi), res in zip(queue, results):
            if isinstance(res, TaskFailed):
                if hi - lo == 1:
                    reason = f"{FAILED} ({res.attempts} tries; last: {res.reason})"
                    done[lo] = ((lo, hi), (None, [0], [(reason, 0, (0, 0), "")], 1))
                    finished += 1
                else:
                    mid = (lo + hi) // 2
                    again += [(lo, mid), (mid, hi)]
                continue
            rows_ref, meta_ref = res
            channels, metas = ex.get(meta_ref)
            c_block = 3 if 3 in channels else 1
            done[lo] = ((lo, hi), (rows_ref, channels, metas, c_block))
            finished += hi - lo
        queue = sorted(again)
    return [done[lo] for lo in sorted(done)]


# --- array formats ------------------------------------------------------------------------


def _array(path: Path, ex: Executor, opts: ReadOptions, progress: Progress | None) -> Pool:
    from audit.data.load import load_images

    s = load_images(path, size=opts.size, channels=opts.channels, max_pixels=opts.max_pixels,
                    max_side=opts.max_side, max_bytes=opts.max_bytes,
                    progress=None if progress is None else (lambda d, t: progress("read", d, t)))
    return from_imageset(s, ex, root=str(s.root or path))


def from_imageset(s: ImageSet, ex: Executor, *, root: str | None = None, block_rows: int = ARRAY_BLOCK_ROWS) -> Pool:
    """An ImageSet as blocks: row ranges of its ``.npy`` when it is a memory map of one (the file
    is where the shards read their rows: no copy), else copies put into the executor's store."""
    n = len(s)
    src = _npy_file(s.images)
    blocks = []
    for lo in range(0, n, block_rows):
        hi = min(n, lo + block_rows)
        if src is not None:
            ref: Any = NpySlice(src, lo, hi)
        else:
            ref = ex.put(np.ascontiguousarray(s.images[lo:hi]).reshape(hi - lo, -1))
        blocks.append(Block(lo, hi - lo, s.shape[2], ref))
    return Pool(blocks, s.ids, tuple(s.shape), root if root is not None else str(s.root or ""), s.unreadable,
                s.skipped, tuple(s.notes), dict(s.summary))


def _npy_file(images: np.ndarray) -> str | None:
    """The ``.npy`` file an array is a whole read-only memory map of (None otherwise)."""
    base = images
    while base is not None and not isinstance(base, np.memmap):
        base = getattr(base, "base", None)
    if not isinstance(base, np.memmap) or base.filename is None or base.shape != images.shape:
        return None
    if not str(base.filename).endswith(".npy") or base.dtype != np.uint8 or base.ndim != 4:
        return None
    return str(base.filename)
