"""Multiple intersection points (paper 4.4, a negative result): several labeled sources x'_i of
class y*, one bridge from each to the same target x*, the budget split evenly.

The paper found one path with the whole budget always better; this attack exists so the
benchmark and the auditor can measure that, and because several shorter chains meeting at x*
look different to the pixel-space scan than one long chain. The first source is the context's
x' (``ctx.source``); the others are drawn from the remaining labeled images of class y*. Path i
(``path=i``, ``role="bridge"``) runs from x'_i (α = 0) to x* (α = 1); x* is therefore inserted
once per path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.errors import DataError
from audit.validate import check_int
from redteam.attacks._bridge import bridge_points, split_budget
from redteam.attacks.base import Attack, AttackContext, PoisonBatch
from redteam.attacks.linear import interpolate
from redteam.density import alphas


@dataclass(frozen=True)
class MultiPathConfig:
    # 4.4 does not say how many; 3 fits the paper's 4 labels per class (x' plus 2 of the other 3)
    sources: int = 3

    def __post_init__(self) -> None:
        check_int("multi_path", "sources", self.sources, 1, 1000)


class MultiPath(Attack):
    """``sources`` bridges x'_i → x*, same total budget, split evenly."""

    name = "multi_path"
    Config = MultiPathConfig

    def generate(self, ctx: AttackContext, rng: np.random.Generator) -> PoisonBatch:
        k = self.config.sources
        sizes = split_budget(ctx.n, [1.0] * k, self.name, f"{k} paths")
        labeled = np.asarray(ctx.labeled, dtype=np.int64)
        others = labeled[(ctx.train.labels[labeled] == ctx.target_label) & (labeled != ctx.source)]
        if len(others) < k - 1:
            raise DataError(f"the multi_path attack needs {k} labeled images of class {ctx.target_label}; "
                            f"there are {len(others) + 1}. Lower 'sources' or raise --labels-per-class")
        sources = [int(ctx.source)] + [int(i) for i in rng.choice(others, size=k - 1, replace=False)]
        images, points = [], []
        for i, (s, m) in enumerate(zip(sources, sizes)):
            a = alphas(ctx.density, m)
            images.append(interpolate(ctx.train.images[s], ctx.target, a))
            points += bridge_points(a, i, "bridge")
        meta = {"interpolation": "linear pixel blend", "source_ids": [ctx.train.ids[s] for s in sources],
                "path_sizes": sizes}
        return PoisonBatch(images=np.concatenate(images), points=tuple(points), meta=meta)
