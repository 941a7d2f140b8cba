"""Terminal summary with rich: what was scanned, what could not be read, counts per kind and
severity, the top findings, and the gate verdict. Takes a ``rich.console.Console`` (the CLI
passes one bound to stderr so ``--format json`` keeps stdout machine-readable)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from audit.findings import AuditResult, Severity
from audit.report.ci import gate_failed, ranked

_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}
SHOW_UNREADABLE = 3
SHOW_MEMBERS = 3


def render_console(result: AuditResult, console: Console, *, top: int = 10, fail_on: str | None = None) -> None:
    """Print the summary. ``fail_on`` adds the gate verdict line; ``top`` caps the table rows.

    Text from the data goes through ``rich.text.Text`` (never markup), so a file named
    ``[red]x[/red]`` prints as itself."""
    line = Text()
    line.append(f"audit {result.tool}: ", style="bold")
    line.append(str(result.root))
    line.append(f"  {result.n_images} images scanned, {len(result.unreadable)} unreadable, "
                f"{len(result.findings)} findings, {len(result.flagged())} images flagged (warning+)")
    console.print(line)
    for u in result.unreadable[:SHOW_UNREADABLE]:
        console.print(Text(f"  unreadable: {u.path}: {u.reason}", style="yellow"))
    if len(result.unreadable) > SHOW_UNREADABLE:
        console.print(Text(f"  ... and {len(result.unreadable) - SHOW_UNREADABLE} more unreadable files", style="yellow"))

    counts = result.to_json()["counts"]
    if counts:
        sevs = [s.value for s in sorted(Severity, key=lambda s: -s.rank)]
        table = Table(title="Findings by kind and severity", title_justify="left")
        table.add_column("kind")
        for s in sevs:
            table.add_column(s, justify="right", style=_STYLE[s])
        for kind, row in counts.items():
            table.add_row(Text(kind), *(str(row.get(s, 0)) for s in sevs))
        console.print(table)

        best = ranked(result.findings)[:top]
        table = Table(title=f"Top {len(best)} of {len(result.findings)} findings", title_justify="left")
        for col, kw in (("#", {"justify": "right"}), ("kind", {}), ("severity", {}),
                        ("size", {"justify": "right"}), ("score", {"justify": "right"}),
                        ("summary", {"overflow": "fold"}), ("members", {"overflow": "fold"})):
            table.add_column(col, **kw)
        for i, f in enumerate(best, 1):
            shown = ", ".join(m.id for m in f.members[:SHOW_MEMBERS])
            if len(f.members) > SHOW_MEMBERS:
                shown += f" (+{len(f.members) - SHOW_MEMBERS})"
            score = float(f.score)
            table.add_row(str(i), Text(f.kind), Text(f.severity.value, style=_STYLE[f.severity.value]),
                          str(len(f.members)), "n/a" if score != score else f"{score:.3g}",
                          Text(f.summary), Text(shown))
        console.print(table)
    else:
        console.print("No findings.")

    if fail_on is not None:
        if gate_failed(result, fail_on):
            console.print(Text(f"GATE FAILED: findings at or above '{fail_on}' (exit 1)", style="bold red"))
        else:
            console.print(Text(f"gate passed (fail on: {fail_on})", style="bold green"))
