"""Transfer attack (paper 4.3): x' = x* + δ is labeled y* by θ_init and close to x*; θ_init that
does not fit the data is one clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audit.errors import CheckpointError, InvalidParameterError, ShapeMismatchError
from audit.ssl.augment import to_float
from audit.ssl.models import build_model
from attack_helpers import digits_context, trained_tiny_cnn, trainer_model_file
from redteam.attacks.transfer import Transfer, TransferConfig, load_init_model


@pytest.fixture(scope="module")
def files(digits_train, tmp_path_factory):
    d = tmp_path_factory.mktemp("theta")
    net = trained_tiny_cnn(digits_train)
    torch.save(trainer_model_file(net, digits_train.shape), d / "model.pt")
    torch.save(build_model("cnn", 10, 1, 8).state_dict(), d / "plain.pt")  # default widths
    return d, net


@pytest.fixture(scope="module")
def ctx(digits_train):
    return digits_context(digits_train, n=12)


def test_source_is_labeled_y_star_by_theta_init_and_close_to_the_target(ctx, files):
    d, net = files
    batch = Transfer(TransferConfig(model_path=str(d / "model.pt"), steps=30, search_steps=3)).generate(
        ctx, np.random.default_rng(0))
    x_src = batch.images[0]
    with torch.no_grad():
        assert int(net(to_float(ctx.target[None])).argmax(1)) != 3  # the attack had work to do
        assert int(net(to_float(x_src[None])).argmax(1)) == 3  # the written (rounded) x' is labeled y*
    delta = x_src.astype(float) - ctx.target.astype(float)
    assert batch.meta["delta_l2"] == pytest.approx(np.linalg.norm(delta))
    assert batch.meta["delta_linf"] == np.abs(delta).max() > 0
    labeled_gap = np.linalg.norm(ctx.source_image.astype(float) - ctx.target.astype(float))
    assert batch.meta["delta_l2"] < 0.5 * labeled_gap  # much closer to x* than the 3.1 attack's x'
    np.testing.assert_array_equal(batch.images[-1], ctx.target)
    assert batch.meta["source_point"] == 0 and batch.points[0].alpha == 0.0


def test_plain_state_dict_with_a_model_name(ctx, files):
    d, _ = files
    net = load_init_model(str(d / "plain.pt"), "cnn", (8, 8, 1), 10)
    assert net(to_float(ctx.target[None])).shape == (1, 10)


def test_theta_init_that_does_not_fit_the_data_is_one_clear_error(ctx, files, fashion200, tmp_path):
    d, _ = files
    fm = build_model("cnn", 10, 1, 28, widths=(8, 16))
    torch.save(trainer_model_file(fm, fashion200.shape), tmp_path / "fm.pt")
    with pytest.raises(ShapeMismatchError, match=r"is a cnn for 28×28×1 images and 10 classes, but the data is "
                                                  r"8×8×1 with 10 classes"):
        Transfer(TransferConfig(model_path=str(tmp_path / "fm.pt"))).generate(ctx, np.random.default_rng(0))
    torch.save(build_model("cnn", 10, 3, 8).state_dict(), tmp_path / "rgb.pt")
    with pytest.raises(ShapeMismatchError, match=r"does not fit a 'cnn' for 8×8×1 images and 10 classes: .*size mismatch"):
        load_init_model(str(tmp_path / "rgb.pt"), "cnn", (8, 8, 1), 10)
    with pytest.raises(KeyError, match="Unknown model 'resnet'. Available:"):
        load_init_model(str(d / "plain.pt"), "resnet", (8, 8, 1), 10)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="is not a readable model checkpoint"):
        load_init_model(str(tmp_path / "junk.pt"), "cnn", (8, 8, 1), 10)
    with pytest.raises(InvalidParameterError, match="The 'model_path' parameter of transfer must be the path"):
        Transfer().generate(ctx, np.random.default_rng(0))
