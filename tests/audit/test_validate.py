"""audit.validate: the one set of config checks (bounds, types, message form)."""

from __future__ import annotations

import numpy as np
import pytest

from audit.errors import InvalidParameterError
from audit.validate import check_choice, check_float, check_int


def _message(fn, *args, **kw) -> str:
    with pytest.raises(InvalidParameterError) as info:
        fn(*args, **kw)
    return str(info.value)


@pytest.mark.parametrize("value", [1, 50, 100, np.int64(1), np.uint8(100), np.int32(7)])
def test_int_accepts_python_and_numpy_ints_within_closed_bounds(value):
    check_int("jpeg", "quality", value, 1, 100)


@pytest.mark.parametrize("value", [0, 101, -5, True, False, 1.0, 50.0, np.float64(2.0), "5", None, np.bool_(True)])
def test_int_refuses_out_of_range_bools_floats_and_text(value):
    assert _message(check_int, "jpeg", "quality", value, 0 if value is False else 1, 100).startswith(
        "The 'quality' parameter of jpeg must be an int in [")


def test_int_messages_name_the_interval():
    assert _message(check_int, "jpeg", "quality", 0, 1, 100) == (
        "The 'quality' parameter of jpeg must be an int in [1, 100]. Got 0 instead.")
    assert _message(check_int, "slerp", "dim", 1, 2) == "The 'dim' parameter of slerp must be an int >= 2. Got 1 instead."


def test_int_without_high_has_no_upper_bound():
    check_int("slerp", "dim", 10**30, 2)
    with pytest.raises(InvalidParameterError):
        check_int("slerp", "dim", True, 0)  # True == 1 >= 0, but a bool is not a count


@pytest.mark.parametrize("value, ok", [(0.0, True), (1.0, True), (-1e-12, False), (1.0 + 1e-9, False)])
def test_float_closed_ends_include_both_bounds(value, ok):
    if ok:
        check_float("curved", "bend", value, 0.0, 1.0)
    else:
        with pytest.raises(InvalidParameterError, match=r"must be a float in \[0, 1\]"):
            check_float("curved", "bend", value, 0.0, 1.0)


def test_float_open_ends_exclude_the_bound_and_only_that_bound():
    with pytest.raises(InvalidParameterError, match=r"a float in \(0, 0.45\]\. Got 0.0 instead"):
        check_float("gan", "end_fraction", 0.0, 0.0, 0.45, low_open=True)
    check_float("gan", "end_fraction", 0.45, 0.0, 0.45, low_open=True)
    with pytest.raises(InvalidParameterError, match=r"a float in \[0, 0.5\)\. Got 0.5 instead"):
        check_float("Weak", "pad", 0.5, 0.0, 0.5, high_open=True)
    check_float("Weak", "pad", 0.0, 0.0, 0.5, high_open=True)
    check_float("Weak", "pad", 0.4999, 0.0, 0.5, high_open=True)


def test_float_without_high_is_a_one_sided_bound():
    check_float("UDAConfig", "lambda_u", 1e300, 0.0)
    assert _message(check_float, "UDAConfig", "temperature", 0.0, 0.0, low_open=True) == (
        "The 'temperature' parameter of UDAConfig must be a float > 0. Got 0.0 instead.")
    assert _message(check_float, "x", "min_span", -1, 0.0) == (
        "The 'min_span' parameter of x must be a float >= 0. Got -1 instead.")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), np.float32("nan"), np.float64("inf")])
def test_float_refuses_nan_and_infinities_even_without_an_upper_bound(value):
    with pytest.raises(InvalidParameterError, match="must be a float >= 0"):
        check_float("UDAConfig", "lambda_u", value, 0.0)


@pytest.mark.parametrize("value", [True, False, "0.5", None, [0.5], np.bool_(False)])
def test_float_refuses_bools_and_non_numbers(value):
    with pytest.raises(InvalidParameterError, match=r"must be a float in \[0, 1\]"):
        check_float("curved", "bend", value, 0.0, 1.0)


@pytest.mark.parametrize("value", [1, np.int64(1), np.float32(0.25), np.float64(1.0), np.uint8(0), 10**400])
def test_float_accepts_ints_and_numpy_scalars(value):
    check_float("x", "y", value, 0.0)


def test_float_bounds_print_without_trailing_zeros():
    assert "a float in (0, 1000000]" in _message(check_float, "transfer", "c_init", 0.0, 0.0, 1e6, low_open=True)
    assert "a float in [0, 255]" in _message(check_float, "noise", "sigma", -1.0, 0.0, 255.0)
    assert "a float > 1e-06" in _message(check_float, "x", "y", 0.0, 1e-6, low_open=True)


def test_choice_lists_the_choices_quoted():
    check_choice("noise", "kind", "uniform", ("gaussian", "uniform"))
    assert _message(check_choice, "noise", "kind", "gauss", ("gaussian", "uniform")) == (
        "The 'kind' parameter of noise must be one of 'gaussian', 'uniform'. Got 'gauss' instead.")
    with pytest.raises(InvalidParameterError):
        check_choice("noise", "kind", None, ("gaussian", "uniform"))
