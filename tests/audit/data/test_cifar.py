"""CIFAR batches: real layout round-trips; hostile pickles are refused and never run."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from format_writers import write_cifar_batch

from audit.data import load_dataset, load_images
from audit.errors import DataError, UnsafePickleError


def test_batch_file_round_trips_chw_to_hwc(tmp_path, rgb32, gray28):
    labels = gray28[1]
    write_cifar_batch(tmp_path / "data_batch_1", rgb32, labels)
    s = load_images(tmp_path / "data_batch_1")
    np.testing.assert_array_equal(s.images, rgb32)
    np.testing.assert_array_equal(s.labels, labels)
    assert s.ids[0] == "00000"


def test_cifar10_directory(tmp_path, rgb32, gray28):
    labels = gray28[1]
    write_cifar_batch(tmp_path / "data_batch_1", rgb32[:4], labels[:4])
    write_cifar_batch(tmp_path / "data_batch_2", rgb32[4:8], labels[4:8])
    write_cifar_batch(tmp_path / "test_batch", rgb32[8:], labels[8:])
    names = [f"class{i}".encode() for i in range(10)]
    (tmp_path / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2))
    d = load_dataset(tmp_path)
    np.testing.assert_array_equal(d.train.images, rgb32[:8])
    np.testing.assert_array_equal(d.train.labels, labels[:8])
    np.testing.assert_array_equal(d.test.images, rgb32[8:])
    assert d.train.class_names[3] == "class3" and d.name == "cifar-10"


def test_cifar100_directory_uses_fine_labels(tmp_path, rgb32):
    fine = np.arange(len(rgb32)) * 7 % 100
    write_cifar_batch(tmp_path / "train", rgb32, fine, key="fine_labels")
    write_cifar_batch(tmp_path / "test", rgb32[:3], fine[:3], key="fine_labels")
    names = [f"c{i}".encode() for i in range(100)]
    (tmp_path / "meta").write_bytes(pickle.dumps({b"fine_label_names": names, b"coarse_label_names": []}, protocol=2))
    d = load_dataset(tmp_path)
    np.testing.assert_array_equal(d.train.labels, fine)
    assert d.name == "cifar-100" and len(d.train.class_names) == 100


def test_modern_protocol_pickles_load_too(tmp_path, rgb32, gray28):
    data = rgb32.transpose(0, 3, 1, 2).reshape(len(rgb32), -1)
    (tmp_path / "b").write_bytes(pickle.dumps({"data": data, "labels": np.asarray(gray28[1])}, protocol=5))
    np.testing.assert_array_equal(load_images(tmp_path / "b").images, rgb32)


class _Evil:
    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_malicious_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    payload = {b"data": _Evil(f"touch {marker}"), b"labels": [0]}
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"(posix|os)\.system"):
        load_images(tmp_path / "data_batch_1")
    with pytest.raises(UnsafePickleError):
        load_dataset(tmp_path)
    assert not marker.exists()


def test_codecs_encode_only_with_latin1(tmp_path):
    import _codecs

    class Bomb:
        def __reduce__(self):
            return (_codecs.encode, ("eJwDAAAAAAE=", "base64_codec"))

    (tmp_path / "b").write_bytes(pickle.dumps({b"data": Bomb()}, protocol=2))
    with pytest.raises(UnsafePickleError, match="latin1"):
        load_images(tmp_path / "b")


def test_wrong_shaped_data_is_a_data_error(tmp_path):
    (tmp_path / "b").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8)}, protocol=2))
    with pytest.raises(DataError, match="N×3072"):
        load_images(tmp_path / "b")
    (tmp_path / "t").write_bytes(pickle.dumps({b"data": 1}, protocol=2)[:-3])
    with pytest.raises(DataError, match="not a readable CIFAR batch"):
        load_images(tmp_path / "t")
