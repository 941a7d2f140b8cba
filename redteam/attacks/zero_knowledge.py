"""Zero-knowledge attack (paper 4.1): no labeled example is known.

x' is an *unlabeled* pool image the adversary believes is of class y* (the adversary's belief is
taken from the training labels: it picks, with its seeded generator, a pool image whose true label
is y*). The main path is the 3.1 bridge x' → x*. Because nothing anchors x' to y* during training,
``support_paths`` further bridges connect k other pool images x̂_i of class y* to x'
(x̂_i at α = 0, x' at α = 1, "blending as we do with the target example"), so that x' is
more likely to be labeled y* before the label flows on to x*.

Budget: ``main_fraction`` of n goes to the main path, the rest is split evenly over the support
paths; every path needs at least 2 points (one error if n is too small). Each path is a full
bridge with its end points, so x' is inserted once per path (4.4: a duplicate helps, it is
trained on more often). Points: main path ``path=0, role="bridge"``; support path i
``path=i, role="support"``. The manifest's source is x', an unlabeled pool image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.errors import DataError
from audit.validate import check_float, check_int
from redteam.attacks._bridge import SOURCE_INDEX, bridge_points, split_budget
from redteam.attacks.base import Attack, AttackContext, PoisonBatch
from redteam.attacks.linear import interpolate
from redteam.density import alphas


@dataclass(frozen=True)
class ZeroKnowledgeConfig:
    # 4.1 gives no number; 4 support paths at main_fraction 0.5 put as many points on the support
    # as on the main path, and keep every support path >= 2 points from n = 10 up
    support_paths: int = 4
    main_fraction: float = 0.5  # share of the budget on x' -> x*; the rest supports x'

    def __post_init__(self) -> None:
        check_int("zero_knowledge", "support_paths", self.support_paths, 0, 1000)
        check_float("zero_knowledge", "main_fraction", self.main_fraction, 0.0, 1.0, low_open=True)


class ZeroKnowledge(Attack):
    """A bridge from an unlabeled x' of class y* to x*, plus support bridges x̂_i → x'."""

    name = "zero_knowledge"
    Config = ZeroKnowledgeConfig

    def generate(self, ctx: AttackContext, rng: np.random.Generator) -> PoisonBatch:
        cfg = self.config
        k = cfg.support_paths
        weights = [cfg.main_fraction] + [(1.0 - cfg.main_fraction) / k] * k if k else [1.0]
        sizes = split_budget(ctx.n, weights, self.name, f"1 main path and {k} support paths")
        pool = np.asarray(ctx.unlabeled, dtype=np.int64)
        of_class = pool[ctx.train.labels[pool] == ctx.target_label]
        if len(of_class) < k + 1:
            raise DataError(f"the zero_knowledge attack needs {k + 1} unlabeled images of class {ctx.target_label} "
                            f"(x' and {k} support images); the pool has {len(of_class)}")
        chosen = rng.choice(of_class, size=k + 1, replace=False)
        src, support = int(chosen[0]), [int(i) for i in chosen[1:]]
        x_src = ctx.train.images[src]

        a = alphas(ctx.density, sizes[0])
        images, points = [interpolate(x_src, ctx.target, a)], list(bridge_points(a, 0, "bridge"))
        for i, (s, m) in enumerate(zip(support, sizes[1:]), start=1):
            a = alphas(ctx.density, m)
            images.append(interpolate(ctx.train.images[s], x_src, a))
            points += bridge_points(a, i, "support")
        meta = {
            "interpolation": "linear pixel blend",
            SOURCE_INDEX: src,
            "source_id": ctx.train.ids[src],
            "support_ids": [ctx.train.ids[s] for s in support],
            "path_sizes": sizes,
        }
        return PoisonBatch(images=np.concatenate(images), points=tuple(points), meta=meta)
