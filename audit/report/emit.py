"""Report emission for every gated command (``audit scan``, ``audit dynamics``): the CLIs parse
their options into a :class:`ReportRequest` and call :func:`emit` once; nothing else writes a
report or prints a summary.

What :func:`emit` does, in order: builds the shared :class:`~audit.report.context.ReportContext`
(review order, stable ids, overlaps, stored/new, class names) once; writes the requested files
(``--json``, ``--html``, ``--csv``, ``--summary``) atomically, and appends the Markdown step
summary to ``$GITHUB_STEP_SUMMARY`` when GitHub Actions sets it; prints the console summary
(stdout for ``--format text``, else stderr) and a ``wrote FILE`` line per file (stderr); prints
what ``--format`` asks for on stdout (``github`` annotations, ``json``, ``junit``, ``sarif``); and
returns the gate's exit code (0 passed, 1 failed). Every output path is checked beforehand by
the CLI with :meth:`ReportRequest.outputs` (``audit.outputs``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from audit.data.imageset import ImageSet
from audit.findings import AuditResult
from audit.report.ci import FailOn, OutputFormat, gate
from audit.report.context import ReportContext, Scope, build_context
from audit.report.text import printable

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


@dataclass(frozen=True)
class ReportRequest:
    """What the user asked for: the gate level, stdout's format, the report files."""

    fail_on: FailOn = FailOn.error
    output_format: OutputFormat = OutputFormat.text
    json_path: Path | None = None
    html_path: Path | None = None
    csv_path: Path | None = None
    summary_path: Path | None = None  # --summary FILE: the Markdown step summary
    top: int = 10
    quiet: bool = False

    @property
    def step_summary(self) -> Path | None:
        """``$GITHUB_STEP_SUMMARY`` when set (GitHub Actions), appended to like every step does."""
        value = os.environ.get(STEP_SUMMARY_ENV)
        return Path(value) if value else None

    def outputs(self) -> list:
        """The report files as ``audit.outputs.Output`` entries, for ``prepare_outputs``."""
        from audit.outputs import FILE, Output

        return [Output("--json", self.json_path, FILE), Output("--html", self.html_path, FILE),
                Output("--csv", self.csv_path, FILE), Output("--summary", self.summary_path, FILE),
                Output(f"${STEP_SUMMARY_ENV}", self.step_summary, FILE)]


@dataclass(frozen=True)
class ReportExtras:
    """What one command adds to the shared reports."""

    previews: ImageSet | None = None  # images for thumbnails, looked up by id
    labeled: ImageSet | None = None  # source images x' and class names
    class_names: tuple[str, ...] | None = None  # when there is no labeled set to take them from
    scope: Scope | None = None
    local_ids: frozenset[str] | None = None  # ids that are files under the scope's root (None: all)
    title: str | None = None
    kinds: Sequence[str] = ()  # detectors that ran (passing JUnit cases, SARIF rules)
    rules: Mapping[str, str] = field(default_factory=dict)  # kind -> one-line description (SARIF)
    html_figures: Mapping[str, bytes] | None = None
    finding_figures: Mapping[int, Mapping[str, bytes]] | None = None
    html_tables: Mapping[str, tuple] | None = None
    console_extra: Callable[[object], None] | None = None  # more console output after the summary
    messages: Sequence[str] = ()  # plain lines for stderr after the "wrote" lines


def emit(result: AuditResult, request: ReportRequest, extras: ReportExtras = ReportExtras()) -> int:
    """Write and print every requested output of ``result``; returns the gate's exit code."""
    from audit.report.csv import write_csv
    from audit.report.html import write_html
    from audit.report.json import dumps as json_dumps, write_json
    from audit.report.progress import console

    level = request.fail_on.value
    ctx = build_context(result, scope=extras.scope, labeled=extras.labeled, class_names=extras.class_names)
    code = gate(result, level)
    written: list[Path] = []
    if request.json_path is not None:
        written.append(write_json(result, request.json_path, fail_on=level, context=ctx))
    if request.html_path is not None:
        written.append(write_html(result, extras.previews, request.html_path, title=extras.title, fail_on=level,
                                  context=ctx, extra_figures=extras.html_figures,
                                  finding_figures=extras.finding_figures, tables=extras.html_tables))
    if request.csv_path is not None:
        written.append(write_csv(result, request.csv_path))
    reports = [str(p) for p in written if p.suffix.lower() in (".html", ".json")]
    if request.summary_path is not None or request.step_summary is not None:
        from audit.atomic import write_atomic
        from audit.report.markdown import step_summary

        text = step_summary(ctx, level, reports=reports)
        if request.summary_path is not None:
            written.append(write_atomic(request.summary_path, text))
        if request.step_summary is not None:  # GitHub's per-step file: every tool appends to it
            with open(request.step_summary, "a", encoding="utf-8") as fh:
                fh.write(text)

    fmt = request.output_format
    if not request.quiet:
        from audit.report.console import render_console

        where = console(stderr=fmt is not OutputFormat.text)
        render_console(result, where, top=request.top, fail_on=level, scope=ctx.scope)
        if extras.console_extra is not None:
            extras.console_extra(where)
        err = console(stderr=True)
        for path in written:
            err.print(f"wrote {printable(path)}", highlight=False, markup=False)
        for line in extras.messages:
            err.print(line, highlight=False, markup=False)
    out = _stdout(ctx, fmt, level, extras, reports)
    if out:
        import typer

        typer.echo(out, nl=False)
    return code


def _stdout(ctx: ReportContext, fmt: OutputFormat, level: str, extras: ReportExtras, reports: list[str]) -> str:
    """What ``--format`` puts on stdout (the text summary is printed by :func:`emit`)."""
    root = _file_root(ctx.scope)
    if fmt is OutputFormat.github:
        from audit.report.ci import github_annotations

        return github_annotations(ctx.result, file_root=root, local_ids=extras.local_ids, reports=reports)
    if fmt is OutputFormat.json:
        from audit.report.json import dumps

        return dumps(ctx.result, fail_on=level, context=ctx)
    if fmt is OutputFormat.junit:
        from audit.report.junit import junit_xml

        return junit_xml(ctx, level, kinds=list(extras.kinds))
    if fmt is OutputFormat.sarif:
        from audit.report.sarif import dumps

        container = ctx.scope.root if root is None and ctx.scope.root and Path(ctx.scope.root).is_file() else None
        return dumps(ctx, file_root=root, kinds=list(extras.kinds), rules=extras.rules, container=container)
    return ""


def _file_root(scope: Scope) -> str | None:
    """The folder member ids are relative to, when it is a folder (a scanned .npz has no files)."""
    if scope.root is None or not Path(scope.root).is_dir():
        return None
    return scope.root
