"""Numbers from users, files and models, checked at one place.

Every number that comes from outside (a command-line option, a form field, a
hints file, a model's metadata) goes through ``check_number``: NaN and the
infinities are refused, and so are values outside the range that the code
using them can compute with. A temperature of 1e-40 is "> 0", yet dividing a
logit by it overflows to infinity and the colours come out black; a range with
a floor (``MIN_TEMPERATURE``) refuses it with a message instead. No heavy
imports here: the command line checks its options with it before loading
PyTorch.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ColorunetError

#: Annealed-mean temperatures colorunet accepts. Below the floor the annealed
#: mean is the mode already (use mode "mode"), and far below it, logits divided by
#: T overflow float32; above the ceiling it is the plain mean.
MIN_TEMPERATURE = 0.01
MAX_TEMPERATURE = 100.0


class ValueRangeError(ColorunetError, ValueError):
    """A number that is not finite, not a number, or out of its range. The message names it."""


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def check_number(
    value: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    integer: bool = False,
) -> float | int:
    """``value`` as a finite float (or int with ``integer``) in [low, high]; else ``ValueRangeError``.

    ``low_open`` makes the lower bound exclusive (``> low``). Booleans and strings
    are not numbers here, whatever Python would convert them to.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise ValueRangeError(f"{name}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueRangeError(f"{name}: expected a number, got {value!r}") from None
    if math.isnan(number):
        raise ValueRangeError(f"{name}: must be a number, got NaN")
    if math.isinf(number):
        raise ValueRangeError(f"{name}: must be finite, got {number}")
    if integer:
        if number != int(number):
            raise ValueRangeError(f"{name}: must be a whole number, got {value!r}")
        number = int(value) if isinstance(value, int) else int(number)
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and number > high
    if below or above:
        if low is not None and high is not None:
            want = f"{'> ' + _fmt(low) + ' and ≤ ' + _fmt(high) if low_open else 'between ' + _fmt(low) + ' and ' + _fmt(high)}"
        elif below:
            want = f"{'>' if low_open else '≥'} {_fmt(low)}"
        else:
            want = f"≤ {_fmt(high)}"
        raise ValueRangeError(f"{name}: must be {want}, got {value!r}")
    return number


def check_temperature(value: Any, name: str = "temperature") -> float:
    """An annealed-mean temperature in [MIN_TEMPERATURE, MAX_TEMPERATURE]."""
    return float(check_number(value, name, MIN_TEMPERATURE, MAX_TEMPERATURE))
