"""JSON report: ``AuditResult.to_json()`` plus what a CI consumer needs (the gate verdict and the
generator), written atomically so a killed job never leaves a half-written report.

Document (schema ``audit.findings.JSON_SCHEMA_VERSION``): ``schema_version``, ``tool``, ``root``,
``n_images``, ``n_unreadable``, ``unreadable`` [{path, reason}], ``n_skipped``, ``skipped``
[{path, reason}] (entries passed over on purpose: hidden names, directory symlinks), ``notes``
[str], ``input`` {reader's summary}, ``n_findings``, ``counts`` {kind: {severity: n}}, ``flagged``
(sorted ids at warning or above), ``findings`` [{kind, severity, score, summary, size, members
[{id, index, alpha?, role?, score?}], evidence}], ``params``, ``timings_s``, and added here
``generator`` and ``gate`` {fail_on, failed, exit_code}. NaN/inf never appear (they become
null).

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


def json_document(result: AuditResult, *, fail_on: str = "error") -> dict[str, Any]:
    from audit import __version__

    doc = result.to_json()
    doc["generator"] = f"ssl-poison-audit {__version__}"
    doc["gate"] = gate_json(result, fail_on)
    return doc


def dumps(result: AuditResult, *, fail_on: str = "error") -> str:
    """The JSON report as text (what ``--format json`` prints); ends with a newline."""
    return json.dumps(json_document(result, fail_on=fail_on), indent=2, allow_nan=False) + "\n"


def write_json(result: AuditResult, path: str | Path, *, fail_on: str = "error") -> Path:
    """Write the JSON report to ``path`` atomically; returns the path written."""
    return write_atomic(path, dumps(result, fail_on=fail_on))
