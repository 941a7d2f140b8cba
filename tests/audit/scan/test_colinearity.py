"""Interpolation chains (paper 5.2) on real Fashion-MNIST fixture images plus upscaled digits."""

from __future__ import annotations

import numpy as np
import pytest
from scan_helpers import bridge, bridge_members, jpeg, make_set

from audit.data.imageset import ImageSet
from audit.scan import scan

SRC, TGT = 0, 150  # fixture rows: a t-shirt (class 0) and a sneaker (class 7)
# dense near x' with repeated rounding-level steps, sparse near x* (like density (1-x)^2)
ALPHAS = np.r_[0.0, 0.001, 0.002, 0.004, 0.01, 0.03, 0.06, 0.1, 0.15, 0.21, 0.28, 0.36, 0.45, 0.56, 0.7, 1.0]


@pytest.fixture(scope="module")
def poisoned(clean_images, fashion):
    xs, xt = fashion[0][SRC], fashion[0][TGT]
    pool = np.concatenate([clean_images, bridge(xs, xt, ALPHAS)])
    return make_set(pool), len(clean_images)


def _bridges(result):
    return [f for f in result.findings if f.kind == "bridge"]


def test_bridge_is_one_chain_in_order_with_alphas_and_endpoints(poisoned):
    images, n_clean = poisoned
    res = scan(images)
    chains = _bridges(res)
    assert len(chains) == 1
    f = chains[0]
    assert f.severity.value == "error"
    members = {m.index: m for m in f.members}
    inserted = range(n_clean, n_clean + len(ALPHAS))
    assert set(inserted) <= set(members)  # every poisoned image is flagged
    # x' and x* of the pool are exact copies of the bridge ends: they belong to the chain too
    assert set(members) - set(inserted) <= {SRC, TGT}
    got = np.array([members[i].alpha for i in inserted])
    if got[0] > 0.5:  # without labels the direction is arbitrary
        got = 1 - got
    np.testing.assert_allclose(got, ALPHAS, atol=0.05)
    order = [m.alpha for m in f.members]
    assert order == sorted(order)
    ends = {f.members[0].index, f.members[-1].index}
    assert ends & {SRC, n_clean} and ends & {TGT, n_clean + len(ALPHAS) - 1}
    assert [m.role for m in (f.members[0], f.members[-1])] == ["endpoint", "endpoint"]
    clean = np.setdiff1d(np.arange(n_clean), [SRC, TGT])
    # per image: members score 1 + their own fit, every other image its best lone triple, below 1
    assert res.scores["bridge"][n_clean:].min() >= 1.0 and res.scores["bridge"][clean].max() < 1.0


def test_labeled_source_orients_the_chain(poisoned, fashion):
    images, n_clean = poisoned
    labeled = ImageSet(fashion[0][[SRC, 5, 40, 90]], ("lab/src", "lab/a", "lab/b", "lab/c"),
                       labels=fashion[1][[SRC, 5, 40, 90]])
    f = _bridges(scan(images, labeled=labeled))[0]
    assert f.members[0].role == "source" and f.members[-1].role == "target"
    assert f.members[0].alpha == pytest.approx(0.0, abs=1e-6)
    assert f.members[-1].index in {TGT, n_clean + len(ALPHAS) - 1}
    assert f.evidence["source_labeled_id"] == "lab/src"
    assert f.evidence["source_class"] == int(fashion[1][SRC])
    by_index = {m.index: m.alpha for m in f.members}
    np.testing.assert_allclose([by_index[n_clean + j] for j in range(len(ALPHAS))], ALPHAS, atol=0.05)


def test_clean_pool_has_no_bridge(clean_images):
    res = scan(make_set(clean_images))
    assert _bridges(res) == []
    assert res.scores["bridge"].max() < 1.0  # graded (lone triples), never a chain member's >= 1


def test_jpeg_q95_resaved_bridge_is_still_found(clean_images, fashion):
    xs, xt = fashion[0][SRC], fashion[0][TGT]
    resaved = jpeg(bridge(xs, xt, np.linspace(0, 1, 20)), quality=95)
    n = len(clean_images)
    res = scan(make_set(np.concatenate([clean_images, resaved])))
    flagged = bridge_members(res)
    assert len(_bridges(res)) == 1
    assert set(range(n, n + 20)) <= flagged
    assert flagged - set(range(n, n + 20)) <= {SRC, TGT}


def test_near_duplicates_are_not_a_bridge(clean_images):
    rng = np.random.default_rng(0)
    base = clean_images[7].astype(np.int16)
    dups = []
    for _ in range(6):  # ±1 on a few pixels: a re-encoded copy
        d = base.copy().ravel()
        pos = rng.choice(d.size, 40, replace=False)
        d[pos] += rng.choice([-1, 1], 40)
        dups.append(np.clip(d, 0, 255).reshape(base.shape))
    res = scan(make_set(np.concatenate([clean_images, np.stack(dups).astype(np.uint8)])))
    assert _bridges(res) == []
    groups = [f for f in res.findings if f.kind == "near_duplicate"]
    n = len(clean_images)
    assert any(set(range(n, n + 6)) | {7} <= {m.index for m in g.members} for g in groups)
    assert all(g.severity.value == "info" for g in groups)


def test_two_bridges_from_one_source_are_two_chains(clean_images, fashion):
    xs = fashion[0][SRC]
    a = np.linspace(0, 1, 15)
    n = len(clean_images)
    pool = np.concatenate([clean_images, bridge(xs, fashion[0][TGT], a), bridge(xs, fashion[0][60], a)])
    chains = _bridges(scan(make_set(pool)))
    assert len(chains) == 2
    sets = [{m.index for m in f.members} for f in chains]
    assert any(set(range(n + 1, n + 15)) <= s for s in sets)
    assert any(set(range(n + 16, n + 30)) <= s for s in sets)


def test_proposals_in_threaded_chunks_equal_one_batch(poisoned):
    """propose_triples runs its chunks in threads; small chunks (many threads' worth) must give
    exactly the triples and linearities of one batch, in the same order."""
    from audit.features import build_features
    from audit.neighbors import knn_graph
    from audit.scan.colinearity import ColinearityConfig, propose_triples

    images, _ = poisoned
    f = build_features(images.images, dim=32)
    g = knn_graph(f.projected, 8)
    eligible = np.ones(len(images), bool)
    eligible[::7] = False  # some points are not chain members
    one, lin_one = propose_triples(g, eligible, f.rows.shape[1], ColinearityConfig(chunk=100_000))
    many, lin_many = propose_triples(g, eligible, f.rows.shape[1], ColinearityConfig(chunk=13))
    assert len(one) > 0
    np.testing.assert_array_equal(one, many)
    np.testing.assert_array_equal(lin_one, lin_many)
