"""SARIF 2.1.0 (``--format sarif``): the format GitHub code scanning reads
(``github/codeql-action/upload-sarif``), validated in the tests against the OASIS schema.

One run; one rule per finding kind that ran or was found (``ruleId`` = the kind: ``bridge``,
``path``, ``cluster``, ``near_duplicate``, ``dynamics``); one result per finding with ``level``
from its severity (error -> ``error``, warning -> ``warning``, info -> ``note``), the message in
words (``audit.report.explain``), and the member files as locations relative to the repository:
``file_root`` (the scanned folder as given on the command line, which in CI is relative to the
checkout) joined with each member id, percent-encoded as a URI reference (``%20`` for a space,
the exact bytes of a non-UTF-8 name). The first member in the batch is the result's location
(code scanning shows one per alert); the others are ``relatedLocations``. Stored images of an
``--against`` scan are not files of the repository: they are named in the result's
``properties`` only. ``partialFingerprints`` carries the finding's stable id, so the same
finding on the same images is one alert across runs, not a new one per run.
"""

from __future__ import annotations

import json
import os
import posixpath
from typing import Any, Mapping
from urllib.parse import quote

from audit.findings import Severity
from audit.report.context import ReportContext
from audit.report.explain import explain
from audit.report.text import printable

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
MAX_RELATED = 100  # related locations per result; every member is in properties.members
MAX_MEMBERS = 1000  # ids in a result's properties
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def sarif_document(ctx: ReportContext, *, file_root: str | None, kinds: list[str] | None = None,
                   rules: Mapping[str, str] | None = None, container: str | None = None) -> dict[str, Any]:
    """The SARIF log as a dict. ``rules`` maps a kind to its one-line description (the
    detector registry's); ``kinds`` are the detectors that ran (each gets a rule). ``container``:
    the scanned file when the images are not files of their own (an .npz, an IDX pair): every
    result is located at it (code scanning wants a location per result)."""
    from audit import __version__

    result = ctx.result
    names = list(dict.fromkeys([*(kinds or []), *(f.kind for f in ctx.order)]))
    severity = {}
    for f in ctx.order:
        severity.setdefault(f.kind, f.severity)
    rule_list = []
    for kind in names:
        text = printable((rules or {}).get(kind) or f"{kind} findings of audit {result.tool}")
        rule: dict[str, Any] = {"id": kind, "name": "".join(p.title() for p in kind.replace("-", "_").split("_")),
                                "shortDescription": {"text": text}, "fullDescription": {"text": text},
                                "help": {"text": f"{text}. Review the images in the HTML report; see docs/ci.md."}}
        if kind in severity:
            rule["defaultConfiguration"] = {"level": _LEVEL[severity[kind]]}
        rule_list.append(rule)
    index = {kind: i for i, kind in enumerate(names)}
    results = [_result(ctx, f, index[f.kind], file_root, container) for f in ctx.order]
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "ssl-poison-audit", "version": __version__, "rules": rule_list}},
        "results": results,
        "columnKind": "unicodeCodePoints",
        "properties": {"tool": result.tool, "root": printable(result.root), "images": result.n_images,
                       "unreadable": [printable(u.path) for u in result.unreadable[:MAX_MEMBERS]]},
    }
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def dumps(ctx: ReportContext, **kw: Any) -> str:
    return json.dumps(sarif_document(ctx, **kw), indent=2, ensure_ascii=True) + "\n"


def _result(ctx: ReportContext, f, rule_index: int, file_root: str | None, container: str | None) -> dict[str, Any]:
    why = explain(f, ctx)
    links = "; ".join(text for text, _, _ in ctx.overlap_lines(f))
    message = f"{ctx.label(f)}: {why.sentence}" + (f" ({links}.)" if links else "")
    files, stored = ctx.paths([m.id for m in f.members])
    out: dict[str, Any] = {
        "ruleId": f.kind, "ruleIndex": rule_index, "level": _LEVEL[f.severity],
        "message": {"text": printable(message)},
        "partialFingerprints": {"auditFindingId/v1": ctx.key[id(f)]},
        "properties": {"findingId": ctx.key[id(f)], "severity": f.severity.value, "size": len(f.members),
                       "score": _finite(f.score), "members": [printable(i) for i in files[:MAX_MEMBERS]]},
    }
    if stored:
        out["properties"]["storedMembers"] = [printable(i) for i in stored[:MAX_MEMBERS]]
    if file_root is not None and files:
        locs = [_location(file_root, i, k) for k, i in enumerate(files[: MAX_RELATED + 1])]
        out["locations"] = [locs[0]]
        if len(locs) > 1:
            out["relatedLocations"] = locs[1:]
    elif container is not None:
        out["locations"] = [_location(posixpath.dirname(container.replace("\\", "/")) or ".",
                                      posixpath.basename(container.replace("\\", "/")), 0)]
    return out


def _location(root: str, rel: str, k: int) -> dict[str, Any]:
    path = posixpath.normpath(posixpath.join(root.replace("\\", "/"), rel))
    loc: dict[str, Any] = {"physicalLocation": {"artifactLocation": {"uri": _uri(path), "uriBaseId": "%SRCROOT%"}}}
    if k:
        loc["id"] = k
        loc["message"] = {"text": f"member {k + 1}"}
    return loc


def _uri(path: str) -> str:
    """A relative URI reference for a file path: each byte outside the unreserved set and '/'
    percent-encoded (non-UTF-8 names: their original bytes, via ``os.fsencode``)."""
    try:
        raw = os.fsencode(path)
    except UnicodeEncodeError:
        raw = path.encode("utf-8", "surrogatepass")
    return quote(raw, safe="/")


def _finite(x: float) -> float | None:
    x = float(x)
    return None if x != x or x in (float("inf"), float("-inf")) else round(x, 6)
