"""Reports: every view of an ``AuditResult`` (``audit scan`` and ``audit dynamics`` share them).

    write_json      versioned JSON document + CI gate block (json.py)
    write_html      one self-contained review page with thumbnails (html.py, thumbs.py)
    write_csv       one row per image, cleanlab-style columns (csv.py)
    render_console  rich terminal summary (console.py)
    gate, github_annotations   CI exit code and GitHub Actions annotations (ci.py)

    printable       data text made safe for every human-facing output (text.py)

Writers write files atomically or return strings; none prints or exits. Names are imported on
first use, so ``audit.report.text`` (which every CLI message uses) costs no rich or Pillow import.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "FAIL_ON_CHOICES": "ci", "gate": "ci", "gate_failed": "ci", "github_annotations": "ci",
    "render_console": "console", "write_csv": "csv", "render_html": "html", "write_html": "html",
    "json_document": "json", "write_json": "json", "printable": "text",
}
__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'audit.report' has no attribute {name!r}")
    return getattr(importlib.import_module(f"audit.report.{_WHERE[name]}"), name)
