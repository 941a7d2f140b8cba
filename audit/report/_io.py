"""Atomic file writes shared by every report writer.

A CI job that is killed half-way must never leave a truncated report that a later step parses
as valid: write to a temporary file beside the target, then ``os.replace`` it into place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, data: str | bytes, *, newline: str | None = "") -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + ``os.replace``).

    Missing parent folders are created. Returns the resolved path. OSErrors propagate (the CLI
    boundary turns them into one line)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a report is an ordinary file
        if isinstance(data, bytes):
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        else:
            with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as fh:
                fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
