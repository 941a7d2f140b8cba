"""Entries that change while a folder is scanned, a decoder that kills its worker, the memory
budget and a FIFO as the pool path: each is one listed entry or one clear error, never the end
of the scan or a hang."""

from __future__ import annotations

import io
import os
import shutil
import signal
import tracemalloc

import numpy as np
import pytest
from format_writers import write_png
from PIL import Image

from audit.data import load_images
from audit.data.readers import decode, walk
from audit.errors import DataError, UnsupportedFormatError


def _reasons(s) -> dict[str, str]:
    return {u.path: u.reason for u in s.unreadable}


def _pool(tmp_path, gray28, n=4):
    for i in range(n):
        write_png(tmp_path / "sub" / f"{i}.png", gray28[0][i])
    write_png(tmp_path / "a.png", gray28[0][5])
    write_png(tmp_path / "b.png", gray28[0][6])
    return tmp_path


def test_a_sub_folder_replaced_by_a_file_after_the_walk(tmp_path, gray28):
    _pool(tmp_path, gray28)

    def swap(done: int, total: int) -> None:
        if done == 0:  # after the walk and the size sample, before decoding
            shutil.rmtree(tmp_path / "sub")
            (tmp_path / "sub").write_bytes(b"now a file")

    s = load_images(tmp_path, progress=swap)
    assert s.ids == ("a.png", "b.png")
    assert all("not a directory any more" in _reasons(s)[f"sub/{i}.png"] for i in range(4))


def test_a_sub_folder_replaced_by_a_file_during_the_walk(tmp_path, gray28, monkeypatch):
    _pool(tmp_path, gray28)
    real = os.scandir

    def scandir(path):
        if str(path).endswith("sub") and (tmp_path / "sub").is_dir():  # listed as a folder, gone when entered
            shutil.rmtree(tmp_path / "sub")
            (tmp_path / "sub").write_bytes(b"x")
        return real(path)

    monkeypatch.setattr(walk.os, "scandir", scandir)
    s = load_images(tmp_path)
    assert s.ids == ("a.png", "b.png") and "(directory not entered)" in _reasons(s)["sub"]


def test_files_swapped_for_a_fifo_or_a_symlink_are_refused(tmp_path, gray28):
    _pool(tmp_path, gray28)
    write_png(tmp_path.parent / f"{tmp_path.name}_secret.png", gray28[0][9])

    def swap(done: int, total: int) -> None:
        if done == 0:
            os.unlink(tmp_path / "a.png")
            os.mkfifo(tmp_path / "a.png")
            os.unlink(tmp_path / "b.png")
            os.symlink(tmp_path.parent / f"{tmp_path.name}_secret.png", tmp_path / "b.png")

    s = load_images(tmp_path, progress=swap)
    r = _reasons(s)
    assert r["a.png"] == "not a regular file (a FIFO)" and r["b.png"] == "changed into a symlink during the scan"
    assert len(s) == 4


def test_a_decoder_that_kills_its_worker_costs_one_file(tmp_path, gray28, monkeypatch):
    for i in range(40):
        write_png(tmp_path / f"{i:02d}.png", gray28[0][i % 12])
    real = decode.decode_one

    def crashing(path, *args):
        if path.endswith("17.png"):
            os._exit(3)  # what a segfault in a decoder or the OOM killer does to the worker
        return real(path, *args)

    monkeypatch.setattr(decode, "decode_one", crashing)  # inherited by the forked workers
    s = load_images(tmp_path, workers=2)
    assert len(s) == 39 and "17.png" not in s.ids
    assert _reasons(s) == {"17.png": "decoder crashed (its worker process died; hostile or corrupt file)"}
    np.testing.assert_array_equal(s.images[0], gray28[0][0])


def test_memory_budget_is_checked_before_decoding(tmp_path, gray28):
    _pool(tmp_path, gray28)
    with pytest.raises(DataError, match=r"6 images at the working size 28×28×3 needs .* over the 1\.0 KiB budget; "
                                        r"raise it with --max-memory"):
        load_images(tmp_path, max_bytes=1024)
    with pytest.raises(DataError, match="budget"):
        load_images(tmp_path, size=(20000, 20000))  # 6 × 1.2 GB at the requested size: over 2 GiB


def test_a_few_huge_images_do_not_make_every_image_huge(tmp_path, gray28):
    # issue #12: 21 blank 2000×2000 PNGs among 20 good 28×28 ones made every image 2000×2000
    for i in range(20):
        write_png(tmp_path / f"good{i:02d}.png", gray28[0][i % 12])
    blank = io.BytesIO()
    Image.new("L", (2000, 2000)).save(blank, "PNG")
    for i in range(21):
        (tmp_path / f"blank{i:02d}.png").write_bytes(blank.getvalue())
    tracemalloc.start()
    try:
        s = load_images(tmp_path, workers=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert s.shape == (40, 40, 1) and len(s) == 41  # the majority size, capped at 40 a side
    assert peak < 32 << 20  # one 4 MB decode at a time, 41 thumbnails of 1 kB
    assert "working size 40×40: the most common size 2000×2000 scaled" in s.notes[0]
    assert s.summary["native_sizes"] == [{"size": "2000x2000", "count": 21}, {"size": "28x28", "count": 20}]


def test_a_fifo_as_the_pool_path_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "pool")

    def boom(signum, frame):
        raise TimeoutError("load_images blocked on a FIFO")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(10)
    try:
        with pytest.raises(UnsupportedFormatError, match="is a FIFO"):
            load_images(tmp_path / "pool")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
