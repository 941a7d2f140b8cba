"""JUnit XML (``--format junit``): the test-report format GitLab, Jenkins and Azure DevOps show
in their test panels.

One ``<testsuite>`` per run; in it one ``<testcase>`` per finding (classname ``audit.<tool>.<kind>``,
name ``<kind> #N <finding id>: ...``), with a ``<failure>`` when the finding is at or above
``--fail-on`` (the gate's own rule, so the panel's red cases are the ones that failed the job);
findings below it pass and carry their detail in ``<system-out>``. A detector that ran and found
nothing is one passing case (``bridge: no findings``), so the panel shows every check made.
Unreadable and skipped entries are listed in the suite's ``<system-out>`` (they never fail the
gate). Structure and attributes follow the schema Jenkins and GitLab read (testsuites >
testsuite[name, tests, failures, errors, skipped, time, timestamp] > properties, testcase[name,
classname, time] > failure[message, type] | system-out). Text from the data is made printable
first (XML 1.0 cannot carry most control characters even escaped), then XML-escaped by
ElementTree.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

from audit.report.ci import fails_gate
from audit.report.context import ReportContext
from audit.report.explain import explain
from audit.report.text import printable

MAX_NAME = 200  # of a testcase name: panels show one line
MAX_LISTED = 200  # members / unreadable entries written into a case's text


def junit_xml(ctx: ReportContext, fail_on: str, *, kinds: list[str] | None = None) -> str:
    """The JUnit document as text (UTF-8, with XML declaration, ends with a newline). ``kinds``:
    the detectors that ran (a passing case for each that found nothing)."""
    result = ctx.result
    suite_name = f"audit {result.tool}: {ctx.scope.root or result.root}"
    cases: list[ET.Element] = []
    failures = 0
    found = {f.kind for f in result.findings}
    for kind in kinds or []:
        if kind not in found:
            c = ET.Element("testcase", classname=f"audit.{result.tool}.{_p(kind)}", name=_p(f"{kind}: no findings"),
                           time="0")
            cases.append(c)
    for f in ctx.order:
        name = f"{ctx.label(f)} {ctx.key[id(f)]}: {len(f.members)} images ({f.severity.value})"
        c = ET.Element("testcase", classname=f"audit.{result.tool}.{_p(f.kind)}", name=_p(name)[:MAX_NAME], time="0")
        text = _detail(ctx, f)
        if fails_gate(f, fail_on):
            failures += 1
            fail = ET.SubElement(c, "failure", message=_p(f.summary), type=_p(f"{f.kind}.{f.severity.value}"))
            fail.text = text
        else:
            ET.SubElement(c, "system-out").text = text
        cases.append(c)
    total = sum(result.timings.values()) if result.timings else 0.0
    root = ET.Element("testsuites", name=_p(f"audit {result.tool}"), tests=str(len(cases)), failures=str(failures),
                      errors="0", skipped="0", time=f"{total:.3f}")
    suite = ET.SubElement(root, "testsuite", name=_p(suite_name), tests=str(len(cases)), failures=str(failures),
                          errors="0", skipped="0", time=f"{total:.3f}",
                          timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()))
    props = ET.SubElement(suite, "properties")
    for k, v in (("fail_on", fail_on), ("root", result.root), ("images", result.n_images),
                 ("findings", len(result.findings)), ("flagged", len(result.flagged())),
                 ("unreadable", len(result.unreadable)), ("skipped", len(result.skipped))):
        ET.SubElement(props, "property", name=k, value=_p(v))
    suite.extend(cases)
    lines = [f"unreadable: {u.path}: {u.reason}" for u in result.unreadable[:MAX_LISTED]]
    lines += [f"skipped: {u.path}: {u.reason}" for u in result.skipped[:MAX_LISTED]]
    lines += [f"note: {n}" for n in result.notes]
    if lines:
        ET.SubElement(suite, "system-out").text = "\n".join(printable(line) for line in lines)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=False).join(
        ['<?xml version="1.0" encoding="UTF-8"?>\n', "\n"])


def _detail(ctx: ReportContext, f) -> str:
    """Multi-line text; each line made printable on its own, so a newline in a name stays an escape."""
    why = explain(f, ctx)
    lines = [why.sentence, ""]
    lines += [f"{k}: {v}" for k, v in why.rows]
    lines += [text for text, _, _ in ctx.overlap_lines(f)]
    lines.append(f"members ({len(f.members)}), paths relative to {ctx.scope.root or ctx.result.root}:")
    for m in f.members[:MAX_LISTED]:
        where = {True: " (stored)", False: " (new)", None: ""}[ctx.stored(m.id)]
        lines.append(f"  {m.id}{where}")
    if len(f.members) > MAX_LISTED:
        lines.append(f"  ... +{len(f.members) - MAX_LISTED} more (JSON report)")
    return "\n".join(printable(line) for line in lines)


def _p(text: object) -> str:
    return printable(text)
