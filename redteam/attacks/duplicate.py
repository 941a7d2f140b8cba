"""Duplicated bridge (paper 4.4: "inserting the same example into the unlabeled dataset two times
was more effective than just one time, because the model trains on that example twice as often").

Same total budget n: m = n // copies distinct points x_α (α from the density over m points), each
inserted ``copies`` times; when n is not a multiple of ``copies`` the n − m·copies left-over
slots give one more copy to the first points (nearest x', where the default density already puts
most of its weight). Copies are byte-identical images; their file names still differ (the name
hashes the origin too), so the pool holds exact duplicates — which the cluster scan (5.2) sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.errors import InvalidParameterError
from audit.validate import check_int
from redteam.attacks.base import Attack, AttackContext, PoisonBatch, PoisonPoint
from redteam.attacks.linear import interpolate
from redteam.density import alphas


@dataclass(frozen=True)
class DuplicateConfig:
    copies: int = 2  # 4.4 reports "two times" as the improvement

    def __post_init__(self) -> None:
        check_int("duplicate", "copies", self.copies, 1, 1000)


class Duplicate(Attack):
    """n // copies bridge points, each inserted ``copies`` times (left-overs near x')."""

    name = "duplicate"
    Config = DuplicateConfig

    def generate(self, ctx: AttackContext, rng: np.random.Generator) -> PoisonBatch:
        r = self.config.copies
        m = ctx.n // r
        if m < 2:
            raise InvalidParameterError(
                f"The duplicate attack with copies={r} needs at least {2 * r} poisoned images (2 distinct "
                f"bridge points); the budget is {ctx.n}. Raise --ratio / --count or lower 'copies'.")
        a = alphas(ctx.density, m)
        reps = np.full(m, r)
        reps[: ctx.n - m * r] += 1
        distinct = interpolate(ctx.source_image, ctx.target, a)
        images = np.repeat(distinct, reps, axis=0)
        points = tuple(PoisonPoint(alpha=float(v), path=0, role="bridge") for v in np.repeat(a, reps))
        return PoisonBatch(images=images, points=points,
                           meta={"interpolation": "linear pixel blend", "copies": r, "distinct": m})
