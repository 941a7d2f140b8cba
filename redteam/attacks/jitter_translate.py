"""Jittered and translated bridge: both adaptive changes of ``jitter`` and ``translate`` on every
point (beyond the paper; 5.2 names both), photometric first (before rounding), then the shift.
Parameters and defaults are theirs; see those files for why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.validate import check_float, check_int
from redteam.attacks._bridge import bridge_points, linear_bridge, perturbed, to_uint8
from redteam.attacks.base import Attack, AttackContext, PoisonBatch
from redteam.attacks.jitter import JitterConfig, jitter
from redteam.attacks.translate import draw_shifts, translate


@dataclass(frozen=True)
class JitterTranslateConfig:
    brightness: float = JitterConfig.brightness  # as jitter
    contrast: float = JitterConfig.contrast  # as jitter
    saturation: float = JitterConfig.saturation  # as jitter
    max_shift: int = 1  # as translate
    perturb_ends: bool = False  # keep α=0 (x') and α=1 (x* itself) exact: the target must be x*

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            check_float("jitter_translate", name, getattr(self, name), 0.0, 1.0)
        check_int("jitter_translate", "max_shift", self.max_shift, 1, 8)


class JitterTranslate(Attack):
    """3.1 bridge, each point colour-jittered then shifted."""

    name = "jitter_translate"
    Config = JitterTranslateConfig

    def generate(self, ctx: AttackContext, rng: np.random.Generator) -> PoisonBatch:
        cfg = self.config
        a, x = linear_bridge(ctx)
        mask = perturbed(len(a), cfg.perturb_ends)
        jc = JitterConfig(cfg.brightness, cfg.contrast, cfg.saturation)
        images = to_uint8(np.clip(jitter(x, mask, rng, jc), 0, 255))
        shifts = draw_shifts(len(a), cfg.max_shift, rng)
        shifts[~mask] = 0
        return PoisonBatch(images=translate(images, shifts), points=bridge_points(a),
                           meta={"interpolation": "linear pixel blend + colour jitter + translation",
                                 "shifts": shifts.tolist()})
