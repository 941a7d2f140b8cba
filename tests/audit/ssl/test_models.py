"""audit.ssl.models: the model contract (B×C×H×W in [0, 1] → logits B×K) for every registered
model, the paper's WRN-28-2 architecture, validation, and that the small CNN actually learns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from audit.errors import InvalidParameterError, UnknownNameError
from audit.ssl.models import MODELS, Standardize, build_model, count_parameters

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "fashion-mnist-200.npz"
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def test_registry_holds_the_promised_models():
    assert {"wrn28_2", "cnn"} <= set(MODELS.names())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", [28, 32, 96])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_maps_images_to_logits(name, channels, size, device):
    torch.manual_seed(0)
    model = build_model(name, 10, channels, size).to(device)
    x = torch.rand(3, channels, size, size, device=device)
    logits = model(x)
    assert logits.shape == (3, 10) and logits.dtype == torch.float32 and logits.device == x.device
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", MODELS.names())
def test_non_square_images_and_other_class_counts(name):
    model = build_model(name, 7, 3, (24, 40))
    assert model(torch.rand(2, 3, 24, 40)).shape == (2, 7)


def test_wrn28_2_is_the_papers_1_47m_parameter_model():
    model = build_model("wrn28_2", 10, 3, 32)
    assert count_parameters(model) == 1_467_610  # FixMatch's WRN-28-2 for CIFAR-10
    convs3 = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs3) == 25  # 1 stem + 3 stages × 4 blocks × 2: depth 28 = 6·4 + 4
    widths = sorted({m.out_channels for m in convs3})
    assert widths == [16, 32, 64, 128]  # widen factor 2
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.momentum == pytest.approx(0.001) for m in bns)


def test_cnn_is_small():
    assert 50_000 < count_parameters(build_model("cnn", 10, 1, 28)) < 150_000


def test_eval_mode_is_per_sample():
    model = build_model("cnn", 10, 1, 28).eval()
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x)[:1], model(x[:1]), atol=1e-5)


def test_dropout_option_makes_training_forward_stochastic():
    for name in MODELS.names():
        model = build_model(name, 10, 1, 28, dropout=0.5)
        assert model.dropout.p == 0.5
        x = torch.rand(4, 1, 28, 28)
        model.train()
        assert not torch.equal(model(x), model(x))
        model.eval()
        assert torch.equal(model(x), model(x))
    assert build_model("cnn", 10, 1, 28).dropout.p == 0.0


def test_standardize_uses_given_statistics_and_is_saved():
    model = build_model("cnn", 10, 3, 32, mean=(0.1, 0.2, 0.3), std=0.5)
    s = model.standardize
    x = torch.rand(2, 3, 4, 4)
    want = (x - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / 0.5
    assert torch.allclose(s(x), want)
    state = model.state_dict()
    assert "standardize.mean" in state and "standardize.std" in state
    fresh = build_model("cnn", 10, 3, 32)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.standardize.mean, s.mean)
    with pytest.raises(InvalidParameterError, match="'std' parameter of Standardize"):
        Standardize(3, 0.5, (1.0, 0.0, 1.0))


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_classes=1), "'num_classes' parameter of build_model must be an int >= 2"),
    (dict(in_channels=2), "'in_channels' parameter of build_model must be 1 or 3"),
    (dict(image_size=2), "'image_size' parameter of build_model"),
    (dict(image_size=(28,)), "'image_size' parameter of build_model"),
    (dict(dropout=1.0), "'dropout' parameter of build_model must be a float in \\[0, 1\\)"),
    (dict(depth=40), "'options' parameter of build_model\\('cnn'\\)"),
    (dict(widths=()), "'widths' parameter of build_model"),
])
def test_invalid_arguments_raise(kwargs, match):
    args = dict(name="cnn", num_classes=10, in_channels=1, image_size=28) | kwargs
    name = args.pop("name")
    with pytest.raises(InvalidParameterError, match=match):
        build_model(name, **args)


def test_unknown_model_lists_the_available_ones():
    with pytest.raises(UnknownNameError, match="Unknown model 'wrn28'. Available: .*wrn28_2.*cnn"):
        build_model("wrn28", 10, 3, 32)


def test_cnn_fits_a_few_fashion_mnist_images():
    torch.manual_seed(0)
    data = np.load(FIXTURE)
    x = torch.from_numpy(data["images"][::4]).permute(0, 3, 1, 2).float() / 255  # 50 images
    y = torch.from_numpy(data["labels"][::4]).long()
    model = build_model("cnn", 10, 1, 28)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    first = None
    for _ in range(40):
        loss = F.cross_entropy(model(x), y)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():  # train-mode BN: 40 steps are too few for the running statistics
        acc = float((model(x).argmax(1) == y).float().mean())
    assert loss.item() < first / 4 and acc >= 0.96
