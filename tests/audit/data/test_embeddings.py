"""--features FILE: per-image embeddings matched to the pool by id, refused with one clear line
when they cannot be."""

from __future__ import annotations

import numpy as np
import pytest

from audit.data.embeddings import load_embeddings
from audit.errors import DataError, ShapeMismatchError

IDS = ("a.png", "b.png", "c/d.png")


def test_npz_rows_are_matched_by_id_whatever_their_order(tmp_path):
    rows = np.arange(12, dtype=np.float64).reshape(4, 3)
    np.savez(tmp_path / "e.npz", features=rows, ids=np.array(["c/d.png", "extra.png", "a.png", "b.png"]))
    out = load_embeddings(tmp_path / "e.npz", IDS)
    assert out.dtype == np.float32 and out.tolist() == [rows[2].tolist(), rows[3].tolist(), rows[0].tolist()]


def test_npy_rows_follow_the_pool_order(tmp_path):
    np.save(tmp_path / "e.npy", np.eye(3))
    assert load_embeddings(tmp_path / "e.npy", IDS).tolist() == np.eye(3).tolist()


@pytest.mark.parametrize("make, error, message", [
    (lambda p: np.save(p / "e.npy", np.zeros((2, 3))), ShapeMismatchError, "2 rows for 3 images"),
    (lambda p: np.savez(p / "e.npz", features=np.zeros((2, 3)), ids=np.array(["a.png", "b.png"])),
     ShapeMismatchError, "no row for 1 of the pool's 3 images \\(e.g. 'c/d.png'\\)"),
    (lambda p: np.savez(p / "e.npz", other=np.zeros((3, 3))), DataError, "no 'features' \\(or 'embeddings'\\) array"),
    (lambda p: np.save(p / "e.npy", np.full((3, 2), np.nan)), DataError, "NaN or infinite values in 3 rows"),
    (lambda p: np.save(p / "e.npy", np.zeros(3)), ShapeMismatchError, "expected a numeric N×d array"),
    (lambda p: np.save(p / "e.npy", np.array([["x"], ["y"], ["z"]])), ShapeMismatchError, "numeric"),
    (lambda p: (p / "e.npy").write_bytes(b"\x93NUMPY garbage"), DataError, "not a readable .npy/.npz"),
])
def test_unusable_embeddings_are_one_clear_error(tmp_path, make, error, message):
    make(tmp_path)
    path = next(tmp_path.iterdir())
    with pytest.raises(error, match=message):
        load_embeddings(path, IDS)


def test_pickled_object_arrays_are_never_loaded(tmp_path):
    np.save(tmp_path / "e.npy", np.array([{"x": 1}] * 3, dtype=object), allow_pickle=True)
    with pytest.raises((DataError, ShapeMismatchError)):
        load_embeddings(tmp_path / "e.npy", IDS)
