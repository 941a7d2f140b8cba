"""``audit dynamics`` reports end to end (issue #15): the remove-and-retrain table in the HTML,
members along their pixel line with source/target ends and the labeled x' shown, class names,
plain progress lines in a CI log, and the CI formats shared with ``audit scan``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from audit.cli import app

runner = CliRunner()
TINY = ["--steps", "12", "--batch-size", "8", "--mu", "2", "--device", "cpu", "--no-flip", "--eval-every", "0",
        "--record-every", "3", "--threads", "1", "--ema", "0.9"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from audit.data.builtin import digits
    from redteam.inject import InjectConfig, inject, write_poisoned

    tmp = tmp_path_factory.mktemp("dyn")
    ds = inject(digits(), InjectConfig(dataset="digits", labels_per_class=2, unlabeled=100, count=6, seed=0))
    write_poisoned(ds, tmp / "data")
    d = tmp / "data"
    res = runner.invoke(app, ["dynamics", "--labeled", str(d / "labeled"), "--unlabeled", str(d / "unlabeled"),
                              "--test", str(d / "test"), "--out", str(tmp / "run"), "--manifest",
                              str(d / "manifest.json"), "--rounds", "1", "--score", "influence", "--z", "0.5",
                              "--allow-repeats", "--json", str(tmp / "r.json"), "--html", str(tmp / "r.html"),
                              "--fail-on", "never", "--format", "junit", *TINY])
    assert res.exit_code == 0, res.output
    return res, json.loads((tmp / "r.json").read_text()), (tmp / "r.html").read_text(encoding="utf-8")


def test_retrain_table_and_progress_lines(run):
    res, doc, page = run
    # a CI log (CliRunner is not a terminal) gets plain progress lines, one per round at least
    assert "fixmatch (106 images): training from step 0 of 12" in res.stderr
    assert "fixmatch round 1 (" in res.stderr and "\r" not in res.stderr
    assert "Remove and retrain" in res.stderr  # --format junit: the summary and its table go to stderr
    table = page.split("<h2>Remove and retrain</h2>")[1].split("</table>")[0]  # the table, in the HTML
    assert table.count("<tr>") == 1 + len(doc["params"]["rounds"]) and "<td>106</td>" in table
    assert "<th>poison removed</th>" in table and "<th>attack</th>" in table


def test_members_along_their_pixel_line_with_the_source_shown(run):
    _, doc, page = run
    chains = [f for f in doc["findings"] if f["size"] >= 2]
    assert chains, "z = 0.5 flags linked images to place"
    for f in chains:
        roles = [m.get("role") for m in f["members"]]
        alphas = [m["alpha"] for m in f["members"]]
        assert alphas == sorted(alphas) and alphas[0] == 0.0 and alphas[-1] == 1.0
        assert roles[0] in ("source", "endpoint") and roles[-1] in ("target", "endpoint")
        assert not [r for r in roles[1:-1] if r] and f["evidence"]["order"].startswith("pixel line")
        if roles[0] == "source":
            assert f'<span class="id">{f["evidence"]["source_labeled_id"]}</span>' in page  # x' beside its chain
    assert "likely target x*" not in page or "along their pixels" in page


def test_class_names_and_junit_on_stdout(run):
    from junitparser import JUnitXml

    res, doc, page = run
    cases = [c for s in JUnitXml.fromstring(res.stdout) for c in s]
    assert len(cases) == len(doc["findings"]) and all(c.classname == "audit.dynamics.dynamics" for c in cases)
    lead = page.split('<p class="lead">')[1].split("</p>")[0]
    assert "were predicted as " in lead and "class " not in lead  # digits' folder names, not "class 3"
