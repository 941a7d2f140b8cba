"""A small DC-GAN (Radford et al., 2016) for square images, as the paper's section 4.2 uses one.

Shapes: the generator maps float32 ``B×latent_dim`` to float32 ``B×C×S×S`` **in [0, 1]**
(sigmoid output: the same scale as ``audit.ssl.augment.to_float``); the discriminator maps
``B×C×S×S`` in [0, 1] to logits ``B``. The side S must be ``b·2^k`` with b in 3..7 and k >= 1
(8, 12, 14, 16, 24, 28, 32, 48, 56, 64, 96, ...): the generator starts from a ``b×b`` feature
map and doubles it k times with stride-2 transposed convolutions (DC-GAN's up-sampling block),
halving the width each time; the discriminator mirrors it with stride-2 convolutions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from audit.errors import invalid_parameter

MIN_BASE, MAX_BASE = 3, 7  # the generator's first feature map is base×base
MAX_WIDTH_DOUBLINGS = 3  # widest layer = width·2^min(k-1, 3): bounds the size of a 96 px model


@dataclass(frozen=True)
class GanShape:
    """What a generator produces; stored in its checkpoint so a mismatch is caught on load."""

    size: int  # S: images are S×S
    channels: int  # C: 1 or 3
    latent_dim: int = 64  # small data (28×28 grayscale) needs no more; DC-GAN used 100
    width: int = 32  # channels of the last up-sampling block; earlier ones double (up to 8×)

    def __post_init__(self) -> None:
        own = "GanShape"
        if self.channels not in (1, 3) or isinstance(self.channels, bool):
            raise invalid_parameter("channels", own, "1 or 3", self.channels)
        for name in ("latent_dim", "width"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise invalid_parameter(name, own, "an int >= 1", v)
        split_size(self.size)

    def to_json(self) -> dict:
        return asdict(self)


def split_size(size: int) -> tuple[int, int]:
    """(base, k) with ``size = base·2^k``, base in 3..7, k >= 1; raises for any other size."""
    if isinstance(size, int) and not isinstance(size, bool) and size >= 2 * MIN_BASE:
        base, k = size, 0
        while base % 2 == 0 and base > MAX_BASE:
            base, k = base // 2, k + 1
        if MIN_BASE <= base <= MAX_BASE and k >= 1:
            return base, k
    raise invalid_parameter("size", "the GAN", "a square side b·2^k with b in 3..7 and k >= 1 "
                            "(e.g. 8, 28, 32, 64, 96)", size)


def _widths(shape: GanShape) -> list[int]:
    """Channel widths from the first feature map to the last up-sampling block."""
    _, k = split_size(shape.size)
    return [shape.width * 2 ** min(k - 1 - i, MAX_WIDTH_DOUBLINGS) for i in range(k)] + [shape.width]


class Generator(nn.Module):
    """z ``B×latent_dim`` → image ``B×C×S×S`` in [0, 1]."""

    def __init__(self, shape: GanShape) -> None:
        super().__init__()
        self.shape = shape
        base, k = split_size(shape.size)
        w = _widths(shape)
        self.base = base
        self.project = nn.Sequential(nn.Linear(shape.latent_dim, w[0] * base * base, bias=False),
                                     nn.BatchNorm1d(w[0] * base * base), nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        for i in range(k):  # DC-GAN up-sampling block: ConvT(4, stride 2, pad 1) doubles the side
            blocks += [nn.ConvTranspose2d(w[i], w[i + 1], 4, 2, 1, bias=False), nn.BatchNorm2d(w[i + 1]),
                       nn.ReLU(inplace=True)]
        blocks += [nn.Conv2d(w[-1], shape.channels, 3, 1, 1), nn.Sigmoid()]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(z.shape[0], -1, self.base, self.base)
        return self.blocks(x)


class Discriminator(nn.Module):
    """Image ``B×C×S×S`` in [0, 1] → logit ``B`` (real > 0)."""

    def __init__(self, shape: GanShape) -> None:
        super().__init__()
        base, k = split_size(shape.size)
        w = list(reversed(_widths(shape)))
        layers: list[nn.Module] = [nn.Conv2d(shape.channels, w[0], 3, 1, 1), nn.LeakyReLU(0.2, inplace=True)]
        for i in range(k):  # DC-GAN: strided convolutions, BatchNorm, leaky ReLU 0.2
            layers += [nn.Conv2d(w[i], w[i + 1], 4, 2, 1, bias=False), nn.BatchNorm2d(w[i + 1]),
                       nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(w[-1] * base * base, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x * 2.0 - 1.0).flatten(1)).squeeze(1)
