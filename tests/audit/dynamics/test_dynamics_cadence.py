"""Recording cadences: steps, passes over the pool, a time budget (with a fake clock), and the
cadence a real recorded run follows."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from audit.dynamics.cadence import DEFAULT_RECORD_EVERY, PROBE_IMAGES, Cadence, TimedRecording
from audit.errors import InvalidParameterError


def test_parse_every_form_and_refuse_the_rest():
    assert Cadence.parse() == Cadence(steps=DEFAULT_RECORD_EVERY)
    assert Cadence.parse("40") == Cadence(steps=40) == Cadence.parse(40)
    assert Cadence.parse("epoch") == Cadence(passes=1.0) == Cadence.parse("1epochs")
    assert Cadence.parse("2epochs") == Cadence(passes=2.0) and Cadence.parse("0.5epoch") == Cadence(passes=0.5)
    assert Cadence.parse(budget=0.1) == Cadence(budget=0.1)
    for bad in ("0", "-3", "epochs2", "fast", "0epoch"):
        with pytest.raises(InvalidParameterError, match="'--record-every' parameter of audit dynamics"):
            Cadence.parse(bad)
    with pytest.raises(InvalidParameterError, match="left out with --record-budget"):
        Cadence.parse("epoch", 0.1)
    for budget in (0.0, 1.0, -0.1):
        with pytest.raises(InvalidParameterError, match="'budget' parameter of Cadence must be a share"):
            Cadence.parse(budget=budget)
    with pytest.raises(InvalidParameterError, match="exactly one of"):
        Cadence(steps=3, passes=1.0)


def test_steps_between_records():
    assert Cadence(steps=7).every(60_000, 448) == 7
    assert Cadence(passes=1.0).every(60_000, 448) == 134  # ceil(60000 / 448): the paper's epoch
    assert Cadence(passes=2.0).every(1000, 448) == 5 and Cadence(passes=0.1).every(100, 448) == 1
    assert Cadence(budget=0.1).every(60_000, 448) is None
    assert Cadence(passes=1.0).describe() == "every pass over the pool"


class FakeRun:
    """A clock; training steps cost ``step_s``, a record ``record_s``, a probe of some of the N
    images its share. ``recorder`` is the observer the gate times (``images`` is what it probes)."""

    def __init__(self, n: int, step_s: float, record_s: float) -> None:
        self.now, self.n, self.step_s, self.record_s = 0.0, n, step_s, record_s
        self.recorded: list[int] = []
        self.recorder = _Recorder(self)
        self.trainer = SimpleNamespace(predict=lambda images, model=None: self._spend(len(images) / n))

    def _spend(self, share: float) -> None:
        self.now += self.record_s * share

    def train(self, gate: TimedRecording, steps: int) -> None:
        self.trainer.config = SimpleNamespace(steps=steps)
        for step in range(1, steps + 1):
            self.now += self.step_s
            gate(SimpleNamespace(step=step, final=step == steps, trainer=self.trainer, model=None))


class _Recorder:
    def __init__(self, run: FakeRun) -> None:
        self.run = run
        self.images = _Images(run.n)

    def __call__(self, event) -> None:
        self.run._spend(1.0)
        self.run.recorded.append(event.step)


class _Images:
    def __init__(self, n: int) -> None:
        self.images = np.zeros((n, 1, 1, 1), np.uint8)

    def __len__(self) -> int:
        return len(self.images)


@pytest.mark.parametrize(("step_s", "record_s"), [(1.0, 20.0), (0.7, 5.0), (2.0, 100.0)])
def test_a_budget_keeps_recording_within_its_share(step_s, record_s):
    run = FakeRun(60_000, step_s, record_s)
    followed = []
    gate = TimedRecording(run.recorder, [lambda e: followed.append(e.step)], budget=0.1, clock=lambda: run.now)
    run.train(gate, 2000)
    train_s = 2000 * step_s
    assert run.recorded[-1] == 2000 and followed == run.recorded  # the last step records; followers follow
    assert gate.seconds / train_s <= 0.1 + 1e-9  # the reserve keeps even the last record inside the budget
    # and it spends most of it: as many records as fit, less the reserve and the probe
    assert len(run.recorded) >= int(0.1 * train_s / record_s) - 2
    gaps = np.diff(run.recorded[:-1])
    assert len(gaps) == 0 or gaps.min() >= int(0.9 * record_s / (0.1 * step_s))  # spread out, never bunched
    assert PROBE_IMAGES < 60_000  # the probe timed a slice, not a whole record


def test_a_run_too_short_for_its_budget_still_makes_the_records_scores_need():
    run = FakeRun(60_000, 1.0, 60.0)  # one record = 60 steps: a 10% budget of 300 steps allows none
    gate = TimedRecording(run.recorder, [], budget=0.1, clock=lambda: run.now)
    run.train(gate, 300)
    assert run.recorded == [100, 200, 300]  # a third, two thirds, the end
    assert gate.seconds / 300 > 0.1  # and the share it reports says the budget was exceeded


def test_a_fixed_cadence_records_every_call_and_times_it():
    run = FakeRun(100, 1.0, 3.0)
    gate = TimedRecording(run.recorder, [], budget=None, clock=lambda: run.now)
    run.train(gate, 5)
    assert run.recorded == [1, 2, 3, 4, 5] and gate.seconds == pytest.approx(15.0) and gate.calls == 5


def test_record_every_epoch_and_a_budget_on_a_real_run(tmp_path, digits_train):
    from audit.data.split import balanced_split
    from audit.dynamics.run import record_run
    from audit.ssl.trainer import TrainConfig

    lab, rest = balanced_split(digits_train, 2, 0)
    unl = rest.subset(np.arange(100)).without_labels()
    cfg = TrainConfig(steps=12, batch_size=8, mu=2, device="cpu", flip=False, eval_every=0, checkpoint_every=0,
                      ema=0.9, allow_repeats=True)
    run = record_run(cfg, lab, unl, out_dir=tmp_path / "epoch", record_every="epoch")
    meta = json.loads((run.predictions / "meta.json").read_text())
    assert run.record_every == 7  # ceil(100 / 16) steps: one pass over the pool
    assert [r["step"] for r in meta["records"]] == [7, 12] and [r["epoch"] for r in meta["records"]] == [1, 1]
    assert run.cost_line().startswith("recording: 2 records every pass over the pool (7 steps), ")
    assert run.to_json()["cadence"] == {"passes": 1.0}
    budget = record_run(cfg, lab, unl, out_dir=tmp_path / "budget", record_every=Cadence(budget=0.5))
    steps = [r["step"] for r in json.loads((budget.predictions / "meta.json").read_text())["records"]]
    assert steps[-1] == 12 and budget.record_every is None and steps == sorted(set(steps))
    assert "within 50% of training time" in budget.cost_line()
