"""redteam.attacks: the linear bridge (paper 3.1) and the contract every registered attack keeps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from audit.errors import InvalidParameterError, ShapeMismatchError
from redteam.attacks import ATTACKS, AttackContext, PoisonBatch, PoisonPoint
from redteam.attacks.linear import Linear, LinearConfig, interpolate
from redteam.density import alphas


@pytest.fixture(scope="module")
def ctx(digits_train):
    labels = digits_train.labels
    labeled = np.concatenate([np.flatnonzero(labels == c)[:4] for c in range(10)])
    pool = np.setdiff1d(np.arange(len(labels)), labeled)
    source = int(labeled[labels[labeled] == 3][0])
    target = digits_train.images[int(np.flatnonzero(labels == 8)[-1])]
    return AttackContext(train=digits_train, labeled=labeled, unlabeled=pool, target=target,
                         target_label=3, source=source, n=25, density="1.5-x")


def test_linear_points_lie_on_the_segment_within_uint8_rounding(ctx):
    batch = Linear().generate(ctx, np.random.default_rng(0))
    a = np.array([p.alpha for p in batch.points])
    np.testing.assert_array_equal(a, alphas("1.5-x", 25))
    xs = ctx.source_image.astype(np.float64).ravel()
    xt = ctx.target.astype(np.float64).ravel()
    for img, alpha in zip(batch.images, a):
        x = img.astype(np.float64).ravel()
        assert np.max(np.abs(x - ((1 - alpha) * xs + alpha * xt))) <= 0.5
        alpha_hat = np.dot(x - xs, xt - xs) / np.dot(xt - xs, xt - xs)  # least squares on the line
        assert abs(alpha_hat - alpha) < 0.01
    np.testing.assert_array_equal(batch.images[0], ctx.source_image)  # α=0 is a copy of x'
    np.testing.assert_array_equal(batch.images[-1], ctx.target)  # α=1 is x* itself


def test_interpolate_rounds_and_clips():
    src = np.full((1, 2, 1), 255, np.uint8)
    tgt = np.zeros((1, 2, 1), np.uint8)
    out = interpolate(src, tgt, np.array([0.0, 0.5, 0.499, 1.0]))
    assert out.dtype == np.uint8 and out.shape == (4, 1, 2, 1)
    assert out[:, 0, 0, 0].tolist() == [255, 128, 128, 0]  # rint(127.5) = 128 (half to even)


@pytest.mark.parametrize("name", ATTACKS.names())
def test_every_attack_returns_a_valid_batch(name, ctx):
    attack = ATTACKS.get(name)()
    batch = attack.generate(ctx, np.random.default_rng(0))
    assert isinstance(batch, PoisonBatch)
    assert batch.images.dtype == np.uint8 and batch.images.shape == (ctx.n, *ctx.train.shape)
    assert len(batch.points) == ctx.n
    assert all(0.0 <= p.alpha <= 1.0 for p in batch.points)
    json.dumps({"meta": batch.meta, "config": attack.config_json(), "points": [p.to_json() for p in batch.points]})
    again = ATTACKS.get(name)().generate(ctx, np.random.default_rng(0))
    np.testing.assert_array_equal(batch.images, again.images)  # same generator seed, same images


def test_batch_and_config_contracts_are_enforced():
    with pytest.raises(ShapeMismatchError, match="uint8"):
        PoisonBatch(images=np.zeros((2, 3, 3, 1), np.float32), points=(PoisonPoint(0.0), PoisonPoint(1.0)))
    with pytest.raises(ShapeMismatchError, match="2 images but 1 points"):
        PoisonBatch(images=np.zeros((2, 3, 3, 1), np.uint8), points=(PoisonPoint(0.0),))
    with pytest.raises(InvalidParameterError, match="must be a LinearConfig"):
        Linear(config={"a": 1})
    assert isinstance(Linear().config, LinearConfig)


def test_unknown_attack_lists_the_registered_ones():
    with pytest.raises(KeyError, match="Unknown attack 'gan'. Available: linear"):
        ATTACKS.get("gan")
