"""Entry points: every registered reader round-trips through load_images (one contract test),
dispatch by content, the error messages users see, and load_dataset's forms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from format_writers import upscale96, write_cifar_batch, write_idx, write_png, write_stl10, write_svhn

from audit.data import BUILTINS, load_dataset, load_images, load_labeled_folder
from audit.data.builtin import FASHION_MNIST_ROOT
from audit.data.readers import READERS
from audit.errors import DataError, EmptyDatasetError, InvalidParameterError, UnsupportedFormatError


def _folder(tmp: Path, x, y):
    for i, im in enumerate(x):
        write_png(tmp / "pool" / f"{i:05d}.png", im)
    return tmp / "pool", x, None


def _npz(tmp, x, y):
    np.savez(tmp / "a.npz", images=x, labels=y)
    return tmp / "a.npz", x, y


def _npy(tmp, x, y):
    np.save(tmp / "a.npy", x)
    return tmp / "a.npy", x, None


def _idx(tmp, x, y):
    return write_idx(tmp / "pool-images-idx3-ubyte", x[..., 0]), x, None


def _cifar(tmp, x, y, rgb):
    return write_cifar_batch(tmp / "data_batch_1", rgb, y), rgb, y


def _svhn(tmp, x, y, rgb):
    return write_svhn(tmp / "train_32x32.mat", rgb, y), rgb, y


def _stl10(tmp, x, y, rgb):
    big = upscale96(rgb[:2])
    return write_stl10(tmp / "unlabeled_X.bin", big), big, None


WRITERS = {"folder": _folder, "npz": _npz, "npy": _npy, "idx": _idx, "cifar": _cifar, "svhn": _svhn, "stl10": _stl10}


def test_every_registered_reader_has_a_round_trip_writer():
    assert sorted(READERS) == sorted(WRITERS)


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_reader_round_trips(tmp_path, gray28, rgb32, name):
    x, y = gray28
    args = (tmp_path, x, y, rgb32) if name in ("cifar", "svhn", "stl10") else (tmp_path, x, y)
    path, want_x, want_y = WRITERS[name](*args)
    assert READERS.get(name).sniff(path)
    assert [n for n in READERS if READERS.get(n).sniff(path)] == [name]  # sniffing is unambiguous
    s = load_images(path, max_side=None)  # native size: a round trip
    np.testing.assert_array_equal(s.images, want_x)
    if want_y is None:
        assert s.labels is None or name == "svhn"
    else:
        np.testing.assert_array_equal(s.labels, want_y)
    assert len(set(s.ids)) == len(s) and list(s.ids) == sorted(s.ids)


def test_size_and_channels_apply_to_array_formats(tmp_path, gray28):
    np.savez(tmp_path / "a.npz", images=gray28[0])
    s = load_images(tmp_path / "a.npz", size=(14, 14), channels=3)
    assert s.shape == (14, 14, 3) and any("resized" in n for n in s.notes)


def test_errors_users_see(tmp_path, gray28):
    with pytest.raises(DataError, match="does not exist"):
        load_images(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UnsupportedFormatError, match="Supported: folder.*npz.*cifar"):
        load_images(tmp_path / "notes.txt")
    one = write_png(tmp_path / "one.png", gray28[0][0])
    with pytest.raises(UnsupportedFormatError, match="single image"):
        load_images(one)
    with pytest.raises(InvalidParameterError, match=r"The 'channels' parameter of load_images must be None, 1 or 3\. Got 4 instead\."):
        load_images(tmp_path, channels=4)
    with pytest.raises(InvalidParameterError, match="'size' parameter"):
        load_images(tmp_path, size=(0, 3))


def test_a_dataset_directory_given_as_a_pool_says_what_it_is(tmp_path, rgb32, gray28):
    write_cifar_batch(tmp_path / "data_batch_1", rgb32, gray28[1])
    with pytest.raises(EmptyDatasetError, match=r"looks like a dataset directory \(cifar\)"):
        load_images(tmp_path)


def test_load_dataset_digits_and_unknown_names(tmp_path):
    d = load_dataset("digits")
    assert d.train.shape == (8, 8, 1) and len(d.train) + len(d.test) == 1797
    assert BUILTINS.names() == ["digits", "fashion-mnist"]
    with pytest.raises(InvalidParameterError, match="root.*None for the built-in 'digits'"):
        load_dataset("digits", root=tmp_path)  # it ships inside scikit-learn
    with pytest.raises(DataError, match="not a built-in dataset: digits, fashion-mnist"):
        load_dataset("fashon-mnist")
    with pytest.raises(UnsupportedFormatError, match="not a dataset with splits"):
        load_dataset(tmp_path)


def test_fashion_mnist_root_override(tmp_path, gray28):
    x, y = gray28
    for split, n in (("train", 8), ("t10k", 4)):
        sl = slice(0, 8) if split == "train" else slice(8, 12)
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", x[sl, ..., 0])
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", y[sl].astype(np.uint8))
    d = load_dataset("fashion-mnist", root=tmp_path)
    np.testing.assert_array_equal(d.test.images, x[8:])
    assert d.train.class_names[0] == "t-shirt"


@pytest.mark.skipif(not FASHION_MNIST_ROOT.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_builtin():
    d = load_dataset("fashion-mnist")
    assert d.train.images.shape == (60000, 28, 28, 1) and len(d.test) == 10000


def test_folder_dataset_train_test(tmp_path, gray28):
    x, _ = gray28
    for i in range(6):
        write_png(tmp_path / "train" / ("cat" if i % 2 else "ant") / f"{i}.png", x[i])
    write_png(tmp_path / "test" / "cat" / "t.png", x[7])
    d = load_dataset(tmp_path)
    assert d.train.class_names == ("ant", "cat") and d.test.class_names == ("ant", "cat")
    np.testing.assert_array_equal(d.test.labels, [1])
    np.testing.assert_array_equal(d.train.labels, [0, 0, 0, 1, 1, 1])


def test_folder_dataset_labeled_unlabeled_share_one_shape(tmp_path, gray28, rgb32):
    write_png(tmp_path / "labeled" / "a" / "0.png", gray28[0][0])
    write_png(tmp_path / "unlabeled" / "u.png", rgb32[0])
    d = load_dataset(tmp_path)
    assert d.train.shape == d.unlabeled.shape == (28, 28, 3) and d.test is None


def test_test_split_class_folder_unknown_to_train_is_an_error(tmp_path, gray28):
    write_png(tmp_path / "train" / "a" / "0.png", gray28[0][0])
    write_png(tmp_path / "test" / "b" / "0.png", gray28[0][1])
    with pytest.raises(DataError, match="class folder"):
        load_dataset(tmp_path)


def test_labeled_folder_needs_class_subfolders(tmp_path, gray28):
    write_png(tmp_path / "x.png", gray28[0][0])
    with pytest.raises(EmptyDatasetError, match="no class subfolders"):
        load_labeled_folder(tmp_path)


def test_a_labeled_set_of_another_native_size_or_colour_gets_a_warning(tmp_path, gray28, rgb32):
    from audit.data import compare_labeled

    for i in range(3):
        write_png(tmp_path / "pool" / f"{i}.png", gray28[0][i])
        write_png(tmp_path / "same" / "c0" / f"{i}.png", gray28[0][i + 3])
        write_png(tmp_path / "small" / "c0" / f"{i}.png", rgb32[i, ::4, ::4])
    pool = load_images(tmp_path / "pool")
    same = load_labeled_folder(tmp_path / "same", size=pool.shape[:2], channels=pool.shape[2])
    assert compare_labeled(pool, same) == ()
    small = load_labeled_folder(tmp_path / "small", size=pool.shape[:2], channels=pool.shape[2])
    warn = compare_labeled(pool, small)
    assert len(warn) == 2 and "natively 8×8" in warn[0] and "the pool's 28×28" in warn[0]
    assert warn[1].startswith("the labeled images are colour, the pool's gray")
    assert small.shape == pool.shape and "resized 3 of 3 images to 28×28" in small.notes
