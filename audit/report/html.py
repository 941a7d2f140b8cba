"""HTML report: one self-contained page for a human reviewer (paper 5.2: "filter out a small
subset of the examples to have reviewed by a human").

Self-contained: thumbnails and figures are base64 PNG data URIs, CSS is inline, there is no
script and no external URL, so the file can be attached to a CI run and opened offline. Every
piece of text that comes from the data (file names, summaries, evidence, reasons) is made
printable (``audit.report.text``: control and bidi characters, and the bytes of non-UTF-8 names,
as visible escapes such as ``\\u202e`` and ``\\udcff``) and then goes through ``html.escape``:
scraped file names are attacker-controlled.

Layout: header with counts, the gate verdict, the reader's notes and input summary; optional
figures (the ``extra_figures`` hook, e.g. the dynamics report's histogram and heatmaps); findings at warning and above, most severe
first, each a strip of thumbnails in member order (chain order for bridges) with α and endpoint
badges under each image, then summary and evidence; info findings (near-duplicate groups)
collapsed in ``<details>`` lower down; unreadable files, then entries skipped on purpose (hidden
names, directory symlinks), last.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Mapping

from audit.data.imageset import ImageSet
from audit.findings import AuditResult, Finding, Severity
from audit.atomic import write_atomic
from audit.report.ci import gate_failed, ranked
from audit.report.text import printable
from audit.report.thumbs import data_uri, thumbnail_png

MAX_FINDINGS = 50  # per section; the JSON/CSV keep everything, the page stays a few MB at most
MAX_THUMBS = 60  # per finding, then "+N more"
MAX_UNREADABLE = 200
MAX_EVIDENCE_CHARS = 400

Figures = Mapping[str, bytes]  # caption -> PNG bytes

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{margin:.2em 0}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
.meta span{margin-right:1.4em}.counts td,.counts th{padding:2px 10px;border:1px solid #ddd}
.verdict{display:inline-block;padding:3px 10px;border-radius:4px;color:#fff;font-weight:600}
.pass{background:#2e7d32}.fail{background:#c62828}
.finding{background:#fff;border:1px solid #ddd;border-left:6px solid #999;margin:1em 0;padding:.6em 1em}
.sev-error{border-left-color:#c62828}.sev-warning{border-left-color:#ef6c00}.sev-info{border-left-color:#78909c}
.strip{display:flex;flex-wrap:wrap;gap:6px;margin:.5em 0}
.thumb{margin:0;text-align:center;width:92px;font-size:11px}
.thumb img{image-rendering:pixelated;border:3px solid transparent;max-width:88px}
.thumb .id{display:block;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;color:#555}
.role-source img{border-color:#1565c0}.role-target img{border-color:#c62828}.role-endpoint img{border-color:#6a1b9a}
.badge{display:inline-block;padding:0 5px;border-radius:3px;color:#fff;font-size:10px;text-transform:uppercase}
.b-source{background:#1565c0}.b-target{background:#c62828}.b-endpoint{background:#6a1b9a}.b-other{background:#555}
.b-error{background:#c62828}.b-warning{background:#ef6c00}.b-info{background:#78909c}
.nopreview{width:84px;height:84px;display:flex;align-items:center;justify-content:center;background:#eee;color:#888}
dl.evidence{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:12px}
dl.evidence dt{font-weight:600}dl.evidence dd{margin:0;font-family:monospace;word-break:break-all}
.more{color:#666;font-style:italic}figure.fig img{max-width:100%}
"""


def render_html(
    result: AuditResult,
    images: ImageSet | None = None,
    *,
    title: str | None = None,
    fail_on: str | None = None,
    extra_figures: Figures | None = None,
    finding_figures: Mapping[int, Figures] | None = None,
    max_findings: int = MAX_FINDINGS,
    max_thumbs: int = MAX_THUMBS,
) -> str:
    """The report page as a string.

    ``images`` supplies thumbnails; members are looked up by id, so members missing from it
    (e.g. images of a stored index) get a "no preview" box. ``extra_figures`` are page-level PNGs
    (caption -> bytes) shown after the header; ``finding_figures`` maps a finding's position in
    ``result.findings`` to PNGs shown inside that finding."""
    page = _Page(images, max_thumbs)
    title = title or f"audit {result.tool}: {result.root}"
    out = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        _header(result, title, fail_on),
    ]
    if extra_figures:
        out.append("<h2>Figures</h2>")
        out.extend(_figure(caption, png) for caption, png in extra_figures.items())
    position = {id(f): i for i, f in enumerate(result.findings)}
    figs = finding_figures or {}
    major = ranked([f for f in result.findings if f.severity.rank >= Severity.WARNING.rank])
    minor = ranked([f for f in result.findings if f.severity.rank < Severity.WARNING.rank])
    out.append(f"<h2>Findings to review ({len(major)})</h2>")
    if not major:
        out.append("<p>No finding at warning or error severity.</p>")
    for rank, f in enumerate(major[:max_findings], 1):
        out.append(page.finding(rank, f, figs.get(position[id(f)], {})))
    out.append(_more(len(major) - max_findings, "findings"))
    if minor:
        kinds = ", ".join(sorted({f.kind for f in minor}))
        out.append(f"<h2>Lower-severity groups ({len(minor)})</h2>")
        out.append(f"<details><summary>Show {len(minor)} info findings ({_e(kinds)})</summary>")
        for rank, f in enumerate(minor[:max_findings], 1):
            out.append(page.finding(rank, f, figs.get(position[id(f)], {})))
        out.append(_more(len(minor) - max_findings, "findings") + "</details>")
    out.append(_entries("Unreadable files", result.unreadable, "files"))
    out.append(_entries("Skipped on purpose (not scanned)", result.skipped, "entries"))
    out.append("<footer><p class=\"more\">The JSON and CSV reports list every finding and image.</p></footer>")
    out.append("</body></html>\n")
    return "\n".join(out)


def write_html(
    result: AuditResult,
    images: ImageSet | None,
    path: str | Path,
    *,
    title: str | None = None,
    fail_on: str | None = None,
    extra_figures: Figures | None = None,
    finding_figures: Mapping[int, Figures] | None = None,
    max_findings: int = MAX_FINDINGS,
    max_thumbs: int = MAX_THUMBS,
) -> Path:
    """Write :func:`render_html` to ``path`` atomically; returns the path written."""
    page = render_html(result, images, title=title, fail_on=fail_on, extra_figures=extra_figures,
                       finding_figures=finding_figures, max_findings=max_findings, max_thumbs=max_thumbs)
    return write_atomic(path, page)


class _Page:
    """Renders findings, caching one thumbnail per image (an image may sit in several findings)."""

    def __init__(self, images: ImageSet | None, max_thumbs: int) -> None:
        self.images = images
        self.row = {} if images is None else {i: r for r, i in enumerate(images.ids)}
        self.max_thumbs = max_thumbs
        self.cache: dict[int, str] = {}

    def thumb_uri(self, member_id: str) -> str | None:
        r = self.row.get(member_id)
        if r is None:
            return None
        if r not in self.cache:
            self.cache[r] = data_uri(thumbnail_png(self.images.images[r]))  # type: ignore[union-attr]
        return self.cache[r]

    def finding(self, rank: int, f: Finding, figures: Figures) -> str:
        sev = f.severity.value
        head = (f"<h3>#{rank} {_e(f.kind)} <span class=\"badge b-{sev}\">{sev}</span> "
                f"&middot; {len(f.members)} images &middot; score {_num(f.score)}</h3>")
        parts = [f"<section class=\"finding sev-{sev}\">", head, f"<p>{_e(f.summary)}</p>", "<div class=\"strip\">"]
        parts.extend(self.member(m) for m in f.members[: self.max_thumbs])
        parts.append("</div>" + _more(len(f.members) - self.max_thumbs, "members not shown"))
        evidence = f.to_json()["evidence"]
        if evidence:
            parts.append("<dl class=\"evidence\">")
            for k, v in evidence.items():
                text = _short(v if isinstance(v, str) else json.dumps(v))
                parts.append(f"<dt>{_e(k)}</dt><dd>{_e(text)}</dd>")
            parts.append("</dl>")
        parts.extend(_figure(c, png) for c, png in figures.items())
        parts.append("</section>")
        return "\n".join(parts)

    def member(self, m) -> str:
        uri = self.thumb_uri(m.id)
        img = (f"<img src=\"{uri}\" alt=\"{_e(m.id)}\">" if uri
               else "<div class=\"nopreview\">no preview</div>")
        role = m.role or ""
        role_cls = role if role in ("source", "target", "endpoint") else "other"
        badge = f"<span class=\"badge b-{role_cls}\">{_e(role)}</span><br>" if role else ""
        alpha = f"α={m.alpha:.3f}<br>" if m.alpha is not None else ""
        cls = f"thumb role-{role_cls}" if role else "thumb"
        return (f"<figure class=\"{cls}\" title=\"{_e(m.id)}\">{img}<figcaption>{badge}{alpha}"
                f"<span class=\"id\">{_e(m.id)}</span></figcaption></figure>")


def _header(result: AuditResult, title: str, fail_on: str | None) -> str:
    flagged = len(result.flagged())
    meta = [
        ("scanned", _e(result.root)), ("images", str(result.n_images)),
        ("unreadable", str(len(result.unreadable))), ("skipped", str(len(result.skipped))),
        ("findings", str(len(result.findings))), ("flagged images (warning+)", str(flagged)),
    ]
    out = [f"<header><h1>{_e(title)}</h1><p class=\"meta\">"]
    out.extend(f"<span><b>{k}</b>: {v}</span>" for k, v in meta)
    out.append("</p>")
    if result.notes:
        out.append("<ul class=\"notes\">" + "".join(f"<li>{_e(n)}</li>" for n in result.notes) + "</ul>")
    if result.inputs:
        out.append("<dl class=\"evidence\">" + "".join(
            f"<dt>{_e(k)}</dt><dd>{_e(_short(v if isinstance(v, str) else json.dumps(v, default=str)))}</dd>"
            for k, v in result.inputs.items()) + "</dl>")
    if fail_on is not None:
        failed = gate_failed(result, fail_on)
        word, cls = ("GATE FAILED", "fail") if failed else ("GATE PASSED", "pass")
        out.append(f"<p><span class=\"verdict {cls}\">{word}</span> (fail on: {_e(fail_on)})</p>")
    counts = result.to_json()["counts"]
    if counts:
        sevs = [s.value for s in sorted(Severity, key=lambda s: -s.rank)]
        out.append("<table class=\"counts\"><tr><th>kind</th>" + "".join(f"<th>{s}</th>" for s in sevs) + "</tr>")
        for kind, row in counts.items():
            out.append(f"<tr><td>{_e(kind)}</td>" + "".join(f"<td>{row.get(s, 0)}</td>" for s in sevs) + "</tr>")
        out.append("</table>")
    out.append("</header>")
    return "\n".join(out)


def _entries(heading: str, entries, what: str) -> str:
    """A collapsed list of ``path: reason`` (unreadable or skipped entries); empty when none."""
    if not entries:
        return ""
    items = "".join(f"<li><code>{_e(u.path)}</code>: {_e(u.reason)}</li>" for u in entries[:MAX_UNREADABLE])
    return (f"<h2>{heading} ({len(entries)})</h2><details><summary>Show</summary><ul>{items}</ul>"
            + _more(len(entries) - MAX_UNREADABLE, what) + "</details>")


def _short(text: str) -> str:
    return text if len(text) <= MAX_EVIDENCE_CHARS else text[:MAX_EVIDENCE_CHARS] + "…"


def _figure(caption: str, png: bytes) -> str:
    return (f"<figure class=\"fig\"><img src=\"{data_uri(png)}\" alt=\"{_e(caption)}\">"
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _more(n: int, what: str) -> str:
    return f"<p class=\"more\">+{n} more {what} (see the JSON report)</p>" if n > 0 else ""


def _num(x: float) -> str:
    x = float(x)
    return "n/a" if x != x else f"{x:.4g}"


def _e(text: object) -> str:
    return html.escape(printable(text), quote=True)
