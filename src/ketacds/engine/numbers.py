"""How numbers are carried in facts, and how they are shown to people.

Facts carry exact numbers (:func:`exact`: an ``int`` when whole, else the ``Decimal``,
never a float); derived quantities are computed in the 120-digit Decimal context
``_EXACT`` and never rounded. Rounding happens only in what people read
(:func:`shown`, to the quanta of ``DISPLAY_QUANTA`` / ``LONG_QUANTUM``), and a JSON
number for output (CDS Hooks cards) comes from :func:`to_json_number`.

Names with a leading underscore are shared only among the fact-building modules
(``facts``, ``fact_builders``, ``readings``, ``recognition``, ``identity``, ``numbers``);
they are not API.
"""

from __future__ import annotations

import decimal
from decimal import ROUND_HALF_EVEN, Decimal

__all__ = ["DISPLAY_QUANTA", "LONG_QUANTUM", "exact", "shown", "to_json_number"]

_ONE = Decimal(1)
_TENTH = Decimal("0.1")
_HUNDREDTH = Decimal("0.01")
_THOUSANDTH = Decimal("0.001")
#: How finely a derived quantity is shown to people (labels, explanations); facts keep
#: the exact value. Fields not listed are shown as written.
DISPLAY_QUANTA: dict[str, Decimal] = {
    "weight_kg": _HUNDREDTH,
    "height_cm": _TENTH,
    "bmi": _TENTH,
    "mg_per_kg": _HUNDREDTH,
    "dose_mg_per_kg": _THOUSANDTH,
    "hours_ago": _HUNDREDTH,
    "daily_mg": _HUNDREDTH,
}
#: Any other number with more than 6 decimal places (a quotient, such as a table's
#: diazepam-equivalents) is shown to this quantum when it is 1 or more.
LONG_QUANTUM = _HUNDREDTH
#: The arithmetic of derived quantities: enough digits that no comparison is decided by
#: rounding, and the usual traps (a NaN or an overflow is an error, never a value).
_EXACT = decimal.Context(
    prec=120,
    Emax=999_999,
    Emin=-999_999,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)


def to_json_number(value: Decimal) -> int | float:
    """A Decimal as a JSON number for output (CDS Hooks cards): int when whole, else float.

    Not for facts: facts carry exact values (:func:`exact`).
    """
    return int(value) if value == value.to_integral_value() else float(value)


def exact(value: Decimal | int) -> int | Decimal:
    """A number as a fact carries it: ``int`` when whole (and of a sane size), else the Decimal."""
    if value.__class__ is Decimal:
        if value == value.to_integral_value() and value.adjusted() < 18:
            return int(value)
        return value
    if isinstance(value, int):
        return value
    if value == value.to_integral_value() and value.adjusted() < 18:  # a Decimal subclass
        return int(value)
    return value


def shown(value: Decimal | int | float, quantum: Decimal) -> str:
    """A number for a label: rounded to ``quantum`` (half even), fixed point, no trailing zeros.

    A number too large to be written to ``quantum`` in 120 digits is shown as it is.
    """
    # ``str`` writes these fixed point, as ``format(..., "f")`` does: a whole number has
    # exponent 0, and a fraction rounded to one of ``_FINE`` is at least 0.001.
    fine = quantum is _HUNDREDTH or quantum is _TENTH or quantum is _THOUSANDTH
    number = value.__class__
    if number is int and (fine or (isinstance(places := quantum.as_tuple().exponent, int) and places <= 0)):
        return str(value)  # a whole number rounded to a quantum of 1 or finer: itself
    try:
        given: Decimal = value if number is Decimal else Decimal(value)  # type: ignore[assignment]
        rounded = given.quantize(quantum, ROUND_HALF_EVEN, _EXACT)  # (positional: no keyword parsing)
    except decimal.InvalidOperation:
        return str(value)
    if rounded == rounded.to_integral_value():
        return str(rounded.quantize(_ONE, None, _EXACT))
    if fine:
        return str(rounded.normalize(_EXACT))
    return format(rounded.normalize(_EXACT), "f")
