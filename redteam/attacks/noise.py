"""Noisy bridge (paper 4.4, a negative result): the 3.1 bridge with point-wise Gaussian or
uniform noise added to every x_α before rounding, so that two nearby α never round to the same
image. The paper saw no gain for small σ and a loss for large σ; here it is also a cheap way to
knock points off the exact pixel-space segment the colinearity scan looks for (5.2).

``kind="gaussian"``: N(0, σ²) per pixel; ``kind="uniform"``: U(−σ, +σ) per pixel (a bounded
change: |x̃ − x_α| ≤ σ + 0.5 after rounding). σ is in uint8 units (0..255). The end points
(a copy of x', and x* itself) stay exact unless ``perturb_ends``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.validate import check_choice, check_float
from redteam.attacks._bridge import bridge_points, linear_bridge, perturbed, to_uint8
from redteam.attacks.base import Attack, AttackContext, PoisonBatch

KINDS = ("gaussian", "uniform")


@dataclass(frozen=True)
class NoiseConfig:
    kind: str = "gaussian"  # the paper tried both; it reports them together
    # uint8 units: about the step between neighbouring bridge points on Fashion-MNIST at 0.1%
    # (docs/attacks.md); 4.4: small σ did not help, larger σ hurt
    sigma: float = 2.0
    perturb_ends: bool = False  # keep α=0 (x') and α=1 (x* itself) exact: the target must be x*

    def __post_init__(self) -> None:
        check_choice("noise", "kind", self.kind, KINDS)
        check_float("noise", "sigma", self.sigma, 0.0, 255.0)


class Noise(Attack):
    """3.1 bridge + per-pixel noise of scale ``sigma`` (uint8 units)."""

    name = "noise"
    Config = NoiseConfig

    def generate(self, ctx: AttackContext, rng: np.random.Generator) -> PoisonBatch:
        cfg = self.config
        a, x = linear_bridge(ctx)
        if cfg.kind == "gaussian":
            noise = rng.normal(0.0, cfg.sigma, x.shape)
        else:
            noise = rng.uniform(-cfg.sigma, cfg.sigma, x.shape)
        noise[~perturbed(len(a), cfg.perturb_ends)] = 0.0
        return PoisonBatch(images=to_uint8(x + noise), points=bridge_points(a),
                           meta={"interpolation": "linear pixel blend + noise", "kind": cfg.kind, "sigma": cfg.sigma})
