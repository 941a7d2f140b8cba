"""Reports: every view of an ``AuditResult`` (``audit scan`` and ``audit dynamics`` share them).

    write_json      versioned JSON document + CI gate block (json.py)
    write_html      one self-contained review page with thumbnails (html.py, thumbs.py)
    write_csv       one row per image, cleanlab-style columns (csv.py)
    render_console  rich terminal summary (console.py)
    gate, github_annotations   CI exit code and GitHub Actions annotations (ci.py)

Writers write files atomically or return strings; none prints or exits.
"""

from __future__ import annotations

from audit.report.ci import FAIL_ON_CHOICES, gate, gate_failed, github_annotations
from audit.report.console import render_console
from audit.report.csv import write_csv
from audit.report.html import render_html, write_html
from audit.report.json import json_document, write_json

__all__ = [
    "FAIL_ON_CHOICES", "gate", "gate_failed", "github_annotations", "render_console",
    "write_csv", "render_html", "write_html", "json_document", "write_json",
]
