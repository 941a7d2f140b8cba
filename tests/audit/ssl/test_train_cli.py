"""``audit train``: the words a user sees, the files it writes, one-line errors with exit 2."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from audit.cli import app
from audit.ssl.algorithms import ALGORITHMS

runner = CliRunner()
TINY = ["--steps", "3", "--batch-size", "8", "--mu", "2", "--device", "cpu", "--no-flip", "--eval-every", "3"]


def train(*args):
    return runner.invoke(app, ["train", *map(str, args)])


def one_error_line(res) -> str:
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def test_help_names_every_algorithm():
    res = train("--help")
    assert res.exit_code == 0
    for name in ALGORITHMS.names():
        assert name in res.output
    assert len(ALGORITHMS.names()) == 7


def test_trains_on_a_builtin_dataset_and_writes_the_run(tmp_path):
    res = train("--dataset", "digits", "--labels-per-class", "2", "--unlabeled-size", "100", "--out", tmp_path,
                "--quiet", "--threads", "1", "--set", "threshold=0.9", *TINY)
    assert res.exit_code == 0, res.output
    assert "fixmatch: 3 steps, test accuracy" in res.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    weakest = sorted(summary["test_acc_per_class_ema"].items(), key=lambda kv: kv[1])[:3]
    assert "weakest classes (EMA): " + ", ".join(f"{n} {100 * a:.0f}%" for n, a in weakest) in res.stdout
    assert summary["steps"] == 3 and summary["config"]["algo_config"]["threshold"] == 0.9
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "metrics.jsonl").read_text().count("\n") == 1


def _write_folders(root, fashion200):
    """The layout `redteam inject` writes: labeled/<class>/*.png, unlabeled/*.png, test/<class>/*.png."""
    names = ["tshirt", "trouser", "pullover"]
    for split, rows in (("labeled", range(0, 2)), ("test", range(2, 4))):
        for c, name in enumerate(names):
            if split == "test" and c == 0:
                continue  # a test folder without one class: labels must still line up by name
            (root / split / name).mkdir(parents=True)
            for i in rows:
                Image.fromarray(fashion200.images[20 * c + i, ..., 0]).save(root / split / name / f"{i}.png")
    (root / "unlabeled").mkdir()
    for i in range(12):
        Image.fromarray(fashion200.images[20 * (i % 3) + 5 + i, ..., 0]).save(root / "unlabeled" / f"u{i}.png")


def test_trains_on_folders_with_progress(tmp_path, fashion200):
    _write_folders(tmp_path, fashion200)
    res = train("--algo", "pseudolabel", "--labeled", tmp_path / "labeled", "--unlabeled", tmp_path / "unlabeled",
                "--test", tmp_path / "test", "--out", tmp_path / "run", "--steps", "3", "--batch-size", "6",
                "--mu", "2", "--device", "cpu", "--eval-every", "0")
    assert res.exit_code == 0, res.output
    assert "pseudolabel: 3 steps, test accuracy" in res.stdout and "3/3" in res.stderr
    res = train("--labeled", tmp_path / "labeled", "--unlabeled", tmp_path / "unlabeled", "--out", tmp_path / "r2",
                *TINY, "--batch-size", "7")
    assert "at most the 6 labeled images" in one_error_line(res) and "--allow-repeats" in res.stderr


def test_bad_inputs_exit_2_with_one_line(tmp_path):
    assert "Unknown algorithm 'fixmach'. Available: fixmatch, uda" in one_error_line(
        train("--algo", "fixmach", "--dataset", "digits", "--out", tmp_path))
    assert "cannot be combined" in one_error_line(
        train("--dataset", "digits", "--labeled", tmp_path, "--unlabeled", tmp_path, "--out", tmp_path))
    assert "give --labeled DIR" in one_error_line(train("--out", tmp_path))
    assert "'dataset' parameter of train must be one of digits" in one_error_line(
        train("--dataset", "cifar", "--out", tmp_path))
    assert "'steps' parameter of TrainConfig" in one_error_line(
        train("--dataset", "digits", "--steps", "0", "--out", tmp_path))
    assert "KEY=VALUE" in one_error_line(train("--dataset", "digits", "--set", "threshold", "--out", tmp_path))

    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"\x00" * 100)
    line = one_error_line(train("--dataset", "digits", "--labels-per-class", "2", "--unlabeled-size", "50",
                                "--out", run, "--resume", *TINY))
    assert "corrupt or truncated" in line
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt"]  # nothing half-written
    assert np.frombuffer((run / "checkpoint.pt").read_bytes(), np.uint8).sum() == 0
