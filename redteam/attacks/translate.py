"""Translated bridge: an adaptive attack against the pixel-space scan (beyond the paper; 5.2:
"if the adversary inserted examples that applied ... small translations, this defense would no
longer be able to identify the cluster of poisoned examples").

Every point x_α of the 3.1 bridge is shifted by its own random (dy, dx), each in
[−max_shift, max_shift] and never (0, 0), with reflect padding (what the victim's weak
augmentation does). A 1-pixel shift moves an image far in L2 — often farther than the whole
bridge is long — so neither colinear triples nor a tight L2 cluster remain; but FixMatch-style
victims translate every unlabeled image by up to 12.5% of its side at every step, so their
predictions are already invariant to it and the labels still propagate. The end points stay
exact unless ``perturb_ends``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.errors import InvalidParameterError
from audit.validate import check_choice, check_int
from redteam.attacks._bridge import bridge_points, linear_bridge, perturbed, to_uint8

PADDINGS = ("reflect", "zero")
from redteam.attacks.base import Attack, AttackContext, PoisonBatch


@dataclass(frozen=True)
class TranslateConfig:
    # 1 px: the smallest shift that breaks pixel-space structure; 3.6% of a 28 px side, well inside
    # the victim's ±12.5% weak augmentation (2 is allowed: 7% at 28 px)
    max_shift: int = 1
    perturb_ends: bool = False  # keep α=0 (x') and α=1 (x* itself) exact: the target must be x*
    # what fills the uncovered border: reflect (the victim's weak augmentation), or zero (a plain
    # np.roll-and-blank shift, what most image tools do)
    padding: str = "reflect"

    def __post_init__(self) -> None:
        check_int("translate", "max_shift", self.max_shift, 1, 8)
        check_choice("translate", "padding", self.padding, PADDINGS)


def draw_shifts(n: int, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """int64 ``n×2`` shifts (dy, dx), uniform over [−max_shift, max_shift]² without (0, 0)."""
    side = 2 * max_shift + 1
    k = rng.integers(0, side * side - 1, n)  # index into the grid with the centre removed
    k = k + (k >= (side * side) // 2)
    return np.stack([k // side - max_shift, k % side - max_shift], axis=1).astype(np.int64)


def translate(images: np.ndarray, shifts: np.ndarray, padding: str = "reflect") -> np.ndarray:
    """Shift each uint8 ``H×W×C`` image by (dy, dx) (content moves down/right for positive
    values), the border filled by ``padding`` (reflect or zero); returns uint8 ``n×H×W×C``."""
    n, h, w, _ = images.shape
    m = int(np.abs(shifts).max()) if len(shifts) else 0
    if m >= min(h, w):
        raise InvalidParameterError(f"cannot translate {h}×{w} images by {m} pixels (the padding needs "
                                    f"a shift smaller than the side)")
    mode = {"reflect": "reflect", "zero": "constant"}[padding]
    padded = np.pad(images, ((0, 0), (m, m), (m, m), (0, 0)), mode=mode)
    out = np.empty_like(images)
    for i, (dy, dx) in enumerate(shifts):
        out[i] = padded[i, m - dy: m - dy + h, m - dx: m - dx + w]
    return out


class Translate(Attack):
    """3.1 bridge with every point shifted by a small random non-zero (dy, dx)."""

    name = "translate"
    Config = TranslateConfig

    def generate(self, ctx: AttackContext, rng: np.random.Generator) -> PoisonBatch:
        cfg = self.config
        a, x = linear_bridge(ctx)
        images = to_uint8(x)
        mask = perturbed(len(a), cfg.perturb_ends)
        shifts = draw_shifts(len(a), cfg.max_shift, rng)
        shifts[~mask] = 0
        return PoisonBatch(images=translate(images, shifts, cfg.padding), points=bridge_points(a),
                           meta={"interpolation": "linear pixel blend + translation",
                                 "shifts": shifts.tolist()})
