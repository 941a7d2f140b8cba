"""House rules that keep the folders readable (STYLE.md 1): `audit` never imports `redteam`;
typer and rich appear only in cli.py modules and audit/report/; the README's test command is
what CI runs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_audit_never_imports_redteam():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "audit").rglob("*.py") if "redteam" in _imports(p)]
    assert offenders == []


def test_typer_and_rich_only_in_cli_and_report():
    offenders = []
    for pkg in ("audit", "redteam"):
        for p in (ROOT / pkg).rglob("*.py"):
            rel = p.relative_to(ROOT)
            allowed = p.name == "cli.py" or p.name.endswith("_cli.py") or rel.parts[:2] == ("audit", "report")
            if not allowed and _imports(p) & {"typer", "rich", "click"}:
                offenders.append(str(rel))
    assert offenders == []


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, re.S)
    commands = [b.strip() for b in blocks if "pytest" in b]
    assert len(commands) == 1, "the README must give exactly one test command"
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[0] in ci
