"""IDX: single idx3 files (with the idx1 labels beside them) and MNIST-style directories."""

from __future__ import annotations

import numpy as np
import pytest
from format_writers import write_idx

from audit.data import load_dataset, load_images
from audit.errors import DataError


def test_single_idx3_file_with_and_without_labels(tmp_path, gray28):
    images, labels = gray28
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images[..., 0])
    s = load_images(tmp_path / "train-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(s.images, images)
    assert s.labels is None and s.ids[3] == "00003"
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels.astype(np.uint8))
    np.testing.assert_array_equal(load_images(tmp_path / "train-images-idx3-ubyte.gz").labels, labels)


def test_idx_directory_splits(tmp_path, gray28):
    images, labels = gray28
    write_idx(tmp_path / "train-images-idx3-ubyte", images[:8, ..., 0])
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels[:8].astype(np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[8:, ..., 0])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[8:].astype(np.uint8))
    d = load_dataset(tmp_path)
    np.testing.assert_array_equal(d.train.images, images[:8])
    np.testing.assert_array_equal(d.test.labels, labels[8:])
    assert d.train.ids[0] == "train/00000"


def test_idx_header_that_lies_is_refused(tmp_path, gray28):
    p = write_idx(tmp_path / "x-images-idx3-ubyte", gray28[0][..., 0])
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(DataError, match="IDX header says"):
        load_images(p)
