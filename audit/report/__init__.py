"""Reports: every view of an ``AuditResult`` (``audit scan`` and ``audit dynamics`` share them).

    emit            the one entry point of the CLIs: every requested output, the gate (emit.py)
    build_context   what all reports of a run share: order, ids, overlaps, stored/new (context.py)
    explain         each finding's evidence as a sentence and a small table (explain.py)
    write_json      versioned JSON document + CI gate block (json.py)
    write_html      one self-contained review page with thumbnails (html.py, thumbs.py)
    write_csv       one row per image, cleanlab-style columns (csv.py)
    render_console  rich terminal summary (console.py)
    gate, github_annotations, FailOn, OutputFormat   CI gate, options, annotations (ci.py)
    junit_xml, sarif_document, step_summary   JUnit XML, SARIF 2.1.0, Markdown step summary
    Progress, console   the one progress display and log-safe consoles (progress.py)

    printable       data text made safe for every human-facing output (text.py)

Writers write files atomically or return strings; none prints or exits. Names are imported on
first use, so ``audit.report.text`` (which every CLI message uses) costs no rich or Pillow import.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "FAIL_ON_CHOICES": "ci", "FailOn": "ci", "OutputFormat": "ci", "gate": "ci", "gate_failed": "ci",
    "github_annotations": "ci", "render_console": "console", "write_csv": "csv", "render_html": "html",
    "write_html": "html", "json_document": "json", "write_json": "json", "printable": "text",
    "ReportRequest": "emit", "ReportExtras": "emit", "emit": "emit", "build_context": "context",
    "Scope": "context", "explain": "explain", "junit_xml": "junit", "sarif_document": "sarif",
    "step_summary": "markdown", "Progress": "progress", "console": "progress",
}
__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'audit.report' has no attribute {name!r}")
    return getattr(importlib.import_module(f"audit.report.{_WHERE[name]}"), name)
