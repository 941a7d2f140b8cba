"""Config validation in scikit-learn's words (STYLE.md 5), the one set of checks every frozen
config's ``__post_init__`` uses: ``The 'quality' parameter of jpeg must be an int in [1, 100].
Got 0 instead.``

Numbers are Python or numpy scalars; a bool is refused even though Python counts it as an int
(``copies=True`` is a mistake, not 1), and so are NaN and ±inf (they pass or fail a range test
depending on which side is checked). Messages name the allowed set in one notation: ``an int in
[1, 100]``, ``an int >= 1``, ``a float in (0, 1]``, ``a float > 0``, ``one of 'a', 'b'``.
Standard library and numpy only: the CLIs import configs while ``--help`` is printed.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from audit.errors import invalid_parameter

_INTS = (int, np.integer)
_NUMBERS = (int, float, np.integer, np.floating)


def check_int(owner: str, name: str, value: Any, low: int, high: int | None = None) -> None:
    """``value`` an int (not a bool) in ``[low, high]``, or ``>= low`` when ``high`` is None."""
    ok = isinstance(value, _INTS) and not isinstance(value, bool)
    if not (ok and low <= value and (high is None or value <= high)):
        raise invalid_parameter(name, owner, "an int " + _interval(low, high, False, False), value)


def check_float(owner: str, name: str, value: Any, low: float, high: float | None = None, *,
                low_open: bool = False, high_open: bool = False) -> None:
    """``value`` a finite number (ints too, not bools) in ``[low, high]``; ``low_open`` /
    ``high_open`` exclude that end; ``high`` None: no upper bound."""
    # ints are compared as they are: math.isfinite(10**400) would overflow
    ok = isinstance(value, _NUMBERS) and not isinstance(value, bool) and (isinstance(value, _INTS)
                                                                           or math.isfinite(value))
    if ok:
        ok = ((value > low if low_open else value >= low)
              and (high is None or (value < high if high_open else value <= high)))
    if not ok:
        raise invalid_parameter(name, owner, "a float " + _interval(low, high, low_open, high_open), value)


def check_choice(owner: str, name: str, value: Any, choices: Iterable[str]) -> None:
    """``value`` one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise invalid_parameter(name, owner, "one of " + ", ".join(f"'{c}'" for c in choices), value)


def _interval(low: float, high: float | None, low_open: bool, high_open: bool) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {_num(low)}"
    return f"in {'(' if low_open else '['}{_num(low)}, {_num(high)}{')' if high_open else ']'}"


def _num(x: float) -> str:
    """``1``, ``0.45``, ``1000000``, ``1e-06``: whole numbers without a trailing ``.0``."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))
