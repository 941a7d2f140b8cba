"""SVHN .mat (label 10 is digit 0) and STL-10 binaries (column-major planes), real layouts."""

from __future__ import annotations

import numpy as np
from format_writers import upscale96, write_stl10, write_svhn

from audit.data import load_dataset, load_images


def test_svhn_file_maps_label_10_to_digit_0(tmp_path, rgb32):
    labels = np.arange(len(rgb32)) % 10
    assert (labels == 0).any()
    write_svhn(tmp_path / "test_32x32.mat", rgb32, labels)
    s = load_images(tmp_path / "test_32x32.mat")
    np.testing.assert_array_equal(s.images, rgb32)
    np.testing.assert_array_equal(s.labels, labels)


def test_svhn_directory(tmp_path, rgb32):
    labels = np.arange(len(rgb32)) % 10
    write_svhn(tmp_path / "train_32x32.mat", rgb32[:8], labels[:8])
    write_svhn(tmp_path / "test_32x32.mat", rgb32[8:], labels[8:])
    d = load_dataset(tmp_path)
    np.testing.assert_array_equal(d.test.images, rgb32[8:])
    assert d.name == "svhn" and d.train.ids[0] == "train/00000"


def test_stl10_file_is_upright(tmp_path, rgb32):
    images = upscale96(rgb32[:3])
    assert not np.array_equal(images, images.transpose(0, 2, 1, 3))  # a transpose bug would show
    write_stl10(tmp_path / "train_X.bin", images, np.array([1, 0, 9]))
    s = load_images(tmp_path / "train_X.bin", max_side=None)
    np.testing.assert_array_equal(s.images, images)
    np.testing.assert_array_equal(s.labels, [1, 0, 9])
    # a working size capped at 32 a side: a box average of each 3×3 block, which gives back the
    # 32×32 images exactly (upscale96 repeats each pixel 3×3)
    small = load_images(tmp_path / "train_X.bin", max_side=32)
    np.testing.assert_array_equal(small.images, rgb32[:3])
    assert "resized 3 of 3 images to 32×32" in small.notes and small.summary["working_size"] == "32x32"
    assert load_images(tmp_path / "train_X.bin").shape == (40, 40, 3)  # the default cap: 40


def test_stl10_directory_with_unlabeled_pool(tmp_path, rgb32):
    images = upscale96(rgb32[:6])
    write_stl10(tmp_path / "train_X.bin", images[:3], np.array([0, 1, 2]))
    write_stl10(tmp_path / "test_X.bin", images[3:5], np.array([3, 4]))
    write_stl10(tmp_path / "unlabeled_X.bin", images[5:])
    (tmp_path / "class_names.txt").write_text("\n".join(f"n{i}" for i in range(10)) + "\n")
    d = load_dataset(tmp_path)
    np.testing.assert_array_equal(d.unlabeled.images, images[5:])
    assert d.unlabeled.labels is None and d.test.class_names[4] == "n4"
    np.testing.assert_array_equal(d.test.labels, [3, 4])


def test_mat_variable_sizes_come_from_headers_compressed_or_not():
    import io

    from scipy.io import savemat

    from audit.data.readers.svhn import mat_sizes

    for compressed in (False, True):
        buf = io.BytesIO()
        savemat(buf, {"X": np.zeros((32, 32, 3, 7), np.uint8), "y": np.ones((7, 1)), "a_longer_name": np.zeros(3)},
                do_compression=compressed)
        assert mat_sizes(buf.getvalue(), "m") == [("X", 21504), ("y", 7), ("a_longer_name", 3)]
