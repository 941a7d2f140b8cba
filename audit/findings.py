"""Typed findings: what every detector (static scan, training dynamics) produces and every
report renders. Stable JSON form; no loose dicts cross module boundaries.

Every finding has a stable id (:attr:`Finding.key`, ``bridge-3f9a0c21d4``: its kind and a hash
of its sorted member ids, so the same finding on the same images has the same id in every run
and every report), and :func:`overlaps` links findings that share images (a cluster that repeats
a bridge's members), so reports can say so instead of listing them twice unexplained.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

# 1.1 (additive): n_skipped/skipped, notes, input (the reader's summary), finding ids and
# overlaps, stored/new marking of --against scans; per-image bridge scores for every image
JSON_SCHEMA_VERSION = "1.1"


class Severity(str, Enum):
    """Ordered: info < warning < error. ``--fail-on warning`` fails on warning and error."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "error": 2}[self.value]


@dataclass(frozen=True)
class Member:
    """One image of a finding. ``index`` is its row in the scanned ImageSet, ``id`` its path
    relative to the scanned folder. ``alpha`` is the estimated position along a chain
    (0 = one endpoint, 1 = the other); ``role`` marks endpoints (``source``/``target``/``endpoint``)."""

    id: str
    index: int
    alpha: float | None = None
    role: str | None = None
    score: float | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "index": self.index}
        if self.alpha is not None:
            d["alpha"] = round(float(self.alpha), 6)
        if self.role is not None:
            d["role"] = self.role
        if self.score is not None:
            d["score"] = _finite(self.score)
        return d


@dataclass(frozen=True)
class Finding:
    """One reviewable unit: a chain, a cluster, a near-duplicate group, an attack instance.

    ``kind`` is the detector's registry name (``bridge``, ``cluster``, ``near_duplicate``,
    ``dynamics``); ``score`` orders findings of a kind (higher = more suspicious); ``members``
    are in review order (chain order for bridges); ``evidence`` is JSON-able detail."""

    kind: str
    severity: Severity
    score: float
    members: tuple[Member, ...]
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Stable id: ``KIND-`` and 10 hex digits of a SHA-1 of the sorted member ids."""
        return finding_key(self.kind, (m.id for m in self.members))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.key,
            "kind": self.kind,
            "severity": self.severity.value,
            "score": _finite(self.score),
            "summary": self.summary,
            "size": len(self.members),
            "members": [m.to_json() for m in self.members],
            "evidence": jsonable(self.evidence),
        }


@dataclass(frozen=True)
class AuditResult:
    """Everything a report needs: what was scanned, what was unreadable, what was found.

    ``scores`` maps a detector kind to a float array of length ``n_images`` (per-image score,
    higher = more suspicious, NaN where the detector has no opinion) for the CSV report."""

    tool: str  # "scan" or "dynamics"
    root: str  # the scanned folder or source, as the user gave it
    ids: tuple[str, ...]
    findings: tuple[Finding, ...]
    unreadable: tuple[Any, ...] = ()  # audit.data.Unreadable
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    skipped: tuple[Any, ...] = ()  # audit.data.Unreadable: entries passed over on purpose (hidden, links)
    notes: tuple[str, ...] = ()  # what the reader did to the input ("resized 12 of 300 images to 28×28")
    inputs: dict[str, Any] = field(default_factory=dict)  # the reader's summary (size/mode mix, working size)

    @property
    def n_images(self) -> int:
        return len(self.ids)

    def flagged(self, min_severity: Severity = Severity.WARNING) -> list[str]:
        """Sorted ids of every image in a finding at or above ``min_severity``."""
        out = {m.id for f in self.findings if f.severity.rank >= min_severity.rank for m in f.members}
        return sorted(out)

    def worst(self) -> Severity | None:
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=lambda s: s.rank)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "tool": self.tool,
            "root": self.root,
            "n_images": self.n_images,
            "n_unreadable": len(self.unreadable),
            "unreadable": [u.to_json() for u in self.unreadable],
            "n_skipped": len(self.skipped),
            "skipped": [u.to_json() for u in self.skipped],
            "notes": list(self.notes),
            "input": jsonable(self.inputs),
            "n_findings": len(self.findings),
            "counts": _counts(self.findings),
            "flagged": self.flagged(),
            "findings": [dict(f.to_json(), overlaps=links)
                         for f, links in zip(self.findings, _overlap_json(self.findings))],
            "params": jsonable(self.params),
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }


def finding_key(kind: str, member_ids) -> str:
    # surrogatepass: ids of non-UTF-8 file names hold lone surrogates (audit.report.json)
    text = "\n".join(sorted(member_ids)).encode("utf-8", "surrogatepass")
    digest = hashlib.sha1(kind.encode("utf-8", "surrogatepass") + b"\0" + text).hexdigest()
    return f"{kind}-{digest[:10]}"


def overlaps(findings: tuple[Finding, ...] | list[Finding]) -> list[list[tuple[int, int]]]:
    """For each finding, the other findings sharing images with it: ``(position, shared)`` pairs
    (positions in ``findings``), most shared first. One pass over the members."""
    where: dict[str, list[int]] = {}
    for i, f in enumerate(findings):
        for mid in {m.id for m in f.members}:
            where.setdefault(mid, []).append(i)
    out: list[list[tuple[int, int]]] = []
    for i, f in enumerate(findings):
        shared: Counter[int] = Counter()
        for mid in {m.id for m in f.members}:
            shared.update(j for j in where[mid] if j != i)
        out.append(sorted(shared.items(), key=lambda kv: (-kv[1], kv[0])))
    return out


def _overlap_json(findings: tuple[Finding, ...]) -> list[list[dict[str, Any]]]:
    keys = [f.key for f in findings]
    return [[{"id": keys[j], "kind": findings[j].kind, "shared": n} for j, n in links] for links in overlaps(findings)]


def _counts(findings: tuple[Finding, ...]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for f in findings:
        out.setdefault(f.kind, {}).setdefault(f.severity.value, 0)
        out[f.kind][f.severity.value] += 1
    return out


def _finite(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else round(x, 6)


def jsonable(obj: Any, *, exact: bool = False) -> Any:
    """``obj`` with numpy scalars and arrays as Python numbers and lists, tuples as lists, keys as
    strings, enums as their values: what ``json.dumps`` takes. Report values (the default) are
    rounded to 6 decimals with NaN/inf as None; ``exact`` keeps every float as it is (configs that
    must read back equal, e.g. a manifest's)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v, exact=exact) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, exact=exact) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), exact=exact)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if exact else _finite(float(obj))
    if isinstance(obj, Enum):
        return obj.value
    return obj
