"""redteam.density: Table 3's eleven densities and the inverse-CDF α schedule (paper 3.1, 3.2.7)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from audit.errors import InvalidParameterError, UnknownNameError
from redteam.density import DEFAULT_DENSITY, DENSITIES, alphas

TABLE_3 = [
    "(1-x)^2", "phi(x+.5)", "phi(x+.3)", "x", "x^4+(1-x)^4", "sqrt(1-x)",
    "x^2+(1-x)^2", "1", "(1-x)^2+.5", "1-x", "1.5-x",
]


def test_registry_holds_exactly_the_eleven_densities_of_table_3():
    assert DENSITIES.names() == TABLE_3
    assert DEFAULT_DENSITY == "1.5-x"


@pytest.mark.parametrize("name", TABLE_3)
def test_alphas_are_monotone_pinned_and_follow_the_inverse_cdf(name):
    n = 2001
    a = alphas(name, n)
    assert a.dtype == np.float64 and a.shape == (n,)
    assert a[0] == 0.0 and a[-1] == 1.0
    assert np.all(np.diff(a) >= 0)
    # Empirical CDF of the α values against the normalised CDF computed independently (quad).
    rho = DENSITIES.get(name)
    total = quad(lambda t: float(rho(np.array([t]))[0]), 0, 1)[0]
    for x in np.linspace(0.05, 0.95, 19):
        expected = quad(lambda t: float(rho(np.array([t]))[0]), 0, x)[0] / total
        empirical = np.mean(a <= x)
        assert abs(empirical - expected) <= 1.0 / (n - 1) + 1e-4, (name, x)


def test_known_inverse_cdfs():
    q = np.linspace(0, 1, 101)
    np.testing.assert_allclose(alphas("1", 101), q, atol=1e-12)
    np.testing.assert_allclose(alphas("x", 101), np.sqrt(q), atol=1e-6)
    np.testing.assert_allclose(alphas("1.5-x", 101), 1.5 - np.sqrt(2.25 - 2 * q), atol=1e-6)
    np.testing.assert_allclose(alphas("1-x", 101), 1 - np.sqrt(1 - q), atol=1e-4)  # steep at q=1


def test_default_density_samples_three_times_more_densely_near_the_source():
    a = alphas("1.5-x", 10001)
    near_source = np.mean(a < 0.01)
    near_target = np.mean(a > 0.99)
    assert 2.8 < near_source / near_target < 3.2


def test_densities_that_vanish_at_one_still_end_at_one():
    for name in ("1-x", "(1-x)^2", "sqrt(1-x)"):
        a = alphas(name, 3)
        assert a[0] == 0.0 and a[-1] == 1.0 and 0 < a[1] < 0.5


def test_two_points_are_the_end_points_and_fewer_is_an_error():
    np.testing.assert_array_equal(alphas("1.5-x", 2), [0.0, 1.0])
    for bad in (1, 0, -3, 2.5, True):
        with pytest.raises(InvalidParameterError, match="'n' parameter of alphas must be an int >= 2"):
            alphas("1.5-x", bad)


def test_unknown_density_lists_the_valid_names():
    with pytest.raises(UnknownNameError, match=r"Unknown density 'foo'\. Available: \(1-x\)\^2, .*1\.5-x\."):
        alphas("foo", 5)
