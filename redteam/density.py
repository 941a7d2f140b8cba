"""Density functions ρ over α ∈ [0, 1] and the α schedule they induce (paper 3.1, Table 3 / 3.2.7).

The attack inserts N points x_α between the labeled source x' (α = 0) and the target x* (α = 1).
A density ρ says where along that bridge the points go: ρ is normalised on [0, 1] and the N
values of α are placed by its inverse CDF at evenly spaced quantiles q_i = i/(N-1), so
α_0 = 0, α_{N-1} = 1, and α is non-decreasing. (Deterministic quantiles, not random draws: the
same N and ρ always give the same bridge.)

The eleven densities of Table 3 are registered under one ASCII spelling each, which is also the
``--density`` value: quote it in a shell, e.g. ``--density '(1-x)^2'``. ``1.5-x`` is the paper's
default (7/8 successes at 0.1% poisoning, the best of the eleven).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from audit.errors import InvalidParameterError, invalid_parameter
from audit.registry import Registry

DEFAULT_DENSITY = "1.5-x"  # Table 3: the best of the eleven (3× denser near x' than near x*)
GRID_POINTS = 100_001  # CDF grid on [0, 1]: step 1e-5, so the inverse is accurate to ~1e-5 in α


@dataclass(frozen=True)
class Density:
    """One density ρ: ``rho`` maps a float64 array of α in [0, 1] to non-negative values of
    the same shape (it need not integrate to 1). Calling the Density calls ρ."""

    name: str  # the registry key and CLI value
    rho: Callable[[np.ndarray], np.ndarray]
    formula: str  # as printed in Table 3
    dense_near: str  # where it puts most points, for docs and --help

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.rho(np.asarray(x, dtype=np.float64))


def phi(x: np.ndarray) -> np.ndarray:
    """Standard normal probability density."""
    return np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)


DENSITIES: Registry[Density] = Registry("density")

# Table 3, in the paper's order (worst to best at 0.1% poisoning).
for _d in (
    Density("(1-x)^2", lambda x: (1 - x) ** 2, "(1-x)²", "x' (source); sparse near x*"),
    Density("phi(x+.5)", lambda x: phi(x + 0.5), "φ(x+.5)", "x', gently (2.7× x*)"),
    Density("phi(x+.3)", lambda x: phi(x + 0.3), "φ(x+.3)", "x', gently (2.2× x*)"),
    Density("x", lambda x: x, "x", "x* (target); none at x'"),
    Density("x^4+(1-x)^4", lambda x: x**4 + (1 - x) ** 4, "x⁴+(1-x)⁴", "both ends; sparse in the middle"),
    Density("sqrt(1-x)", lambda x: np.sqrt(np.clip(1 - x, 0.0, None)), "√(1-x)", "x'; thins out near x*"),
    Density("x^2+(1-x)^2", lambda x: x**2 + (1 - x) ** 2, "x²+(1-x)²", "both ends (2× the middle)"),
    Density("1", lambda x: np.ones_like(x), "1", "uniform: evenly spaced α"),
    Density("(1-x)^2+.5", lambda x: (1 - x) ** 2 + 0.5, "(1-x)²+.5", "x' (3× x*), never empty"),
    Density("1-x", lambda x: 1 - x, "1-x", "x'; none at x*"),
    Density("1.5-x", lambda x: 1.5 - x, "1.5-x", "x' (3× x*), the paper's default"),
):
    DENSITIES.register(_d.name, _d)
del _d


def get_density(density: str | Density) -> Density:
    """A registered density by name (``Unknown density 'foo'. Available: ...``), or ``density``
    itself when it already is a :class:`Density`."""
    return density if isinstance(density, Density) else DENSITIES.get(density)


def cdf(density: str | Density, grid: int = GRID_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(x, F): the normalised CDF of ρ on ``grid`` evenly spaced points of [0, 1] (trapezoid rule).
    F is float64, non-decreasing, F[0] = 0 and F[-1] = 1 exactly."""
    d = get_density(density)
    x = np.linspace(0.0, 1.0, grid)
    r = np.asarray(d(x), dtype=np.float64)
    if r.shape != x.shape or not np.all(np.isfinite(r)) or np.any(r < 0):
        raise InvalidParameterError(f"density '{d.name}' must be finite and non-negative on [0, 1]")
    steps = 0.5 * (r[1:] + r[:-1]) * np.diff(x)
    total = steps.sum()
    if not total > 0:
        raise InvalidParameterError(f"density '{d.name}' integrates to 0 on [0, 1]")
    f = np.concatenate(([0.0], np.cumsum(steps) / total))
    f[-1] = 1.0
    return x, f


def alphas(density: str | Density, n: int) -> np.ndarray:
    """The N interpolation weights of paper 3.1: float64 shape ``(n,)``, non-decreasing,
    α_0 = 0 and α_{n-1} = 1 exactly, α_i = F⁻¹(i/(n-1)) for the normalised CDF F of ρ.

    The inverse is the smallest α with F(α) ≥ q (linear within a grid step), so densities that
    vanish somewhere (``1-x`` and ``(1-x)^2`` at x = 1, ``x`` at 0) are handled: flat stretches of F
    are skipped, and the end points are pinned to 0 and 1."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise invalid_parameter("n", "alphas", "an int >= 2 (a bridge needs both end points)", n)
    x, f = cdf(density)
    q = np.linspace(0.0, 1.0, int(n))
    hi = np.clip(np.searchsorted(f, q, side="left"), 1, len(f) - 1)
    lo = hi - 1
    span = f[hi] - f[lo]
    t = np.divide(q - f[lo], span, out=np.ones_like(q), where=span > 0)
    a = x[lo] + np.clip(t, 0.0, 1.0) * (x[hi] - x[lo])
    a[0], a[-1] = 0.0, 1.0
    return np.maximum.accumulate(np.clip(a, 0.0, 1.0))
