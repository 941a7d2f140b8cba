"""What every report of one run shares, computed once: the findings in review order with their
display numbers and stable ids, the links between findings that share images, which images of
an ``--against`` scan are new and which were already stored, the labeled set (source images,
class names), and the flagged files as paths relative to the scanned folder.

Scope of an ``--against`` scan: the scan's ids are the store's ids followed by the batch's new
ids (``audit.scan.store``); batch images already stored with the same pixels are scanned as the
stored images they are and count as stored here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from audit.data.imageset import ImageSet
from audit.findings import AuditResult, Finding, Severity, overlaps
from audit.report.ci import ranked

# the note audit.scan.store writes when a rerun batch holds stored images (same ids, same pixels)
_ALREADY_STORED = re.compile(r"^(\d+) of the batch's images are already in the store")


@dataclass(frozen=True)
class Scope:
    """Where the scanned ids live. ``root``: the folder (or file) the user scanned, ids are
    relative to it. For ``--against``: ``store`` is STORE and ``new_ids`` the batch's images
    that were not in it yet (every other id of the scan is a stored image)."""

    root: str | None = None
    store: str | None = None
    new_ids: frozenset[str] | None = None
    n_batch: int | None = None  # images read from the batch (new + already stored)

    @staticmethod
    def against(result: AuditResult, batch_ids: tuple[str, ...], root: str, store: str) -> "Scope":
        """The scope of an ``--against`` result whose batch held ``batch_ids``."""
        already = 0
        for note in result.notes:
            m = _ALREADY_STORED.match(note)
            if m:
                already = int(m.group(1))
        n_new = max(len(set(batch_ids) & set(result.ids)) - already, 0)
        new = frozenset(result.ids[len(result.ids) - n_new:]) if n_new else frozenset()
        return Scope(root=root, store=store, new_ids=new, n_batch=len(batch_ids))

    @property
    def n_new(self) -> int | None:
        return None if self.new_ids is None else len(self.new_ids)


@dataclass
class ReportContext:
    """Built once per run (:func:`build_context`) and handed to every writer."""

    result: AuditResult
    order: list[Finding]  # review order: most severe, then highest score
    number: dict[int, int]  # id(finding) -> display number (#1 = first in review order)
    key: dict[int, str]  # id(finding) -> stable id, unique within the run
    links: dict[int, list[tuple[Finding, int]]]  # id(finding) -> [(other finding, shared images)]
    scope: Scope = field(default_factory=Scope)
    labeled: ImageSet | None = None
    class_names: tuple[str, ...] | None = None

    # --- findings --------------------------------------------------------------------------
    def anchor(self, f: Finding) -> str:
        return "f-" + self.key[id(f)]

    def label(self, f: Finding) -> str:
        return f"{f.kind} #{self.number[id(f)]}"

    def overlap_lines(self, f: Finding) -> list[tuple[str, Finding, int]]:
        """``("60 of 60 members also in bridge #1", other, shared)`` for each overlapping finding."""
        n = len({m.id for m in f.members})
        return [(f"{shared} of {n} members also in {self.label(o)}", o, shared) for o, shared in self.links[id(f)]]

    # --- images ----------------------------------------------------------------------------
    def stored(self, member_id: str) -> bool | None:
        """True: a stored image, False: new in this batch, None: not an --against scan."""
        if self.scope.new_ids is None:
            return None
        return member_id not in self.scope.new_ids

    def class_name(self, index: Any) -> str:
        """The labeled set's name of class ``index`` ("class 8" when there are no names)."""
        try:
            i = int(index)
        except (TypeError, ValueError):
            return str(index)
        if self.class_names is not None and 0 <= i < len(self.class_names):
            return str(self.class_names[i])
        return f"class {i}"

    def flagged(self, min_severity: Severity = Severity.WARNING) -> list[str]:
        return self.result.flagged(min_severity)

    def paths(self, ids) -> tuple[list[str], list[str]]:
        """``(files, stored)``: ids that are files under the scanned folder (paths relative to it,
        in the order given, no repeats) and ids that are stored images only (--against)."""
        files, stored, seen = [], [], set()
        for i in ids:
            if i in seen:
                continue
            seen.add(i)
            (stored if self.stored(i) else files).append(i)
        return files, stored


def build_context(result: AuditResult, *, scope: Scope | None = None, labeled: ImageSet | None = None,
                  class_names: tuple[str, ...] | None = None) -> ReportContext:
    order = ranked(result.findings)
    number = {id(f): k for k, f in enumerate(order, 1)}
    keys: dict[int, str] = {}
    used: dict[str, int] = {}
    for f in order:  # the same kind over the same images twice (rounds): keep ids unique
        k = f.key
        used[k] = used.get(k, 0) + 1
        keys[id(f)] = k if used[k] == 1 else f"{k}-{used[k]}"
    pos = {id(f): i for i, f in enumerate(result.findings)}
    raw = overlaps(result.findings)
    links = {id(f): sorted(((result.findings[j], n) for j, n in raw[pos[id(f)]]),
                           key=lambda t: (-t[1], number[id(t[0])])) for f in result.findings}
    names = class_names if class_names is not None else (labeled.class_names if labeled is not None else None)
    return ReportContext(result, order, number, keys, links, scope or Scope(), labeled,
                         None if names is None else tuple(names))
