"""redteam.attacks: the linear bridge (paper 3.1) and the contract every registered attack keeps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from audit.errors import InvalidParameterError, ShapeMismatchError
from redteam.attacks import ATTACKS, AttackContext, PoisonBatch, PoisonPoint
from redteam.attacks.linear import Linear, LinearConfig, interpolate
from redteam.density import alphas


def tiny_model_checkpoint(path, train, steps=60):
    """A trainer-format model.pt of a small `cnn` trained for a few Adam steps on ``train``."""
    import torch

    from attack_helpers import trained_tiny_cnn, trainer_model_file

    torch.save(trainer_model_file(trained_tiny_cnn(train, steps), train.shape), path)
    return path


def tiny_generator_checkpoint(path, size=8, channels=1):
    """An untrained generator checkpoint (what `redteam train-gan` writes) for size×size×channels."""
    import torch

    from redteam.generative import GanShape, Generator, save_generator

    torch.manual_seed(0)
    return save_generator(path, Generator(GanShape(size, channels, latent_dim=8, width=8)).eval())


@pytest.fixture(scope="module")
def digits_splits():
    from audit.data.load import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="module")
def configs(digits_train, tmp_path_factory):
    """Configs the contract test needs for attacks that read a file (4.2's generator, 4.3's θ_init);
    the rest run with their defaults."""
    d = tmp_path_factory.mktemp("ckpt")
    return {
        "gan": ATTACKS.get("gan").Config(generator=str(tiny_generator_checkpoint(d / "G.pt")), restarts=2,
                                         inversion_steps=20),
        "transfer": ATTACKS.get("transfer").Config(model_path=str(tiny_model_checkpoint(d / "m.pt", digits_train)),
                                                   steps=30, search_steps=3),
    }


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
def test_every_attack_returns_a_valid_batch(name, ctx, configs):
    attack = ATTACKS.get(name)(configs.get(name))
    batch = attack.generate(ctx, np.random.default_rng(0))
    assert isinstance(batch, PoisonBatch)
    assert batch.images.dtype == np.uint8 and batch.images.shape == (ctx.n, *ctx.train.shape)
    assert len(batch.points) == ctx.n
    assert all(0.0 <= p.alpha <= 1.0 for p in batch.points)
    json.dumps({"meta": batch.meta, "config": attack.config_json(), "points": [p.to_json() for p in batch.points]})
    again = ATTACKS.get(name)(configs.get(name)).generate(ctx, np.random.default_rng(0))
    np.testing.assert_array_equal(batch.images, again.images)  # same generator seed, same images
    assert batch.points == again.points


@pytest.mark.parametrize("name", ATTACKS.names())
def test_every_attack_writes_a_dataset_whose_manifest_lists_exactly_the_inserted_files(name, configs, digits_splits,
                                                                                       tmp_path):
    from audit.groundtruth import read_manifest
    from redteam.inject import InjectConfig, inject, write_poisoned

    splits = digits_splits
    cfg = InjectConfig(dataset="digits", count=12, unlabeled=300, attack=name, attack_config=configs.get(name),
                       target_label=3, seed=1)
    a, b = write_poisoned(inject(splits, cfg), tmp_path / "a"), write_poisoned(inject(splits, cfg), tmp_path / "b")
    m = read_manifest(a)
    clean = {splits.train.ids[i] for i in range(len(splits.train))}
    files = sorted(p.name for p in (a / "unlabeled").iterdir())
    assert len(files) == 300 + 12 and len(m.poisoned) == len(set(m.poisoned)) == 12
    assert set(m.poisoned) <= set(files) and [p.path for p in m.points] == list(m.poisoned)
    assert all(0.0 <= p.alpha <= 1.0 and p.role for p in m.points)
    assert (a / m.source.path).is_file() and (a / m.target.path).is_file()
    assert m.source.split in ("labeled", "unlabeled") and (m.source.split == "labeled") == (m.source.original_id in clean
                                                                                            and m.source.path.startswith("labeled/"))
    for p in sorted(a.rglob("*")):  # same seed, same bytes
        if p.is_file():
            assert p.read_bytes() == (b / p.relative_to(a)).read_bytes(), p


def test_batch_and_config_contracts_are_enforced():
    with pytest.raises(ShapeMismatchError, match="uint8"):
        PoisonBatch(images=np.zeros((2, 3, 3, 1), np.float32), points=(PoisonPoint(0.0), PoisonPoint(1.0)))
    with pytest.raises(ShapeMismatchError, match="2 images but 1 points"):
        PoisonBatch(images=np.zeros((2, 3, 3, 1), np.uint8), points=(PoisonPoint(0.0),))
    with pytest.raises(InvalidParameterError, match="must be a LinearConfig"):
        Linear(config={"a": 1})
    assert isinstance(Linear().config, LinearConfig)


def test_unknown_attack_lists_the_registered_ones():
    with pytest.raises(KeyError, match="Unknown attack 'gna'. Available: linear, zero_knowledge, gan, transfer"):
        ATTACKS.get("gna")
