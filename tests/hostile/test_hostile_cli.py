"""`audit scan` end to end on the hostile folder corpus (issue #12 target): exit 0, every report
written, no "internal error", no traceback, every bad and skipped entry in the JSON with its
reason, nothing in the audited folder changed, no code run.

It relies on the report writers escaping names (issue #12 item 7: a non-UTF-8 name used to make
the HTML writer fail with UnicodeEncodeError after the JSON was written).
"""

from __future__ import annotations

import json

from hostile_corpus import build_pool
from test_hostile_pool import snapshot
from typer.testing import CliRunner

from audit.cli import app
from audit.data import load_images

runner = CliRunner()


def test_scan_of_the_hostile_corpus_writes_every_report(tmp_path):
    m = build_pool(tmp_path / "corpus", seed=1, scale=1)
    pool = tmp_path / "corpus" / "pool"
    out = tmp_path / "out"
    out.mkdir()
    before = snapshot(tmp_path / "corpus")
    res = runner.invoke(app, ["scan", str(pool), "--json", str(out / "r.json"), "--html", str(out / "r.html"),
                              "--csv", str(out / "r.csv"), "--fail-on", "never"])
    text = res.output + (res.stderr if res.stderr_bytes is not None else "")
    assert "internal error" not in text and "Traceback" not in text, text[-2000:]
    assert res.exit_code == 0, text[-2000:]
    for name in ("r.json", "r.html", "r.csv"):
        assert (out / name).stat().st_size > 0
    assert snapshot(tmp_path / "corpus") == before and not m.marker.exists()
    with open(out / "r.json", encoding="utf-8") as fh:
        report = json.load(fh)
    unreadable = {u["path"]: u["reason"] for u in report["unreadable"]}
    skipped = {u["path"]: u["reason"] for u in report["skipped"]}
    assert all(text in unreadable.get(rel, "") for rel, text in m.bad.items())
    assert all(text in skipped.get(rel, "") for rel, text in m.skipped.items())
    expected = load_images(pool)  # the data layer's reading, which the report must carry whole
    assert report["n_images"] == len(expected) and report["input"]["non_utf8_names"] == 3
    assert report["n_unreadable"] == len(expected.unreadable) and report["n_skipped"] == len(expected.skipped)
