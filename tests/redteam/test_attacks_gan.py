"""GAN interpolation (paper 4.2): the DC-GAN, its checkpoint, latent inversion, the attack's three
segments, the `train-gan` command, and one clear error for a generator of the wrong shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from audit.errors import CheckpointError, InvalidParameterError, ShapeMismatchError
from attack_helpers import digits_context
from redteam.attacks import AttackContext
from redteam.attacks.gan import Gan, GanConfig
from redteam.cli import app
from redteam.generative import (GanShape, GanTrainConfig, Generator, generate, invert, load_generator,
                                save_generator, train_gan)
from redteam.generative.model import Discriminator, split_size


def _generator(size=8, channels=1):
    """An untrained generator whose output varies with z (last layer scaled up)."""
    torch.manual_seed(0)
    g = Generator(GanShape(size, channels, latent_dim=8, width=8))
    with torch.no_grad():
        g.blocks[-2].weight.mul_(30.0)
    return g.eval()


@pytest.fixture(scope="module")
def g_path(tmp_path_factory):
    return save_generator(tmp_path_factory.mktemp("gan") / "G.pt", _generator(), {"note": "test"})


@pytest.fixture(scope="module")
def ctx(digits_train):
    return digits_context(digits_train, n=20)


@pytest.mark.parametrize(("size", "channels"), [(8, 1), (28, 1), (32, 3)])
def test_generator_and_discriminator_shapes(size, channels):
    shape = GanShape(size, channels, latent_dim=8, width=4)
    with torch.no_grad():
        x = Generator(shape).eval()(torch.randn(2, 8))
    assert x.shape == (2, channels, size, size) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert Discriminator(shape)(x).shape == (2,)


def test_unsupported_sizes_are_refused():
    assert split_size(28) == (7, 2) and split_size(96) == (6, 4)
    with pytest.raises(InvalidParameterError, match=r"The 'size' parameter of the GAN must be a square side b·2\^k"):
        split_size(30)


def test_checkpoint_round_trip_and_clear_errors(g_path, tmp_path):
    g = load_generator(g_path, (8, 8, 1))
    z = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    np.testing.assert_array_equal(generate(g, z, torch.device("cpu")), generate(_generator(), z, torch.device("cpu")))
    with pytest.raises(ShapeMismatchError, match=r"makes 8×8×1 images but the data is 28×28×1 \(H×W×C\)"):
        load_generator(g_path, (28, 28, 1))
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="is not a generator checkpoint of `redteam train-gan`"):
        load_generator(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a readable checkpoint"):
        load_generator(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="no generator checkpoint at"):
        load_generator(tmp_path / "missing.pt")


def test_inversion_recovers_images_the_generator_can_make():
    g = _generator()
    z0 = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)
    images = generate(g, z0, torch.device("cpu"))
    far = generate(g, np.random.default_rng(2).standard_normal((2, 8)).astype(np.float32), torch.device("cpu"))
    baseline = np.sqrt(((far.astype(float) - images) ** 2).reshape(2, -1).mean(1))
    inv = invert(g, images, np.random.default_rng(0), restarts=2, steps=80, lr=0.1)
    assert inv.z.shape == (2, 8) and inv.images.shape == images.shape
    assert np.all(inv.rmse < 0.25 * baseline)


def test_gan_attack_segments(ctx, g_path):
    cfg = GanConfig(generator=str(g_path), restarts=2, inversion_steps=30)
    batch = Gan(cfg).generate(ctx, np.random.default_rng(0))
    roles = [p.role for p in batch.points]
    assert roles == ["pixel-head"] * 2 + ["latent"] * 16 + ["pixel-tail"] * 2  # 10% of 20 at each end
    a = np.array([p.alpha for p in batch.points])
    assert a[0] == 0 and a[-1] == 1 and np.all(np.diff(a) >= 0) and {p.path for p in batch.points} == {0}
    np.testing.assert_array_equal(batch.images[0], ctx.source_image)
    np.testing.assert_array_equal(batch.images[-1], ctx.target)
    g = load_generator(g_path)
    assert batch.meta["recon_rmse_source"] >= 0 and batch.meta["segment_sizes"]["latent"] == 16
    # the latent points are generator images, not pixel blends of x' and x*
    lat = batch.images[2:18].reshape(16, -1).astype(float)
    xs, xt = ctx.source_image.ravel().astype(float), ctx.target.ravel().astype(float)
    on_segment = [np.abs(v - ((1 - t) * xs + t * xt)).max() <= 0.5 for v in lat for t in [np.clip(
        np.dot(v - xs, xt - xs) / np.dot(xt - xs, xt - xs), 0, 1)]]
    assert not any(on_segment) and g.shape.size == 8


def test_gan_attack_clear_errors(ctx, g_path, tmp_path):
    with pytest.raises(InvalidParameterError, match="The 'generator' parameter of gan must be the path"):
        Gan().generate(ctx, np.random.default_rng(0))
    small = AttackContext(**{**ctx.__dict__, "n": 3})
    with pytest.raises(InvalidParameterError, match="gan attack needs at least 4 poisoned images"):
        Gan(GanConfig(generator=str(g_path))).generate(small, np.random.default_rng(0))
    big = save_generator(tmp_path / "G28.pt", Generator(GanShape(28, 1, latent_dim=8, width=4)))
    with pytest.raises(ShapeMismatchError, match="makes 28×28×1 images but the data is 8×8×1"):
        Gan(GanConfig(generator=str(big))).generate(ctx, np.random.default_rng(0))
    with pytest.raises(InvalidParameterError, match=r"The 'end_fraction' parameter of gan must be a float in \(0, 0.45\]"):
        GanConfig(end_fraction=0.5)


def test_train_gan_runs_and_the_cli_writes_a_loadable_checkpoint(digits_train, tmp_path):
    seen = []
    g = train_gan(digits_train.images[:64], GanTrainConfig(steps=12, batch_size=8, latent_dim=8, width=4),
                  seen.append)
    # the losses are read (a device sync) at the first step, every LOG_EVERY = 10th and the last
    assert [p.step for p in seen] == [1, 10, 12] and g.shape == GanShape(8, 1, 8, 4)
    runner = CliRunner()
    out = tmp_path / "G.pt"
    args = ["train-gan", "--dataset", "digits", "--steps", "2", "--batch-size", "8", "--width", "4",
            "--latent-dim", "8", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "8×8×1 generator" in result.output and load_generator(out, (8, 8, 1)).shape.width == 4
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "exists; pass --force" in again.output and "Traceback" not in again.output
    bad = runner.invoke(app, [*args[:-2], "--out", str(tmp_path / "x.pt"), "--steps", "0"])
    assert bad.exit_code == 2 and "The 'steps' parameter of train_gan must be an int >= 1. Got 0 instead." in bad.output
