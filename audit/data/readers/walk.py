"""Walking a folder that may be hostile: every entry is either a file to decode, an entry skipped
on purpose (listed in ``ImageSet.skipped``), or an unreadable entry with a reason. Nothing met
while walking ends the walk.

Policies (the reason for each, because a reviewer will ask):

- **Hidden entries** (names starting with '.') are skipped unless ``include_hidden``: they are
  ``.DS_Store``, ``._*`` AppleDouble files, ``.git``, thumbnail caches. Each skipped entry is
  listed (a hidden folder once, not its contents): a loader that walks the folder may train on
  them, so the user must be able to see them.
- **Symlinks.** A symlink to a file inside the root is read. Not followed unless
  ``follow_symlinks`` (listed as skipped): symlinks to directories (loops, and scanning outside
  the root) and symlinks to files outside the root (the HTML report would embed a file the user
  did not point at, e.g. a private photo). With ``follow_symlinks`` both are read, as a loader
  using ``os.walk(followlinks=True)`` (torchvision's ``ImageFolder``) would, and every real
  directory is entered once (by device and inode; the real tree first, so a link never takes a
  real directory's ids), so loops end. Broken links, link loops and
  links to FIFOs/devices/sockets are unreadable with a reason.
- **Errors per entry**: a directory that cannot be listed (permission, a path longer than
  PATH_MAX, replaced by a file during the scan, vanished) is one unreadable entry; the walk goes
  on. Paths deeper than PATH_MAX cannot be opened by path by any loader either.
- **Names that are not valid UTF-8** are read like any other: Python gives them as str with
  the undecodable bytes escaped as lone surrogates (PEP 383, ``os.fsdecode``); that str is the
  id, and ``os.fsencode(id)`` gives back the exact bytes of the name. The JSON report keeps the
  escaped form (round-trip); human-facing outputs escape it.

ids are POSIX paths relative to the root, sorted by code point, so they are stable.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from audit.data.imageset import Unreadable
from audit.data.readers._common import file_kind, os_reason

HIDDEN = "hidden name (starts with '.'; read with --include-hidden)"
DIR_LINK = "directory symlink, not followed (read with --follow-symlinks)"
OUTSIDE_LINK = "symlink to a file outside the scanned folder, not read (read with --follow-symlinks)"
REPEAT_DIR = "directory already scanned under another path (symlink loop or repeat)"


@dataclass
class Tree:
    """What a walk found: relative file paths (sorted), which of them are symlinks, and what it
    skipped on purpose or could not use."""

    files: list[str] = field(default_factory=list)
    links: set[str] = field(default_factory=set)  # files reached through a symlink (opened following it)
    unreadable: list[Unreadable] = field(default_factory=list)
    skipped: list[Unreadable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    non_utf8: int = 0  # names (files or folders) that are not valid UTF-8


def scan_tree(root: Path, include_hidden: bool = False, follow_symlinks: bool = False) -> Tree:
    """Every regular file under ``root`` under the module policies."""
    tree = Tree()
    root_real = os.path.realpath(root)
    visited: set[tuple[int, int]] = set()
    try:
        st = os.stat(root)
        visited.add((st.st_dev, st.st_ino))
    except OSError:
        pass
    stack = [("", str(root))]
    links: list[tuple[str, str, tuple[int, int]]] = []  # directory symlinks to follow, after the real tree
    while stack or links:
        if not stack:  # real directories first, so a link never takes a real directory's ids
            rel, path, key = links.pop(0)
            if key in visited:
                tree.skipped.append(Unreadable(rel, REPEAT_DIR))
            else:
                visited.add(key)
                stack.append((rel, path))
            continue
        rel_dir, abs_dir = stack.pop()
        try:
            with os.scandir(abs_dir) as it:
                entries = sorted(it, key=lambda e: e.name, reverse=True)
        except OSError as exc:
            tree.unreadable.append(Unreadable(rel_dir or ".", f"{os_reason(exc)} (directory not entered)"))
            continue
        for e in entries:
            rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
            if not _utf8(e.name):
                tree.non_utf8 += 1
            if e.name.startswith(".") and not include_hidden:
                tree.skipped.append(Unreadable(rel, HIDDEN))
                continue
            try:
                if e.is_symlink():
                    _link(tree, e, rel, root_real, follow_symlinks, links)
                elif e.is_dir(follow_symlinks=False):
                    if follow_symlinks:  # only then can a directory be reached twice
                        st = e.stat(follow_symlinks=False)
                        visited.add((st.st_dev, st.st_ino))
                    stack.append((rel, e.path))
                elif e.is_file(follow_symlinks=False):
                    tree.files.append(rel)
                else:
                    kind = file_kind(e.stat(follow_symlinks=False).st_mode)
                    tree.unreadable.append(Unreadable(rel, f"not a regular file ({kind})"))
            except OSError as exc:
                tree.unreadable.append(Unreadable(rel, os_reason(exc)))
    tree.files.sort()
    tree.unreadable.sort(key=lambda u: u.path)
    tree.skipped.sort(key=lambda u: u.path)
    _notes(tree)
    return tree


def _link(tree: Tree, e: os.DirEntry, rel: str, root_real: str, follow: bool, links: list) -> None:
    try:
        st = os.stat(e.path)
    except FileNotFoundError:
        tree.unreadable.append(Unreadable(rel, "broken symlink"))
        return
    except OSError as exc:
        tree.unreadable.append(Unreadable(rel, os_reason(exc)))
        return
    if stat.S_ISDIR(st.st_mode):
        if not follow:
            tree.skipped.append(Unreadable(rel, DIR_LINK))
        else:
            links.append((rel, e.path, (st.st_dev, st.st_ino)))
    elif stat.S_ISREG(st.st_mode):
        target = os.path.realpath(e.path)
        if follow or target == root_real or target.startswith(root_real.rstrip(os.sep) + os.sep):
            tree.files.append(rel)
            tree.links.add(rel)
        else:
            tree.skipped.append(Unreadable(rel, OUTSIDE_LINK))
    else:
        tree.unreadable.append(Unreadable(rel, f"not a regular file ({file_kind(st.st_mode)}, via a symlink)"))


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _notes(tree: Tree) -> None:
    counts: dict[str, int] = {}
    for u in tree.skipped:
        counts[u.reason] = counts.get(u.reason, 0) + 1
    if counts.get(HIDDEN):
        tree.notes.append(f"skipped {counts[HIDDEN]} hidden entries (names starting with '.'; --include-hidden reads them)")
    if counts.get(DIR_LINK):
        first = next(u.path for u in tree.skipped if u.reason == DIR_LINK)
        tree.notes.append(f"did not follow {counts[DIR_LINK]} directory symlink(s), e.g. {first} "
                          "(--follow-symlinks follows them)")
    if counts.get(OUTSIDE_LINK):
        tree.notes.append(f"did not read {counts[OUTSIDE_LINK]} symlink(s) to files outside the scanned folder "
                          "(--follow-symlinks reads them)")
    if counts.get(REPEAT_DIR):
        tree.notes.append(f"{counts[REPEAT_DIR]} directory symlink(s) lead to a directory already scanned")
    if tree.non_utf8:
        tree.notes.append(
            f"{tree.non_utf8} name(s) are not valid UTF-8: read like any other; their ids escape the bad bytes "
            "as lone surrogates (os.fsdecode), and os.fsencode(id) gives back the exact name")
