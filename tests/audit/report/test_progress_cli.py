"""The one progress display in a CI log (CliRunner is not a terminal): ``audit train`` prints a
plain line when training starts and when it ends, never a redrawn bar."""

from __future__ import annotations

from typer.testing import CliRunner

from audit.cli import app


def test_train_prints_plain_progress_lines_in_a_log(tmp_path):
    res = CliRunner().invoke(app, ["train", "--dataset", "digits", "--labels-per-class", "2", "--unlabeled-size", "60",
                                   "--steps", "6", "--batch-size", "8", "--mu", "2", "--device", "cpu", "--no-flip",
                                   "--eval-every", "0", "--checkpoint-every", "0", "--threads", "1",
                                   "--allow-repeats", "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert res.stderr.splitlines()[0] == "fixmatch (60 images): training from step 0 of 6"
    assert res.stderr.splitlines()[-1].startswith("fixmatch (60 images): 6/6 done in ")
    assert "\r" not in res.stderr and "\x1b" not in res.stderr
    assert res.stdout.startswith("fixmatch: 6 steps")
    quiet = CliRunner().invoke(app, ["train", "--dataset", "digits", "--labels-per-class", "2", "--unlabeled-size",
                                     "60", "--steps", "6", "--batch-size", "8", "--mu", "2", "--device", "cpu",
                                     "--no-flip", "--eval-every", "0", "--threads", "1", "--allow-repeats", "--quiet",
                                     "--out", str(tmp_path / "q")])
    assert quiet.exit_code == 0 and quiet.stderr == ""
