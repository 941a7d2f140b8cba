"""The 15-line PyTorch example in docs/dynamics.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

from audit.findings import AuditResult

DOC = Path(__file__).resolve().parents[3] / "docs" / "dynamics.md"


def test_plain_pytorch_example_runs(tmp_path, monkeypatch):
    text = DOC.read_text()
    block = re.search(r"### From a plain PyTorch loop\n\n```python\n(.*?)```", text, re.S).group(1)
    assert len(block.strip().splitlines()) <= 17
    monkeypatch.chdir(tmp_path)
    env: dict = {}
    exec(compile(block, str(DOC), "exec"), env)
    assert isinstance(env["result"], AuditResult) and env["result"].tool == "dynamics"
    assert len(env["result"].ids) == 256
    assert (tmp_path / "run" / "predictions" / "meta.json").exists()
