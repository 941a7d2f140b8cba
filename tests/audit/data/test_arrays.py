"""NumPy readers: key names, layouts, the dtype rule, ids, and no pickle ever."""

from __future__ import annotations

import numpy as np
import pytest

from audit.data import load_dataset, load_images
from audit.errors import DataError


def test_npz_with_images_labels_and_ids(tmp_path, gray28):
    images, labels = gray28
    ids = np.array([f"img-{i}" for i in range(len(images))])
    np.savez(tmp_path / "a.npz", images=images, labels=labels, ids=ids)
    s = load_images(tmp_path / "a.npz")
    np.testing.assert_array_equal(s.images, images)
    np.testing.assert_array_equal(s.labels, labels)
    assert s.ids == tuple(ids)


@pytest.mark.parametrize("key,label_key", [("x", "y"), ("x_train", "y_train"), ("X", "Y")])
def test_npz_alternative_keys_and_index_ids(tmp_path, gray28, key, label_key):
    images, labels = gray28
    np.savez_compressed(tmp_path / "a.npz", **{key: images[..., 0], label_key: labels[:, None]})
    s = load_images(tmp_path / "a.npz")
    np.testing.assert_array_equal(s.images, images)
    np.testing.assert_array_equal(s.labels, labels)
    assert s.ids[:2] == ("00000", "00001")


def test_npy_layouts(tmp_path, rgb32, gray28):
    for name, arr in (("nhwc", rgb32), ("nchw", rgb32.transpose(0, 3, 1, 2))):
        np.save(tmp_path / f"{name}.npy", arr)
        np.testing.assert_array_equal(load_images(tmp_path / f"{name}.npy").images, rgb32)
    np.save(tmp_path / "nhw.npy", gray28[0][..., 0])
    s = load_images(tmp_path / "nhw.npy")
    assert s.shape == (28, 28, 1) and s.labels is None
    np.save(tmp_path / "bad.npy", np.zeros((2, 5, 6, 7), np.uint8))
    with pytest.raises(DataError, match="channel axis"):
        load_images(tmp_path / "bad.npy")


def test_float_rule(tmp_path, gray28):
    images = gray28[0]
    np.save(tmp_path / "unit.npy", images.astype(np.float32) / 255)
    np.save(tmp_path / "byte.npy", images.astype(np.float64))
    np.testing.assert_array_equal(load_images(tmp_path / "unit.npy").images, images)
    np.testing.assert_array_equal(load_images(tmp_path / "byte.npy").images, images)
    for name, arr in (("neg", images.astype(np.float32) - 1), ("big", images.astype(np.float32) * 2),
                      ("nan", np.full((2, 4, 4), np.nan, np.float32)), ("int", images.astype(np.int32) * 4)):
        np.save(tmp_path / f"{name}.npy", arr)
        with pytest.raises(DataError, match="pixels"):
            load_images(tmp_path / f"{name}.npy")


def test_object_arrays_are_never_unpickled(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "obj.npz", images=np.array([{"a": 1}], dtype=object))
    for f in ("obj.npy", "obj.npz"):
        with pytest.raises(DataError):
            load_images(tmp_path / f)


def test_claimed_huge_images_are_refused_from_the_header(tmp_path):
    np.save(tmp_path / "big.npy", np.zeros((1, 300, 300), np.uint8))
    np.savez_compressed(tmp_path / "big.npz", images=np.zeros((1, 300, 300), np.uint8))
    for f in ("big.npy", "big.npz"):
        with pytest.raises(DataError, match="max_pixels"):
            load_images(tmp_path / f, max_pixels=10_000)


def test_npz_splits(tmp_path, gray28):
    images, labels = gray28
    np.savez(tmp_path / "d.npz", x_train=images[:8], y_train=labels[:8], x_test=images[8:], y_test=labels[8:])
    d = load_dataset(tmp_path / "d.npz")
    np.testing.assert_array_equal(d.train.images, images[:8])
    np.testing.assert_array_equal(d.test.labels, labels[8:])
    assert d.test.ids[0] == "test/00000" and d.name == "d"
