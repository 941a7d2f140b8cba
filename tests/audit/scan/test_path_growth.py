"""path_growth.grow on a hand-made pool: who joins a found path, from which links."""

from __future__ import annotations

import numpy as np

from audit.scan.detectors.path_growth import grow

# path members 0, 1; the aligned distance is 0.1 (tight) on these pairs, 10 elsewhere
TIGHT = {(2, 0), (2, 1), (3, 1), (3, 2), (4, 0), (5, 0), (5, 1), (6, 4)}


def _aligned(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([0.1 if (int(x), int(y)) in TIGHT or (int(y), int(x)) in TIGHT else 10.0 for x, y in zip(a, b)])


def _grow(links: int = 2, rounds: int = 4, d_ref=None):
    n = 7
    projected = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)  # k = 6: everyone is near
    eligible = np.ones(n, bool)
    eligible[5] = False  # a blank image never joins, however close
    d_ref = np.ones(n) if d_ref is None else d_ref
    return grow(np.array([0, 1]), projected, eligible, d_ref, _aligned, 0.5, k=6, links=links, rounds=rounds)


def test_an_image_joins_when_tight_to_two_members_counted_over_rounds():
    added, s, d, r = _grow()
    # 2: tight to 0 and 1 (round 1); 3: tight to 1 (round 1) and to 2 (round 2), two members in all;
    # 4: one tight link to a member; 6: tight to 4 only, never a member
    assert added.tolist() == [2, 3]
    assert sorted(zip(s.tolist(), d.tolist())) == [(2, 0), (2, 1), (3, 1), (3, 2)]
    assert np.all(r <= 0.5)


def test_one_link_is_enough_when_asked_and_rounds_bound_the_growth():
    added, *_ = _grow(links=1)
    assert added.tolist() == [2, 3, 4, 6]  # 6 joins through 4 in the second round
    added, *_ = _grow(links=1, rounds=1)
    assert added.tolist() == [2, 3, 4]


def test_an_undefined_scale_is_never_tight():
    """A pool smaller than K: every distance to the K-th neighbour is inf, so r would be 0 for
    every pair; none is tight."""
    added, *_ = _grow(d_ref=np.full(7, np.inf))
    assert added.tolist() == []
