"""Recorder on disk, loading and validation of recorded predictions, the trainer observer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from audit.data.imageset import ImageSet
from audit.dynamics import Recorder, RecorderObserver, check_ids, load_predictions, validate_predictions
from audit.errors import InvalidParameterError, PredictionsError

IDS = tuple(f"img{i}.png" for i in range(6))


def softmax(rng: np.random.Generator, *shape: int) -> np.ndarray:
    z = rng.normal(size=shape)
    e = np.exp(z - z.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def test_round_trip_meta_and_float16(tmp_path):
    rng = np.random.default_rng(0)
    recs = [softmax(rng, 6, 4) for _ in range(3)]
    with Recorder(tmp_path / "rec", IDS, 4) as r:
        for i, p in enumerate(recs):
            r.record(100 * (i + 1), p, epoch=i)
    meta = json.loads((tmp_path / "rec" / "meta.json").read_text())
    assert meta["ids"] == list(IDS) and meta["num_classes"] == 4 and meta["dtype"] == "float16"
    assert [m["step"] for m in meta["records"]] == [100, 200, 300]
    pred = load_predictions(tmp_path / "rec")
    assert pred.probs.shape == (6, 3, 4) and pred.probs.dtype == np.float32
    assert pred.steps.tolist() == [100, 200, 300] and pred.epochs.tolist() == [0, 1, 2]
    np.testing.assert_allclose(pred.probs, np.stack(recs, 1), atol=1e-3)


def test_steps_must_increase_and_shapes_are_checked(tmp_path):
    rng = np.random.default_rng(1)
    r = Recorder(tmp_path / "rec", IDS, 4)
    r.record(5, softmax(rng, 6, 4))
    with pytest.raises(PredictionsError, match="steps must increase"):
        r.record(5, softmax(rng, 6, 4))
    with pytest.raises(PredictionsError, match=r"expected probabilities of shape \(6, 4\)"):
        r.record(6, softmax(rng, 5, 4))
    bad = softmax(rng, 6, 4)
    bad[0, 0] = np.nan
    with pytest.raises(PredictionsError, match="NaN"):
        r.record(6, bad)
    with pytest.raises(PredictionsError, match="sum to 1"):
        r.record(6, np.full((6, 4), 0.5, dtype=np.float32))
    assert r.steps == [5]
    with pytest.raises(InvalidParameterError, match="'dtype' parameter of Recorder"):
        Recorder(tmp_path / "other", IDS, 4, dtype=np.int8)


def test_reopen_resumes_and_rejects_other_runs(tmp_path):
    rng = np.random.default_rng(2)
    with Recorder(tmp_path / "rec", IDS, 4) as r:
        r.record(1, softmax(rng, 6, 4))
        r.record(2, softmax(rng, 6, 4))
    r = Recorder(tmp_path / "rec", IDS, 4)
    assert r.steps == [1, 2] and r.last_step == 2
    r.record(3, softmax(rng, 6, 4))
    with pytest.raises(PredictionsError, match="other ids"):
        Recorder(tmp_path / "rec", IDS[::-1], 4)
    with pytest.raises(PredictionsError, match="has 4 classes, not 5"):
        Recorder(tmp_path / "rec", IDS, 5)


def test_a_killed_write_leaves_no_visible_half_record(tmp_path):
    rng = np.random.default_rng(3)
    with Recorder(tmp_path / "rec", IDS, 4) as r:
        for s in (1, 2, 3):
            r.record(s, softmax(rng, 6, 4))
    # a run killed after the data file landed but before meta.json was replaced, and one killed
    # mid-write of the temp file
    np.save(tmp_path / "rec" / "step_0000000004.npy", softmax(rng, 6, 4).astype(np.float16))
    (tmp_path / "rec" / ".tmp-999-step_0000000005.npy").write_bytes(b"\x93NUMPY half")
    assert load_predictions(tmp_path / "rec").steps.tolist() == [1, 2, 3]
    r = Recorder(tmp_path / "rec", IDS, 4)
    names = sorted(p.name for p in (tmp_path / "rec").iterdir())
    assert names == ["meta.json", "step_0000000001.npy", "step_0000000002.npy", "step_0000000003.npy"]
    r.record(4, softmax(rng, 6, 4))  # the step the killed run lost is recorded again, once
    assert load_predictions(tmp_path / "rec").steps.tolist() == [1, 2, 3, 4]


def test_truncate_after_drops_newer_records(tmp_path):
    rng = np.random.default_rng(4)
    r = Recorder(tmp_path / "rec", IDS, 4)
    for s in (10, 20, 30, 40):
        r.record(s, softmax(rng, 6, 4))
    assert r.truncate_after(20) == 2
    assert r.steps == [10, 20]
    assert not (tmp_path / "rec" / "step_0000000030.npy").exists()
    r.record(30, softmax(rng, 6, 4))
    assert Recorder(tmp_path / "rec", IDS, 4).steps == [10, 20, 30]


# --- the trainer observer, against the documented Trainer interface ------------------------
@dataclass
class FakeEvent:
    step: int
    epoch: int
    model: Any
    raw_model: Any
    trainer: Any
    final: bool = False


class FakeTrainer:
    def __init__(self, n: int, c: int) -> None:
        self.calls: list[tuple[Any, Any, int]] = []
        self.rng = np.random.default_rng(5)
        self.n, self.c = n, c

    def predict(self, images, *, model=None, batch_size=1024):
        self.calls.append((images, model, batch_size))
        return softmax(self.rng, self.n, self.c)


def _images(ids=IDS) -> ImageSet:
    return ImageSet(np.zeros((len(ids), 4, 4, 1), np.uint8), ids)


def test_observer_records_each_event_once_and_truncates_on_resume(tmp_path):
    rec = Recorder(tmp_path / "rec", IDS, 3)
    images = _images()
    obs = RecorderObserver(rec, images, use_ema=True, batch_size=7)
    tr = FakeTrainer(6, 3)
    for s in (50, 100, 150):
        obs(FakeEvent(s, s // 50, "ema", "raw", tr))
    obs(FakeEvent(150, 3, "ema", "raw", tr, final=True))  # the end coincides with an observation
    assert rec.steps == [50, 100, 150] and rec.epochs == [1, 2, 3]
    assert all(c[0] is images and c[1] == "ema" and c[2] == 7 for c in tr.calls) and len(tr.calls) == 3
    obs.on_resume(100)  # the trainer resumed from the step-100 checkpoint
    obs(FakeEvent(150, 3, "ema", "raw", tr))
    assert load_predictions(tmp_path / "rec").steps.tolist() == [50, 100, 150]
    raw = RecorderObserver(Recorder(tmp_path / "rec2", IDS, 3), images, use_ema=False)
    raw(FakeEvent(1, 0, "ema", "raw", tr))
    assert tr.calls[-1][1] == "raw"


def test_observer_rejects_images_of_another_pool(tmp_path):
    rec = Recorder(tmp_path / "rec", IDS, 3)
    with pytest.raises(PredictionsError, match="not the 2 unlabeled images"):
        RecorderObserver(rec, _images(("a", "b")))


# --- loading arrays recorded elsewhere, validation --------------------------------------------
def test_load_npz_and_npy_with_ids(tmp_path):
    rng = np.random.default_rng(6)
    probs = softmax(rng, 6, 5, 3)
    np.savez(tmp_path / "p.npz", probs=probs, ids=np.array(IDS), steps=np.arange(5) * 10)
    pred = load_predictions(tmp_path / "p.npz")
    assert pred.ids == IDS and pred.steps.tolist() == [0, 10, 20, 30, 40]
    np.save(tmp_path / "p.npy", probs)
    with pytest.raises(PredictionsError, match="holds no ids"):
        load_predictions(tmp_path / "p.npy")
    (tmp_path / "p.ids.txt").write_text("\n".join(IDS) + "\n")
    assert load_predictions(tmp_path / "p.npy").ids == IDS
    assert load_predictions(tmp_path / "p.npy", ids=[f"x{i}" for i in range(6)]).ids[0] == "x0"


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p[:, :, 0], "N×K×C"),
    (lambda p: np.where(np.arange(p.size).reshape(p.shape) == 7, np.nan, p), "NaN/inf"),
    (lambda p: p * 0.5, "do not sum to 1"),
    (lambda p: np.log(p), r"probabilities in \[0, 1\]"),
    (lambda p: p[:, :2], "has 2 records|have 2 records"),
])
def test_validation_says_what_is_wrong(mutate, message):
    probs = softmax(np.random.default_rng(7), 6, 5, 3)
    with pytest.raises(PredictionsError, match=message):
        validate_predictions(mutate(probs), IDS)


def test_float16_rounding_is_tolerated():
    probs = softmax(np.random.default_rng(8), 6, 5, 10).astype(np.float16)
    assert validate_predictions(probs, IDS).probs.dtype == np.float32


def test_check_ids_names_missing_and_extra_and_reorders():
    probs = softmax(np.random.default_rng(9), 6, 4, 3)
    pred = validate_predictions(probs, IDS)
    with pytest.raises(PredictionsError, match=r"1 image\(s\) have no predictions \(e.g. new.png\).*img5.png"):
        check_ids(pred, _images(IDS[:5] + ("new.png",)))
    perm = IDS[::-1]
    aligned = check_ids(pred, _images(perm))
    assert aligned.ids == perm
    np.testing.assert_array_equal(aligned.probs[0], probs[5])
