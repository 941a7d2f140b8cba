"""audit.data.write: PNG folders and .npz files round-trip, stay inside out_dir, are atomic and
deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import audit.atomic as atomic
from audit.data.imageset import ImageSet
from audit.data.write import png_bytes, safe_name, write_npz, write_png_folder, write_pngs
from audit.errors import InvalidParameterError


def _rgb(n=5, h=6, w=7):
    rng = np.random.default_rng(1)
    return ImageSet(
        images=rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8),
        ids=[f"img/{i}.jpg" for i in range(n)],
        labels=np.arange(n) % 2,
        class_names=("cat", "dog"),
    )


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_png_folder_round_trips_grayscale_as_mode_L(fashion200, tmp_path):
    ims = fashion200.subset(range(12))
    rel = write_png_folder(ims, tmp_path)
    assert rel == [f"fm_{i:03d}.png" for i in range(12)]
    for path, img in zip(rel, ims.images):
        with Image.open(tmp_path / path) as pil:
            assert pil.mode == "L"
            np.testing.assert_array_equal(np.asarray(pil)[..., None], img)


def test_png_folder_round_trips_rgb_by_class(tmp_path):
    ims = _rgb()
    rel = write_png_folder(ims, tmp_path, by_class=True)
    assert rel == ["cat/img_0.png", "dog/img_1.png", "cat/img_2.png", "dog/img_3.png", "cat/img_4.png"]
    for path, img in zip(rel, ims.images):
        with Image.open(tmp_path / path) as pil:
            assert pil.mode == "RGB"
            np.testing.assert_array_equal(np.asarray(pil), img)


def test_by_class_uses_label_numbers_without_class_names_and_explicit_names(tmp_path):
    ims = ImageSet(images=np.zeros((3, 2, 2, 1), np.uint8), ids=["a", "b", "c"], labels=[0, 2, 2])
    rel = write_png_folder(ims, tmp_path, by_class=True, names=["x", "y", "z.png"])
    assert rel == ["0/x.png", "2/y.png", "2/z.png"]
    assert sorted(_files(tmp_path)) == rel


def test_hostile_ids_never_escape_out_dir(tmp_path):
    ids = ["../../evil", "/etc/passwd", "a/b", "a_b", "..", ".hidden", "c:\\x", "sp ace"]
    ims = ImageSet(images=np.zeros((len(ids), 2, 2, 1), np.uint8), ids=ids)
    out = tmp_path / "out"
    rel = write_png_folder(ims, out)
    assert len(set(rel)) == len(ids)
    for r in rel:
        assert "/" not in r and not r.startswith(".") and ".." not in r
        assert (out / r).resolve().parent == out.resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing written beside it
    assert safe_name("../../etc/passwd") == "etc_passwd"


def test_write_pngs_rejects_paths_leaving_out_dir(tmp_path):
    img = np.zeros((1, 2, 2, 1), np.uint8)
    for bad in ("../x.png", "/abs.png", "a/../../x.png", "a//b.png"):
        with pytest.raises(InvalidParameterError, match="stay inside"):
            write_pngs(img, [bad], tmp_path)


def test_bad_inputs_say_what_is_allowed(tmp_path):
    unlabeled = ImageSet(images=np.zeros((2, 2, 2, 1), np.uint8), ids=["a", "b"])
    with pytest.raises(InvalidParameterError, match="'by_class' parameter of write_png_folder"):
        write_png_folder(unlabeled, tmp_path, by_class=True)
    with pytest.raises(InvalidParameterError, match="distinct"):
        write_png_folder(unlabeled, tmp_path, names=["a/b", "a_b"])
    with pytest.raises(InvalidParameterError, match="2 names"):
        write_png_folder(unlabeled, tmp_path, names=["a"])


def test_png_bytes_are_deterministic_and_carry_no_metadata(tmp_path):
    ims = _rgb()
    write_png_folder(ims, tmp_path / "a")
    write_png_folder(ims, tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    data = png_bytes(ims.images[0])
    for chunk in (b"tIME", b"tEXt", b"zTXt", b"iTXt"):
        assert chunk not in data


def test_killed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    ims = _rgb()
    calls = {"n": 0}
    real = atomic.os.replace

    def flaky_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the run is killed while the third file is being placed
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", flaky_replace)
    with pytest.raises(KeyboardInterrupt):
        write_png_folder(ims, tmp_path)
    left = _files(tmp_path)
    assert sorted(left) == ["img_0.png", "img_1.png"]  # complete files only, no temp file
    for data in left.values():
        assert data == png_bytes(ims.images[0]) or data == png_bytes(ims.images[1])


def test_npz_round_trip_and_deterministic_bytes(tmp_path):
    ims = _rgb()
    p = write_npz(ims, tmp_path / "sub" / "set.npz")
    with np.load(p, allow_pickle=False) as z:
        assert sorted(z.files) == ["ids", "images", "labels"]
        np.testing.assert_array_equal(z["images"], ims.images)
        np.testing.assert_array_equal(z["labels"], ims.labels)
        assert tuple(z["ids"]) == ims.ids
    time_sensitive = write_npz(ims, tmp_path / "again.npz")
    assert time_sensitive.read_bytes() == p.read_bytes()
    assert [f.name for f in tmp_path.rglob("*.tmp")] == []


def test_npz_of_unlabeled_set_has_no_labels_key(tmp_path):
    ims = ImageSet(images=np.ones((2, 3, 3, 1), np.uint8), ids=["a", "b"])
    with np.load(write_npz(ims, tmp_path / "u.npz")) as z:
        assert sorted(z.files) == ["ids", "images"]
