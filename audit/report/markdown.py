"""Markdown step summary: what GitHub shows on a job's summary page when a step appends to the
file named by ``$GITHUB_STEP_SUMMARY`` (``--summary FILE`` writes the same text to a file).

Content: the verdict, counts per kind and severity, the top findings in words with their first
files, links between overlapping findings, the flagged files in a collapsed block to copy, and
where the full reports are. Bounded (``MAX_FINDINGS`` rows, ``MAX_PATHS`` paths) far below
GitHub's 1 MiB per step. Names are data: made printable, then every Markdown/HTML special
character backslash-escaped (``|`` cannot end a table cell, ``<`` cannot open a tag); file lists
sit in a fenced block whose fence is longer than any run of backticks inside it.
"""

from __future__ import annotations

import re
from typing import Sequence

from audit.findings import Severity
from audit.report.ci import gate_failed
from audit.report.context import ReportContext
from audit.report.explain import explain
from audit.report.text import printable

MAX_FINDINGS = 20
MAX_PATHS = 500
MAX_CELL = 300  # characters of a sentence in a table cell
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def md(text: object) -> str:
    """Printable, with Markdown's and HTML's special characters escaped (``&`` as ``&amp;``)."""
    return _SPECIAL.sub(r"\\\1", printable(text).replace("&", "&amp;"))


def step_summary(ctx: ReportContext, fail_on: str, *, reports: Sequence[str] = ()) -> str:
    result, scope = ctx.result, ctx.scope
    failed = gate_failed(result, fail_on)
    verdict = "**GATE FAILED**" if failed else "gate passed"
    where = md(scope.root or result.root)
    if scope.store is not None:
        where += f" against the store {md(scope.store)} ({scope.n_new or 0} new images)"
    flagged = ctx.flagged()
    out = [f"## audit {result.tool}: {where}", "",
           f"{verdict} (fail on: {fail_on}): {len(result.findings)} findings, {len(flagged)} images flagged "
           f"(warning and above) of {result.n_images} scanned; {len(result.unreadable)} unreadable.", ""]
    counts = result.to_json()["counts"]
    if counts:
        sevs = [s.value for s in sorted(Severity, key=lambda s: -s.rank)]
        out += ["| kind | " + " | ".join(sevs) + " |", "|---|" + "--:|" * len(sevs)]
        out += [f"| {md(k)} | " + " | ".join(str(row.get(s, 0)) for s in sevs) + " |" for k, row in counts.items()]
        out += ["", "| # | kind | severity | images | what | first files |", "|--:|---|---|--:|---|---|"]
        for f in ctx.order[:MAX_FINDINGS]:
            sentence = explain(f, ctx).sentence
            sentence = sentence if len(sentence) <= MAX_CELL else sentence[:MAX_CELL] + "…"
            links = "; ".join(text for text, _, _ in ctx.overlap_lines(f))
            what = md(sentence) + (f" ({md(links)})" if links else "")
            first = ", ".join(md(m.id) for m in f.members[:3]) + (" …" if len(f.members) > 3 else "")
            out.append(f"| {ctx.number[id(f)]} | {md(f.kind)} | {f.severity.value} | {len(f.members)} | {what} | {first} |")
        if len(ctx.order) > MAX_FINDINGS:
            out.append(f"\n{len(ctx.order) - MAX_FINDINGS} more findings in the full report.")
    else:
        out.append("No findings.")
    files, stored = ctx.paths(flagged)
    if files:
        out += ["", f"<details><summary>Flagged files ({len(files)}), relative to {md(scope.root or result.root)}"
                    "</summary>", "", *_fenced([printable(i) for i in files[:MAX_PATHS]])]
        if len(files) > MAX_PATHS:
            out.append(f"+{len(files) - MAX_PATHS} more in the JSON report.")
        out += ["", "</details>"]
    if stored:
        out += ["", f"{len(stored)} flagged images are stored images already in {md(scope.store)}."]
    if reports:
        out += ["", "Full reports: " + ", ".join(md(r) for r in reports) + " (keep them as job artifacts)."]
    return "\n".join(out) + "\n\n"


def _fenced(lines: list[str]) -> list[str]:
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", *lines, fence]
