"""audit.data.split: the one class-balanced draw (audit train and redteam inject pick their labels
with it, as each did before it was shared) and the training sets the CLIs load."""

from __future__ import annotations

import numpy as np
import pytest

from audit.data.split import balanced_indices, balanced_split, training_sets
from audit.errors import DataError, InvalidParameterError


def trainer_draw_before(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """The trainer's own draw before it moved here: every class in turn, unsorted picks, one mask."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        chosen.extend(rng.choice(np.flatnonzero(labels == c), size=per_class, replace=False))
    mask = np.zeros(len(labels), bool)
    mask[chosen] = True
    return np.flatnonzero(mask)


def inject_draw_before(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """redteam inject's own draw before it moved here: sorted picks per class, by class."""
    picks = [np.sort(rng.choice(np.flatnonzero(labels == c), per_class, replace=False)) for c in np.unique(labels)]
    return np.concatenate(picks)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_the_shared_draw_gives_both_callers_their_earlier_labels(digits_train, seed):
    labeled, rest = balanced_split(digits_train, 4, seed)
    want = trainer_draw_before(digits_train.labels, 4, seed)
    assert labeled.ids == tuple(digits_train.ids[i] for i in want)
    assert len(rest) == len(digits_train) - 40 and not set(rest.ids) & set(labeled.ids)
    lab_stream = np.random.SeedSequence(seed).spawn(5)[0]  # inject's labeled-choice stream
    got = balanced_indices(digits_train.labels, 4, np.random.default_rng(lab_stream))
    np.testing.assert_array_equal(got, inject_draw_before(digits_train.labels, 4, np.random.default_rng(lab_stream)))
    assert np.bincount(digits_train.labels[got]).tolist() == [4] * 10


def test_inject_writes_the_labels_of_the_shared_draw(digits_train):
    from audit.data.builtin import digits
    from redteam.inject import InjectConfig, inject

    ds = inject(digits(), InjectConfig(dataset="digits", labels_per_class=3, unlabeled=50, count=4, seed=2))
    lab_stream = np.random.SeedSequence(2).spawn(5)[0]
    idx = inject_draw_before(digits_train.labels, 3, np.random.default_rng(lab_stream))
    written = [i.split("/")[-1].removesuffix(".png") for i in ds.labeled.ids]  # <class>/train_00434.png
    assert written == [digits_train.ids[i].replace("/", "_") for i in idx]


def test_bad_requests_name_what_is_allowed(digits_train, fashion200):
    smallest = int(np.bincount(digits_train.labels).min())
    with pytest.raises(InvalidParameterError, match=rf"'labels_per_class' parameter of inject must be at most "
                                                    rf"{smallest} \(the size of the smallest class, '\d'\)"):
        balanced_indices(digits_train.labels, 1000, np.random.default_rng(0), class_names=digits_train.class_names,
                         owner="inject")
    with pytest.raises(InvalidParameterError, match="an int >= 1"):
        balanced_split(digits_train, 0)
    with pytest.raises(DataError, match="needs a labeled image set"):
        balanced_split(fashion200.without_labels(), 2)
    with pytest.raises(InvalidParameterError, match="cannot be combined"):
        training_sets(dataset="digits", labeled="x")
    with pytest.raises(InvalidParameterError, match=r"'unlabeled_size' parameter of train must be an int in \[1, "):
        training_sets(dataset="digits", unlabeled_size=10**6)


def test_training_sets_from_a_builtin(digits_train):
    lab, unl, tst = training_sets(dataset="digits", labels_per_class=2, unlabeled_size=100, seed=3)
    ref, rest = balanced_split(digits_train, 2, 3)
    assert lab.ids == ref.ids and len(unl) == 100 and unl.labels is None and set(unl.ids) <= set(rest.ids)
    assert tst is not None and tst.class_names == lab.class_names
    again = training_sets(dataset="digits", labels_per_class=2, unlabeled_size=100, seed=3)
    assert again.unlabeled.ids == unl.ids  # seeded


def test_folders_are_read_at_the_labeled_sets_size_and_colour(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b"):  # labeled and test: 16x16 gray
        for split in ("labeled", "test"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(tmp_path / split / c / f"{i}.png")
    (tmp_path / "pool").mkdir()
    for i in range(5):  # the pool: 64x48 colour photos, alone read at 40x30x3
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "pool" / f"{i}.png")
    lab, unl, tst = training_sets(labeled=tmp_path / "labeled", unlabeled=tmp_path / "pool", test=tmp_path / "test")
    assert lab.shape == unl.shape == tst.shape == (16, 16, 1)
    assert "resized 5 of 5 images to 16×16" in " ".join(unl.notes)
