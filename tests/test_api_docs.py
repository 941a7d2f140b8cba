"""docs/api.md runs as written: its ``python`` blocks, top to bottom, in one session, in an empty
folder; training is cut short by the substitutions below (each must apply, so the doc cannot
drift from them)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
CUTS = {"steps=500": "steps=12, eval_every=0"}  # B 64, μ 7: a pass over the pool is 4 steps


def test_the_api_doc_runs(tmp_path, monkeypatch):
    text = DOC.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 6
    code = "\n".join(blocks)
    for old, new in CUTS.items():
        assert code.count(old) == 1, old
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    env: dict = {}
    exec(compile(code, str(DOC), "exec"), env)

    from audit.findings import AuditResult

    result, table, batch, found, dyn = env["result"], env["table"], env["batch"], env["found"], env["dyn"]
    assert isinstance(result, AuditResult) and result.tool == "scan" and len(table) == result.n_images
    assert {r["id"] for r in table} == set(result.ids) and set(env["bridge"]) & env["truth"]  # the scan finds it
    assert set(env["flagged"]) & env["truth"] and (tmp_path / "table.csv").is_file()
    assert (tmp_path / "report.html").is_file() and (tmp_path / "store").is_dir()
    assert any(set(m.id for m in f.members) & env["truth"] for f in batch.findings)  # across store and batch
    assert found.tool == "dynamics" and found.params["score"] == "chain" and len(found.ids) == len(env["pool"])
    assert dyn.params["score"] == "influence" and dyn.scores["dynamics"].shape == (len(env["pool"]),)
    assert "% of training time" in env["run"].cost_line()
