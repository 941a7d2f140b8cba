"""Interpolation Consistency Poisoning with linear pixel blending (paper 3.1).

x_α = (1-α)·x' + α·x*, rounded to uint8 (``np.rint`` then clip): α = 0 is an exact copy of the
labeled source x', α = 1 is the target x* itself. The α values come from the density ρ
(``redteam.density.alphas``), so the bridge is dense where ρ is large.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from redteam.attacks.base import Attack, AttackContext, PoisonBatch, PoisonPoint
from redteam.density import alphas


def interpolate(source: np.ndarray, target: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Pixel-wise blend: ``source``, ``target`` uint8 ``H×W×C``; ``alpha`` float ``(n,)`` in [0, 1].
    Returns uint8 ``n×H×W×C`` with every pixel within 0.5 of (1-α)·x' + α·x*."""
    a = np.asarray(alpha, dtype=np.float64).reshape(-1, 1, 1, 1)
    xs = source.astype(np.float64)[None]
    xt = target.astype(np.float64)[None]
    blend = (1.0 - a) * xs + a * xt
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class LinearConfig:
    """The paper's attack has no parameter beyond the shared ones (n, density)."""


class Linear(Attack):
    """One bridge from x' to x*: n points, α placed by the density's inverse CDF."""

    name = "linear"
    Config = LinearConfig

    def generate(self, ctx: AttackContext, rng: np.random.Generator) -> PoisonBatch:
        a = alphas(ctx.density, ctx.n)
        images = interpolate(ctx.source_image, ctx.target, a)
        points = tuple(PoisonPoint(alpha=float(v), path=0, role="bridge") for v in a)
        return PoisonBatch(images=images, points=points, meta={"interpolation": "linear pixel blend"})
