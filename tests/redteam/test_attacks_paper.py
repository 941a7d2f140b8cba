"""The paper's extensions (4.1 zero-knowledge, 4.4 multi-path, noise, duplicate): what each one
inserts, and one clear error when the budget cannot hold the paths asked for."""

from __future__ import annotations

import numpy as np
import pytest

from audit.errors import DataError, InvalidParameterError
from redteam.attacks import AttackContext
from redteam.attacks.duplicate import Duplicate, DuplicateConfig
from redteam.attacks.linear import Linear
from redteam.attacks.multi_path import MultiPath, MultiPathConfig
from redteam.attacks.noise import Noise, NoiseConfig
from redteam.attacks.zero_knowledge import ZeroKnowledge, ZeroKnowledgeConfig
from redteam.density import alphas


@pytest.fixture(scope="module")
def ctx(digits_train):
    labels = digits_train.labels
    labeled = np.concatenate([np.flatnonzero(labels == c)[:4] for c in range(10)])
    pool = np.setdiff1d(np.arange(len(labels)), labeled)
    target = digits_train.images[int(np.flatnonzero(labels == 8)[-1])]
    return AttackContext(train=digits_train, labeled=labeled, unlabeled=pool, target=target, target_label=3,
                         source=int(labeled[labels[labeled] == 3][0]), n=30, density="1.5-x")


def _with(ctx, **kw):
    fields = dict(train=ctx.train, labeled=ctx.labeled, unlabeled=ctx.unlabeled, target=ctx.target,
                  target_label=ctx.target_label, source=ctx.source, n=ctx.n, density=ctx.density)
    return AttackContext(**{**fields, **kw})


def test_zero_knowledge_source_is_an_unlabeled_image_of_class_y_star_and_support_paths_end_at_it(ctx):
    batch = ZeroKnowledge().generate(ctx, np.random.default_rng(0))
    src = batch.meta["source_index"]
    assert src in set(ctx.unlabeled.tolist()) and src not in set(ctx.labeled.tolist())
    assert ctx.train.labels[src] == 3
    x_src = ctx.train.images[src]
    paths = np.array([p.path for p in batch.points])
    assert sorted(set(paths.tolist())) == [0, 1, 2, 3, 4]  # main + 4 support paths (default)
    assert batch.meta["path_sizes"] == [15, 4, 4, 4, 3] and sum(batch.meta["path_sizes"]) == 30
    main = batch.images[paths == 0]
    np.testing.assert_array_equal(main[0], x_src)
    np.testing.assert_array_equal(main[-1], ctx.target)
    supports = {ctx.train.ids.index(i) for i in batch.meta["support_ids"]}
    assert len(supports) == 4 and src not in supports
    for k in range(1, 5):
        imgs = batch.images[paths == k]
        assert {p.role for p, q in zip(batch.points, paths) if q == k} == {"support"}
        np.testing.assert_array_equal(imgs[-1], x_src)  # every support path ends at x'
        start = [i for i in supports if np.array_equal(ctx.train.images[i], imgs[0])]
        assert start and all(ctx.train.labels[i] == 3 for i in start)


def test_zero_knowledge_budget_too_small_for_the_paths_is_one_clear_error(ctx):
    with pytest.raises(InvalidParameterError, match=r"needs at least 10 poisoned images for 1 main path and 4 "
                                                    r"support paths .* the budget is 9"):
        ZeroKnowledge().generate(_with(ctx, n=9), np.random.default_rng(0))
    ZeroKnowledge(ZeroKnowledgeConfig(support_paths=0)).generate(_with(ctx, n=2), np.random.default_rng(0))
    with pytest.raises(InvalidParameterError, match=r"The 'main_fraction' parameter of zero_knowledge must be a float "
                                                    r"in \(0, 1\]. Got 0.0 instead."):
        ZeroKnowledgeConfig(main_fraction=0.0)
    with pytest.raises(DataError, match="needs 5 unlabeled images of class 3"):
        ZeroKnowledge().generate(_with(ctx, unlabeled=ctx.unlabeled[ctx.train.labels[ctx.unlabeled] == 3][:4]),
                                 np.random.default_rng(0))


def test_multi_path_uses_distinct_labeled_sources_of_class_y_star_and_splits_the_budget(ctx):
    batch = MultiPath().generate(ctx, np.random.default_rng(0))
    paths = np.array([p.path for p in batch.points])
    assert np.bincount(paths).tolist() == [10, 10, 10]
    ids = batch.meta["source_ids"]
    assert len(set(ids)) == 3 and ids[0] == ctx.train.ids[ctx.source]
    for k, sid in enumerate(ids):
        i = ctx.train.ids.index(sid)
        assert i in set(ctx.labeled.tolist()) and ctx.train.labels[i] == 3
        np.testing.assert_array_equal(batch.images[paths == k][0], ctx.train.images[i])
        np.testing.assert_array_equal(batch.images[paths == k][-1], ctx.target)
    with pytest.raises(DataError, match="needs 5 labeled images of class 3; there are 4"):
        MultiPath(MultiPathConfig(sources=5)).generate(ctx, np.random.default_rng(0))
    with pytest.raises(InvalidParameterError, match="at least 6 poisoned images for 3 paths"):
        MultiPath().generate(_with(ctx, n=5), np.random.default_rng(0))


@pytest.mark.parametrize("kind", ["gaussian", "uniform"])
def test_noise_moves_interior_pixels_by_about_sigma_and_keeps_the_ends(ctx, kind):
    linear = Linear().generate(ctx, np.random.default_rng(0)).images.astype(float)
    batch = Noise(NoiseConfig(kind=kind, sigma=3.0)).generate(ctx, np.random.default_rng(0))
    diff = batch.images.astype(float) - linear
    np.testing.assert_array_equal(diff[[0, -1]], 0.0)
    inner = diff[1:-1]
    unclipped = (linear[1:-1] > 12) & (linear[1:-1] < 243)  # away from 0/255 where clipping cuts the noise
    if kind == "uniform":
        assert np.abs(inner).max() <= 3.0 + 1.0  # |noise| <= σ, plus the two roundings
    expected = 3.0 if kind == "gaussian" else 3.0 / np.sqrt(3.0)  # N(0, 9); U(-3, 3) has std √3
    assert abs(inner[unclipped].std() - expected) < 0.3
    assert (inner != 0).mean() > 0.5
    with pytest.raises(InvalidParameterError, match="The 'kind' parameter of noise must be one of 'gaussian', "
                                                    "'uniform'. Got 'pink' instead."):
        NoiseConfig(kind="pink")


def test_duplicate_inserts_each_point_exactly_r_times_within_the_same_budget(ctx):
    batch = Duplicate(DuplicateConfig(copies=3)).generate(ctx, np.random.default_rng(0))
    assert len(batch) == 30
    _, counts = np.unique(batch.images.reshape(30, -1), axis=0, return_counts=True)
    assert counts.tolist() == [3] * 10
    a = np.array([p.alpha for p in batch.points])
    np.testing.assert_array_equal(a, np.repeat(alphas("1.5-x", 10), 3))
    odd = Duplicate(DuplicateConfig(copies=4)).generate(ctx, np.random.default_rng(0))  # 30 = 7·4 + 2
    assert len(odd) == 30 and odd.meta["distinct"] == 7
    with pytest.raises(InvalidParameterError, match="copies=16 needs at least 32 poisoned images"):
        Duplicate(DuplicateConfig(copies=16)).generate(ctx, np.random.default_rng(0))
