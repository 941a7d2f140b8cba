"""Rich console summary: counts, unreadable reasons, top findings, gate verdict, no markup injection."""

from __future__ import annotations

import io

from rich.console import Console

from audit.report import render_console


def _render(result, **kw) -> str:
    buf = io.StringIO()
    render_console(result, Console(file=buf, width=200, color_system=None), **kw)
    return buf.getvalue()


def test_console_summary_and_verdict(case, result):
    out = _render(result, fail_on="error")
    assert "10 images scanned, 1 unreadable, 3 findings, 7 images flagged" in out
    assert "unreadable: broken, file.png: truncated" in out
    assert "bridge" in out and "near_duplicate" in out
    assert "5 images interpolate between a/0.png and a/4.png" in out
    assert "a/0.png, a/1.png, a/2.png (+2)" in out
    assert case.SCRIPT in out  # printed literally, not parsed as markup
    assert "GATE FAILED" in out
    assert out.index("bridge  ") < out.index("5 images interpolate")


def test_console_top_and_pass(case, result):
    out = _render(result, top=1, fail_on="never")
    assert "Top 1 of 3 findings" in out and "gate passed" in out
    empty = _render(case.with_findings(result), fail_on="error")
    assert "No findings." in empty and "gate passed" in empty
