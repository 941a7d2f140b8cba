"""Atomic file writes, the one mechanism behind every file this project writes (images,
manifests, reports, checkpoints, recordings, stored trials).

A run killed half-way must never leave a truncated file that a later step takes as valid: write
to a temporary file beside the target, fsync, then ``os.replace`` it into place (atomic on POSIX
within one folder). The temporary file is created with ordinary permissions (umask applies), not
``mkstemp``'s 0600, so written datasets and reports are readable like any other file.
"""

from __future__ import annotations

import itertools
import os
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

_counter = itertools.count()


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb", *, fsync: bool = True,
                encoding: str | None = None, newline: str | None = "") -> Iterator[IO]:
    """``with atomic_open(p) as fh: fh.write(...)``: ``p`` appears whole on a clean exit and is
    untouched (the temporary file removed) if the block raises. Parent folders are created."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode 'wb' or 'w', not {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{next(_counter)}.tmp")
    xmode = "xb" if mode == "wb" else "x"
    kwargs = {} if mode == "wb" else {"encoding": encoding or "utf-8", "newline": newline}
    try:
        with open(tmp, xmode, **kwargs) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_atomic(path: str | Path, data: bytes | str, *, fsync: bool = True, newline: str | None = "") -> Path:
    """Write ``data`` (bytes, or text as UTF-8, newlines untranslated) to ``path`` atomically."""
    mode = "wb" if isinstance(data, bytes) else "w"
    with atomic_open(path, mode, fsync=fsync, newline=newline) as fh:
        fh.write(data)
    return Path(path)
