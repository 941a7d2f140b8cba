"""JSON report: schema keys, flagged list, gate block, strict JSON, atomic write."""

from __future__ import annotations

import json

from audit.findings import JSON_SCHEMA_VERSION
from audit.report import write_json


def test_json_schema_keys_flagged_and_gate(case, result, tmp_path):
    path = write_json(result, tmp_path / "sub" / "report.json", fail_on="error")
    text = path.read_text()
    doc = json.loads(text)
    assert "NaN" not in text
    for key in ("schema_version", "tool", "root", "n_images", "n_unreadable", "unreadable", "n_findings",
                "counts", "flagged", "findings", "params", "timings_s", "generator", "gate"):
        assert key in doc, key
    assert doc["schema_version"] == JSON_SCHEMA_VERSION
    assert doc["n_images"] == len(case.IDS) and doc["n_findings"] == 3
    assert doc["flagged"] == sorted([*case.IDS[:5], case.SCRIPT, case.ATTR])  # info near-duplicates not flagged
    assert doc["gate"] == {"fail_on": "error", "failed": True, "exit_code": 1}
    assert doc["unreadable"] == [{"path": "broken, file.png", "reason": "truncated\nfile"}]
    bridge = next(f for f in doc["findings"] if f["kind"] == "bridge")
    assert [m["alpha"] for m in bridge["members"]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert bridge["members"][0]["role"] == "source" and bridge["members"][-1]["role"] == "target"
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temp file left behind


def test_json_gate_passes_with_never(result, tmp_path):
    doc = json.loads(write_json(result, tmp_path / "r.json", fail_on="never").read_text())
    assert doc["gate"] == {"fail_on": "never", "failed": False, "exit_code": 0}
