"""HTML report: one self-contained page for a human reviewer (paper 5.2: "filter out a small
subset of the examples to have reviewed by a human").

Self-contained: thumbnails and figures are base64 PNG data URIs, CSS is inline, there is no
script and no external URL, so the file can be attached to a CI run and opened offline. Every
piece of text that comes from the data (file names, summaries, evidence, reasons) is made
printable (``audit.report.text``: control and bidi characters, and the bytes of non-UTF-8 names,
as visible escapes such as ``\\u202e`` and ``\\udcff``) and then goes through ``html.escape``:
scraped file names are attacker-controlled.

Layout: header (what was scanned: for ``--against`` the batch and the store apart, counts, the
gate verdict, the reader's notes), the flagged files as a list to copy, optional figures and
tables (the dynamics report's histogram and remove-and-retrain table); then findings at warning
and above, most severe first, each with: its number and stable id (an anchor), a sentence and a
small table in words (``audit.report.explain``), links to findings sharing its images ("60 of 60
members also in bridge #1"), the labeled source image x' when known, a strip of thumbnails in
member order with α, role and (``--against``) stored/new badges, the full member table, its
files to copy, and the raw evidence folded away; info findings (near-duplicate groups) collapsed
in ``<details>``; unreadable files and entries skipped on purpose last.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Callable, Mapping, Sequence

from audit.atomic import write_atomic
from audit.data.imageset import ImageSet
from audit.findings import AuditResult, Finding, Severity
from audit.report.context import ReportContext, build_context
from audit.report.explain import explain, source_text
from audit.report.text import printable
from audit.report.thumbs import data_uri, thumbnail_png

MAX_FINDINGS = 50  # per section; the JSON/CSV keep everything, the page stays a few MB at most
MAX_THUMBS = 60  # per finding, then "+N more"
MAX_UNREADABLE = 200
MAX_EVIDENCE_CHARS = 400
MAX_MEMBER_ROWS = 2000  # per finding's member table

Figures = Mapping[str, bytes]  # caption -> PNG bytes
Table = tuple[Sequence[str], Sequence[Sequence[str]]]  # header, rows (plain text)

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa;max-width:1400px}
h1{margin:.2em 0;font-size:1.5em;overflow-wrap:anywhere}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
h3{margin:.2em 0}.meta span{margin-right:1.4em;display:inline-block}
table.grid{border-collapse:collapse;margin:.4em 0}table.grid td,table.grid th{padding:2px 10px;border:1px solid #ddd;text-align:left}
table.grid td.n{text-align:right}
.verdict{display:inline-block;padding:3px 10px;border-radius:4px;color:#fff;font-weight:600}
.pass{background:#2e7d32}.fail{background:#c62828}
.finding{background:#fff;border:1px solid #ddd;border-left:6px solid #999;margin:1em 0;padding:.6em 1em}
.sev-error{border-left-color:#c62828}.sev-warning{border-left-color:#ef6c00}.sev-info{border-left-color:#78909c}
.fid{color:#666;font-size:12px;margin:0}.lead{margin:.4em 0;max-width:90ch}
table.facts{border-collapse:collapse;font-size:13px;margin:.3em 0}
table.facts th{text-align:left;font-weight:600;padding:1px 14px 1px 0;color:#444}table.facts td{padding:1px 0;overflow-wrap:anywhere}
.links{background:#fff8e1;border:1px solid #ffe082;padding:3px 8px;margin:.4em 0;display:inline-block}
.strip{display:flex;flex-wrap:wrap;gap:6px;margin:.5em 0;align-items:flex-start}
.thumb{margin:0;text-align:center;width:92px;font-size:11px}
.thumb img{image-rendering:pixelated;border:3px solid transparent;max-width:88px}
.thumb .id{display:block;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;color:#555}
.role-source img{border-color:#1565c0}.role-target img{border-color:#c62828}.role-endpoint img{border-color:#6a1b9a}
.srcbox{border-right:2px dashed #1565c0;padding-right:8px;margin-right:4px}
.badge{display:inline-block;padding:0 5px;border-radius:3px;color:#fff;font-size:10px;text-transform:uppercase}
.b-source{background:#1565c0}.b-target{background:#c62828}.b-endpoint{background:#6a1b9a}.b-other{background:#555}
.b-error{background:#c62828}.b-warning{background:#ef6c00}.b-info{background:#78909c}
.b-new{background:#00897b}.b-stored{background:#8d6e63}
.nopreview{width:84px;height:84px;display:flex;align-items:center;justify-content:center;background:#eee;color:#888}
table.members{font-size:12px}table.members td{font-family:monospace;overflow-wrap:anywhere}
textarea.paths{width:100%;max-width:90ch;font:12px monospace;white-space:pre;overflow-wrap:normal}
details{margin:.3em 0}summary{cursor:pointer;color:#1a4f8b}pre.raw{font-size:11px;white-space:pre-wrap;overflow-wrap:anywhere;max-height:30em;overflow:auto;background:#f4f4f4;padding:6px}
dl.evidence{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:12px;color:#555}
dl.evidence dt{font-weight:600}dl.evidence dd{margin:0;font-family:monospace;overflow-wrap:anywhere}
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
    tables: Mapping[str, Table] | None = None,
    context: ReportContext | None = None,
    max_findings: int = MAX_FINDINGS,
    max_thumbs: int = MAX_THUMBS,
) -> str:
    """The report page as a string.

    ``images`` supplies thumbnails; members are looked up by id, so members missing from it
    (e.g. images of a stored index) get a "no preview" box. ``extra_figures`` are page-level PNGs
    (caption -> bytes) shown after the header, ``tables`` page-level tables (heading -> (header,
    rows)); ``finding_figures`` maps a finding's position in ``result.findings`` to PNGs shown
    inside that finding. ``context`` (``audit.report.context``) carries the scope, the labeled
    set and the links between findings; built here when not given."""
    ctx = context or build_context(result)
    pg = _Page(images, ctx, max_thumbs)
    title = title or f"audit {result.tool}: {result.root}"
    out = [
        _header(ctx, title, fail_on),
        _copy_block("Flagged files (warning and above)", ctx, ctx.flagged(), whole=True),
    ]
    if extra_figures:
        out.append("<h2>Figures</h2>")
        out.extend(figure(caption, png) for caption, png in extra_figures.items())
    for heading, (head, rows) in (tables or {}).items():
        out.append(f"<h2>{escape(heading)}</h2>" + grid(head, rows))
    position = {id(f): i for i, f in enumerate(result.findings)}
    figs = finding_figures or {}
    major = [f for f in ctx.order if f.severity.rank >= Severity.WARNING.rank]
    minor = [f for f in ctx.order if f.severity.rank < Severity.WARNING.rank]
    out.append(f"<h2>Findings to review ({len(major)})</h2>")
    if not major:
        out.append("<p>No finding at warning or error severity.</p>")
    for f in major[:max_findings]:
        out.append(pg.finding(f, figs.get(position[id(f)], {})))
    out.append(_more(len(major) - max_findings, "findings"))
    if minor:
        kinds = ", ".join(sorted({f.kind for f in minor}))
        out.append(f"<h2>Lower-severity groups ({len(minor)})</h2>")
        out.append(f"<details><summary>Show {len(minor)} info findings ({escape(kinds)})</summary>")
        for f in minor[:max_findings]:
            out.append(pg.finding(f, figs.get(position[id(f)], {})))
        out.append(_more(len(minor) - max_findings, "findings") + "</details>")
    out.append(_entries("Unreadable files", result.unreadable, "files"))
    out.append(_entries("Skipped on purpose (not scanned)", result.skipped, "entries"))
    out.append("<footer><p class=\"more\">The JSON and CSV reports list every finding and image.</p></footer>")
    return page(title, out)


def page(title: str, body: Sequence[str], css: str = "") -> str:
    """A whole self-contained page around ``body`` (HTML fragments, joined by newlines): the
    house CSS plus ``css``, no script. Shared with the other reports (``redteam bench``)."""
    return "\n".join(["<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
                      f"<title>{escape(title)}</title><style>{_CSS}{css}</style></head><body>", *body,
                      "</body></html>\n"])


def write_html(result: AuditResult, images: ImageSet | None, path: str | Path, **kw) -> Path:
    """Write :func:`render_html` (same keyword arguments) to ``path`` atomically; returns the path."""
    return write_atomic(path, render_html(result, images, **kw))


class _Page:
    """Renders findings, caching one thumbnail per image (an image may sit in several findings)."""

    def __init__(self, images: ImageSet | None, ctx: ReportContext, max_thumbs: int) -> None:
        self.images, self.ctx, self.max_thumbs = images, ctx, max_thumbs
        self.row = {} if images is None else {i: r for r, i in enumerate(images.ids)}
        lab = ctx.labeled
        self.lab_row = {} if lab is None else {i: r for r, i in enumerate(lab.ids)}
        self.cache: dict[tuple[str, int], str] = {}

    def thumb_uri(self, member_id: str, labeled: bool = False) -> str | None:
        table, imgs = (self.lab_row, self.ctx.labeled) if labeled else (self.row, self.images)
        r = table.get(member_id)
        if r is None or imgs is None:
            return None
        key = ("l" if labeled else "u", r)
        if key not in self.cache:
            self.cache[key] = data_uri(thumbnail_png(imgs.images[r]))
        return self.cache[key]

    def finding(self, f: Finding, figures: Figures) -> str:
        ctx, sev = self.ctx, f.severity.value
        why = explain(f, ctx)
        head = (f"<h3>#{ctx.number[id(f)]} {escape(f.kind)} <span class=\"badge b-{sev}\">{sev}</span> "
                f"&middot; {len(f.members)} images &middot; score {_num(f.score)}</h3>")
        parts = [f"<section class=\"finding sev-{sev}\" id=\"{escape(ctx.anchor(f))}\">", head,
                 f"<p class=\"fid\">finding id <code>{escape(ctx.key[id(f)])}</code></p>",
                 f"<p class=\"lead\">{escape(why.sentence)}</p>"]
        if why.rows:
            parts.append("<table class=\"facts\">" + "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>"
                                                             for k, v in why.rows) + "</table>")
        links = ctx.overlap_lines(f)
        if links:
            parts.append("<p class=\"links\">Shares images with: " + "; ".join(
                f"<a href=\"#{escape(ctx.anchor(o))}\">{escape(text)}</a>" for text, o, _ in links) + "</p>")
        strip = self.strip(f)
        inside = next((o for text, o, n in links if n == len({m.id for m in f.members})
                       and ctx.number[id(o)] < ctx.number[id(f)]), None)
        if inside is not None:  # every image already shown higher up: fold the repeat away
            strip = (f"<details><summary>Thumbnails (the same images as {escape(ctx.label(inside))})</summary>"
                     f"{strip}</details>")
        parts.append(strip)
        parts.append(self.members_table(f, why.member_columns))
        parts.append(_copy_block(f"Files of {ctx.label(f)}", ctx, [m.id for m in f.members]))
        raw = json.dumps({"summary": f.summary, **f.to_json()["evidence"]}, indent=1, ensure_ascii=False)
        parts.append(f"<details><summary>Raw evidence (as in the JSON report)</summary><pre class=\"raw\">{escape(raw)}</pre></details>")
        parts.extend(figure(c, png) for c, png in figures.items())
        parts.append("</section>")
        return "\n".join(parts)

    def strip(self, f: Finding) -> str:
        """Thumbnails in member order; past ``max_thumbs`` the last member (a chain's far end,
        x*) is still shown, after a gap that counts the hidden ones."""
        shown = list(f.members)
        gap = ""
        if len(shown) > self.max_thumbs:
            hidden = len(shown) - self.max_thumbs
            gap = f"<div class=\"nopreview\">+{hidden} more</div>"
            shown = shown[: self.max_thumbs - 1]
            last = self.member(f.members[-1])
        html_ = "<div class=\"strip\">" + self.source(f) + "".join(self.member(m) for m in shown)
        if gap:
            html_ += gap + last
        return html_ + "</div>" + _more(len(f.members) - self.max_thumbs, "members not shown (all in the table below)")

    def source(self, f: Finding) -> str:
        """The labeled source image x' (not an image of the pool), left of the strip."""
        src = f.evidence.get("source_labeled_id")
        if src is None:
            return ""
        uri = self.thumb_uri(str(src), labeled=True)
        img = f"<img src=\"{uri}\" alt=\"{escape(src)}\">" if uri else "<div class=\"nopreview\">not loaded</div>"
        text = source_text(f, self.ctx) or str(src)
        return (f"<figure class=\"thumb role-source srcbox\" title=\"{escape(text)}\">{img}<figcaption>"
                f"<span class=\"badge b-source\">labeled x'</span><br><span class=\"id\">{escape(src)}</span>"
                f"</figcaption></figure>")

    def member(self, m) -> str:
        uri = self.thumb_uri(m.id)
        img = (f"<img src=\"{uri}\" alt=\"{escape(m.id)}\">" if uri
               else "<div class=\"nopreview\">no preview</div>")
        role = m.role or ""
        role_cls = role if role in ("source", "target", "endpoint") else "other"
        badge = f"<span class=\"badge b-{role_cls}\">{escape(role)}</span><br>" if role else ""
        badge += _where(self.ctx.stored(m.id))
        alpha = f"α={m.alpha:.3f}<br>" if m.alpha is not None else ""
        cls = f"thumb role-{role_cls}" if role else "thumb"
        return (f"<figure class=\"{cls}\" title=\"{escape(m.id)}\">{img}<figcaption>{badge}{alpha}"
                f"<span class=\"id\">{escape(m.id)}</span></figcaption></figure>")

    def members_table(self, f: Finding, extra: Mapping[str, Mapping[str, str]]) -> str:
        against = self.ctx.scope.new_ids is not None
        head = ["#", "id (path relative to the scanned folder)", "α", "role"] + (["in"] if against else []) \
            + ["score"] + list(extra)
        rows = []
        for k, m in enumerate(f.members[:MAX_MEMBER_ROWS], 1):
            row = [str(k), m.id, "" if m.alpha is None else f"{m.alpha:.3f}", m.role or ""]
            if against:
                row.append("store" if self.ctx.stored(m.id) else "batch (new)")
            row.append("" if m.score is None else _num(m.score))
            row.extend(col.get(m.id, "") for col in extra.values())
            rows.append(row)
        more = _more(len(f.members) - MAX_MEMBER_ROWS, "members")
        return (f"<details><summary>All {len(f.members)} members, full ids</summary>"
                + grid(head, rows, cls="grid members") + more + "</details>")


def _where(stored: bool | None) -> str:
    if stored is None:
        return ""
    return "<span class=\"badge b-stored\">stored</span><br>" if stored else "<span class=\"badge b-new\">new</span><br>"


def _header(ctx: ReportContext, title: str, fail_on: str | None) -> str:
    result, scope = ctx.result, ctx.scope
    flagged = ctx.flagged()
    if scope.store is not None:
        n_new = scope.n_new or 0
        n_batch = scope.n_batch if scope.n_batch is not None else n_new
        meta = [("batch", f"{escape(scope.root)} ({n_batch} images: {n_new} new, {n_batch - n_new} already stored)"),
                ("store", f"{escape(scope.store)} ({result.n_images - n_new} stored images)"),
                ("scanned together", f"{result.n_images} images")]
        new_flagged = sum(1 for i in flagged if not ctx.stored(i))
        flag = f"{len(flagged)} ({new_flagged} new, {len(flagged) - new_flagged} stored)"
    else:
        meta = [("scanned", escape(scope.root if scope.root is not None else result.root)),
                ("images", str(result.n_images))]
        flag = str(len(flagged))
    meta += [("unreadable", str(len(result.unreadable))), ("skipped", str(len(result.skipped))),
             ("findings", str(len(result.findings))), ("flagged images (warning+)", flag)]
    out = [f"<header><h1>{escape(title)}</h1><p class=\"meta\">"]
    out.extend(f"<span><b>{k}</b>: {v}</span>" for k, v in meta)
    out.append("</p>")
    if fail_on is not None:
        from audit.report.ci import gate_failed

        failed = gate_failed(result, fail_on)
        word, cls = ("GATE FAILED", "fail") if failed else ("GATE PASSED", "pass")
        out.append(f"<p><span class=\"verdict {cls}\">{word}</span> (fail on: {escape(fail_on)})</p>")
    if result.notes:
        out.append("<ul class=\"notes\">" + "".join(f"<li>{escape(n)}</li>" for n in result.notes) + "</ul>")
    if result.inputs:
        out.append("<details><summary>What the reader met (sizes, modes, conversions)</summary><dl class=\"evidence\">" + "".join(
            f"<dt>{escape(k)}</dt><dd>{escape(_short(v if isinstance(v, str) else json.dumps(v, default=str)))}</dd>"
            for k, v in result.inputs.items()) + "</dl></details>")
    counts = result.to_json()["counts"]
    if counts:
        sevs = [s.value for s in sorted(Severity, key=lambda s: -s.rank)]
        out.append(grid(["kind", *sevs], [[k, *(str(row.get(s, 0)) for s in sevs)] for k, row in counts.items()]))
    out.append("</header>")
    return "\n".join(out)


def _copy_block(heading: str, ctx: ReportContext, ids: Sequence[str], *, whole: bool = False) -> str:
    """The files as paths relative to the scanned folder, one per line, to copy into a shell (a
    <textarea>: selectable, no script). Stored images of an --against scan are listed apart."""
    files, stored = ctx.paths(ids)
    if not files and not stored:
        return ""
    parts = []
    escaped = sum(1 for i in files if printable(i) != i)
    note = (f" {escaped} names hold control or non-UTF-8 characters and are shown escaped; the JSON report has "
            "them exactly." if escaped else "")
    root = ctx.scope.root
    where = f"relative to {escape(root)}" if root else "relative to the scanned folder"
    if files:
        rows = min(max(len(files), 2), 12)
        parts.append(f"<p class=\"more\">{len(files)} files, {where}, one per line.{escape(note)}</p>"
                     f"<textarea class=\"paths\" readonly rows=\"{rows}\">{_lines(files)}</textarea>")
    if stored:
        parts.append(f"<p class=\"more\">Stored images already in {escape(ctx.scope.store)}, not files of this batch "
                     f"({len(stored)}):</p><textarea class=\"paths\" readonly rows=\"{min(max(len(stored), 2), 6)}\">"
                     f"{_lines(stored)}</textarea>")
    if whole:
        return f"<h2>{escape(heading)} ({len(files) + len(stored)})</h2>" + "".join(parts)
    return f"<details><summary>Copy paths ({len(files) + len(stored)})</summary>{''.join(parts)}</details>"


def _lines(ids: Sequence[str]) -> str:
    """One escaped name per line (each escaped on its own: a newline in a name stays ``\\x0a``)."""
    return "\n".join(escape(i) for i in ids)


def grid(head: Sequence[str], rows: Sequence[Sequence[object]], cls: str = "grid",
         cell: Callable[[object], str] | None = None) -> str:
    """A table; every cell goes through ``cell`` (default :func:`escape`), which must return safe HTML."""
    cell = cell or escape
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class=\"{cls}\"><tr>" + "".join(f"<th>{cell(h)}</th>" for h in head) + f"</tr>{body}</table>"


def _entries(heading: str, entries, what: str) -> str:
    """A collapsed list of ``path: reason`` (unreadable or skipped entries); empty when none."""
    if not entries:
        return ""
    items = "".join(f"<li><code>{escape(u.path)}</code>: {escape(u.reason)}</li>" for u in entries[:MAX_UNREADABLE])
    return (f"<h2>{heading} ({len(entries)})</h2><details><summary>Show</summary><ul>{items}</ul>"
            + _more(len(entries) - MAX_UNREADABLE, what) + "</details>")


def _short(text: str) -> str:
    return text if len(text) <= MAX_EVIDENCE_CHARS else text[:MAX_EVIDENCE_CHARS] + "…"


def figure(caption: str, png: bytes) -> str:
    return (f"<figure class=\"fig\"><img src=\"{data_uri(png)}\" alt=\"{escape(caption)}\">"
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _more(n: int, what: str) -> str:
    return f"<p class=\"more\">+{n} more {what} (see the JSON report)</p>" if n > 0 else ""


def _num(x: float) -> str:
    x = float(x)
    return "n/a" if x != x else f"{x:.4g}"


def escape(text: object) -> str:
    """Data as HTML text: made printable (``audit.report.text``), then ``html.escape``d, quotes included."""
    return html.escape(printable(text), quote=True)


