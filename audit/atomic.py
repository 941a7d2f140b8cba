"""Atomic file writes, the one mechanism behind every file this project writes (images,
manifests, reports, checkpoints, recordings, stored trials), and its folder counterpart.

A run killed half-way must never leave a truncated file that a later step takes as valid: write
to a temporary file beside the target, fsync, then ``os.replace`` it into place (atomic on POSIX
within one folder). The temporary file is created with ordinary permissions (umask applies), not
``mkstemp``'s 0600, so written datasets and reports are readable like any other file.

Temporary names are ``.NAME.PID.N.tmp``. A process killed before its rename leaves one behind;
:func:`remove_stale_temps` removes those whose process is gone (commands call it on the folders
they write). Defence in depth behind ``audit.outputs``: a target that exists and is not a regular
file (a device such as ``/dev/null``, a FIFO, a directory, a symbolic link) is never replaced.
Every failure is an :class:`audit.errors.OutputError` naming the target, never the temporary file
(disk full on write, fsync or close included).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from audit.errors import OutputError

_counter = itertools.count()
TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?P<n>\d+)\.tmp$")
_MAX_NAME = 200  # of the target name inside a temp name: ".NAME.PID.N.tmp" stays under 255 bytes

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def describe(mode: int) -> str:
    """'a regular file', 'a character device', ... for an ``st_mode``."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((word for test, word in _KINDS if test(mode)), "not a regular file")


def temp_path(target: Path) -> Path:
    """A fresh ``.NAME.PID.N.tmp`` beside ``target`` (the name :func:`remove_stale_temps` knows)."""
    return target.with_name(f".{target.name[:_MAX_NAME]}.{os.getpid()}.{next(_counter)}.tmp")


def check_replaceable(target: Path) -> None:
    """Raise unless ``target`` is absent or a regular file (not a link): what ``os.replace`` may
    take the place of without destroying a device node, a pipe, a folder or a link."""
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _output_error(target, exc) from None
    if not stat.S_ISREG(mode):
        raise OutputError(f"{target} is {describe(mode)}, not a regular file: it is never replaced; "
                          "write to a regular file elsewhere")


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb", *, fsync: bool = True,
                encoding: str | None = None, newline: str | None = "") -> Iterator[IO]:
    """``with atomic_open(p) as fh: fh.write(...)``: ``p`` appears whole on a clean exit and is
    untouched (the temporary file removed) if the block raises. Parent folders are created."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode 'wb' or 'w', not {mode!r}")
    target = Path(path)
    check_replaceable(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _output_error(target, exc) from None
    tmp = temp_path(target)
    xmode = "xb" if mode == "wb" else "x"
    kwargs = {} if mode == "wb" else {"encoding": encoding or "utf-8", "newline": newline}
    try:
        with open(tmp, xmode, **kwargs) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        check_replaceable(target)  # again: it may have changed while the block ran
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, OutputError) and _about(exc, tmp, target):
            raise _output_error(target, exc) from None
        raise


def write_atomic(path: str | Path, data: bytes | str, *, fsync: bool = True, newline: str | None = "") -> Path:
    """Write ``data`` (bytes, or text as UTF-8, newlines untranslated) to ``path`` atomically."""
    mode = "wb" if isinstance(data, bytes) else "w"
    with atomic_open(path, mode, fsync=fsync, newline=newline) as fh:
        fh.write(data)
    return Path(path)


def remove_stale_temps(folder: str | Path, *, name: str | None = None, folders: bool = False) -> list[str]:
    """Remove the ``.NAME.PID.N.tmp`` entries in ``folder`` (not below it) whose process is no
    longer running: what a killed run left. Only names of that exact pattern, only regular files
    (and with ``folders``, directories: :func:`atomic_folder`'s), only for ``name`` when given.
    A live process's temporaries and everything else are left alone. Returns the names removed."""
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed  # absent or unreadable: nothing of ours to clean
    for entry in entries:
        m = TEMP_NAME.match(entry.name)
        if m is None or (name is not None and m["name"] != name[:_MAX_NAME]) or _alive(int(m["pid"])):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
            elif folders and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                continue
        except OSError:
            continue  # cleaning up is best effort; the run itself does not depend on it
        removed.append(entry.name)
    return removed


@contextmanager
def atomic_folder(path: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """``with atomic_folder(out) as tmp: write into tmp``: on a clean exit ``tmp`` (a hidden
    sibling ``.OUT.PID.N.tmp``) is renamed to ``out``; if the block raises, it is removed and
    ``out`` is untouched. ``out`` must be absent or an empty directory, or, with ``replace``, a
    directory the caller has recognised as its own earlier output: that one is moved aside, the
    new folder renamed in, and the old one deleted. A kill between those two renames leaves no
    ``out`` (both copies hidden, removed by the next run's :func:`remove_stale_temps`)."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(target)
        os.mkdir(tmp)
    except OSError as exc:
        raise _output_error(target, exc) from None
    try:
        yield tmp
        if replace and target.is_dir() and not target.is_symlink() and any(target.iterdir()):
            old = temp_path(target)
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)  # POSIX: an empty directory at target is replaced atomically
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise _output_error(target, exc) from None
        raise


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or a number no pid can be: leave its files alone
    return True


def _about(exc: OSError, tmp: Path, target: Path) -> bool:
    """An error of writing this file (no file name, or the temp / target name), not of something
    the block did elsewhere (reading another file), which keeps its own message."""
    return exc.filename is None or str(exc.filename) in (str(tmp), str(target))


def _output_error(target: Path, exc: OSError) -> OutputError:
    err = OutputError(f"cannot write {target}: {exc.strerror or exc}")
    err.errno = exc.errno
    return err
