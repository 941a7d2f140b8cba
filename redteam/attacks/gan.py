"""Generalized (GAN latent-space) interpolation (paper 4.2).

With a generator G (``redteam train-gan``), the adversary inverts x' and x* to latents z', z*
(``redteam.generative.invert``: Adam on z, random restarts, L2 loss) and inserts
G((1−α)·z' + α·z*): a semantic interpolation whose points are not on the pixel segment x'–x*.
Inversion is never exact, so, as the paper does, short pixel blends join the real end points to
the generated ones: x' → G(z') at the start and G(z*) → x* at the end.

Budget split (n points, f = ``end_fraction``): the head x' → G(z') gets h = max(1, round(f·n))
points at local α = 0, 1/h, …, (h−1)/h (x' itself first; G(z') is left to the latent part); the
tail G(z*) → x* gets t = h points at local α = 1/t, …, 1 (x* itself last); the latent part gets
the remaining n − 2h ≥ 2 points, α from the density, G(z') and G(z*) included. The manifest's α is
the position on the whole route: head in [0, f), latent in [f, 1 − f], tail in (1 − f, 1], all on
path 0 (roles ``pixel-head``, ``latent``, ``pixel-tail``). Reconstruction errors (RMSE, uint8
units) go into the attack meta.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.errors import InvalidParameterError
from audit.validate import check_float, check_int
from redteam.attacks.base import Attack, AttackContext, PoisonBatch, PoisonPoint
from redteam.attacks.linear import interpolate
from redteam.density import alphas


@dataclass(frozen=True)
class GanConfig:
    generator: str = ""  # checkpoint written by `redteam train-gan` for this dataset's image shape
    # 10% of the budget at each end: the residual ‖G(z) − x‖ is small next to ‖x* − x'‖, so a few
    # pixel-blend points cover it and 80% of the points stay on the semantic path
    end_fraction: float = 0.1
    restarts: int = 4  # random starts per inverted image; the lowest final L2 wins
    inversion_steps: int = 300  # Adam steps on z
    inversion_lr: float = 0.05  # Adam step on z (z ~ N(0, I))
    device: str = "auto"  # CUDA when present

    def __post_init__(self) -> None:
        own = "gan"
        if not isinstance(self.generator, str):
            raise InvalidParameterError(f"The 'generator' parameter of {own} must be a path. "
                                        f"Got {self.generator!r} instead.")
        check_float(own, "end_fraction", self.end_fraction, 0.0, 0.45, low_open=True)
        check_int(own, "restarts", self.restarts, 1, 100)
        check_int(own, "inversion_steps", self.inversion_steps, 1, 100_000)
        check_float(own, "inversion_lr", self.inversion_lr, 0.0, 10.0, low_open=True)
        from audit.ssl.trainer import resolve_device  # torch: imported where a gan config is made, not to list attacks

        resolve_device(self.device, own)


class Gan(Attack):
    """x' → G(z') (pixels), G(z') → G(z*) (latent, density), G(z*) → x* (pixels)."""

    name = "gan"
    Config = GanConfig

    def generate(self, ctx: AttackContext, rng: np.random.Generator) -> PoisonBatch:
        from audit.ssl.trainer import resolve_device
        from redteam.generative.invert import generate, invert
        from redteam.generative.train import load_generator

        cfg = self.config
        if not cfg.generator:
            raise InvalidParameterError("The 'generator' parameter of gan must be the path of a checkpoint "
                                        "written by `redteam train-gan`. Got '' instead.")
        g = load_generator(cfg.generator, ctx.train.shape)
        h = max(1, int(np.floor(cfg.end_fraction * ctx.n + 0.5)))
        m = ctx.n - 2 * h
        if m < 2:
            raise InvalidParameterError(
                f"The gan attack needs at least 4 poisoned images (1 at each end, 2 on the latent path); "
                f"the budget is {ctx.n}. Raise --ratio / --count.")
        device = resolve_device(cfg.device)
        ends = np.stack([ctx.source_image, ctx.target])
        inv = invert(g, ends, rng, restarts=cfg.restarts, steps=cfg.inversion_steps, lr=cfg.inversion_lr,
                     device=device)
        g_src, g_tgt = inv.images

        a_lat = alphas(ctx.density, m)
        z = (1.0 - a_lat[:, None]) * inv.z[0][None].astype(np.float64) + a_lat[:, None] * inv.z[1][None]
        latent = generate(g, z.astype(np.float32), device)
        latent[0], latent[-1] = g_src, g_tgt  # the same rounding as the inversion's images
        a_head = np.arange(h) / h
        a_tail = np.arange(1, h + 1) / h
        head = interpolate(ctx.source_image, g_src, a_head)
        tail = interpolate(g_tgt, ctx.target, a_tail)

        f = cfg.end_fraction
        points = ([PoisonPoint(float(f * v), 0, "pixel-head") for v in a_head]
                  + [PoisonPoint(float(f + (1 - 2 * f) * v), 0, "latent") for v in a_lat]
                  + [PoisonPoint(float(1 - f + f * v), 0, "pixel-tail") for v in a_tail])
        meta = {
            "interpolation": "GAN latent interpolation with pixel blends at both ends",
            "recon_rmse_source": float(inv.rmse[0]),  # ‖G(z') − x'‖ RMS per pixel, uint8 units
            "recon_rmse_target": float(inv.rmse[1]),  # ‖G(z*) − x*‖ RMS per pixel, uint8 units
            "segment_sizes": {"pixel-head": h, "latent": m, "pixel-tail": h},
            "generator_shape": g.shape.to_json(),
        }
        return PoisonBatch(images=np.concatenate([head, latent, tail]), points=tuple(points), meta=meta)
