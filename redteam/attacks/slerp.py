"""Latent-slerp bridge: an adaptive attack against the line test (beyond the paper). The path is a
great-circle interpolation in a PCA space of the training images (the cheapest "latent space" an
attacker can fit, and the shape of many generative-model paths), mapped back to pixels:

    code(α) = sin((1-α)Ω)/sin Ω · c' + sin(αΩ)/sin Ω · c*,   cos Ω = ĉ'·ĉ*
    x_α = mean + components · code(α) + (1-α)·r' + α·r*

with c', c* the codes of x' and x* and r', r* what the ``dim`` components leave out (blended
linearly, so α = 0 is exactly x' and α = 1 exactly x*). The codes travel on a curve, not a
chord, so the pixels do too; consecutive points stay close.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.validate import check_int
from redteam.attacks._bridge import bridge_points, to_uint8
from redteam.attacks.base import Attack, AttackContext, PoisonBatch
from redteam.density import alphas


@dataclass(frozen=True)
class SlerpConfig:
    dim: int = 32  # PCA components of the latent space (Fashion-MNIST: ~80% of the variance)
    sample: int = 3000  # training images the PCA is fitted on (seeded by the attack's rng)

    def __post_init__(self) -> None:
        check_int("slerp", "dim", self.dim, 2)
        check_int("slerp", "sample", self.sample, 2)


class Slerp(Attack):
    """A bridge along a great circle of a PCA latent space."""

    name = "slerp"
    Config = SlerpConfig

    def generate(self, ctx: AttackContext, rng: np.random.Generator) -> PoisonBatch:
        cfg = self.config
        imgs = ctx.train.images
        take = rng.choice(len(imgs), size=min(cfg.sample, len(imgs)), replace=False)
        x = imgs[np.sort(take)].reshape(len(take), -1).astype(np.float64)
        mean = x.mean(axis=0)
        k = min(cfg.dim, x.shape[0] - 1, x.shape[1])
        comps = np.linalg.svd(x - mean, full_matrices=False)[2][:k].T  # D×k, orthonormal columns
        xs = ctx.source_image.reshape(-1).astype(np.float64) - mean
        xt = ctx.target.reshape(-1).astype(np.float64) - mean
        cs, ct = xs @ comps, xt @ comps
        rs, rt = xs - comps @ cs, xt - comps @ ct
        a = alphas(ctx.density, ctx.n)
        cos = float(cs @ ct / max(np.linalg.norm(cs) * np.linalg.norm(ct), 1e-12))
        omega = float(np.arccos(np.clip(cos, -1.0, 1.0)))
        if omega < 1e-6:  # parallel codes: the great circle is the chord
            w0, w1 = 1.0 - a, a
        else:
            w0, w1 = np.sin((1.0 - a) * omega) / np.sin(omega), np.sin(a * omega) / np.sin(omega)
        codes = w0[:, None] * cs + w1[:, None] * ct
        out = mean + codes @ comps.T + (1.0 - a)[:, None] * rs + a[:, None] * rt
        images = to_uint8(out.reshape((ctx.n,) + ctx.target.shape))
        return PoisonBatch(images=images, points=bridge_points(a),
                           meta={"interpolation": "great circle in a PCA latent space", "dim": int(k),
                                 "angle_deg": float(np.degrees(omega))})
