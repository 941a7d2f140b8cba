"""The CI gate and GitHub Actions annotations."""

from __future__ import annotations

import pytest
from audit.errors import InvalidParameterError
from audit.findings import Severity
from audit.report.ci import escape_data, escape_property, gate, github_annotations

E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO


@pytest.mark.parametrize(
    "severities, fail_on, code",
    [
        ((), "error", 0), ((), "warning", 0), ((), "never", 0),
        ((I,), "warning", 0), ((I,), "error", 0),
        ((W,), "error", 0), ((W,), "warning", 1), ((W,), "never", 0),
        ((E,), "error", 1), ((E,), "warning", 1), ((E, I), "never", 0),
    ],
)
def test_gate_exit_code_per_fail_on_level(case, result, severities, fail_on, code):
    assert gate(case.with_findings(result, *severities), fail_on) == code


def test_gate_rejects_unknown_level(result):
    with pytest.raises(InvalidParameterError, match="must be one of never, warning, error. Got 'info'"):
        gate(result, "info")


def test_github_escaping_rules():
    assert escape_data("100%\r\nx") == "100%25%0D%0Ax"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_github_annotations_levels_order_and_escaping(case, result):
    out = github_annotations(result, file_root="incoming")
    lines = out.splitlines()
    assert out.endswith("\n")
    # most severe first: bridge error, cluster warning, near-duplicate notice, then unreadable
    assert lines[0].startswith("::error file=incoming/a/0.png,title=bridge (error%2C 5 images%2C score 0.97)::5 images")
    assert lines[1].startswith("::warning file=incoming/")
    assert lines[2].startswith("::notice ")
    # a newline from the data is a visible escape, not %0A (which GitHub would render as a line break)
    assert lines[3] == "::warning file=incoming/broken%2C file.png,title=unreadable image::unreadable image: truncated\\x0afile"
    assert len(lines) == 4 and case.SCRIPT in lines[1]  # no newline injection: one line per annotation


def test_github_annotations_cap_and_no_file_without_root(result):
    out = github_annotations(result, per_level=1, reports=["report.html"])
    lines = out.splitlines()
    assert lines[0].startswith("::error title=")
    # one per level: the bridge error, the cluster warning; the unreadable warning is left out, and
    # the near-duplicate notice gives its slot to the summary notice (always shown)
    assert [line.split(" ", 1)[0].split("::")[1] for line in lines] == ["error", "warning", "notice"]
    assert lines[-1] == ("::notice title=more findings::1 warning, 1 notice not annotated (GitHub shows 1 per level "
                         "per step); every finding is in report.html.")


def test_github_annotations_capped_per_level_with_a_summary_line(case, result):
    from audit.findings import Finding, Member, Severity

    many = tuple(Finding("cluster", sev, float(i), (Member(f"a/{i}.png", i),), f"group {i}")
                 for sev in (Severity.ERROR, Severity.WARNING, Severity.INFO) for i in range(14))
    res = case.with_findings(result)
    res = type(res)(tool="scan", root="r", ids=res.ids, findings=many)
    lines = github_annotations(res, file_root="r").splitlines()
    levels = [line[2:].split(" ", 1)[0].split("::")[0] for line in lines]
    assert levels.count("error") == 10 and levels.count("warning") == 10 and levels.count("notice") == 10
    assert "group 13" in lines[0] and "group 4" in lines[9]  # highest score first within a level
    assert lines[-1].startswith("::notice title=more findings::4 errors, 4 warnings, 5 notices not annotated")
    assert lines[-1].endswith("every finding is in the JSON report (--json FILE).")
    assert len(github_annotations(res, per_level=50).splitlines()) == 42  # no summary when all fit


def test_github_annotations_file_only_for_local_ids(result):
    out = github_annotations(result, file_root="batch/", local_ids={"a/3.png"})
    assert out.splitlines()[0].startswith("::error file=batch/a/3.png,")
    assert out.splitlines()[1].startswith("::warning title=cluster")  # no member in the batch
