"""Incremental scanning (audit.scan.store): a batch checked against a saved index."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scan_helpers import bridge, make_set

from audit.data.imageset import ImageSet
from audit.errors import CheckpointError, ShapeMismatchError
from audit.scan import ScanConfig, save_index, scan_against
from audit.scan.pipeline import scan_with_context
from audit.scan.store import load_store
from audit.scan.store_layout import read_current


def current(store):
    """The folder of STORE's current version (what readers load)."""
    return store / read_current(store)[0]

ALPHAS = np.linspace(0, 1, 24)


@pytest.fixture(scope="module")
def halves(clean_images, fashion):
    b = bridge(fashion[0][0], fashion[0][150], ALPHAS)
    old = make_set(np.concatenate([clean_images, b[:12]]), "old")
    new = ImageSet(np.concatenate([b[12:], clean_images[:3] // 2]), tuple(f"new/{i}" for i in range(15)))
    return old, new


@pytest.fixture()
def store(halves, tmp_path):
    old, _ = halves
    _, ctx = scan_with_context(old)
    return save_index(ctx, tmp_path / "STORE")


def test_chain_spanning_old_and_new_is_found(halves, store):
    old, new = halves
    n_old = len(old)
    res = scan_against(new, store)
    assert res.ids == old.ids + new.ids
    chains = [f for f in res.findings if f.kind == "bridge"]
    assert len(chains) == 1
    members = {m.index for m in chains[0].members}
    assert set(range(n_old - 12, n_old)) <= members  # old half, read from the memory-mapped rows
    assert set(range(n_old, n_old + 12)) <= members  # new half
    assert not members & set(range(n_old + 12, n_old + 15))
    assert "cluster" not in res.scores and len(res.scores["bridge"]) == n_old + len(new)


def test_update_appends_the_batch(halves, store):
    old, new = halves
    scan_against(new, store, update=True)
    st = load_store(store)
    assert len(st["ids"]) == len(old) + len(new) and st["index"].ntotal == len(old) + len(new)
    np.testing.assert_array_equal(st["rows"][len(old):], new.images.reshape(len(new), -1))
    # the same batch again (a rerun): scanned as the stored images it is, never appended twice
    again = scan_against(new, store, update=True)
    assert again.ids == old.ids + new.ids
    assert any("15 of the batch's images are already in the store" in n for n in again.notes)
    assert len(load_store(store)["ids"]) == len(old) + len(new)
    # an id that is stored with other pixels is an error: one id, one image
    changed = ImageSet(new.images[::-1].copy(), new.ids)
    with pytest.raises(ShapeMismatchError, match="already in the store .* with other pixels"):
        scan_against(changed, store)


def test_save_index_also_takes_an_imageset(halves, tmp_path):
    old, new = halves
    path = save_index(old, tmp_path / "S2", ScanConfig())
    assert json.loads((current(path) / "meta.json").read_text())["n"] == len(old)


def test_missing_or_corrupt_store_is_a_checkpoint_error(halves, store, tmp_path):
    _, new = halves
    with pytest.raises(CheckpointError, match="no scan index"):
        scan_against(new, tmp_path / "nowhere")
    (current(store) / "projected.npy").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt: projected.npy has 7 bytes"):
        scan_against(new, store)
    (current(store) / "index.faiss").unlink()
    with pytest.raises(CheckpointError, match="missing index.faiss"):
        scan_against(new, store)


def test_batch_of_another_shape_is_rejected(store):
    odd = ImageSet(np.zeros((2, 8, 8, 1), np.uint8), ("a", "b"))
    with pytest.raises(ShapeMismatchError, match="8×8×1"):
        scan_against(odd, store)


def test_stored_shape_reads_only_the_metadata(halves, store, tmp_path):
    from audit.scan.store import stored_shape

    old, _ = halves
    assert stored_shape(store) == tuple(old.shape)
    with pytest.raises(CheckpointError):
        stored_shape(tmp_path / "nothing-here")
