"""The data layer on the seeded hostile folder corpus (issue #12): no exception, no code run, no
file changed, every good image read (bit-exact where lossless), every bad entry listed with its
reason, every skipped entry listed, nothing counted twice."""

from __future__ import annotations

import hashlib
import os
import stat

import numpy as np
import pytest
from hostile_corpus import build_pool, real_images

from audit.data import load_images


def snapshot(root) -> dict:
    """Every entry under ``root`` (by fds, so nesting past PATH_MAX is included): its type, size,
    mtime, and for regular files a hash (of the first MiB for a file over 64 MiB: the sparse one)."""
    out = {}
    for dirpath, dirnames, filenames, dfd in os.fwalk(os.fsencode(root)):
        for name in dirnames + filenames:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            key = (dirpath, name)
            out[key] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns, st.st_mode)
            if stat.S_ISREG(st.st_mode):
                fd = os.open(name, os.O_RDONLY, dir_fd=dfd)
                try:
                    out[key] += (hashlib.sha256(os.read(fd, 1 << 20) if st.st_size > 64 << 20 else
                                                b"".join(iter(lambda: os.read(fd, 1 << 20), b""))).hexdigest(),)
                finally:
                    os.close(fd)
            elif stat.S_ISLNK(st.st_mode):
                out[key] += (os.readlink(name, dir_fd=dfd),)
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    return root, build_pool(root, seed=0, scale=1)


@pytest.mark.parametrize("workers", [0, 2])
def test_every_entry_is_read_listed_or_skipped_and_nothing_changes(corpus, workers):
    root, m = corpus
    before = snapshot(root)
    s = load_images(root / "pool", workers=workers)
    assert snapshot(root) == before  # hashes, sizes, mtimes, link targets: nothing written
    assert not m.marker.exists()  # the pickle in the folder was never unpickled
    ids = set(s.ids)
    reasons = {u.path: u.reason for u in s.unreadable}
    skipped = {u.path: u.reason for u in s.skipped}
    missing = sorted(set(m.good) - ids)
    assert not missing, [(g, reasons.get(g)) for g in missing]
    wrong = {rel: reasons.get(rel) for rel, text in m.bad.items() if text not in (reasons.get(rel) or "")}
    assert not wrong
    assert {rel: skipped.get(rel) for rel, t in m.skipped.items() if t not in (skipped.get(rel) or "")} == {}
    assert ids.isdisjoint(reasons) and ids.isdisjoint(skipped) and set(reasons).isdisjoint(skipped)
    # nothing unaccounted for, nothing invented: every id/reason is an entry of the manifest
    assert ids | set(reasons) == set(m.good) | set(m.bad) | set(m.maybe)
    assert set(skipped) == set(m.skipped)
    assert all(r and "\n" not in r for r in reasons.values())  # one short line each


def test_good_images_are_bit_exact_whatever_their_name(corpus):
    root, m = corpus
    s = load_images(root / "pool", workers=0)
    imgs = real_images()
    index = {i: k for k, i in enumerate(s.ids)}
    names = [g for g in m.good if g.startswith("names/")]
    assert len(names) >= 18
    sources = {tuple(im.ravel()) for im in imgs}
    for rel in names:  # each is one fixture image saved as a lossless PNG under a hostile name
        got = s.images[index[rel], :, :, 0]
        assert tuple(got.ravel()) in sources, rel
    assert s.shape == (28, 28, 3)  # one colour image makes the set RGB; gray is replicated
    assert s.summary["non_utf8_names"] == 3 and s.summary["sixteen_bit_scaled"] >= 1


def test_hidden_and_symlinks_are_read_when_asked(corpus):
    root, m = corpus
    s = load_images(root / "pool", include_hidden=True, follow_symlinks=True, workers=0)
    ids = set(s.ids)
    assert ".hidden.png" in ids and ".git/objects/x.png" in ids and "outside_link.png" in ids
    skipped = {u.path: u.reason for u in s.skipped}
    # the real tree keeps its ids; each link to an already scanned directory is listed once
    assert set(m.good) <= ids
    assert "already scanned" in skipped["dirlink"] and "already scanned" in skipped["good/png0/up"]
    assert not any(i.startswith("dirlink/") for i in ids)


def test_the_scan_is_deterministic(corpus):
    root, _ = corpus
    a = load_images(root / "pool", workers=2)
    b = load_images(root / "pool", workers=0)
    assert a.ids == b.ids and a.unreadable == b.unreadable and a.skipped == b.skipped
    np.testing.assert_array_equal(a.images, b.images)
    assert a.notes == b.notes
