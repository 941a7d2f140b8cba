"""JSON report: ``AuditResult.to_json()`` plus what a CI consumer needs (the gate verdict and the
generator), written atomically so a killed job never leaves a half-written report.

Document (schema ``audit.findings.JSON_SCHEMA_VERSION``): ``schema_version``, ``tool``, ``root``,
``n_images``, ``n_unreadable``, ``unreadable`` [{path, reason}], ``n_skipped``, ``skipped``
[{path, reason}] (entries passed over on purpose: hidden names, directory symlinks), ``notes``
[str], ``input`` {reader's summary}, ``n_findings``, ``counts`` {kind: {severity: n}}, ``flagged``
(sorted ids at warning or above), ``findings`` [{kind, severity, score, summary, size, members
[{id, index, alpha?, role?, score?}], evidence}], ``params``, ``timings_s``, and added here
``generator`` and ``gate`` {fail_on, failed, exit_code}. NaN/inf never appear (they become
null). Every finding has a stable ``id`` (``bridge-3f9a0c21d4``) and ``overlaps`` [{id, kind,
shared}]: the other findings that share images with it.

An ``--against`` report adds ``batch`` {root, n_images, n_new, n_already_stored}, ``store``
{path, n_images (stored before this batch)}, ``flagged_new`` and ``flagged_stored`` (the flagged
ids split by where they are), and ``stored`` (true/false) on every member.

Ids are exact, never escaped for display (the other reports show them escaped, see
``audit.report.text``). The file is ASCII: every non-ASCII character is a ``\\uXXXX`` escape. An id
from a file name that is not valid UTF-8 holds the undecodable bytes as lone surrogates
U+DC80..U+DCFF (Python's ``surrogateescape``), written ``\\udc80``..``\\udcff``: Python's
``json.load`` gives the id back and ``os.fsencode(id)`` the original bytes (byte 0xff is
``\\udcff``). Parsers that refuse lone surrogates (e.g. Rust's serde_json into a ``String``) need
a lossless mode for those ids; files with valid UTF-8 names never contain one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from audit.findings import AuditResult
from audit.atomic import write_atomic
from audit.report.ci import gate_json
from audit.report.context import ReportContext


def json_document(result: AuditResult, *, fail_on: str = "error", context: ReportContext | None = None) -> dict[str, Any]:
    from audit import __version__

    doc = result.to_json()
    doc["generator"] = f"ssl-poison-audit {__version__}"
    doc["gate"] = gate_json(result, fail_on)
    scope = None if context is None else context.scope
    if scope is not None and scope.new_ids is not None:
        new = scope.new_ids
        n_batch = scope.n_batch if scope.n_batch is not None else len(new)
        doc["batch"] = {"root": scope.root, "n_images": n_batch, "n_new": len(new),
                        "n_already_stored": n_batch - len(new)}
        doc["store"] = {"path": scope.store, "n_images": result.n_images - len(new)}
        doc["flagged_new"] = [i for i in doc["flagged"] if i in new]
        doc["flagged_stored"] = [i for i in doc["flagged"] if i not in new]
        for f in doc["findings"]:
            for m in f["members"]:
                m["stored"] = m["id"] not in new
    return doc


def dumps(result: AuditResult, *, fail_on: str = "error", context: ReportContext | None = None) -> str:
    """The JSON report as text (what ``--format json`` prints); ends with a newline."""
    return json.dumps(json_document(result, fail_on=fail_on, context=context), indent=2, allow_nan=False) + "\n"


def write_json(result: AuditResult, path: str | Path, *, fail_on: str = "error",
               context: ReportContext | None = None) -> Path:
    """Write the JSON report to ``path`` atomically; returns the path written."""
    return write_atomic(path, dumps(result, fail_on=fail_on, context=context))
