"""The full-size hostile corpus (about 1,500 entries, issue #12) and a real npz bomb: slow, run
with ``python -m pytest -m slow tests/hostile``."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import numpy as np
import pytest
from hostile_corpus import build_pool
from test_hostile_pool import snapshot

from audit.data import load_images
from audit.errors import DataError


@pytest.mark.slow
def test_the_full_size_corpus(tmp_path):
    m = build_pool(tmp_path, seed=2, scale=8)
    entries = len(m.good) + len(m.bad) + len(m.maybe) + len(m.skipped)
    assert entries >= 1400
    before = snapshot(tmp_path)
    s = load_images(tmp_path / "pool")
    assert snapshot(tmp_path) == before and not m.marker.exists()
    assert set(m.good) <= set(s.ids)
    assert len(s) + len(s.unreadable) == len(m.good) + len(m.bad) + len(m.maybe)


@pytest.mark.slow
def test_a_real_npz_bomb_is_refused_from_its_header(tmp_path):
    # 2,000,000 blank 28×28 images (1.57 GB) deflate to about 1.5 MB: the case
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": (2_000_000, 28, 28)})
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("images.npy", "w", force_zip64=True) as fh:
            fh.write(buf.getvalue())
            zero = bytes(1 << 24)
            for _ in range(2_000_000 * 784 // len(zero)):
                fh.write(zero)
            fh.write(bytes(2_000_000 * 784 % len(zero)))
    assert (tmp_path / "bomb.npz").stat().st_size < 8 << 20
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="over the 2.0 GiB budget"):
            load_images(tmp_path / "bomb.npz")
        assert tracemalloc.get_traced_memory()[1] < 16 << 20
    finally:
        tracemalloc.stop()
