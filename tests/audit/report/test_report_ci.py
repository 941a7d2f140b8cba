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
    out = github_annotations(result, max_annotations=1)
    lines = out.splitlines()
    assert lines[0].startswith("::error title=")
    assert lines[-1] == "::notice::3 more findings/unreadable files not annotated; see the JSON report."


def test_github_annotations_file_only_for_local_ids(result):
    out = github_annotations(result, file_root="batch/", local_ids={"a/3.png"})
    assert out.splitlines()[0].startswith("::error file=batch/a/3.png,")
    assert out.splitlines()[1].startswith("::warning title=cluster")  # no member in the batch
