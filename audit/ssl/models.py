"""Classifiers the SSL trainer trains: the paper's WideResNet-28-2 and a small CPU-friendly CNN.

Contract shared by every model in ``MODELS``:

* input: float32 ``B×C×H×W`` **in [0, 1]** (exactly what :mod:`audit.ssl.augment` returns), any
  C (1 or 3, fixed at build time) and any H, W (global average pooling before the classifier);
* output: float32 logits ``B×num_classes``;
* normalisation happens inside the model, in a fixed first layer :class:`Standardize`
  (per-channel ``(x - mean) / std``, buffers saved with the checkpoint). Callers never
  normalise; they may pass the data's channel statistics (``audit.ssl.augment.channel_stats``)
  to :func:`build_model`. Both models put a BatchNorm right after their first convolution, so
  the default (0.5, 0.25) is already close to what per-dataset statistics would give;
* ``model.dropout`` is the ``nn.Dropout`` before the classifier (p=0 by default); Π-Model uses
  it as its noise source by building the model with ``dropout=0.5``.

WideResNet-28-2 follows FixMatch (Sohn et al., 2020) and the paper (section 3.2.1: "the same
1.4 million parameter ResNet-28"): 28 layers, widen factor 2, BatchNorm momentum 0.001, leaky
ReLU 0.1; 1,467,610 parameters for 10 classes and 3 channels.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from audit.errors import invalid_parameter
from audit.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")

_DEFAULT_MEAN = 0.5  # mid-grey: any [0, 1] image maps to [-2, 2] without dataset statistics
_DEFAULT_STD = 0.25


class Standardize(nn.Module):
    """Per-channel ``(x - mean) / std`` with the statistics stored as buffers.

    Input float32 ``B×C×H×W`` in [0, 1]; output the same shape, roughly zero-mean unit-variance.
    """

    def __init__(self, channels: int, mean: Sequence[float] | float | None = None,
                 std: Sequence[float] | float | None = None) -> None:
        super().__init__()
        self.register_buffer("mean", torch.full((1, channels, 1, 1), _DEFAULT_MEAN))
        self.register_buffer("std", torch.full((1, channels, 1, 1), _DEFAULT_STD))
        self.set_stats(_DEFAULT_MEAN if mean is None else mean, _DEFAULT_STD if std is None else std)

    @torch.no_grad()
    def set_stats(self, mean: Sequence[float] | float, std: Sequence[float] | float) -> None:
        """Replace the statistics (one value, or one per channel; std must be > 0)."""
        c = self.mean.shape[1]
        m = torch.as_tensor(mean, dtype=torch.float32).flatten()
        s = torch.as_tensor(std, dtype=torch.float32).flatten()
        if m.numel() not in (1, c) or not torch.isfinite(m).all():
            raise invalid_parameter("mean", "Standardize", f"a finite float or {c} floats", mean)
        if s.numel() not in (1, c) or not bool((s > 0).all()) or not torch.isfinite(s).all():
            raise invalid_parameter("std", "Standardize", f"a positive float or {c} positive floats", std)
        self.mean.copy_(m.expand(c).view(1, c, 1, 1))
        self.std.copy_(s.expand(c).view(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


# --- WideResNet-28-2 (FixMatch's WRN) -------------------------------------------------------
_BN_MOMENTUM = 0.001  # FixMatch's TF BN decay 0.999; PyTorch's momentum is 1 - decay
_LEAKY = 0.1  # leaky ReLU slope used throughout FixMatch's WRN


class _BasicBlock(nn.Module):
    """Pre-activation residual block: BN-LReLU-conv3×3-BN-LReLU-conv3×3 (+ shortcut)."""

    def __init__(self, c_in: int, c_out: int, stride: int, activate_before_residual: bool) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in, momentum=_BN_MOMENTUM)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out, momentum=_BN_MOMENTUM)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None if c_in == c_out else nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)
        self.activate_before_residual = activate_before_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # As in FixMatch's TensorFlow `residual`: conv1 always sees the activated input; the
        # shortcut sees it too only in the network's first block (activate_before_residual).
        o = F.leaky_relu(self.bn1(x), _LEAKY)
        if self.activate_before_residual:
            x = o
        y = self.conv2(F.leaky_relu(self.bn2(self.conv1(o)), _LEAKY))
        return y + (x if self.shortcut is None else self.shortcut(x))


class WideResNet(nn.Module):
    """WRN-depth-widen for ``B×C×H×W`` in [0, 1] → logits ``B×num_classes``; depth = 6n + 4."""

    def __init__(self, num_classes: int, in_channels: int, depth: int = 28, widen: int = 2,
                 dropout: float = 0.0, mean=None, std=None) -> None:
        super().__init__()
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.standardize = Standardize(in_channels, mean, std)
        self.conv = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        stages = []
        for s in range(3):
            blocks = [_BasicBlock(widths[s] if i == 0 else widths[s + 1], widths[s + 1],
                                  (1 if s == 0 else 2) if i == 0 else 1, activate_before_residual=s == 0)
                      for i in range(n)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(widths[3], momentum=_BN_MOMENTUM)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():  # FixMatch's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stages(self.conv(self.standardize(x)))
        y = F.adaptive_avg_pool2d(F.leaky_relu(self.bn(y), _LEAKY), 1).flatten(1)
        return self.fc(self.dropout(y))


# --- small CNN for 2-core CPU experiments ---------------------------------------------------
class SmallCNN(nn.Module):
    """Three conv-BN-LReLU blocks (``widths``), max-pool between them, global average pooling,
    dropout, linear. ``B×C×H×W`` in [0, 1] → logits ``B×num_classes``.

    Sized for accuracy per CPU-second on 28×28 grayscale: the two 2×2 pools put the costly
    64- and 128-channel convolutions at 14×14 and 7×7; ~94k parameters.
    """

    def __init__(self, num_classes: int, in_channels: int, widths: Sequence[int] = (32, 64, 128),
                 dropout: float = 0.0, mean=None, std=None) -> None:
        super().__init__()
        self.standardize = Standardize(in_channels, mean, std)
        layers: list[nn.Module] = []
        c = in_channels
        for i, w in enumerate(widths):
            layers.append(nn.Conv2d(c, w, 3, 1, 1, bias=False))
            if i < len(widths) - 1:
                # Pool *before* BN and activation: max-pooling commutes with the per-channel
                # increasing map BN∘LReLU (at eval), and BN/LReLU then run on a quarter of the
                # pixels; they dominate the step time on CPU. ceil_mode keeps odd sizes whole.
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            layers += [nn.BatchNorm2d(w), nn.LeakyReLU(_LEAKY, inplace=True)]
            c = w
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")
        # channels_last weights and activations: oneDNN's fastest CPU path (measured 0.30 s vs
        # 0.52 s for a 960-image 28×28 step on 2 cores); neutral on CUDA in float32.
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.standardize(x).contiguous(memory_format=torch.channels_last)
        y = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.fc(self.dropout(y))


@MODELS("wrn28_2")
def wrn28_2(num_classes: int, in_channels: int, **options) -> nn.Module:
    """WideResNet-28-2 as in FixMatch; options: ``dropout``, ``mean``, ``std``."""
    return WideResNet(num_classes, in_channels, depth=28, widen=2, **options)


@MODELS("cnn")
def cnn(num_classes: int, in_channels: int, **options) -> nn.Module:
    """:class:`SmallCNN`; options: ``dropout``, ``widths``, ``mean``, ``std``."""
    return SmallCNN(num_classes, in_channels, **options)


_OPTIONS = {"wrn28_2": {"dropout", "mean", "std"}, "cnn": {"dropout", "widths", "mean", "std"}}


def build_model(name: str, num_classes: int, in_channels: int, image_size: int | tuple[int, int],
                **options) -> nn.Module:
    """Build registered model ``name`` for ``in_channels``-channel images of ``image_size``.

    Every model takes float32 ``B×in_channels×H×W`` in [0, 1] and returns logits
    ``B×num_classes``. ``image_size`` is validated (the models themselves accept any size,
    global pooling) so that a 1×1 image fails here rather than deep inside a convolution.
    ``options`` go to the model: ``dropout`` (float in [0, 1)), ``mean``/``std`` (channel
    statistics of [0, 1] data for :class:`Standardize`), ``widths`` (``cnn`` only).
    """
    factory = MODELS.get(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise invalid_parameter("num_classes", "build_model", "an int >= 2", num_classes)
    if isinstance(in_channels, bool) or in_channels not in (1, 3):
        raise invalid_parameter("in_channels", "build_model", "1 or 3", in_channels)
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 4 for s in size):
        raise invalid_parameter("image_size", "build_model", "an int >= 4 or a pair of them", image_size)
    allowed = _OPTIONS.get(name, set())
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise invalid_parameter("options", f"build_model('{name}')",
                                f"among {sorted(allowed)}", unknown)
    dropout = options.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise invalid_parameter("dropout", "build_model", "a float in [0, 1)", dropout)
    if "widths" in options:
        w = options["widths"]
        if not (isinstance(w, (list, tuple)) and len(w) >= 1
                and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in w)):
            raise invalid_parameter("widths", "build_model", "a non-empty sequence of positive ints", w)
    return factory(num_classes, in_channels, **options)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
