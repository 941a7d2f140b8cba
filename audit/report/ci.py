"""CI integration: the option enums every gated command shares, the exit-code gate, and GitHub
Actions annotations.

Gate: ``--fail-on never|warning|error`` fails (exit 1) when any finding is at or above that
severity. Unreadable files never fail the gate on their own (they are reported, and a folder with
nothing readable is an error, exit 2, raised by the reader).

Annotations use GitHub's workflow-command format, ``::error file=F,title=T::message``, with
GitHub's escaping: in the message ``%``, ``\\r``, ``\\n`` become ``%25``, ``%0D``, ``%0A``; in
property values additionally ``:`` -> ``%3A`` and ``,`` -> ``%2C``. Scraped file names are hostile
input: every piece of text from the data is first made printable (``audit.report.text``: control
characters, ANSI sequences and bidi overrides become visible escapes such as ``\\x1b``, which GitHub's
log would otherwise render), then goes through these escapes.

GitHub shows at most 10 annotations of each level (error, warning, notice) per step and drops the
rest, so at most ``PER_LEVEL`` of each are printed, most severe and highest-scored first; what was
left out is counted in one last ``::notice`` that says where the full list is (that notice's slot
is reserved, so it is always shown). What the reader skipped on purpose (hidden entries,
directory symlinks) is counted in one notice, with a few examples.
"""

from __future__ import annotations

import posixpath
from enum import Enum
from typing import Collection, Sequence

from audit.errors import EXIT_GATE_FAILED, EXIT_OK, invalid_parameter
from audit.findings import AuditResult, Finding, Severity
from audit.report.text import printable


class FailOn(str, Enum):
    """``--fail-on``: the least severity that fails the gate (``never``: report only)."""

    never = "never"
    warning = "warning"
    error = "error"


class OutputFormat(str, Enum):
    """``--format``: what stdout carries (everything else goes to stderr)."""

    text = "text"
    github = "github"
    json = "json"
    junit = "junit"
    sarif = "sarif"


FAIL_ON_CHOICES = tuple(f.value for f in FailOn)
PER_LEVEL = 10  # GitHub shows 10 annotations per level per step; more are dropped
SKIPPED_EXAMPLES = 3
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def check_fail_on(fail_on: str) -> str:
    if fail_on not in FAIL_ON_CHOICES:
        raise invalid_parameter("fail_on", "the CI gate", f"one of {', '.join(FAIL_ON_CHOICES)}", fail_on)
    return fail_on


def gate_failed(result: AuditResult, fail_on: str) -> bool:
    """True when some finding is at or above ``fail_on`` (``never`` never fails)."""
    if check_fail_on(fail_on) == "never":
        return False
    threshold = Severity(fail_on).rank
    return any(f.severity.rank >= threshold for f in result.findings)


def fails_gate(finding: Finding, fail_on: str) -> bool:
    """True when this one finding is at or above ``fail_on``."""
    return check_fail_on(fail_on) != "never" and finding.severity.rank >= Severity(fail_on).rank


def gate(result: AuditResult, fail_on: str) -> int:
    """Exit code of the gate: 0 passed, 1 failed (``audit.errors.EXIT_GATE_FAILED``)."""
    return EXIT_GATE_FAILED if gate_failed(result, fail_on) else EXIT_OK


def gate_json(result: AuditResult, fail_on: str) -> dict:
    """The ``gate`` block of the JSON report: what a CI consumer checks."""
    failed = gate_failed(result, fail_on)
    return {"fail_on": fail_on, "failed": failed, "exit_code": EXIT_GATE_FAILED if failed else EXIT_OK}


def ranked(findings: tuple[Finding, ...] | list[Finding]) -> list[Finding]:
    """Most severe first, then highest score; stable for ties (detector order)."""
    def key(f: Finding) -> tuple[int, float]:
        s = float(f.score)
        return (-f.severity.rank, -(s if s == s else float("-inf")))

    return sorted(findings, key=key)


def escape_data(text: str) -> str:
    """GitHub workflow-command escaping for the message part."""
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """GitHub workflow-command escaping for a property value (``file=``, ``title=``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(level: str, message: str, **props: str | None) -> str:
    parts = ",".join(f"{k}={escape_property(printable(v))}" for k, v in props.items() if v)
    head = f"::{level} {parts}" if parts else f"::{level}"
    return f"{head}::{escape_data(printable(message))}"


def github_annotations(
    result: AuditResult,
    *,
    file_root: str | None = None,
    local_ids: Collection[str] | None = None,
    per_level: int = PER_LEVEL,
    reports: Sequence[str] = (),
) -> str:
    """Workflow commands for the findings (most severe first) and unreadable files, at most
    ``per_level`` per level, then one notice counting what was left out, naming ``reports``
    (the report files written, where the full list is).

    ``file_root`` is prefixed to member ids to build ``file=`` (ids are relative to the scanned
    folder; GitHub wants paths relative to the repository, usually the job's working directory).
    With ``file_root=None`` no ``file=`` property is written. ``local_ids`` restricts ``file=`` to
    ids that are files under ``file_root`` (an ``--against`` scan's members may be stored images
    from another folder): the first such member is used. Output ends with a newline."""
    if per_level < 1:
        raise invalid_parameter("per_level", "github_annotations", "an int >= 1", per_level)
    pending: list[tuple[str, str]] = []  # (level, line), in order of importance
    for f in ranked(result.findings):
        first = next((m.id for m in f.members if local_ids is None or m.id in local_ids), None)
        shown = ", ".join(m.id for m in f.members[:5])
        more = f" (+{len(f.members) - 5} more)" if len(f.members) > 5 else ""
        message = f"{f.summary} Members: {shown}{more}." if shown else f.summary
        title = f"{f.kind} ({f.severity.value}, {len(f.members)} images, score {f.score:.3g})"
        level = _LEVEL[f.severity]
        pending.append((level, _command(level, message, file=_file(file_root, first), title=title)))
    for u in result.unreadable:
        pending.append(("warning", _command("warning", f"unreadable image: {u.reason}", file=_file(file_root, u.path),
                                            title="unreadable image")))
    notices: list[str] = []
    if result.skipped:  # one line whatever the count: hidden entries are many in some pools
        shown = "; ".join(f"{u.path} ({u.reason})" for u in result.skipped[:SKIPPED_EXAMPLES])
        more = f"; +{len(result.skipped) - SKIPPED_EXAMPLES} more" if len(result.skipped) > SKIPPED_EXAMPLES else ""
        notices.append(_command("notice", f"{len(result.skipped)} entries skipped on purpose (not scanned): "
                                          f"{shown}{more}. See the JSON report.", title="skipped entries"))
    total = {lvl: sum(1 for level, _ in pending if level == lvl) for lvl in ("error", "warning", "notice")}
    room = dict.fromkeys(total, per_level)
    room["notice"] = max(per_level - len(notices), 0)
    if any(total[lvl] > room[lvl] for lvl in total):
        room["notice"] = max(room["notice"] - 1, 0)  # the slot of the summary notice below
    lines: list[str] = []
    for level, line in pending:
        if room[level] > 0:
            lines.append(line)
            room[level] -= 1
    shown_n = {lvl: sum(1 for line in lines if line.startswith(f"::{lvl}")) for lvl in total}
    left = {lvl: total[lvl] - shown_n[lvl] for lvl in total if total[lvl] > shown_n[lvl]}
    lines.extend(notices)
    if left:
        counts = ", ".join(f"{n} {lvl}{'s' if n != 1 else ''}" for lvl, n in left.items())
        where = " and ".join(reports) if reports else "the JSON report (--json FILE)"
        lines.append(_command("notice", f"{counts} not annotated (GitHub shows {per_level} per level per step); "
                                        f"every finding is in {where}.", title="more findings"))
    return "".join(line + "\n" for line in lines)


def _file(root: str | None, rel: str | None) -> str | None:
    if root is None or rel is None:
        return None
    return posixpath.join(root.replace("\\", "/"), rel)
