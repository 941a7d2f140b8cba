"""Terminal summary with rich: what was scanned, what could not be read, what the reader skipped
on purpose and noted, counts per kind and severity, the top findings, and the gate verdict.
Takes a ``rich.console.Console`` (the CLI passes one bound to stderr so ``--format json`` keeps
stdout machine-readable).

Text from the data goes through ``rich.text.Text`` (never markup) after
:func:`audit.report.text.printable` (control and bidi characters shown as escapes), so a file
named ``[red]x[/red]`` or ``\\x1b[2J...`` prints as itself and cannot clear the screen or forge a
line."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from audit.findings import AuditResult, Severity
from audit.report.ci import gate_failed, ranked
from audit.report.text import printable

_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}
SHOW_UNREADABLE = 3
SHOW_SKIPPED = 3
SHOW_NOTES = 5
SHOW_MEMBERS = 3
MAX_INPUT_CHARS = 240  # of the input summary line: the JSON report has it whole


def render_console(result: AuditResult, console: Console, *, top: int = 10, fail_on: str | None = None,
                   scope=None) -> None:
    """Print the summary. ``fail_on`` adds the gate verdict line; ``top`` caps the table rows;
    ``scope`` (``audit.report.context.Scope``) of an ``--against`` scan names the batch and the
    store apart.

    Text from the data is shown escaped (module doc)."""
    line = Text()
    line.append(f"audit {result.tool}: ", style="bold")
    skipped = f"{len(result.skipped)} skipped, " if result.skipped else ""
    flagged = result.flagged()
    if scope is not None and scope.store is not None and scope.new_ids is not None:
        new = scope.new_ids
        n_batch = scope.n_batch if scope.n_batch is not None else len(new)
        n_new_flagged = sum(1 for i in flagged if i in new)
        line.append(f"{printable(scope.root)} against {printable(scope.store)}")
        line.append(f"  {n_batch} batch images ({len(new)} new) scanned with {result.n_images - len(new)} stored, "
                    f"{len(result.unreadable)} unreadable, {skipped}{len(result.findings)} findings, "
                    f"{len(flagged)} images flagged (warning+: {n_new_flagged} new, {len(flagged) - n_new_flagged} stored)")
    else:
        line.append(printable(result.root))
        line.append(f"  {result.n_images} images scanned, {len(result.unreadable)} unreadable, {skipped}"
                    f"{len(result.findings)} findings, {len(flagged)} images flagged (warning+)")
    console.print(line)
    _entries(console, result.unreadable, "unreadable", "unreadable files", SHOW_UNREADABLE, "yellow")
    _entries(console, result.skipped, "skipped", "skipped entries (all in the JSON report)", SHOW_SKIPPED, "dim")
    for note in result.notes[:SHOW_NOTES]:
        console.print(Text(f"  note: {printable(note)}", style="dim"))
    if len(result.notes) > SHOW_NOTES:
        console.print(Text(f"  ... and {len(result.notes) - SHOW_NOTES} more notes", style="dim"))
    if result.inputs:
        console.print(Text(f"  input: {input_summary(result.inputs)}", style="dim"))

    counts = result.to_json()["counts"]
    if counts:
        sevs = [s.value for s in sorted(Severity, key=lambda s: -s.rank)]
        table = Table(title="Findings by kind and severity", title_justify="left")
        table.add_column("kind")
        for s in sevs:
            table.add_column(s, justify="right", style=_STYLE[s])
        for kind, row in counts.items():
            table.add_row(Text(printable(kind)), *(str(row.get(s, 0)) for s in sevs))
        console.print(table)

        best = ranked(result.findings)[:top]
        table = Table(title=f"Top {len(best)} of {len(result.findings)} findings", title_justify="left")
        for col, kw in (("#", {"justify": "right"}), ("kind", {}), ("severity", {}),
                        ("size", {"justify": "right"}), ("score", {"justify": "right"}),
                        ("summary", {"overflow": "fold"}), ("members", {"overflow": "fold"})):
            table.add_column(col, **kw)
        for i, f in enumerate(best, 1):
            shown = ", ".join(printable(m.id) for m in f.members[:SHOW_MEMBERS])
            if len(f.members) > SHOW_MEMBERS:
                shown += f" (+{len(f.members) - SHOW_MEMBERS})"
            score = float(f.score)
            table.add_row(str(i), Text(printable(f.kind)), Text(f.severity.value, style=_STYLE[f.severity.value]),
                          str(len(f.members)), "n/a" if score != score else f"{score:.3g}",
                          Text(printable(f.summary)), Text(shown))
        console.print(table)
    else:
        console.print("No findings.")

    if fail_on is not None:
        if gate_failed(result, fail_on):
            console.print(Text(f"GATE FAILED: findings at or above '{fail_on}' (exit 1)", style="bold red"))
        else:
            console.print(Text(f"gate passed (fail on: {fail_on})", style="bold green"))


def _entries(console: Console, entries, word: str, plural: str, show: int, style: str) -> None:
    """A few ``path: reason`` lines of unreadable or skipped entries, then how many more."""
    for u in entries[:show]:
        console.print(Text(f"  {word}: {printable(u.path)}: {printable(u.reason)}", style=style))
    if len(entries) > show:
        console.print(Text(f"  ... and {len(entries) - show} more {plural}", style=style))


def input_summary(inputs: dict) -> str:
    """The reader's summary on one line, ``key: value; ...``: zero and empty entries left out,
    nested dicts as ``k v, k v``, cut at MAX_INPUT_CHARS (the JSON report has it whole), data
    escaped."""
    parts = []
    for key, value in inputs.items():
        if value in (0, None, "", {}, []) and not isinstance(value, bool):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value))
        parts.append(f"{key}: {value}")
    text = "; ".join(parts)
    if len(text) > MAX_INPUT_CHARS:
        text = text[:MAX_INPUT_CHARS].rsplit(";", 1)[0] + "; … (all in the JSON report)"
    return printable(text)
