"""The README's tour runs as written: every command of its first ``bash`` block, in order, in an
empty folder, each cut to seconds by its own flags (appended: the last value of an option wins).
A command the table below does not size fails the test, so a new tour step cannot go untested;
``# exit N`` after a command is the exit code it must end with (0 when absent), except for the
commands whose outcome depends on how long they train, which must end with 0 or 1."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent

# command prefix -> flags that cut it to seconds, and whether its exit code depends on training
CUTS = {
    "redteam inject": ([], False),
    "audit scan": ([], False),
    "audit train": (["--steps", "12", "--batch-size", "16", "--eval-every", "0", "--threads", "1"], False),
    "audit dynamics": (["--steps", "16", "--batch-size", "16", "--mu", "2", "--record-every", "4", "--threads", "1",
                        "--eval-every", "0"], True),
    "redteam bench": (["--steps", "8", "--observe-every", "2", "--trials", "1", "--attack", "linear", "--ratio",
                       "0.05"], False),
}


def tour_commands() -> list[tuple[str, int | None]]:
    """``(command, expected exit code)`` for every command of the tour, continuation lines joined."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## A tour"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    out, pending = [], ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        line, pending = pending + line, ""
        command, _, comment = line.partition("  # ")
        m = re.match(r"exit (\d+)", comment.strip())
        out.append((command.strip(), int(m.group(1)) if m else 0))
    return out


def _apps():
    from audit.cli import app as audit_app
    from redteam.cli import app as redteam_app

    return {"audit": audit_app, "redteam": redteam_app}


def test_the_tour_is_parsed_and_every_step_is_sized():
    commands = tour_commands()
    assert len(commands) >= 6 and [c.split()[0] for c, _ in commands] == \
        ["redteam", "audit", "audit", "audit", "audit", "audit", "redteam"]
    for command, _ in commands:
        assert any(command.startswith(p) for p in CUTS), f"size this tour step in CUTS: {command}"


@pytest.fixture
def tour_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_tour_runs_as_written(tour_dir):
    apps, runner = _apps(), CliRunner()
    for command, expected in tour_commands():
        prefix = next(p for p in CUTS if command.startswith(p))
        extra, trains = CUTS[prefix]
        words = shlex.split(command)
        res = runner.invoke(apps[words[0]], [*words[1:], *extra])
        allowed = {0, 1} if trains and expected in (0, 1) else {expected}
        assert res.exit_code in allowed, f"{command}\n{res.output}"
        assert "Traceback" not in res.output and "error:" not in res.stderr, res.output
        if "--against" in words and "--update" in words and expected == 1:
            assert "not added to store" in res.stderr  # what step 3 says happens to the batch
    # what the tour says it writes
    for path in ("tour/manifest.json", "report.html", "report.json", "report.csv", "store", "run/model.pt",
                 "dyn/predictions/meta.json", "dyn.html", "bench/report.md"):
        assert (tour_dir / path).exists(), path
