"""``audit dynamics``: exit codes and the words a user sees; reports; bad predictions; resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from audit.cli import app
from audit.data.write import write_pngs
from simulate import SimConfig, simulate

runner = CliRunner()
TINY = ["--steps", "12", "--batch-size", "8", "--mu", "2", "--device", "cpu", "--no-flip", "--eval-every", "0",
        "--record-every", "3", "--threads", "1", "--ema", "0.9"]


def dyn(*args):
    return runner.invoke(app, ["dynamics", *map(str, args)])


def one_error_line(res) -> str:
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


@pytest.fixture(scope="module")
def pool(tmp_path_factory, digits_train):
    """A folder of 120 digit PNGs; ids are the file names."""
    root = tmp_path_factory.mktemp("pool")
    ids = [f"u{i:03d}.png" for i in range(120)]
    write_pngs(digits_train.images[:120], ids, root)
    return root, ids


def _npz(path, ids, probs, **extra):
    np.savez(path, probs=probs, ids=np.asarray(ids), **extra)
    return path


def test_defaults_match_the_library():
    from audit.dynamics import SCORES, DynamicsConfig
    from audit.dynamics import cli

    assert [s.value for s in cli.Score] == SCORES.names()  # --score's choices are the registry
    res = dyn("--help")
    assert res.exit_code == 0
    for flag in ("--record-every", "--record-budget", "--predictions", "--score", "--window", "--rounds", "--manifest",
                 "--fail-on", "--resume", "--labeled", "--dataset"):
        assert flag in res.output
    assert "--flip-window" not in res.output
    for name in SCORES:
        assert name in res.output
    # the CLI flags with the library's default score (checked on a run in the next test too)
    import inspect

    default = inspect.signature(cli.dynamics).parameters["score"].default.default
    assert default == DynamicsConfig().score


def test_end_to_end_on_digits_writes_every_report(tmp_path):
    res = dyn("--dataset", "digits", "--labels-per-class", "2", "--unlabeled-size", "150", "--out", tmp_path / "run",
              "--json", tmp_path / "r.json", "--html", tmp_path / "r.html", "--csv", tmp_path / "r.csv",
              "--score", "influence", "--fail-on", "never", *TINY)
    assert res.exit_code == 0, res.output
    assert "audit dynamics" in res.stdout and "recording: 4 records every 3 steps" in res.stdout
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["tool"] == "dynamics" and isinstance(doc["flagged"], list) and doc["n_images"] == 150
    ref = doc["params"]["reference"]
    assert ref["score"] == "influence" and len(ref["avg_influence"]) == 150
    assert doc["params"]["rounds"][0]["recording"]["records"] == 4
    page = (tmp_path / "r.html").read_text()
    assert "Figure 7" in page and "data:image/png;base64" in page
    head = (tmp_path / "r.csv").read_text().splitlines()[0]
    assert head == "id,is_dynamics_issue,dynamics_score"
    # a fresh run into a folder that holds a recording is refused, not mixed
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*")}
    res = dyn("--dataset", "digits", "--labels-per-class", "2", "--unlabeled-size", "150", "--out", tmp_path / "run",
              *TINY)
    line = one_error_line(res)
    assert "already holds a run (model.pt, summary.json, metrics.jsonl, predictions)" in line
    assert "--resume" in line and "--force" in line
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*")} == before
    # --force starts over: the old recording goes, a new one of the new length is made
    res = dyn("--dataset", "digits", "--labels-per-class", "2", "--unlabeled-size", "150", "--out", tmp_path / "run",
              "--force", "--quiet", "--fail-on", "never", *TINY, "--steps", "9")
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "run" / "predictions" / "meta.json").read_text())
    assert [r["step"] for r in meta["records"]] == [3, 6, 9]


def test_predictions_mode_gates_and_passes(tmp_path, pool):
    root, ids = pool
    n = len(ids)
    sim = simulate(SimConfig(n_clean=n - 20, bridge=20, records=40, seed=1))
    path = _npz(tmp_path / "p.npz", ids, sim.probs)
    res = dyn("--predictions", path, "--unlabeled", root, "--score", "influence", "--json", tmp_path / "r.json",
              "--html", tmp_path / "r.html", "--z", "1.0")
    assert res.exit_code == 1, res.output  # z = 1 flags plenty: error findings fail the default gate
    assert "GATE FAILED" in res.stdout
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["flagged"] and doc["gate"]["exit_code"] == 1
    assert "Figure 5" in (tmp_path / "r.html").read_text()
    # independent jitter around fixed predictions: nothing stands out, the gate passes
    rng = np.random.default_rng(0)
    z = rng.normal(0, 0.05, (n, 30, 10)) + np.eye(10)[rng.integers(0, 10, n)][:, None] * 3
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    res = dyn("--predictions", _npz(tmp_path / "c.npz", ids, p.astype(np.float32)), "--unlabeled", root,
              "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["flagged"] == []


def test_chain_is_the_default_score_and_its_options_reach_it(tmp_path, pool):
    root, ids = pool
    sim = simulate(SimConfig(n_clean=len(ids) - 20, bridge=20, records=40, seed=1))
    path = _npz(tmp_path / "p.npz", ids, sim.probs)
    res = dyn("--predictions", path, "--unlabeled", root, "--format", "json", "--fail-on", "never")
    assert res.exit_code == 0, res.output
    params = json.loads(res.stdout)["params"]
    assert params["score"] == "chain" and params["motion_dedupe"] == 0.0
    assert params["search"]["smooth_space"] == "motion"
    res = dyn("--predictions", path, "--unlabeled", root, "--format", "json", "--fail-on", "never",
              "--pixel-links", "--motion-dedupe", "0.05")
    params = json.loads(res.stdout)["params"]
    assert params["motion_dedupe"] == 0.05 and params["search"]["smooth_space"] == "features"
    bad = dyn("--predictions", path, "--unlabeled", root, "--motion-dedupe", "-1")  # a usage error, as typer reports it
    assert bad.exit_code == 2 and "Invalid value for '--motion-dedupe'" in bad.stderr


def test_bad_predictions_exit_2_with_one_line(tmp_path, pool):
    root, ids = pool
    n = len(ids)
    good = np.full((n, 5, 4), 0.25, dtype=np.float32)
    nan = good.copy()
    nan[3, 2, 1] = np.nan
    cases = [
        (_npz(tmp_path / "nan.npz", ids, nan), "NaN"),
        (_npz(tmp_path / "shape.npz", ids, good[:, 0]), "N×K×C"),
        (_npz(tmp_path / "few.npz", ids, good[:, :2]), "at least 3"),
        (_npz(tmp_path / "ids.npz", [f"x{i}.png" for i in range(n)], good), "do not match the unlabeled images"),
        (_npz(tmp_path / "logits.npz", ids, good * 4), "probabilities"),
    ]
    for path, words in cases:
        assert words in one_error_line(dyn("--predictions", path, "--unlabeled", root)), words
    ok = _npz(tmp_path / "ok.npz", ids, good)
    assert "at least 3" in one_error_line(dyn("--predictions", ok, "--unlabeled", root, "--window", "3:4"))
    assert "'--window' parameter" in one_error_line(dyn("--predictions", ok, "--unlabeled", root, "--window", "5"))
    assert "needs --unlabeled" in one_error_line(dyn("--predictions", ok))
    assert "cannot be combined with --predictions" in one_error_line(
        dyn("--predictions", ok, "--unlabeled", root, "--rounds", "1"))
    assert "give --out RUN" in one_error_line(dyn("--dataset", "digits"))
    assert "Unknown algorithm 'fixmach'" in one_error_line(dyn("--algo", "fixmach", "--dataset", "digits",
                                                               "--out", tmp_path / "x"))


def test_a_killed_run_resumes_without_losing_or_duplicating_records(tmp_path, digits_train):
    from audit.dynamics import load_predictions
    from audit.dynamics.run import record_run
    from audit.data.split import balanced_split
    from audit.ssl.trainer import TrainConfig

    lab, rest = balanced_split(digits_train, 2, 0)
    unl = rest.subset(np.arange(100)).without_labels()
    cfg = TrainConfig(steps=12, batch_size=8, mu=2, device="cpu", flip=False, eval_every=0, checkpoint_every=6,
                      ema=0.9, allow_repeats=True)
    full = record_run(cfg, lab, unl, out_dir=tmp_path / "full", record_every=3)

    class Killed(Exception):
        pass

    def kill_at_9(info):
        if info.step == 9:  # records 3, 6, 9 written, last checkpoint at 6
            raise Killed

    with pytest.raises(Killed):
        record_run(cfg, lab, unl, out_dir=tmp_path / "cut", record_every=3, on_progress=kill_at_9)
    (tmp_path / "cut" / "predictions" / "step_0000000012.npy").write_bytes(b"half a record")  # killed mid-write
    assert json.loads((tmp_path / "cut" / "predictions" / "meta.json").read_text())["records"][-1]["step"] == 9
    resumed = record_run(cfg, lab, unl, out_dir=tmp_path / "cut", record_every=3, resume=True)
    a, b = load_predictions(full.predictions), load_predictions(resumed.predictions)
    assert a.steps.tolist() == b.steps.tolist() == [3, 6, 9, 12]
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-3)


def test_rounds_remove_the_flagged_and_report_poison(tmp_path, digits_train):
    from audit.data.builtin import digits
    from redteam.inject import InjectConfig, inject, write_poisoned

    ds = inject(digits(), InjectConfig(dataset="digits", labels_per_class=2, unlabeled=100, count=6, seed=0))
    write_poisoned(ds, tmp_path / "data")
    d = tmp_path / "data"
    res = dyn("--labeled", d / "labeled", "--unlabeled", d / "unlabeled", "--test", d / "test", "--out",
              tmp_path / "run", "--manifest", d / "manifest.json", "--rounds", "1", "--score", "influence",
              "--z", "0.5", "--allow-repeats", "--json", tmp_path / "r.json", "--fail-on", "never", *TINY)
    assert res.exit_code == 0, res.output
    assert "Remove and retrain" in res.stdout and "succeeded" in res.stdout or "failed" in res.stdout
    rounds = json.loads((tmp_path / "r.json").read_text())["params"]["rounds"]
    assert rounds[0]["poison_left"] == 6 and rounds[0]["removed"] == 0
    assert rounds[0]["attack_success"] in (True, False)
    assert len(rounds) == 2 and rounds[1]["removed"] == rounds[0]["flagged"] > 0
    assert rounds[1]["poison_left"] == 6 - rounds[1]["poison_removed"]
    assert rounds[1]["pool_size"] == 106 - rounds[1]["removed"]


def test_predictions_from_a_run_folder_are_rescored(tmp_path, pool):
    """`--predictions RUN` accepts the folder `audit dynamics --out RUN` wrote; ids in another
    order than the folder's are realigned, not mis-scored."""
    from audit.dynamics import Recorder

    root, ids = pool
    rng = np.random.default_rng(2)
    order = rng.permutation(len(ids))
    with Recorder(tmp_path / "run" / "predictions", [ids[i] for i in order], 4) as rec:
        for step in (5, 10, 15, 20):
            z = rng.normal(size=(len(ids), 4))
            rec.record(step, (np.exp(z) / np.exp(z).sum(1, keepdims=True)).astype(np.float32))
    res = dyn("--predictions", tmp_path / "run", "--unlabeled", root, "--format", "json", "--fail-on", "never")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["n_images"] == len(ids) and set(doc["params"]["reference"]["avg_influence"]) == set(ids)


def test_outputs_in_an_input_folder_are_refused_before_any_work(tmp_path, pool):
    root, ids = pool
    before = {p.name: p.stat().st_mtime_ns for p in root.iterdir()}
    preds = _npz(tmp_path / "p.npz", ids, np.full((4, len(ids), 3), 1 / 3, np.float32))
    line = one_error_line(dyn("--predictions", preds, "--unlabeled", root, "--json", root / "x.json"))
    assert f"--json {root / 'x.json'} is inside --unlabeled {root}" in line
    line = one_error_line(dyn("--predictions", preds, "--unlabeled", root, "--csv", preds))
    assert "is --predictions" in line
    line = one_error_line(dyn("--labeled", tmp_path, "--unlabeled", root, "--out", root / "run", *TINY))
    assert "--out" in line and "is inside --unlabeled" in line
    assert {p.name: p.stat().st_mtime_ns for p in root.iterdir()} == before and not (root / "run").exists()


def test_an_interrupted_recording_resumes_without_losing_or_duplicating_records(tmp_path, digits_train):
    """SIGINT at step 7: records 3 and 6 are on disk, the checkpoint is step 7 (none was due);
    resuming records 9 and 12 exactly as an uninterrupted run."""
    import os
    import signal

    from audit.dynamics import load_predictions
    from audit.dynamics.run import record_run
    from audit.errors import RunInterrupted
    from audit.data.split import balanced_split
    from audit.ssl.trainer import TrainConfig

    lab, rest = balanced_split(digits_train, 2, 0)
    unl = rest.subset(np.arange(100)).without_labels()
    cfg = TrainConfig(steps=12, batch_size=8, mu=2, device="cpu", flip=False, eval_every=0, checkpoint_every=0,
                      ema=0.9, allow_repeats=True)
    full = record_run(cfg, lab, unl, out_dir=tmp_path / "full", record_every=3)

    def ctrl_c_at_7(info):
        if info.step == 7:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(RunInterrupted, match="interrupted at step 7 of 12"):
        record_run(cfg, lab, unl, out_dir=tmp_path / "cut", record_every=3, on_progress=ctrl_c_at_7)
    resumed = record_run(cfg, lab, unl, out_dir=tmp_path / "cut", record_every=3, resume=True)
    a, b = load_predictions(full.predictions), load_predictions(resumed.predictions)
    assert a.steps.tolist() == b.steps.tolist() == [3, 6, 9, 12]
    np.testing.assert_array_equal(a.probs, b.probs)


def test_recording_cadence_options_fail_before_any_work(tmp_path, pool):
    root, ids = pool
    line = one_error_line(dyn("--dataset", "digits", "--out", tmp_path / "r", "--record-every", "often"))
    assert "'--record-every' parameter of audit dynamics must be a number of steps (40), 'epoch'" in line
    assert "left out with --record-budget" in one_error_line(
        dyn("--dataset", "digits", "--out", tmp_path / "r", "--record-every", "epoch", "--record-budget", "0.1"))
    assert "share of training time in (0, 1)" in one_error_line(
        dyn("--dataset", "digits", "--out", tmp_path / "r", "--record-budget", "10"))
    preds = _npz(tmp_path / "p.npz", ids, np.full((len(ids), 4, 3), 1 / 3, np.float32))
    assert "--record-budget trains a model" in one_error_line(
        dyn("--predictions", preds, "--unlabeled", root, "--record-budget", "0.1"))
    assert not (tmp_path / "r").exists()


def test_a_run_too_short_for_three_records_fails_before_training(tmp_path, monkeypatch):
    """The scores need 3 records: a cadence that cannot make them is refused before any step
    (it used to train first and fail at scoring)."""
    from audit.ssl import trainer

    def no_training(*a, **k):
        raise AssertionError("trained")

    monkeypatch.setattr(trainer.Trainer, "fit", no_training)
    base = ["--dataset", "digits", "--out", tmp_path / "r", "--allow-repeats", "--no-flip"]
    line = one_error_line(dyn(*base, "--steps", "8", "--record-every", "4"))
    assert "--steps 8 recording every 4 steps makes 2 record(s)" in line and "at least 3" in line
    line = one_error_line(dyn(*base, "--steps", "12", "--record-every", "2epochs"))  # 2 x 1 398 images / (64 x 7): 7
    assert "every 2 passes over the pool (7 steps) makes 2 record(s)" in line
    assert "train 3 steps or more" in one_error_line(dyn(*base, "--steps", "2", "--record-budget", "0.1"))
    assert "The '--ema' parameter of audit dynamics must be" in one_error_line(dyn(*base, "--ema", "2"))  # not TrainConfig
    assert not (tmp_path / "r").exists()
