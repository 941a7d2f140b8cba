"""The propagation record of a bench trial (paper 3.3, Figure 5): the front of y* along the bridge,
computed on hand-built probabilities, and kept recordings (--keep-predictions) that reproduce it."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from audit.dynamics import load_predictions
from audit.errors import InvalidParameterError, ShapeMismatchError
from audit.ssl.config import TrainConfig
from redteam.bench import BenchConfig, run_bench
from redteam.bench.matrix import Pair, expand
from redteam.bench.propagation import Propagation, fronts, hard_from, hold, measure, probe_line, shares
from redteam.bench.trial import poisoned_pool


def _probs(labels_per_record: list[list[int]], classes: int = 3, top: float = 0.9) -> np.ndarray:
    """M×R×C probabilities whose argmax is labels_per_record[r][m] with probability ``top``."""
    lab = np.array(labels_per_record).T  # M×R
    p = np.full(lab.shape + (classes,), (1 - top) / (classes - 1))
    np.put_along_axis(p, lab[..., None], top, axis=2)
    return p


def test_front_is_the_end_of_the_unbroken_run_from_x_prime():
    alphas = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    p = _probs([[1, 1, 0, 1, 0],    # broken at 0.5: a y* island further on does not count
                [1, 1, 1, 1, 1],    # all the way: the front is x* itself
                [0, 1, 1, 1, 1],    # x' not y*: nothing has propagated
                [1, 0, 0, 0, 0]])   # only x'
    assert fronts(p, alphas, 1).tolist()[:2] == [0.25, 1.0]
    assert math.isnan(fronts(p, alphas, 1)[2]) and fronts(p, alphas, 1)[3] == 0.0
    assert shares(p, 1).tolist() == [0.6, 1.0, 0.8, 0.2]
    # members in any order are read in ascending α
    perm = np.array([3, 0, 4, 2, 1])
    assert np.array_equal(fronts(p[perm], alphas[perm], 1), fronts(p, alphas, 1), equal_nan=True)


def test_hard_from_reads_the_confident_x_star_end():
    alphas = np.linspace(0, 1, 5)
    p = _probs([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], top=0.97)
    p[3, 0, 0] = 0.9  # α 0.75 predicted class 0 but below 0.95: the hard region starts at 1.0
    p[3, 0, 1:] = 0.05
    out = hard_from(p, alphas, 0)
    assert out[0] == 1.0 and math.isnan(out[1])
    assert hard_from(_probs([[0, 0, 0, 0, 0]], top=0.97), alphas, 0)[0] == 0.0


def test_bad_shapes_are_refused():
    with pytest.raises(ShapeMismatchError, match="M×R×C"):
        fronts(np.zeros((3, 2)), np.zeros(3), 0)
    with pytest.raises(ShapeMismatchError, match="M alphas"):
        fronts(np.zeros((3, 2, 4)), np.zeros(2), 0)


def test_hold_reads_the_latest_record_at_or_before():
    assert hold([10, 20, 30], [0.1, None, 0.3], [5, 10, 25, 40]) == [None, 0.1, None, 0.3]


def test_probe_line_runs_from_x_prime_to_x_star():
    a, b = np.zeros((4, 4, 1), np.uint8), np.full((4, 4, 1), 200, np.uint8)
    alphas, line = probe_line(a, b, 11)
    assert len(line) == 11 and np.array_equal(line.images[0], a) and np.array_equal(line.images[-1], b)
    assert line.images[5, 0, 0, 0] == 100 and alphas[5] == pytest.approx(0.5)


def test_measure_settles_and_round_trips():
    steps = np.array([10, 20, 30, 40])
    line_alphas = np.linspace(0, 1, 5)
    line = _probs([[0, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 0, 0]])
    bridge = _probs([[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0]])
    prop = measure(steps, line, line_alphas, 1, 0, bridge, np.array([0.0, 0.5, 0.9]))
    assert prop.front == (None, 0.0, 0.5, 0.5) and prop.line_front == (None, 0.25, 0.5, 0.5)
    assert prop.final_front == 0.5 and prop.max_front == 0.5 and prop.settled_at() == 30
    assert prop.target_prob[0] == pytest.approx(0.05)  # the last probe point is x*
    control = replace(prop, front=None, share=None)
    joined = prop.with_clean_boundary(replace(control, steps=(15, 35), line_front=(0.25, 0.5)))
    assert joined.clean_boundary == (None, 0.25, 0.25, 0.5)
    assert Propagation.from_json(joined.to_json()) == joined


def test_pairs_and_nearest_source_choose_the_attackers_images(digits_splits):
    cfg = BenchConfig(dataset="digits", trials=1, ratios=(0.05,), train=TrainConfig(steps=1),
                      pairs=(Pair(target=7, target_label=3),), source_choice="nearest")
    spec = expand(cfg)[1]
    ds = poisoned_pool(digits_splits, spec)
    m = ds.manifest
    assert (m.target.index, m.target_label) == (7, 3)
    x_star = ds.test.images[7].astype(float)
    dist = {i: np.sum((ds.labeled.images[i] - x_star) ** 2) for i in np.flatnonzero(ds.labeled.labels == 3)}
    assert m.source.index == min(dist, key=dist.get)
    assert spec.key != replace(spec, source_choice="random").key  # part of the trial's identity
    with pytest.raises(InvalidParameterError, match="'pairs' parameter"):
        replace(cfg, trials=2)
    with pytest.raises(InvalidParameterError, match="'algo_config' parameter of FixMatch"):
        replace(cfg, train=TrainConfig(algo_config={"thresold": 0.5}))


@pytest.fixture(scope="module")
def digits_splits():
    from audit.data.builtin import digits

    return digits()


def test_keep_predictions_keeps_what_the_front_was_read_from(tmp_path, digits_splits):
    train = TrainConfig(model="cnn", model_options={"widths": [8, 16]}, steps=12, batch_size=16, mu=2, flip=False,
                        observe_every=3, device="cpu")
    cfg = BenchConfig(dataset="digits", ratios=(0.05,), trials=1, train=train, dynamics_scores=("influence",))
    out = run_bench(cfg, tmp_path / "kept", splits=digits_splits, keep_predictions=True)
    control, poisoned = out.results
    report = out.report_path.read_text(encoding="utf-8")
    assert "## Propagation of y* along the bridge" in report and "![propagation.png](propagation.png)" in report
    row = next(line for line in report.splitlines() if line.startswith("| fixmatch | linear | 5% |"))
    assert f"{poisoned.propagation.final_front:.2f} (n=1)" in row  # the table reads the stored front
    for r in out.results:
        folder = tmp_path / "kept" / "predictions" / r.key
        assert {p.name for p in folder.iterdir()} == {"predictions", "probe", "manifest.json", "summary.json"}
    # the stored front is the kept recording's, read again from scratch
    kept = tmp_path / "kept" / "predictions" / poisoned.key
    pred, line = load_predictions(kept / "predictions"), load_predictions(kept / "probe")
    y_star = poisoned.target["target_label"]
    alphas = np.array([float(i.split("=")[1]) for i in line.ids])
    assert list(poisoned.propagation.line_front) == [None if math.isnan(v) else round(v, 6)
                                                     for v in fronts(line.probs, alphas, y_star)]
    assert len(poisoned.propagation.front) == pred.num_records == 4
    assert poisoned.propagation.clean_boundary == control.propagation.line_front  # same record steps here
    assert control.propagation.front is None and control.propagation.clean_boundary == control.propagation.line_front
    # default: deleted as before
    plain = run_bench(cfg, tmp_path / "plain", splits=digits_splits, report=False)
    assert plain.computed == 2 and not (tmp_path / "plain" / "predictions").exists()
    assert [r.propagation for r in plain.results] == [r.propagation for r in out.results]


def test_surrogate_pairs_pick_the_runner_up_and_the_nearest_source(digits_splits):
    from redteam.bench.pairs import Candidate, choose, surrogate_candidates, to_pair

    train = TrainConfig(model="cnn", model_options={"widths": [8, 16]}, steps=30, batch_size=16, mu=2, flip=False,
                        device="cpu")
    cfg = BenchConfig(dataset="digits", ratios=(0.05,), trials=1, train=train)
    cands = surrogate_candidates(cfg, 0, digits_splits, max_candidates=5, min_confidence=0.0)
    ds = poisoned_pool(digits_splits, expand(cfg)[0])
    assert 0 < len(cands) <= 5
    for c in cands:
        assert c.target_label != c.true_label == ds.test.labels[c.target]
        assert ds.labeled.labels[c.source] == c.target_label
        assert c.boundary is None or 0.0 <= c.boundary <= 1.0
    made = [Candidate(i, 0, 1, 0, 0.99, b) for i, b in enumerate([None, 0.2, 0.75, 0.95])]
    assert choose(made, "near-boundary", 0).target == 2  # the only one in [0.7, 0.9]
    assert choose(made[:2], "near-boundary", 0).target == 1  # none in the band: the closest
    assert to_pair(made[2]) == Pair(target=2, target_label=1, source=0)
    with pytest.raises(InvalidParameterError, match="'rule' parameter of choose"):
        choose(made, "easiest", 0)


def test_gpu_preset_runs_at_a_tiny_size_on_cpu(tmp_path):
    """The preset is sized for an H200 (docs/bench.md); here its pipeline runs for 6 steps on the
    200-image Fashion-MNIST fixture (the device has no internet: the data travels with the job)."""
    from pathlib import Path

    from audit.data.imageset import ImageSet, Splits
    from redteam.bench import PRESETS

    z = np.load(Path(__file__).resolve().parents[2] / "fixtures" / "fashion-mnist-200.npz")
    names = tuple(f"c{k}" for k in range(10))
    is_test = np.arange(200) % 5 == 0  # 4 test images per class (the fixture is sorted by class)
    train = ImageSet(images=z["images"][~is_test], ids=[f"train/{i}" for i in range(160)],
                     labels=z["labels"][~is_test], class_names=names)
    test = ImageSet(images=z["images"][is_test], ids=[f"test/{i}" for i in range(40)], labels=z["labels"][is_test],
                    class_names=names)
    cfg = PRESETS.get("gpu")()
    assert (cfg.dataset, cfg.pool, cfg.labels_per_class, cfg.train.steps, cfg.trials) == ("fashion-mnist", 5000, 25,
                                                                                          20000, 1)
    tiny = replace(cfg, labels_per_class=2, pool=100, dynamics_scores=("chain",),
                   train=replace(cfg.train, steps=6, batch_size=8, mu=2, observe_every=2, device="cpu"))
    out = run_bench(tiny, tmp_path, splits=Splits(train=train, test=test, name="fashion-mnist-200"), report=False)
    assert [r.status for r in out.results] == ["ok", "ok"]
    assert out.results[1].n_poison == 2 and len(out.results[1].propagation.steps) == 3


def test_an_interrupted_trial_stops_the_bench_and_is_not_stored(tmp_path, digits_splits, monkeypatch):
    """SIGTERM/Ctrl-C inside training (the trainer raises RunInterrupted) is not a failed trial: a
    stored failure would never be recomputed; the trial must simply run again on resume."""
    from audit.errors import RunInterrupted
    from redteam.bench import trial as trial_mod

    def interrupted(*args, **kwargs):
        raise RunInterrupted("interrupted at step 3 of 12 (SIGTERM)")

    monkeypatch.setattr(trial_mod, "record_run", interrupted)
    cfg = BenchConfig(dataset="digits", ratios=(0.05,), trials=1, train=TrainConfig(steps=3, device="cpu"))
    with pytest.raises(RunInterrupted):
        run_bench(cfg, tmp_path, splits=digits_splits)
    assert not list((tmp_path / "trials").glob("*.json")) and not list((tmp_path / "work").glob("*"))


def test_a_stored_spec_reads_back_to_the_same_trial():
    from redteam.bench.matrix import TrialSpec

    cfg = BenchConfig(dataset="digits", trials=1, ratios=(0.05,), pairs=(Pair(target=3),), source_choice="nearest",
                      train=TrainConfig(steps=5, algo_config={"threshold": 0.6}))
    for spec in expand(cfg):
        assert TrialSpec.from_json(spec.to_json()).key == spec.key


def test_cli_keep_predictions_reaches_the_bench(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import redteam.bench
    from redteam.bench import BenchOutcome
    from redteam.cli import app

    seen = {}

    def fake_run_bench(config, out, **kwargs):
        seen.update(kwargs, preset=config.preset)
        return BenchOutcome([], 0, 0, tmp_path / "results.json", None, 0.0)

    monkeypatch.setattr(redteam.bench, "run_bench", fake_run_bench)
    runner = CliRunner()
    assert runner.invoke(app, ["bench", "--out", str(tmp_path / "a"), "--keep-predictions"]).exit_code == 0
    assert seen["keep_predictions"] is True
    assert runner.invoke(app, ["bench", "--out", str(tmp_path / "b"), "--preset", "gpu"]).exit_code == 0
    assert seen["keep_predictions"] is False and seen["preset"] == "gpu"
