"""The trainer: deterministic, resumes exactly, refuses bad checkpoints and data, feeds observers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audit.data.split import balanced_split
from audit.errors import (
    AuditError, CheckpointError, DataError, InvalidParameterError, ShapeMismatchError, UnknownNameError,
)
from audit.ssl.trainer import TrainConfig, Trainer

TINY = dict(steps=6, batch_size=8, mu=2, eval_every=3, checkpoint_every=0, device="cpu", flip=False)


@pytest.fixture(scope="module")
def data(digits_train):
    labeled, rest = balanced_split(digits_train, 2, seed=0)
    return labeled, rest.subset(range(200)).without_labels(), rest.subset(range(200, 300))


def weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


def same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_two_runs_with_one_seed_give_identical_weights(data):
    runs = [Trainer(TrainConfig(**{**TINY, "steps": 5}), *data) for _ in range(2)]
    for t in runs:
        t.fit()
    assert same(weights(runs[0].model), weights(runs[1].model))
    assert same(weights(runs[0].ema_model), weights(runs[1].ema_model))
    other = Trainer(TrainConfig(**{**TINY, "steps": 5, "seed": 1}), *data)
    other.fit()
    assert not same(weights(runs[0].model), weights(other.model))  # the test can fail


class Kill(Exception):
    pass


def test_resume_continues_exactly_where_a_killed_run_stopped(data, tmp_path):
    cfg = TrainConfig(**{**TINY, "steps": 10, "checkpoint_every": 5, "algo": "mixmatch"})
    straight = Trainer(cfg, *data, out_dir=tmp_path / "a")
    straight.fit()

    def kill_at_7(info):  # dies after the step-5 checkpoint and a step-6 evaluation
        if info.step == 7:
            raise Kill

    with pytest.raises(Kill):
        Trainer(cfg, *data, out_dir=tmp_path / "b", on_progress=kill_at_7).fit()
    resumed_at = []

    class Recorder:
        def __call__(self, event):
            pass

        def on_resume(self, step):
            resumed_at.append(step)

    resumed = Trainer(cfg, *data, out_dir=tmp_path / "b", observers=[Recorder()])
    result = resumed.fit(resume=True)
    assert resumed_at == [5] and result.steps == 10
    assert same(weights(straight.model), weights(resumed.model))
    assert same(weights(straight.ema_model), weights(resumed.ema_model))
    assert same([v.clone() for g in straight.optimizer.state.values() for v in g.values() if torch.is_tensor(v)],
                [v.clone() for g in resumed.optimizer.state.values() for v in g.values() if torch.is_tensor(v)])
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [3, 6, 9, 10]  # the killed run's step-6 line was dropped, then written again
    for name in ("model.pt", "summary.json", "checkpoint.pt"):
        assert (tmp_path / "b" / name).is_file()
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["steps"] == 10


def test_resume_restores_the_algorithms_own_state(data, tmp_path):
    cfg = TrainConfig(**{**TINY, "steps": 6, "checkpoint_every": 3, "algo_config": {"dist_align": True}})
    straight = Trainer(cfg, *data, out_dir=tmp_path / "a")
    straight.fit()

    def kill_at_4(info):
        if info.step == 4:
            raise Kill

    with pytest.raises(Kill):
        Trainer(cfg, *data, out_dir=tmp_path / "b", on_progress=kill_at_4).fit()
    resumed = Trainer(cfg, *data, out_dir=tmp_path / "b")
    resumed.fit(resume=True)
    assert not torch.equal(straight.algorithm.p_model, torch.full((10,), 0.1))  # the test can fail
    assert torch.equal(straight.algorithm.p_model, resumed.algorithm.p_model)
    assert same(weights(straight.model), weights(resumed.model))


def test_should_stop_ends_the_run_as_its_last_step(data, tmp_path):
    seen = []
    trainer = Trainer(TrainConfig(**{**TINY, "steps": 20}), *data, out_dir=tmp_path,
                      observers=[lambda e: seen.append((e.step, e.final))], should_stop=lambda info: info.step == 4)
    result = trainer.fit()
    assert result.steps == 4 and result.evals[-1].step == 4 and result.test_acc_ema is not None
    assert seen == [(4, True)]
    assert json.loads((tmp_path / "summary.json").read_text())["steps"] == 4
    assert (tmp_path / "model.pt").is_file()


def test_algorithms_see_the_step_count_for_ramps_in_steps(data):
    # MixMatch's λu with a 10-step ramp: steps done before each step, 0..5, give 0, 10, ..., 50
    lam = []
    cfg = TrainConfig(**{**TINY, "algo": "mixmatch", "algo_config": {"rampup_steps": 10}, "log_every": 1})
    Trainer(cfg, *data, on_progress=lambda info: lam.append(info.logs["lambda_u"])).fit()
    assert lam == pytest.approx([0.0, 10.0, 20.0, 30.0, 40.0, 50.0])


def test_augment_options_reach_the_augmenters(data):
    trainer = Trainer(TrainConfig(**{**TINY, "augment_options": {"fill": 0.0, "cutout": 0.25, "pad": 0.1}}), *data)
    assert (trainer.strong.fill, trainer.strong.cutout, trainer.strong.pad, trainer.weak.pad) == (0.0, 0.25, 0.1, 0.1)
    with pytest.raises(InvalidParameterError, match="keys among n_ops, magnitude, cutout, pad, fill"):
        Trainer(TrainConfig(**{**TINY, "augment_options": {"fil": 0.0}}), *data)


def test_bad_checkpoints_raise_one_clear_error_and_write_nothing(data, tmp_path):
    cfg = TrainConfig(**{**TINY, "steps": 4, "checkpoint_every": 2})
    Trainer(cfg, *data, out_dir=tmp_path).fit()
    ckpt = tmp_path / "checkpoint.pt"
    good = ckpt.read_bytes()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != "checkpoint.pt"}

    with pytest.raises(CheckpointError, match="different run.*steps: 4 -> 8"):
        Trainer(TrainConfig(**{**TINY, "steps": 8, "checkpoint_every": 2}), *data, out_dir=tmp_path).fit(resume=True)
    other_data = (data[0], data[1].subset(range(100)), data[2])
    with pytest.raises(CheckpointError, match="different training data"):
        Trainer(cfg, *other_data, out_dir=tmp_path).fit(resume=True)
    ckpt.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        Trainer(cfg, *data, out_dir=tmp_path).fit(resume=True)
    ckpt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        Trainer(cfg, *data, out_dir=tmp_path).fit(resume=True)
    ckpt.unlink()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Trainer(cfg, *data, out_dir=tmp_path).fit(resume=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_observers_get_the_ema_model_every_n_steps_and_at_the_end(data):
    seen = []

    def observer(event):
        seen.append((event.step, event.epoch, event.final, event.model.training, event.model is event.trainer.ema_model))

    Trainer(TrainConfig(**{**TINY, "steps": 7, "observe_every": 3}), *data, observers=[observer]).fit()
    assert seen == [(3, 0, False, False, True), (6, 0, False, False, True), (7, 0, True, False, True)]
    seen.clear()  # default: once per pass over the 200-image pool (μB = 16 → every 13 steps)
    Trainer(TrainConfig(**{**TINY, "steps": 14}), *data, observers=[observer]).fit()
    assert [(s, e, f) for s, e, f, *_ in seen] == [(13, 1, False), (14, 1, True)]


def test_predict_returns_probabilities_on_clean_images(data):
    trainer = Trainer(TrainConfig(**{**TINY, "steps": 2}), *data)
    result = trainer.fit()
    probs = trainer.predict(data[2])
    assert probs.shape == (100, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    raw = trainer.predict(data[2].images[:5], model=trainer.model, batch_size=2)
    assert raw.shape == (5, 10) and trainer.model.training  # mode restored
    assert result.test_acc_ema == pytest.approx(float((probs.argmax(1) == data[2].labels).mean()))
    # per-class accuracy of the same EMA predictions, keyed by class name, in the summary too
    names, labels, pred = data[0].class_names, data[2].labels, probs.argmax(1)
    want = {names[k]: float((pred[labels == k] == k).mean()) for k in np.unique(labels)}
    assert result.per_class_ema == pytest.approx(want) and len(want) > 1
    assert result.to_json()["test_acc_per_class_ema"] == result.per_class_ema
    with pytest.raises(ShapeMismatchError, match="8×8×1"):
        trainer.predict(np.zeros((3, 9, 9, 1), np.uint8))


def test_per_class_reuses_the_final_evaluation(data, monkeypatch):
    calls, probs = [], Trainer._probs

    def counted(self, model, x, *args, **kwargs):
        calls.append(self.step)
        return probs(self, model, x, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_probs", counted)
    result = Trainer(TrainConfig(**TINY), *data).fit()  # evaluations at steps 3 and 6, EMA and raw each
    assert calls == [3, 3, 6, 6] and result.per_class_ema is not None


def test_bad_inputs_say_what_is_wrong(data, fashion200):
    labeled, unlabeled, test = data
    cfg = TrainConfig(**TINY)
    with pytest.raises(ShapeMismatchError, match="unlabeled images are 28×28×1"):
        Trainer(cfg, labeled, fashion200.without_labels())
    no_three = labeled.subset(np.flatnonzero(labeled.labels != 3))
    with pytest.raises(DataError, match="class '3' has no labeled example"):
        Trainer(cfg, no_three, unlabeled)
    with pytest.raises(InvalidParameterError, match="at most the 20 labeled images.*--allow-repeats"):
        Trainer(TrainConfig(**{**TINY, "batch_size": 64}), labeled, unlabeled)
    Trainer(TrainConfig(**{**TINY, "batch_size": 64, "allow_repeats": True}), labeled, unlabeled)
    with pytest.raises(UnknownNameError, match="Unknown algorithm 'fixmach'. Available: fixmatch"):
        Trainer(TrainConfig(**{**TINY, "algo": "fixmach"}), labeled, unlabeled)
    with pytest.raises(InvalidParameterError, match="'steps' parameter of TrainConfig"):
        TrainConfig(steps=0)
    with pytest.raises(InvalidParameterError, match="keys among"):
        Trainer(TrainConfig(**{**TINY, "algo_config": {"treshold": 0.9}}), labeled, unlabeled)


def test_balanced_split_takes_n_per_class(digits_train):
    labeled, rest = balanced_split(digits_train, 4, seed=3)
    assert np.bincount(labeled.labels).tolist() == [4] * 10
    assert len(labeled) + len(rest) == len(digits_train) and not set(labeled.ids) & set(rest.ids)
    assert balanced_split(digits_train, 4, seed=3)[0].ids == labeled.ids
    smallest = int(np.bincount(digits_train.labels).min())
    with pytest.raises(InvalidParameterError, match=rf"at most {smallest} \(the size of the smallest class"):
        balanced_split(digits_train, 1000)


def test_step_logs_are_read_every_log_every_steps_with_the_same_metrics(data, tmp_path):
    """Reading the logs every step or every 4 steps gives the same metrics.jsonl, bit for bit;
    progress sees the means since the previous read."""
    seen = {}
    for every in (1, 4):
        shown = []
        cfg = TrainConfig(**{**TINY, "steps": 8, "eval_every": 5, "log_every": every})
        Trainer(cfg, *data, out_dir=tmp_path / str(every), on_progress=lambda i: shown.append(i.loss)).fit()
        seen[every] = shown
    def metrics(every):  # every line but its wall-clock time
        return [{k: v for k, v in json.loads(ln).items() if k != "elapsed_s"}
                for ln in (tmp_path / str(every) / "metrics.jsonl").read_text().splitlines()]

    assert len(metrics(1)) == 2 and metrics(1) == metrics(4)
    ones, fours = seen[1], seen[4]
    assert fours[0] == ones[0] and fours[3] == pytest.approx(np.mean(ones[1:4]))  # steps 2-4, read at step 4
    assert fours[2] == fours[1] == fours[0]  # nothing read at steps 2 and 3
    with pytest.raises(InvalidParameterError, match="'log_every' parameter of TrainConfig"):
        TrainConfig(log_every=0)


def test_a_diverging_loss_stops_the_run_at_the_next_read(data, tmp_path):
    """A NaN loss at step 3 is seen at the step-5 read, before the step-5 checkpoint is written."""
    from dataclasses import replace

    cfg = TrainConfig(**{**TINY, "steps": 30, "eval_every": 0, "log_every": 5, "checkpoint_every": 5})
    trainer = Trainer(cfg, *data, out_dir=tmp_path)
    step = trainer.algorithm.step

    def diverging(model, batch):
        out = step(model, batch)
        return replace(out, loss=out.loss * float("nan")) if batch.step >= 2 else out

    trainer.algorithm.step = diverging
    with pytest.raises(AuditError, match=r"^the fixmatch loss became nan by step 5; try a lower --lr$"):
        trainer.fit()
    assert not (tmp_path / "checkpoint.pt").exists()


def test_one_device_rule_for_every_model_the_project_runs():
    from audit.ssl.trainer import resolve_device
    from redteam.attacks.transfer import TransferConfig
    from redteam.generative.train import GanTrainConfig

    assert resolve_device("cpu").type == "cpu" and resolve_device("auto").type in ("cpu", "cuda")
    for make in (lambda d: resolve_device(d, "train"), lambda d: GanTrainConfig(device=d),
                 lambda d: TransferConfig(model_path="m.pt", device=d)):
        with pytest.raises(InvalidParameterError, match="'device' parameter .* be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
            make("gpu0")
        if not torch.cuda.is_available():
            with pytest.raises(InvalidParameterError, match="'auto' or 'cpu' on a machine without CUDA"):
                make("cuda:1")
