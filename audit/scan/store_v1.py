"""The flat scan stores of version 1 (``meta.json`` and the data files directly in STORE), which
the old code replaced through hidden siblings: ``.STORE.xxxxxxxx`` (a copy being written,
``meta.json`` last) renamed into place after STORE had been renamed to ``.STORE.old-PID``. They
are read as they are; the next writer migrates them (:mod:`audit.scan.store_layout`). A kill of
the old code between its two renames left no STORE but a complete hidden copy: it is renamed
back on the next open, and the copies it left behind are deleted once a STORE exists, only when
their name and content say they are ours.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from audit.scan.store_io import fsync_dir, read_json

V1_FORMAT = "ssl-poison-audit/scan-index"  # the flat layout's meta.json marker
V1_FILES = ("meta.json", "ids.json", "rows.npy", "eligible.npy", "mean.npy", "components.npy",
            "projected.npy", "index.faiss", "knn_indices.npy", "knn_sqdist.npy")


def is_v1(folder: Path, *, complete: bool = False) -> bool:
    """A flat version-1 store: its meta.json carries the v1 marker (``complete``: every file it
    always wrote is there too, and nothing but its files)."""
    meta = read_json(folder / "meta.json")
    if not (isinstance(meta, dict) and meta.get("format") == V1_FORMAT and meta.get("version") == 1):
        return False
    if not complete:
        return True
    names = set(os.listdir(folder))
    return names <= set(V1_FILES) and set(V1_FILES[:8]) <= names



def _v1_siblings(path: Path):
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(old-\d+|[a-z0-9_]{{8}})")
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    return [Path(e.path) for e in entries if pattern.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]


def recover_v1(path: Path) -> str | None:
    """No STORE, but a complete flat store that the old code's swap left hidden beside it (killed
    between its two renames): rename the newest such copy into place. Returns its old name."""
    if os.path.lexists(path):
        return None
    found = []
    for d in _v1_siblings(path):
        try:
            if is_v1(d, complete=True):
                found.append((os.stat(d / "meta.json").st_mtime_ns, d))
        except OSError:
            continue
    for _, d in sorted(found, reverse=True):
        try:
            os.rename(d, path)
        except OSError:
            if os.path.lexists(path):
                return None
            continue
        fsync_dir(path.parent)
        return d.name
    return None


def clean_v1_siblings(path: Path) -> None:
    """Delete the old code's leftovers beside a STORE that exists: hidden copies that hold
    nothing but its files (a half-written one has no meta.json yet: its name and content say it)."""
    if os.path.islink(path):
        return
    for d in _v1_siblings(path):
        try:
            names = os.listdir(d)
            ours = all(n in V1_FILES and (d / n).is_file() and not (d / n).is_symlink() for n in names)
            if ours and ("meta.json" not in names or is_v1(d)) and ("old-" not in d.name or is_v1(d)):
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            continue
