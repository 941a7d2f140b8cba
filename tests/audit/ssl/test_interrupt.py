"""Ctrl-C and SIGTERM during training lose nothing: the trainer stops at a step boundary, writes a
checkpoint, raises RunInterrupted (exit 130 in the CLIs), and resuming gives exactly the weights
and metrics of an uninterrupted run. The signal is sent to this process from inside a step."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch

from audit.errors import EXIT_INTERRUPTED, RunInterrupted
from audit.data.split import balanced_split
from audit.ssl.trainer import TrainConfig, Trainer

CFG = TrainConfig(steps=12, batch_size=8, mu=2, device="cpu", flip=False, eval_every=4, checkpoint_every=0, ema=0.9,
                  allow_repeats=True)


@pytest.fixture(scope="module")
def data(digits_train):
    from audit.data.builtin import digits

    lab, rest = balanced_split(digits_train, 2, 0)
    return lab, rest.subset(np.arange(100)).without_labels(), digits().test.subset(np.arange(60))


def _send_at(step: int, sig: int, times: int = 1):
    def on_progress(info):
        if info.step == step:
            for _ in range(times):
                os.kill(os.getpid(), sig)
    return on_progress


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _metrics(path):
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in rec.items() if k != "elapsed_s"} for rec in lines]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_checkpoints_the_step_and_resuming_is_exact(tmp_path, data, sig):
    lab, unl, test = data
    Trainer(CFG, lab, unl, test, out_dir=tmp_path / "full").fit()
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    cut = tmp_path / "cut"
    with pytest.raises(RunInterrupted) as info:
        Trainer(CFG, lab, unl, test, out_dir=cut, on_progress=_send_at(7, sig)).fit()
    name = signal.Signals(sig).name
    assert str(info.value) == f"interrupted at step 7 of 12 ({name}); saved {cut / 'checkpoint.pt'}: continue with --resume"
    assert info.value.exit_code == EXIT_INTERRUPTED and isinstance(info.value, KeyboardInterrupt)
    assert {s: signal.getsignal(s) for s in before} == before  # the handlers are given back
    assert not (cut / "model.pt").exists() and (cut / "checkpoint.pt").is_file()

    resumed = Trainer(CFG, lab, unl, test, out_dir=cut)
    assert resumed.resume() == 7
    resumed.fit()
    a, b = _weights(tmp_path / "full" / "model.pt"), _weights(cut / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # steps 5-7's logs were carried by the checkpoint: the step-8 line averages the same steps
    assert _metrics(cut / "metrics.jsonl") == _metrics(tmp_path / "full" / "metrics.jsonl")


def test_a_second_signal_aborts_at_once(tmp_path, data):
    lab, unl, test = data
    with pytest.raises(KeyboardInterrupt) as info:
        Trainer(CFG, lab, unl, test, out_dir=tmp_path, on_progress=_send_at(3, signal.SIGINT, times=2)).fit()
    assert not isinstance(info.value, RunInterrupted)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_without_an_out_dir_nothing_is_saved_and_the_message_says_so(data):
    lab, unl, test = data
    with pytest.raises(RunInterrupted, match=r"interrupted at step 2 of 12 \(SIGINT\); no out_dir, so nothing was saved"):
        Trainer(CFG, lab, unl, test, on_progress=_send_at(2, signal.SIGINT)).fit()


def test_a_signal_at_the_last_step_just_finishes(tmp_path, data):
    lab, unl, test = data
    result = Trainer(CFG, lab, unl, test, out_dir=tmp_path, on_progress=_send_at(12, signal.SIGINT)).fit()
    assert result.steps == 12 and (tmp_path / "model.pt").is_file()


def test_a_killed_runs_temporaries_are_removed_by_the_next_run(tmp_path, data):
    import subprocess
    import sys

    lab, unl, test = data
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    stale = tmp_path / f".checkpoint.pt.{proc.pid}.0.tmp"  # what kill -9 during a save leaves
    tmp_path.mkdir(exist_ok=True)
    stale.write_bytes(b"half a checkpoint")
    keep = tmp_path / "notes.tmp"
    keep.write_text("not ours")
    Trainer(CFG, lab, unl, test, out_dir=tmp_path).fit()
    assert not stale.exists() and keep.read_text() == "not ours"
