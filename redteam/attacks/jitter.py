"""Colour-jittered bridge: an adaptive attack against the pixel-space scan (beyond the paper; 5.2
names it: "if the adversary inserted examples that applied color-jitter ... this defense would
no longer be able to identify the cluster of poisoned examples").

Every point x_α of the 3.1 bridge gets its own small random photometric change, before rounding:
brightness (add b·255, b ~ U(−brightness, +brightness)), contrast (scale about the image's mean by
1 + U(−contrast, +contrast)) and, for RGB, saturation (blend with the grey image by
1 + U(−saturation, +saturation)). The points leave the segment x'–x* (no colinear triple within
uint8 rounding) while staying where the victim's own augmentation (RandAugment's brightness and
contrast) has made its predictions flat, so the labels still propagate point to point. The end
points stay exact unless ``perturb_ends``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.validate import check_float
from redteam.attacks._bridge import bridge_points, linear_bridge, perturbed, to_uint8
from redteam.attacks.base import Attack, AttackContext, PoisonBatch

_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601, as PIL's convert("L")


@dataclass(frozen=True)
class JitterConfig:
    # Defaults keep the change per point near the step between neighbouring bridge points on
    # Fashion-MNIST at 0.1% (~1 uint8 RMS per pixel, see docs/attacks.md), far below what the
    # victim's strong augmentation applies (RandAugment brightness/contrast up to ±90%)
    brightness: float = 0.01  # fraction of 255: ±2.6 uint8
    contrast: float = 0.03  # ±3% about the image mean
    saturation: float = 0.03  # ±3%, RGB only
    perturb_ends: bool = False  # keep α=0 (x') and α=1 (x* itself) exact: the target must be x*

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            check_float("jitter", name, getattr(self, name), 0.0, 1.0)


def jitter(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator, cfg: JitterConfig) -> np.ndarray:
    """Photometric jitter of float ``n×H×W×C`` images in [0, 255] where ``mask`` (bool ``n``);
    returns float64 (not rounded, may leave [0, 255]: the caller clips once)."""
    n, c = x.shape[0], x.shape[3]
    b = rng.uniform(-cfg.brightness, cfg.brightness, n) * 255.0
    k = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast, n)
    s = 1.0 + rng.uniform(-cfg.saturation, cfg.saturation, n)  # drawn for grey images too: same stream
    out = x.astype(np.float64)
    if c == 3:
        grey = (out @ _LUMA)[..., None]
        out = grey + s.reshape(-1, 1, 1, 1) * (out - grey)
    mean = out.reshape(n, -1).mean(1).reshape(-1, 1, 1, 1)
    out = mean + k.reshape(-1, 1, 1, 1) * (out - mean) + b.reshape(-1, 1, 1, 1)
    return np.where(mask.reshape(-1, 1, 1, 1), out, x)


class Jitter(Attack):
    """3.1 bridge with a small per-point brightness/contrast/saturation change."""

    name = "jitter"
    Config = JitterConfig

    def generate(self, ctx: AttackContext, rng: np.random.Generator) -> PoisonBatch:
        a, x = linear_bridge(ctx)
        images = to_uint8(np.clip(jitter(x, perturbed(len(a), self.config.perturb_ends), rng, self.config), 0, 255))
        return PoisonBatch(images=images, points=bridge_points(a),
                           meta={"interpolation": "linear pixel blend + colour jitter"})
