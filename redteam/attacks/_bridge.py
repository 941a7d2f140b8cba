"""Helpers shared by the attack files (not an attack): splitting a budget over several paths, and
the linear bridge before rounding, for attacks that perturb it (paper 4.4's noise, the adaptive
attacks of 5.2). Config checks are in ``audit.validate``.

Source override: an attack whose x' is not the labeled source ``ctx.source`` says so in its
``PoisonBatch.meta``: ``SOURCE_INDEX`` = the index of x' in ``ctx.train`` (4.1: an unlabeled pool
image), or ``SOURCE_POINT`` = the index of the inserted point that is x' (4.3: a synthetic x').
``redteam.inject`` then records that image as the manifest's source.
"""

from __future__ import annotations

import numpy as np

from audit.errors import InvalidParameterError
from redteam.attacks.base import AttackContext, PoisonPoint
from redteam.density import alphas

SOURCE_INDEX = "source_index"  # meta key: x' is ctx.train[i], not the labeled ctx.source
SOURCE_POINT = "source_point"  # meta key: x' is the i-th image of the batch (a synthetic x')


def split_budget(n: int, weights: list[float], owner: str, what: str) -> list[int]:
    """Split n points over paths in proportion to ``weights`` (largest-remainder rounding, ties to
    the first path, so the sizes sum to n exactly), then top up any path below 2 points (a path
    needs both its end points) from the largest ones. Raises one error naming the minimum budget
    when n < 2 per path."""
    k = len(weights)
    if n < 2 * k:
        raise InvalidParameterError(
            f"The {owner} attack needs at least {2 * k} poisoned images for {what} (each path needs >= 2 "
            f"points); the budget is {n}. Raise --ratio / --count, or ask for fewer paths.")
    w = np.asarray(weights, dtype=np.float64)
    ideal = n * w / w.sum()
    sizes = np.floor(ideal).astype(int)
    order = np.argsort(-(ideal - sizes), kind="stable")
    sizes[order[: n - int(sizes.sum())]] += 1
    for i in range(k):
        while sizes[i] < 2:
            sizes[int(np.argmax(sizes))] -= 1  # the largest path has > 2 points while any has < 2
            sizes[i] += 1
    return [int(s) for s in sizes]


def blend(source: np.ndarray, target: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """float64 ``n×H×W×C`` (1-α)·x' + α·x* before rounding (``linear.interpolate`` rounds it)."""
    a = np.asarray(alpha, dtype=np.float64).reshape(-1, 1, 1, 1)
    return (1.0 - a) * source.astype(np.float64)[None] + a * target.astype(np.float64)[None]


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Round half to even and clip to uint8, as ``linear.interpolate`` does."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def linear_bridge(ctx: AttackContext) -> tuple[np.ndarray, np.ndarray]:
    """(α ``(n,)``, float64 blend ``n×H×W×C``) of the paper's 3.1 bridge, before rounding."""
    a = alphas(ctx.density, ctx.n)
    return a, blend(ctx.source_image, ctx.target, a)


def perturbed(n: int, perturb_ends: bool) -> np.ndarray:
    """bool ``(n,)``: which points of a bridge a perturbing attack changes. The end points
    (α = 0, a copy of x'; α = 1, x* itself) stay exact unless ``perturb_ends``."""
    mask = np.ones(n, dtype=bool)
    if not perturb_ends:
        mask[0] = mask[-1] = False
    return mask


def bridge_points(a: np.ndarray, path: int = 0, role: str = "bridge") -> tuple[PoisonPoint, ...]:
    return tuple(PoisonPoint(alpha=float(v), path=path, role=role) for v in a)
