"""redteam bench end to end on digits with a few training steps: the matrix, the stored trials,
resume, failed trials, the report and the CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from audit.errors import InvalidParameterError, UnknownNameError
from audit.ssl.config import TrainConfig
from redteam.bench import CONTROL, PRESETS, BenchConfig, expand, read_results, run_bench
from redteam.bench import trial as trial_mod
from redteam.bench.trial import poisoned_pool
from redteam.cli import app

# 12 steps of 16 + 2·16 images, a record every 3 steps: 4 records (the dynamics need >= 3)
TINY_TRAIN = TrainConfig(model="cnn", model_options={"widths": [8, 16]}, steps=12, batch_size=16, mu=2, flip=False,
                         observe_every=3, device="cpu")
TINY = BenchConfig(dataset="digits", algos=("fixmatch",), attacks=("linear",), ratios=(0.05,), trials=1,
                   train=TINY_TRAIN, preset="tiny")
CLI_TINY = ["--steps", "12", "--batch-size", "16", "--mu", "2", "--observe-every", "3", "--trials", "1",
            "--attack", "linear", "--ratio", "0.05", "--device", "cpu"]


@pytest.fixture(scope="module")
def digits_splits():
    from audit.data.builtin import digits

    return digits()


def test_matrix_reuses_pairs_and_adds_the_control():
    cfg = replace(TINY, algos=("fixmatch", "uda"), ratios=(0.01, 0.05), densities=("1.5-x", "1"), trials=3)
    specs = expand(cfg)
    assert len(specs) == 3 * 2 * (1 + 2 * 2)
    assert sum(s.is_control for s in specs) == 3 * 2
    assert {s.seed for s in specs if s.trial == 1} == {1}  # every cell of trial 1: one seed
    assert len({s.key for s in specs}) == len(specs)
    assert expand(cfg)[5].key == specs[5].key  # the key is a pure function of the trial config
    assert replace(specs[1], train=replace(TINY_TRAIN, steps=13)).key != specs[1].key
    assert replace(specs[1], train=replace(TINY_TRAIN, device="cuda")).key == specs[1].key
    # what cells and trials set, or what changes no result, is not identity: a stored trial is reused
    for same in ({"algo": "uda", "seed": 9}, {"eval_every": 7, "checkpoint_every": 7, "log_every": 3}):
        assert replace(specs[1], train=replace(TINY_TRAIN, **same)).key == specs[1].key
    # any other TrainConfig field is, once off its default; at the defaults the training part names
    # exactly the fields the first stored trials named, so their keys still hold
    assert replace(specs[1], train=replace(TINY_TRAIN, momentum=0.8)).key != specs[1].key
    assert set(specs[1].to_json()["train"]) == {"model", "model_options", "steps", "batch_size", "mu", "lr", "ema",
                                                "weight_decay", "flip", "observe_every"}


def test_config_is_validated_at_the_boundary():
    with pytest.raises(InvalidParameterError, match=r"The 'ratios' parameter of the bench must be floats in \(0, 0.5\]"):
        replace(TINY, ratios=(0.0,))
    with pytest.raises(UnknownNameError, match="Unknown algorithm 'fixmach'. Available: fixmatch"):
        replace(TINY, algos=("fixmach",))
    with pytest.raises(UnknownNameError, match="Unknown preset 'big'. Available: smoke, cpu_small, adaptive, paper"):
        PRESETS.get("big")
    with pytest.raises(InvalidParameterError, match="'trials' parameter"):
        replace(TINY, trials=0)
    # the training setup is a TrainConfig, validated by it; the bench adds what its trial JSON needs
    with pytest.raises(InvalidParameterError, match="'steps' parameter of TrainConfig must be an int >= 1"):
        replace(TINY_TRAIN, steps=0)
    with pytest.raises(UnknownNameError, match="Unknown model 'resnet'"):
        replace(TINY, train=replace(TINY_TRAIN, model="resnet"))
    with pytest.raises(InvalidParameterError, match="'train.augment_options' parameter of the bench must be a dict"):
        replace(TINY, train=replace(TINY_TRAIN, augment_options=[("fill", 0.0)]))
    # NAME+pixels names the score NAME (given the pool's pixels): the suffix is not part of the name
    assert replace(TINY, dynamics_scores=("chain", "chain+pixels")).dynamics_scores == ("chain", "chain+pixels")
    with pytest.raises(UnknownNameError, match="Unknown dynamics score 'chian'"):
        replace(TINY, dynamics_scores=("chian+pixels",))


def test_clean_control_is_the_same_pool_without_poison(digits_splits):
    control, poisoned = [s for s in expand(TINY)]
    assert control.attack == CONTROL and not poisoned.is_control
    c, p = poisoned_pool(digits_splits, control), poisoned_pool(digits_splits, poisoned)
    assert not c.is_poison.any() and p.is_poison.sum() == p.manifest.n == 70
    assert c.unlabeled.ids == tuple(i for i, bad in zip(p.unlabeled.ids, p.is_poison) if not bad)
    assert c.manifest.target == p.manifest.target and c.manifest.source == p.manifest.source
    assert np.array_equal(c.labeled.images, p.labeled.images)


def test_bench_runs_resumes_and_reports(tmp_path, digits_splits):
    events = []
    out = run_bench(TINY, tmp_path, splits=digits_splits, on_event=events.append)
    assert (out.computed, out.reused, len(out.failed)) == (2, 0, 0)
    assert [e.kind for e in events][0] == "start" and {"trial", "phase", "done"} <= {e.kind for e in events}
    control, poisoned = out.results
    assert control.n_poison == 0 and poisoned.n_poison == 70 and poisoned.success in (True, False)
    assert 0.0 <= poisoned.test_acc <= 1.0
    assert set(poisoned.detectors) == {"scan:bridge", "scan:path", "scan:cluster", "scan", "dynamics:influence",
                                       "dynamics:chain", "dynamics:chain+pixels"}
    assert poisoned.detectors["scan:bridge"].auroc > 0.9  # a linear bridge in pixel space
    assert control.detectors["scan"].auroc is None and control.detectors["scan"].n_poison == 0

    files = sorted((tmp_path / "trials").glob("*.json"))
    assert len(files) == 2 and (tmp_path / "results.json").is_file()
    assert json.loads(files[0].read_text())["status"] == "ok"
    report = (tmp_path / "report.md").read_text()
    for words in ("paper Table 1", "paper Table 3", "Detection", "False alarms on the clean control", "n/a",
                  "0/1 (0–79%)" if not poisoned.success else "1/1 (21–100%)", "scores_dynamics_influence.png"):
        assert words in report
    assert (tmp_path / "success_vs_ratio.png").stat().st_size > 1000
    assert not (tmp_path / "work").exists()  # the recordings are scratch

    # resume: delete one trial; only that one is recomputed, the other file is untouched
    keep, gone = (tmp_path / "trials" / f"{control.key}.json"), (tmp_path / "trials" / f"{poisoned.key}.json")
    before = keep.stat().st_mtime_ns
    gone.unlink()
    again = run_bench(TINY, tmp_path, splits=digits_splits)
    assert (again.computed, again.reused) == (1, 1) and gone.is_file()
    assert keep.stat().st_mtime_ns == before
    # training is seeded: the recomputed trial measures the same thing
    assert again.results[1].success == poisoned.success and again.results[1].test_acc == poisoned.test_acc
    cfg, trials = read_results(tmp_path)
    assert cfg["preset"] == "tiny" and [t.key for t in trials] == [control.key, poisoned.key]


def test_failed_trials_are_stored_reported_and_kept(tmp_path, digits_splits, monkeypatch):
    def broken_scan(*args, **kwargs):
        raise RuntimeError("scan exploded")

    monkeypatch.setattr(trial_mod, "scan", broken_scan)
    out = run_bench(TINY, tmp_path, splits=digits_splits)
    assert len(out.failed) == 2 and all("RuntimeError: scan exploded" in r.error for r in out.failed)
    stored = json.loads(next((tmp_path / "trials").glob("*.json")).read_text())
    assert stored["status"] == "failed" and "scan exploded" in stored["error"]
    report = (tmp_path / "report.md").read_text()
    assert "0 finished, 2 failed" in report and "RuntimeError: scan exploded" in report
    assert "n/a" in report and "(no finished poisoned trial)" in report

    again = run_bench(TINY, tmp_path, splits=digits_splits)  # a failure is a result: not silently retried
    assert again.computed == 0 and len(again.failed) == 2
    monkeypatch.undo()
    retried = run_bench(TINY, tmp_path, splits=digits_splits, retry_failed=True)
    assert retried.computed == 2 and not retried.failed


def test_cli_end_to_end_and_resume(tmp_path):
    runner = CliRunner()
    args = ["bench", "--preset", "smoke", "--out", str(tmp_path), *CLI_TINY]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2/2 trials finished (2 computed, 0 reused)" in result.output
    assert f"report:  {tmp_path / 'report.md'}" in result.output
    assert f"{tmp_path / 'report.html'} (one page, plots inside)" in result.output
    assert "smoke (modified)" in (tmp_path / "report.md").read_text()
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "(0 computed, 2 reused)" in result.output


def test_cli_reports_bad_values_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["bench", "--out", str(tmp_path), "--ratio", "0.01,abc"])
    assert result.exit_code == 2
    assert "The 'ratio' parameter of bench must be a float. Got 'abc' instead." in result.output
    result = CliRunner().invoke(app, ["bench", "--out", str(tmp_path), "--preset", "huge"])
    assert result.exit_code == 2 and "Unknown preset 'huge'" in result.output


def test_adaptive_preset_is_every_adaptive_attack_against_a_clean_control():
    cfg = PRESETS.get("adaptive")()
    specs = expand(cfg)
    attacks = {s.attack for s in specs}
    assert {"noise", "translate", "jitter_translate", "curved", "slerp"} <= attacks and CONTROL in attacks
    assert len(specs) == (len(cfg.attacks) + 1) * cfg.trials  # one control per trial
