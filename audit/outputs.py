"""The output policy of every command (``audit scan|train|dynamics``, ``redteam inject|bench|
train-gan``), checked before any work starts, so a bad output path costs one line, not a scan.

Rules, each a one-line :class:`audit.errors.OutputError` (exit 2):

1. No output is, is inside, or contains an audited input (pool, labeled, test, store,
   predictions, dataset). Paths are compared after resolving symbolic links, and by device and
   inode along the output's existing ancestors (bind mounts, hard links); an input FILE counts:
   ``audit scan in.npz --json in.npz`` is refused.
2. Nothing that is not a regular file is ever replaced. A report (``FILE``) must be absent or a
   regular file: ``/dev/null``, ``/dev/full``, FIFOs, sockets, directories and symbolic links
   are refused, not written through (to do without a report, leave its option out). A run
   folder (``FOLDER``) must be absent or a directory (a link to one is fine); a folder renamed
   into place as a whole (``REPLACED``: ``redteam inject --out``) must be absent or a real
   directory.
3. Two outputs of one command never share a path.
4. The folder each output lands in is writable now: a probe file (``.write-check.PID.N.tmp``) is
   created and removed in the nearest existing folder, which also catches read-only mounts and
   ACLs that ``os.access`` misses.

Disk-full and other write failures later on are reported by :mod:`audit.atomic`, naming the
target. :func:`prepare_outputs` also removes what killed runs left where these outputs go (their
``.NAME.PID.N.tmp`` temporaries, see :func:`audit.atomic.remove_stale_temps`). Library code; the
CLIs call it with their options.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from audit.atomic import describe, remove_stale_temps, temp_path
from audit.errors import OutputError

FILE, FOLDER, REPLACED = "file", "folder", "replaced folder"


@dataclass(frozen=True)
class Output:
    """One output of a command: the option that names it (``--json``), the path, its kind."""

    flag: str
    path: Path
    kind: str = FILE


def check_outputs(outputs: Iterable[Output | None], inputs: Mapping[str, str | Path | None]) -> None:
    """Apply the rules of the module doc. ``inputs`` maps a label for messages (``the scanned
    folder``, ``--labeled``) to a path; None entries (options not given) are ignored. Raises
    :class:`OutputError` on the first violation, having written nothing."""
    outs = [o for o in outputs if o is not None and o.path is not None]
    ins = [(label, Path(p)) for label, p in inputs.items() if p is not None and str(p) != ""]
    seen: dict[Path, Output] = {}
    for out in outs:
        where = _resolved(out.path)
        if where in seen:
            raise OutputError(f"{out.flag} and {seen[where].flag} both write {out.path}; give each its own path")
        seen[where] = out
        for label, inp in ins:
            _check_apart(out, where, label, inp)
        _check_type(out)
        _check_writable(out)


def prepare_outputs(outputs: Iterable[Output | None], inputs: Mapping[str, str | Path | None]) -> None:
    """:func:`check_outputs`, then remove stale temporaries a killed run left for these outputs:
    a report's ``.NAME.PID.N.tmp`` beside it, any in a run folder, a replaced folder's own."""
    outs = [o for o in outputs if o is not None and o.path is not None]
    check_outputs(outs, inputs)
    for out in outs:
        if out.kind == FOLDER:
            remove_stale_temps(out.path)
        else:
            remove_stale_temps(out.path.parent, name=out.path.name, folders=out.kind == REPLACED)


def _check_apart(out: Output, where: Path, label: str, inp: Path) -> None:
    src = _resolved(inp)
    name = label if label.startswith("-") else f"the {label}"
    same = "is" if where == src else _same_along(out.path, inp)
    if same == "is":
        raise OutputError(f"{out.flag} {out.path} is {name} {inp}, which is only read; write it elsewhere")
    if same == "inside" or where.is_relative_to(src):
        raise OutputError(f"{out.flag} {out.path} is inside {name} {inp}, which is only read; write it elsewhere")
    if src.is_relative_to(where):
        raise OutputError(f"{out.flag} {out.path} contains {name} {inp}, which is only read; write it elsewhere")


def _check_type(out: Output) -> None:
    try:
        st = os.lstat(out.path)
    except (FileNotFoundError, NotADirectoryError):
        return _check_parent(out)
    except OSError as exc:
        raise OutputError(f"{out.flag} {out.path}: {exc.strerror or exc}") from None
    mode = st.st_mode
    if out.kind == FILE:
        if stat.S_ISDIR(mode):
            raise OutputError(f"{out.flag} {out.path} is a directory; give a file name (e.g. {out.path}/report.json)")
        if not stat.S_ISREG(mode):
            raise OutputError(f"{out.flag} {out.path} is {describe(mode)}, not a regular file; reports are written "
                              "only to regular files, never through devices, pipes or links (leave the option "
                              "out to skip a report)")
    elif out.kind == REPLACED and not stat.S_ISDIR(mode):
        raise OutputError(f"{out.flag} {out.path} is {describe(mode)}; it must be a new or existing directory "
                          "(it is replaced as a whole)")
    elif out.kind == FOLDER and not out.path.is_dir():  # a link to a directory is fine here
        what = describe(os.stat(out.path).st_mode) if out.path.exists() else "a dangling symbolic link"
        raise OutputError(f"{out.flag} {out.path} is {what}, not a directory")


def _check_parent(out: Output) -> None:
    base = _existing_ancestor(out.path.parent)
    if not base.is_dir():
        raise OutputError(f"{out.flag} {out.path}: cannot create it, {base} is not a directory")


def _check_writable(out: Output) -> None:
    folder = out.path if out.kind == FOLDER and out.path.is_dir() else _existing_ancestor(out.path.parent)
    probe = temp_path(folder / "write-check")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise OutputError(f"{out.flag} {out.path}: cannot write in {folder} ({exc.strerror or exc})") from None
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass


def _existing_ancestor(path: Path) -> Path:
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _resolved(path: Path) -> Path:
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare the plain absolute path
        return Path(os.path.abspath(path))


def _same_along(out: Path, inp: Path) -> str | None:
    """``"is"`` when the output is ``inp`` and ``"inside"`` when one of its existing ancestors is,
    by device and inode: what path comparison misses (a bind mount, a hard link to an input)."""
    try:
        target = os.stat(inp)
    except OSError:
        return None
    p = Path(os.path.abspath(out))
    for q in (p, *p.parents):
        try:
            st = os.stat(q)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            return "is" if q == p else "inside"
    return None
