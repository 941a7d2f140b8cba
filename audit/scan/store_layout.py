"""The STORE folder of incremental scans on disk: what makes a folder a store, how a new version
replaces the old one with no moment where STORE is missing or half-written, the writers' lock,
the checksums verified on load, and the clean-up after a killed run. Only the standard library:
the CLI checks a STORE path with it before importing anything heavy.

    STORE/
      store.json          the marker {"format": "ssl-poison-audit/scan-store", "version": 2}
      store.lock          an empty file that writers flock(2)
      CURRENT             "v000007 <sha256 of v000007/manifest.json>": the version readers use
      v000007/            one complete, immutable version: the data files (store.py) and
        manifest.json     every file's size and sha256 per block, written last
      .v000008.tmp-PID/   a version being written; renamed to v000008 once complete and synced

A writer holds the lock from reading CURRENT to replacing it, so writers are serialised and an
update never works from a version another writer is replacing. A new version is written and
fsynced under a temporary name, renamed, and only then named by CURRENT (a temporary file,
fsync, ``os.replace``, fsync of STORE): a run killed at any point leaves CURRENT naming the old
version or the new one. Readers take no lock: versions never change once visible, and a reader
that finds its version gone (a writer collected it) starts again from CURRENT.

Writers collect what killed runs left: temporary versions, versions CURRENT no longer names,
temporary files, all by their exact name patterns inside a folder carrying the marker. Nothing
else is ever deleted or renamed: a path that is not a store (a file, a device, a non-empty
folder without the marker) is refused. The flat stores of version 1 (``meta.json`` and the data
files directly in STORE, replaced through hidden siblings ``.STORE.xxxxxxxx`` / ``.STORE.old-PID``)
are read as they are and migrated by the next writer; a kill of that old code between its two
renames left no STORE but a complete hidden copy, which is renamed back into place on open.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import time
from pathlib import Path
from typing import Callable

from audit.errors import CheckpointError
from audit.scan.store_io import BLOCK, HashingWriter, fsync_dir, read_json, read_small, unlink, valid_entry, write_small
from audit.scan.store_v1 import V1_FILES, clean_v1_siblings, is_v1, recover_v1

MARKER, LOCK, CURRENT, MANIFEST = "store.json", "store.lock", "CURRENT", "manifest.json"
FORMAT = "ssl-poison-audit/scan-store"
VERSION = 2
DEFAULT_LOCK_TIMEOUT = 600.0  # seconds a writer waits for another; an update at 1M takes minutes

_MARKER_TEXT = json.dumps({"format": FORMAT, "version": VERSION}) + "\n"
_VERSION_DIR = re.compile(r"v(\d{6})")
_TMP_DIR = re.compile(r"\.v(\d{6})\.tmp-\d+")
_TMP_FILE = re.compile(r"\.(?:CURRENT|store\.json)\.\d+\.tmp")
_CURRENT_LINE = re.compile(r"(v\d{6}) ([0-9a-f]{64})\n?")
_URL_LIKE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/+")  # a URL (a drive letter C:/ is not)


# --- what is at STORE ----------------------------------------------------------------------


def classify(path: Path, who: str | None = None) -> str:
    """``absent``, ``new`` (an empty folder, or one holding only what a killed creation left),
    ``store``, or ``v1`` (a flat store of version 1). Anything else raises CheckpointError: the
    project never writes into, renames or deletes what it did not create."""
    who = who or str(path)
    try:
        st = os.stat(path)  # follows a symlink: a link to a store is a store, a link to data is data
    except FileNotFoundError:
        if os.path.islink(path):
            raise CheckpointError(f"{who} is a broken symbolic link, not a scan store") from None
        return "absent"
    except OSError as e:
        raise CheckpointError(f"{who} cannot be used as a scan store: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise CheckpointError(f"{who} is {_kind(st.st_mode)}, not a scan store folder; audit never replaces "
                              "it: give a new or empty folder")
    try:
        names = os.listdir(path)
    except OSError as e:
        raise CheckpointError(f"{who} cannot be read as a scan store: {e.strerror}") from None
    if MARKER in names:
        marker = read_json(path / MARKER)
        if isinstance(marker, dict) and marker.get("format") == FORMAT:
            if marker.get("version") != VERSION:
                raise CheckpointError(f"{who} is a scan store of format version {marker.get('version')!r}; this "
                                      f"version reads {VERSION} (and the flat version 1)")
            return "store"
        if CURRENT in names or any(_VERSION_DIR.fullmatch(n) for n in names):
            raise CheckpointError(f"scan store at {who} is corrupt: unreadable {MARKER}; rebuild it with "
                                  "--save-index into a new folder")
    if "meta.json" in names and is_v1(path):
        return "v1"
    if all(n == LOCK or _TMP_FILE.fullmatch(n) for n in names):
        return "new"
    raise CheckpointError(f"{who} is a folder that is not a scan store (no {MARKER}); audit never writes into "
                          "or replaces it: give a new or empty folder")


def check_store_path(path: str | Path, *, write: bool, flag: str | None = None) -> str:
    """The CLI's check before any scan work: what :func:`classify` refuses, a store to read that
    is not there, a store to write whose folder is not writable. Returns the kind."""
    path = Path(path)
    who = f"{flag} {path}" if flag else str(path)
    url = _URL_LIKE.match(str(path))  # Path("s3://b/s") is "s3:/b/s": it would land in ./s3:/b/s
    if url and url[1] == "file":
        raise CheckpointError(f"{flag or 'STORE'} {path}: give a store as a plain path, not a file:// URL")
    if url:
        raise CheckpointError(f"{flag or 'STORE'} {url[1]}://{str(path)[url.end():]}: stores in object storage are not "
                              "supported; a store is a folder on a local or shared filesystem (docs/scale-out.md)")
    recover_v1(path)
    kind = classify(path, who)
    if not write:
        if kind in ("absent", "new"):
            raise CheckpointError(f"{who}: no scan index there; create one with "
                                  f"`audit scan POOL --save-index {path}`")
        if kind == "store" and read_current(path) is None and not is_v1(path):
            raise CheckpointError(f"{who}: no scan index there yet (the --save-index that created it was "
                                  "interrupted); run it again")
        return kind
    folder = path if kind != "absent" else next((p for p in path.parents if p.exists()), Path("."))
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise CheckpointError(f"{who}: cannot write there ({folder} is not a writable folder)")
    return kind


def read_current(path: Path) -> tuple[str, str] | None:
    """``(version folder name, manifest sha256)`` named by CURRENT, or None when there is none."""
    try:
        text = read_small(path / CURRENT, 200).decode("ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"scan store at {path} is corrupt: unreadable {CURRENT} "
                              f"({getattr(e, 'strerror', None) or e})") from None
    m = _CURRENT_LINE.fullmatch(text)
    if m is None:
        raise CheckpointError(f"scan store at {path} is corrupt: {CURRENT} does not name a version")
    return m.group(1), m.group(2)


# --- reading a version ---------------------------------------------------------------------


def open_version(path: Path) -> tuple[Path, dict | None]:
    """The folder a reader loads and its manifest's file entries (None for a flat v1 store,
    which has no checksums). The manifest itself is checked against CURRENT's digest."""
    recover_v1(path)
    kind = classify(path)
    cur = read_current(path) if kind == "store" else None
    if cur is None and kind in ("v1", "store") and is_v1(path):  # not migrated yet, or killed before CURRENT
        return path, None
    if cur is None and kind == "store":
        raise CheckpointError(f"no scan index at {path} yet (the --save-index that created it was interrupted); "
                              "run it again")
    if cur is None:
        raise CheckpointError(f"no scan index at {path}: create one with a full scan first (save_index)")
    folder = path / cur[0]
    try:
        raw = read_small(folder / MANIFEST, 64 << 20)
    except OSError:
        raise CheckpointError(f"scan index at {path} is incomplete: missing {MANIFEST} (in {cur[0]})") from None
    if hashlib.sha256(raw).hexdigest() != cur[1]:
        raise CheckpointError(f"scan index at {path} is corrupt: {cur[0]}/{MANIFEST} does not match its checksum")
    try:
        files = json.loads(raw)["files"]
        ok = isinstance(files, dict) and all(valid_entry(e) for e in files.values())
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise CheckpointError(f"scan index at {path} is corrupt: {cur[0]}/{MANIFEST} is not a manifest")
    return folder, files


# --- writing: the lock, new versions, garbage ----------------------------------------------


class StoreWriter:
    """``with StoreWriter(path) as w:`` holds STORE's lock (creating STORE if needed), collects
    what killed runs left, and lets one new version be written and published:
    ``w.begin(); w.write_file(name, fill)...; w.publish()``."""

    def __init__(self, path: str | Path, lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
                 on_wait: Callable[[str], None] | None = None) -> None:
        self.path, self.timeout, self.on_wait = Path(path), lock_timeout, on_wait
        self.fd: int | None = None
        self.files: dict[str, dict] = {}
        self.tmp: Path | None = None

    def __enter__(self) -> "StoreWriter":
        recover_v1(self.path)
        if classify(self.path) == "absent":
            self.path.mkdir(parents=True, exist_ok=True)  # a concurrent creator may win: fine
        self.fd = _lock(self.path, self.timeout, self.on_wait)
        try:
            self.kind = classify(self.path)  # again: it may have changed while we waited
            if self.kind == "new":
                write_small(self.path, MARKER, _MARKER_TEXT)
                self.kind = "store"
            try:
                self.current = read_current(self.path) if self.kind == "store" else None
            except CheckpointError:  # a corrupt CURRENT: publish replaces it
                self.current = None
            self.collect_garbage(keep=self.current[0] if self._intact() else None)
            clean_v1_siblings(self.path)
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.tmp is not None:  # not published: an error, or an update that was not accepted
                shutil.rmtree(self.tmp, ignore_errors=True)
        finally:
            self._unlock()

    def begin(self) -> Path:
        used = [int(m.group(1)) for n in os.listdir(self.path) if (m := _VERSION_DIR.fullmatch(n) or
                                                                   _TMP_DIR.fullmatch(n))]
        self.number = max(used, default=0) + 1
        self.tmp = self.path / f".v{self.number:06d}.tmp-{os.getpid()}"
        self.tmp.mkdir()
        self.files = {}
        return self.tmp

    def write_file(self, name: str, fill: Callable[[HashingWriter], None], block: int = BLOCK) -> None:
        """Create ``name`` in the version being written: ``fill(fh)`` writes it, then fsync;
        one sha256 per ``block`` bytes goes into the manifest."""
        with open(self.tmp / name, "xb") as raw:
            out = HashingWriter(raw, block)
            fill(out)
            raw.flush()
            os.fsync(raw.fileno())
        self.files[name] = out.entry()

    def publish(self) -> str:
        """Make the version written since :meth:`begin` the current one; returns its name."""
        manifest = (json.dumps({"format": FORMAT + "-manifest", "version": VERSION, "files": self.files},
                               indent=1) + "\n").encode()
        with open(self.tmp / MANIFEST, "xb") as fh:
            fh.write(manifest)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(self.tmp)
        name = f"v{self.number:06d}"
        os.rename(self.tmp, self.path / name)
        self.tmp = None
        fsync_dir(self.path)
        if self.kind == "v1":  # migration: the marker first; until CURRENT exists readers keep the flat files
            write_small(self.path, MARKER, _MARKER_TEXT)
            self.kind = "store"
        write_small(self.path, CURRENT, f"{name} {hashlib.sha256(manifest).hexdigest()}\n")
        self.current = (name, hashlib.sha256(manifest).hexdigest())
        self.collect_garbage(keep=name)
        return name

    def _intact(self) -> bool:
        """CURRENT names a version whose manifest matches it: only then are other versions garbage
        (a CURRENT lost or damaged by hand must not cost the versions it no longer names)."""
        if self.current is None:
            return False
        try:
            raw = read_small(self.path / self.current[0] / MANIFEST, 64 << 20)
        except OSError:
            return False
        return hashlib.sha256(raw).hexdigest() == self.current[1]

    def collect_garbage(self, keep: str | None) -> None:
        """Remove temporary versions and files and, when ``keep`` is the intact current version,
        every other version and the flat v1 files; by exact name pattern only, inside this
        marked store."""
        for entry in os.scandir(self.path):
            n = entry.name
            if _TMP_DIR.fullmatch(n) or (keep is not None and _VERSION_DIR.fullmatch(n) and n != keep):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
            elif _TMP_FILE.fullmatch(n) and entry.is_file(follow_symlinks=False):
                unlink(entry.path)
        if keep is not None and is_v1(self.path):
            for n in V1_FILES[1:]:  # meta.json last: a kill half-way leaves the marker for the next run
                unlink(self.path / n)
            unlink(self.path / "meta.json")

    def _unlock(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


def _lock(path: Path, timeout: float | None, on_wait: Callable[[str], None] | None) -> int:
    import fcntl  # POSIX: the store's writers are serialised with flock(2)

    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    start = time.monotonic()
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = _holder(fd)
            if timeout is not None and time.monotonic() - start >= timeout:
                os.close(fd)
                raise CheckpointError(f"{path} is locked by another audit scan {holder}; gave up after "
                                      f"{timeout:g} s (--lock-timeout)") from None
            if not told and on_wait is not None:
                on_wait(f"waiting for {path}: locked by another audit scan {holder}")
                told = True
            time.sleep(0.05 if time.monotonic() - start < 1 else 0.5)
        except BaseException:
            os.close(fd)
            raise
    return fd


def _holder(fd: int) -> str:
    """``(pid N) since TIME`` of the process holding the flock on ``fd``'s file, from Linux's
    /proc/locks, for a waiting writer's message. Nothing is written into STORE to say it: a run
    that adds nothing leaves the store exactly as it was."""
    try:
        st = os.fstat(fd)
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return "(pid unknown)"
    pids = []
    for line in lines:
        f = line.split()
        if len(f) >= 6 and f[1] == "FLOCK" and f[5].count(":") == 2:  # "->" lines are waiters
            major, minor, inode = f[5].split(":")
            if int(inode) == st.st_ino:
                exact = (int(major, 16), int(minor, 16)) == (os.major(st.st_dev), os.minor(st.st_dev))
                pids.append((not exact, f[4]))  # overlay file systems report another device: inode alone
    if not pids:
        return "(pid unknown)"
    pid = min(pids)[1]
    return f"(pid {pid}){_since(pid)}"


def _since(pid: str) -> str:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        start = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start, in ticks since boot
    except (OSError, ValueError, IndexError, StopIteration):
        return ""
    return " since " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start))


def _kind(mode: int) -> str:
    for test, what in ((stat.S_ISREG, "a file"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a folder"
