"""Curved bridge: an adaptive attack against the line test of the pixel-space scan (beyond the
paper; 5.2 expects the cat-and-mouse). The path from x' to x* bends through a third, natural
image z (a training image of a third class, drawn by the attack), so no three points are on one
line:

* ``shape="bezier"``: the quadratic Bézier curve ``(1-α)²·x' + 2α(1-α)·z + α²·x*``; z pulls the
  middle of the path toward it (the curve passes a quarter of the way to z at α = ½);
* ``shape="hop"``: two straight segments, x' → z for α < ½ and z → x* after; z itself is on the
  path (the bend is at a natural image, where the labels must keep propagating).

Both keep the property the attack needs: consecutive points are close (the labels still step
along), and α = 0 is x', α = 1 is x* itself. ``bend`` (Bézier only) scales the pull toward z
(0: the straight 3.1 bridge, 1: the full control point).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.validate import check_choice, check_float
from redteam.attacks._bridge import bridge_points, to_uint8
from redteam.attacks.base import Attack, AttackContext, PoisonBatch
from redteam.density import alphas

SHAPES = ("bezier", "hop")


@dataclass(frozen=True)
class CurvedConfig:
    shape: str = "bezier"  # the "quadratic Bézier through a third natural image"
    bend: float = 1.0  # pull toward z: 1 puts the control point at z itself

    def __post_init__(self) -> None:
        check_choice("curved", "shape", self.shape, SHAPES)
        check_float("curved", "bend", self.bend, 0.0, 1.0)


def waypoint(ctx: AttackContext, rng: np.random.Generator) -> int:
    """Index in ``ctx.train`` of z: an unlabeled training image of neither x's class nor y*."""
    labels = ctx.train.labels
    pool = ctx.unlabeled if len(ctx.unlabeled) else np.arange(len(ctx.train))
    if labels is not None:
        src = labels[ctx.source]
        other = pool[(labels[pool] != src) & (labels[pool] != ctx.target_label)]
        pool = other if len(other) else pool
    return int(rng.choice(pool))


class Curved(Attack):
    """A bridge from x' to x* that bends through a natural image z."""

    name = "curved"
    Config = CurvedConfig

    def generate(self, ctx: AttackContext, rng: np.random.Generator) -> PoisonBatch:
        cfg = self.config
        a = alphas(ctx.density, ctx.n)
        zi = waypoint(ctx, rng)
        xs = ctx.source_image.astype(np.float64)[None]
        xt = ctx.target.astype(np.float64)[None]
        t = a.reshape(-1, 1, 1, 1)
        if cfg.shape == "bezier":
            mid = (xs + xt) / 2.0
            z = mid + cfg.bend * (ctx.train.images[zi].astype(np.float64)[None] - mid)
            x = (1 - t) ** 2 * xs + 2 * t * (1 - t) * z + t**2 * xt
        else:
            z = ctx.train.images[zi].astype(np.float64)[None]
            x = np.where(t < 0.5, (1 - 2 * t) * xs + 2 * t * z, (2 - 2 * t) * z + (2 * t - 1) * xt)
        return PoisonBatch(images=to_uint8(x), points=bridge_points(a),
                           meta={"interpolation": f"curved pixel path ({cfg.shape})", "waypoint_index": zi,
                                 "bend": cfg.bend})
