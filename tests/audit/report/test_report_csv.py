"""CSV report: columns, membership per kind, empty NaN scores, formula injection."""

from __future__ import annotations

import csv

from audit.report import write_csv
from audit.report.csv import safe_cell


def test_csv_columns_rows_and_membership(case, result, tmp_path):
    path = write_csv(result, tmp_path / "r.csv")
    rows = list(csv.DictReader(path.open(newline="", encoding="utf-8")))
    assert list(rows[0]) == ["id", "is_bridge_issue", "bridge_score", "is_cluster_issue", "cluster_score",
                             "is_near_duplicate_issue", "near_duplicate_score"]
    assert len(rows) == len(case.IDS)
    by_id = {r["id"]: r for r in rows}
    assert by_id["a/2.png"]["is_bridge_issue"] == "True" and by_id["a/2.png"]["bridge_score"] == "0.8"
    assert by_id["b/9.png"]["bridge_score"] == ""  # NaN: no opinion
    assert by_id[case.SCRIPT]["is_cluster_issue"] == "True" and by_id[case.SCRIPT]["is_bridge_issue"] == "False"
    assert by_id[case.ATTR]["id"] == case.ATTR  # quotes and brackets survive the csv module's quoting
    assert by_id["b/8.png"]["is_near_duplicate_issue"] == "True"  # info findings still mark members
    assert by_id["b/8.png"]["near_duplicate_score"] == "-0.5"  # numbers are never prefixed


def test_csv_formula_injection_is_neutralised(case, result, tmp_path):
    rows = list(csv.reader(write_csv(result, tmp_path / "r.csv").open(newline="", encoding="utf-8")))
    ids = [r[0] for r in rows[1:]]
    assert "'" + case.FORMULA in ids and case.FORMULA not in ids
    assert ids[0] == "a/0.png"
    for bad in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx"):
        assert safe_cell(bad) == "'" + bad
    assert safe_cell("ok=1") == "ok=1"
