"""``report.html``: the bench report (``report.build``) as one self-contained page, for a reviewer
who opens a CI artifact: the same sections, paragraphs and tables as ``report.md``, every plot
embedded as a base64 PNG, inline CSS, no script and no external URL, so the file works when moved
alone.

The page pieces (shell and CSS, tables, figures, escaping) are the scan report's
(``audit.report.html``). Every piece of text goes through its ``escape`` (printable, then
``html.escape``): attack names, trial keys, datasets and error messages can hold anything.
"""

from __future__ import annotations

from typing import Mapping

from audit.report.html import escape, figure, grid, page
from redteam.bench.report import Code, Report, Table, Text, parts

_CSS = """
nav ol{columns:2;max-width:110ch;font-size:13px}p.intro,p.note{max-width:110ch}
.wide{overflow-x:auto}table.grid{font-size:13px}table.grid td{white-space:nowrap}
table.grid td:last-child{white-space:normal;overflow-wrap:anywhere;min-width:24ch}
"""


def text(value: Text) -> str:
    """Escaped HTML of a cell, heading or paragraph; :class:`Code` parts in ``<code>``."""
    return "".join(f"<code>{escape(p)}</code>" if isinstance(p, Code) else escape(p) for p in parts(value))


def render_html(report: Report, plots: Mapping[str, bytes]) -> str:
    """The page as a string; ``plots`` maps each plot's file name (its caption) to its PNG bytes."""
    body = [f"<header><h1>{escape(report.title)}</h1><p class=\"intro\">{text(report.intro)}</p></header>"]
    headings = [sec.heading for sec in report.sections] + (["Plots"] if plots else [])
    body.append("<nav><ol>" + "".join(f"<li><a href=\"#s{i}\">{text(h)}</a></li>" for i, h in enumerate(headings, 1))
                + "</ol></nav>")
    for i, sec in enumerate(report.sections, 1):
        body.append(f"<h2 id=\"s{i}\">{text(sec.heading)}</h2>")
        body.extend(f"<div class=\"wide\">{grid(b.header, b.rows, cell=text)}</div>" if isinstance(b, Table)
                    else f"<p class=\"note\">{text(b)}</p>" for b in sec.blocks)
    if plots:
        body.append(f"<h2 id=\"s{len(headings)}\">Plots</h2>")
        body.extend(figure(name, png) for name, png in plots.items())
    body.append("<footer><p class=\"more\">Every trial, in full: results.json and trials/&lt;key&gt;.json beside "
                "this report when it was written.</p></footer>")
    return page(report.title, body, _CSS)
