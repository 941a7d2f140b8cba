"""docs/cli.md is generated from --help; this fails when a command's help changed without
regenerating it (run ``python scripts/gen_cli_docs.py``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_cli_docs_are_up_to_date():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)  # type: ignore[union-attr]
    expected = gen.render()
    assert "### `audit scan`" in expected and "--fail-on" in expected
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == expected, "docs/cli.md is out of date: run python scripts/gen_cli_docs.py"
