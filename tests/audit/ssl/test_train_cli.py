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


def test_dataset_takes_a_path_as_redteam_does(tmp_path, fashion200):
    """--dataset DIR: a folder of train/ and test/ class sub-folders, split like a built-in."""
    from audit.data.write import write_pngs

    names = [f"c{k}" for k in fashion200.labels]
    for split, rows in (("train", [i for i in range(200) if i % 20 < 15]), ("test", [i for i in range(200) if i % 20 >= 15])):
        write_pngs(fashion200.images[rows], [f"{names[i]}/{i}.png" for i in rows], tmp_path / "ds" / split)
    res = train("--dataset", tmp_path / "ds", "--labels-per-class", "2", "--out", tmp_path / "run", "--quiet",
                *TINY)
    assert res.exit_code == 0, res.output
    config = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert config["steps"] == 3 and set(config["test_acc_per_class_ema"]) == set(names)
    line = one_error_line(train("--dataset", tmp_path / "ds", "--out", tmp_path / "ds" / "run", *TINY))
    assert "is inside --dataset" in line  # the output policy knows a dataset path is an input


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
    assert one_error_line(train("--dataset", "cifar", "--out", tmp_path)) == (
        "error: cifar does not exist (and 'cifar' is not a built-in dataset: digits, fashion-mnist)")
    # the options' names, not the library's (TrainConfig, balanced_split, FixMatchConfig), before any data
    assert "The '--steps' parameter of audit train must be an int >= 1. Got 0" in one_error_line(
        train("--dataset", "digits", "--steps", "0", "--out", tmp_path))
    assert "The '--labels-per-class' parameter of audit train must be" in one_error_line(
        train("--dataset", "digits", "--labels-per-class", "0", "--out", tmp_path))
    assert "The '--batch-size' parameter of audit train must be at most the 40 labeled images" in one_error_line(
        train("--dataset", "digits", "--out", tmp_path))
    assert one_error_line(train("--dataset", "digits", "--set", "threshold=2", "--out", tmp_path)) == (
        "error: The '--set threshold' value of the fixmatch algorithm must be a float in [0, 1]. Got 2.0 instead.")
    assert "KEY=VALUE" in one_error_line(train("--dataset", "digits", "--set", "threshold", "--out", tmp_path))
    assert one_error_line(train("--dataset", "digits", "--set", "threshold=high", "--out", tmp_path)) == (
        "error: The 'threshold' parameter of the fixmatch algorithm must be a float. Got 'high' instead.")
    assert "Unknown parameter 'treshold' of the fixmatch algorithm. Valid: threshold, lambda_u" in one_error_line(
        train("--dataset", "digits", "--set", "treshold=0.9", "--out", tmp_path))
    assert "--unlabeled-size draws a pool from --dataset" in one_error_line(
        train("--labeled", tmp_path, "--unlabeled", tmp_path, "--unlabeled-size", "5", "--out", tmp_path / "o"))

    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"\x00" * 100)
    line = one_error_line(train("--dataset", "digits", "--labels-per-class", "2", "--unlabeled-size", "50",
                                "--out", run, "--resume", *TINY))
    assert "corrupt or truncated" in line
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt"]  # nothing half-written
    assert np.frombuffer((run / "checkpoint.pt").read_bytes(), np.uint8).sum() == 0


# --- a run is never silently replaced, nor lost to Ctrl-C (#12) ----------------------------------
import hashlib  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

DIGITS = ["--dataset", "digits", "--labels-per-class", "2", "--unlabeled-size", "50", "--threads", "1", "--quiet"]


def _state(folder: Path) -> dict[str, tuple[str, int]]:
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.iterdir()) if p.is_file()}


def test_rerunning_into_a_run_is_refused_unless_resume_or_force(tmp_path):
    run = tmp_path / "run"
    res = train(*DIGITS, "--out", run, *TINY, "--checkpoint-every", "3")
    assert res.exit_code == 0, res.output
    before = _state(run)
    assert {"checkpoint.pt", "model.pt", "summary.json", "metrics.jsonl"} <= set(before)
    line = one_error_line(train(*DIGITS, "--out", run, *TINY, "--steps", "2"))
    assert line == (f"error: --out {run} already holds a run (checkpoint.pt, model.pt, summary.json, metrics.jsonl); "
                    "continue it with --resume, or pass --force to start over (replacing it), or choose another --out")
    assert _state(run) == before  # the later checkpoint was not overwritten by an earlier one
    assert "give one" in one_error_line(train(*DIGITS, "--out", run, *TINY, "--resume", "--force"))
    res = train(*DIGITS, "--out", run, *TINY, "--steps", "2", "--checkpoint-every", "0", "--force")
    assert res.exit_code == 0, res.output
    assert not (run / "checkpoint.pt").exists()  # the old run's checkpoint went with it: no stale --resume
    assert json.loads((run / "summary.json").read_text())["steps"] == 2


def test_out_inside_an_input_is_refused_before_reading(tmp_path, fashion200):
    _write_folders(tmp_path, fashion200)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "unlabeled").iterdir()}
    line = one_error_line(train("--labeled", tmp_path / "labeled", "--unlabeled", tmp_path / "unlabeled",
                                "--out", tmp_path / "unlabeled" / "run", *TINY))
    assert f"--out {tmp_path / 'unlabeled' / 'run'} is inside --unlabeled" in line
    assert not (tmp_path / "unlabeled" / "run").exists()
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "unlabeled").iterdir()} == before


def test_ctrl_c_writes_a_checkpoint_exits_130_and_resume_finishes_exactly(tmp_path, digits_train):
    """A real process and a real SIGINT; the resumed run ends with the weights of an
    uninterrupted one (the trainer tests check the same for SIGTERM and the metrics)."""
    from audit.data.write import write_pngs

    # 8×8 digits, no --test: a step and an evaluation every step cost next to nothing
    labels = digits_train.labels
    picks = [i for c in (0, 1, 2) for i in np.flatnonzero(labels == c)[:3]]
    write_pngs(digits_train.images[picks], [f"{labels[i]}/{i}.png" for i in picks], tmp_path / "labeled")
    write_pngs(digits_train.images[100:140], [f"u{i}.png" for i in range(40)], tmp_path / "unlabeled")
    args = ["--labeled", tmp_path / "labeled", "--unlabeled", tmp_path / "unlabeled", "--steps", "20",
            "--batch-size", "9", "--mu", "2", "--device", "cpu", "--no-flip", "--eval-every", "1",
            "--checkpoint-every", "0", "--threads", "1", "--quiet"]
    run = tmp_path / "cut"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    proc = subprocess.Popen([sys.executable, "-m", "audit.cli", "train", *map(str, args), "--out", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (run / "metrics.jsonl").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)  # the first metrics line: training has started
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    step = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)["step"]
    assert 1 <= step < 20
    assert err.strip().splitlines() == [f"interrupted at step {step} of 20 (SIGINT); saved {run / 'checkpoint.pt'}: "
                                        "continue with --resume"]
    assert not (run / "model.pt").exists() and out == ""

    assert train(*args, "--out", run, "--resume").exit_code == 0
    assert train(*args, "--out", tmp_path / "full").exit_code == 0
    a = torch.load(run / "model.pt", map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "full" / "model.pt", map_location="cpu", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in b)
