"""Low-level file work of a scan STORE (:mod:`audit.scan.store_layout`): sha256 per block while
a file is written and when it is verified (all at once, or block by block as it is read),
atomic small files, fsync of a folder.

sha256, not blake2b: with SHA-NI (x86 since 2017, ARMv8) it hashed 1.1 GB/s here against
0.54 GB/s. One digest per block, so verification uses every core on one big file, and
``rows.npy`` (3 GB at 1M 32×32×3 images, of which an ``--against`` scan reads a few hundred rows)
can be checked block by block as rows are read: verifying it whole on every load cost more
than the rest of the load (docs/benchmarks.md, "Store safety").
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from audit.errors import CheckpointError

BLOCK = 64 << 20  # bytes per digest of a file verified whole
LAZY_BLOCK = 256 << 10  # bytes per digest of rows.npy: a row read costs at most this much hashing


class HashingWriter:
    """A binary file opened for a version, hashed block by block as it is written."""

    def __init__(self, fh, block: int = BLOCK) -> None:
        self.fh, self.block, self.size, self.done, self.h, self.fill = fh, block, 0, [], hashlib.sha256(), 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        n = len(view)
        while len(view):
            take = min(len(view), self.block - self.fill)
            self.h.update(view[:take])
            self.fill += take
            view = view[take:]
            if self.fill == self.block:
                self.done.append(self.h.hexdigest())
                self.h, self.fill = hashlib.sha256(), 0
        self.fh.write(data)
        self.size += n
        return n

    def entry(self) -> dict:
        tail = [self.h.hexdigest()] if self.fill or not self.done else []
        return {"size": self.size, "block": self.block, "sha256": self.done + tail}


def valid_entry(entry) -> bool:
    """A manifest entry: ``{"size": int, "block": int, "sha256": [hex, ...]}`` that agree."""
    try:
        size, block, digests = entry["size"], entry["block"], entry["sha256"]
    except (KeyError, TypeError):
        return False
    return (isinstance(size, int) and isinstance(block, int) and size >= 0 and block >= 4096
            and isinstance(digests, list) and all(isinstance(d, str) for d in digests)
            and len(digests) == max(1, -(-size // block)))


def check_size(folder: Path, name: str, files: dict) -> None:
    """``name`` is listed in the manifest and has its size (a truncated or grown file fails here)."""
    if name not in files:
        raise CheckpointError(f"scan index at {folder.parent} is corrupt: {name} is not in its manifest.json")
    try:
        size = os.stat(folder / name).st_size
    except FileNotFoundError:
        raise CheckpointError(f"scan index at {folder.parent} is incomplete: missing {name} "
                              f"(in {folder.name})") from None
    if size != files[name]["size"]:
        raise CheckpointError(f"scan index at {folder.parent} is corrupt: {name} has {size} bytes, its "
                              f"manifest.json says {files[name]['size']} (truncated or overwritten)")


def verify(folder: Path, files: dict, names: tuple[str, ...], *, workers: int | None = None) -> None:
    """Check the size and every block digest of ``names`` against the manifest entries ``files``;
    raises CheckpointError naming the first file that differs. Blocks are hashed in parallel
    (``hashlib`` releases the GIL), one thread per CPU."""
    for name in names:
        check_size(folder, name, files)
    tasks = [(name, i) for name in names for i in range(len(files[name]["sha256"]))]
    digests = _hash_blocks([(folder / n, i, files[n]["block"]) for n, i in tasks], workers)
    for (name, i), digest in zip(tasks, digests):
        if digest != files[name]["sha256"][i]:
            raise _mismatch(folder, name, i, files[name]["block"])


class LazyVerifier:
    """Checks the blocks of one big file against its manifest entry the first time a byte of
    each is asked for (:meth:`check`); thread-safe, each block hashed once."""

    def __init__(self, folder: Path, name: str, entry: dict) -> None:
        self.folder, self.name, self.entry = folder, name, entry
        self.done = bytearray(len(entry["sha256"]))
        self.lock = threading.Lock()
        # opened now: a writer may collect this version while a reader still uses it (the open
        # file, like the memory map, outlives its name)
        self.fd = os.open(folder / name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))

    def __del__(self) -> None:
        try:
            os.close(self.fd)
        except (OSError, AttributeError):
            pass

    def check(self, ranges) -> None:
        """``ranges``: ``(start, stop)`` byte ranges about to be read."""
        block = self.entry["block"]
        want = sorted({i for start, stop in ranges for i in range(start // block, (max(stop, start + 1) - 1) // block + 1)
                       if not self.done[i]})
        if not want:
            return
        got = _hash_blocks([(self.fd, i, block) for i in want], None)
        for i, digest in zip(want, got):
            if digest != self.entry["sha256"][i]:
                raise _mismatch(self.folder, self.name, i, block)
        with self.lock:
            for i in want:
                self.done[i] = 1


def _mismatch(folder: Path, name: str, i: int, block: int) -> CheckpointError:
    return CheckpointError(f"scan index at {folder.parent} is corrupt: {name} does not match its checksum "
                           f"(bytes {i * block}..{(i + 1) * block - 1} changed); restore STORE or rebuild it")


def _hash_blocks(tasks: list[tuple[Path | int, int, int]], workers: int | None) -> list[str]:
    if len(tasks) <= 2:
        return [_hash_block(*t) for t in tasks]
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda t: _hash_block(*t), tasks))


def _hash_block(path: Path | int, i: int, block: int) -> str:
    """sha256 of block ``i`` of a file given by path or by an open descriptor."""
    h = hashlib.sha256()
    fd = path if isinstance(path, int) else os.open(path, os.O_RDONLY)
    try:
        offset, end = i * block, (i + 1) * block
        while offset < end:
            chunk = os.pread(fd, min(8 << 20, end - offset), offset)
            if not chunk:
                break
            h.update(chunk)
            offset += len(chunk)
    finally:
        if not isinstance(path, int):
            os.close(fd)
    return h.hexdigest()


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_small(folder: Path, name: str, text: str) -> None:
    """Replace ``folder/name`` atomically: a temporary file, fsync, os.replace, fsync the folder."""
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / name)
    fsync_dir(folder)


def read_small(path: Path, limit: int = 1 << 20) -> bytes:
    """The bytes of a small regular file. Raises FileNotFoundError when absent, OSError when it
    is a link, not a regular file or over ``limit`` bytes: never blocks on a FIFO planted there."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            raise OSError(errno.EINVAL, "not a small regular file", str(path))
        chunks, size = [], 0
        while chunk := os.read(fd, limit + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise OSError(errno.EFBIG, "not a small regular file", str(path))
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_json(path: Path):
    """The JSON value of a small regular file, or None (absent, unreadable, not JSON)."""
    try:
        return json.loads(read_small(path))
    except (OSError, ValueError):
        return None


def unlink(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
