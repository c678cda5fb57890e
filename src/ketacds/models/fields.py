"""Read the fields of a case document, naming the path of every error.

The parsers the case loader (:mod:`ketacds.models.load`) is built from: each takes a
value and its field path (``medications[2].dose``) and returns the value as the model
wants it, or raises :class:`~ketacds.errors.InputError` naming that path. A mapping's
fields are read in a fixed order by :func:`_values` (the first that cannot be read is
the error), which then refuses any key no field reads: a misspelt field is never
silently ignored.

Names with a leading underscore are shared only with :mod:`ketacds.models.load`; they
are not API.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from ketacds import limits
from ketacds.dosing.units import canonical_unit
from ketacds.errors import InputError, KetacdsError
from ketacds.models.inputs import Coding, Quantity
from ketacds.models.trusted import trusted_constructor

T = TypeVar("T")
D = TypeVar("D")

_QUANTITY_TEXT = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*(\S.*?)\s*$")
# A number written with a decimal comma ("68,5 kg"), or with a point and no digit after it.
_MALFORMED_NUMBER = re.compile(r"^\s*([-+]?\d+(?:[.,]\d*)+)")

_new_quantity = trusted_constructor(Quantity)

#: A mapping's fields, in the order they are read: (key, parser, value when absent).
_Fields = tuple[tuple[str, Callable[[Any, str], Any], Any], ...]


def _values(data: Any, path: str, fields: _Fields, known: frozenset[str] | None = None) -> list[Any]:
    """The value of each field of the mapping ``data`` at ``path``, read in order.

    The same as one :meth:`_Reader.get` per field (the first field that cannot be read
    raises), without a method call per field: most fields of an item are absent. Then,
    given the ``known`` keys (every key the item's fields read), the first other key of
    ``data`` is refused, as :meth:`_Reader.finish` does.
    """
    if type(data) is not dict and not isinstance(data, Mapping):  # a dict, mostly: no ABC check
        raise InputError(path or "(top level)", f"expected a mapping, got {_kind(data)}")
    get = data.get
    prefix = f"{path}." if path else ""
    values = [
        default if (value := get(key)) is None else parse(value, prefix + key)
        for key, parse, default in fields
    ]
    if known is not None and not known.issuperset(data):
        _known_keys_only(data, path, known)
    return values


def _keys(fields: _Fields) -> frozenset[str]:
    return frozenset(key for key, _, _ in fields)


def _known_keys_only(data: Mapping[Any, Any], path: str, allowed: frozenset[str]) -> None:
    """Refuse the first key (sorted) of ``data`` that is not in ``allowed`` (:meth:`_Reader.finish`)."""
    if allowed.issuperset(data):
        return
    extra = sorted(set(map(str, data)) - allowed)
    if extra:
        raise InputError(f"{path}.{extra[0]}" if path else extra[0], "unknown field")


def _made(build: Callable[..., T], path: str, *values: Any, **fields: Any) -> T:
    """``build(*values, **fields)``, a model's own refusal (its checks across fields) named by ``path``."""
    try:
        return build(*values, **fields)
    except (TypeError, ValueError) as error:
        raise InputError(path, str(error)) from None


class _Reader:
    """Reads one mapping at ``path``, remembering which keys were used."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise InputError(path or "(top level)", f"expected a mapping, got {_kind(data)}")
        self.data = data
        self.path = path
        self.used: set[str] = set()

    def at(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, parse: Callable[[Any, str], T], default: D) -> T | D:
        self.used.add(key)
        value = self.data.get(key)
        if value is None:
            return default
        return parse(value, self.at(key))

    def finish(self, allowed: set[str] | None = None) -> None:
        extra = sorted(set(map(str, self.data)) - (allowed if allowed is not None else self.used))
        if extra:
            raise InputError(self.at(extra[0]), "unknown field")


def _kind(value: Any) -> str:
    return type(value).__name__ if value is not None else "nothing"


_TEXTUAL = (str, int, Decimal)


def _text(value: Any, path: str) -> str:
    if type(value) is str:  # the common case, first
        text = value.strip()
        if not text:
            raise InputError(path, "must not be empty")
        return text
    if isinstance(value, bool) or not isinstance(value, _TEXTUAL):
        raise InputError(path, f"expected text, got {_kind(value)}")
    text = str(value).strip()
    if not text:
        raise InputError(path, "must not be empty")
    return text


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(path, f"expected true or false, got {_short(value)}")
    return value


# A whole number below this many digits is within every limit of ketacds.limits, and
# Decimal(n) is Decimal(str(n)), exponent and all.
_PLAIN_INT = 10 ** min(limits.MAX_EXPONENT + 1, limits.MAX_NUMBER_CHARS)


def _decimal(value: Any, path: str) -> Decimal:
    if type(value) is int and -_PLAIN_INT < value < _PLAIN_INT:
        return Decimal(value)
    if isinstance(value, bool):
        raise InputError(path, f"expected a number, got {_short(value)}")
    if isinstance(value, float):
        value = repr(value)  # JSON without parse_float=Decimal: keep the written digits
    try:
        number = Decimal(str(value).strip()) if isinstance(value, _TEXTUAL) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise InputError(path, f"expected a number, got {_short(value)}")
    reason = limits.number_problem(number)
    if reason is not None:
        raise InputError(path, reason)
    return number


def _short(value: Any) -> str:
    """``repr(value)``, cut to 60 characters (a 5,000-digit number is no use in a message)."""
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 1000 else "a very long number"
    return text if len(text) <= 60 else text[:57] + "..."


def _non_negative(value: Any, path: str) -> Decimal:
    number = _decimal(value, path)
    if number < 0:
        raise InputError(path, f"must not be negative, got {number}")
    return number


def _int(value: Any, path: str) -> int:
    number = _decimal(value, path)
    if number != number.to_integral_value():
        raise InputError(path, f"expected a whole number, got {value}")
    return int(number)


def _date(value: Any, path: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(_text(value, path))
    except ValueError:
        raise InputError(path, f"expected a date like 1980-05-31, got {_short(value)}") from None


def _datetime(value: Any, path: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(_text(value, path))
        except ValueError:
            raise InputError(
                path, f"expected a date-time like 2026-11-21T09:00:00+00:00, got {_short(value)}"
            ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InputError(path, "must include a timezone (e.g. +00:00 or Z)")
    return moment


def _unit(value: Any, path: str, dimension: str | None = None) -> str:
    text = _text(value, path)
    try:
        canonical_unit(text, dimension)
    except KetacdsError as error:
        raise InputError(path, str(error)) from None
    return text


_QUANTITY_FIELDS: _Fields = (("value", _non_negative, None), ("unit", _text, None), ("time", _datetime, None))
_QUANTITY_KEYS = _keys(_QUANTITY_FIELDS)


def _quantity(dimension: str) -> Callable[[Any, str], Quantity]:
    def parse(value: Any, path: str) -> Quantity:
        time: dt.datetime | None = None
        if isinstance(value, str):
            match = _QUANTITY_TEXT.match(value)
            malformed = _MALFORMED_NUMBER.match(value)
            if malformed and (not match or len(malformed.group(1)) > len(match.group(1))):
                raise InputError(
                    path,
                    f"the number {malformed.group(1)!r} is malformed: write it with one decimal point "
                    f"and no comma, like '70.5 kg'; got {_short(value)}",
                )
            if not match:
                raise InputError(path, f"expected a quantity like '70 kg', got {_short(value)}")
            number, unit = _decimal(match.group(1), path), match.group(2)
        else:
            maybe_number, maybe_unit, time = _values(value, path, _QUANTITY_FIELDS, _QUANTITY_KEYS)
            if maybe_number is None or maybe_unit is None:
                raise InputError(path, "a quantity needs a value and a unit")
            number, unit = maybe_number, maybe_unit
        if number < 0:
            raise InputError(path, f"must not be negative, got {number}")
        return _new_quantity(number, _unit(unit, path, dimension), time)

    return parse


def _choice(*allowed: str) -> Callable[[Any, str], str]:
    known = frozenset(allowed)

    def parse(value: Any, path: str) -> str:
        text = _text(value, path)
        if text not in known:
            raise InputError(path, f"expected one of {', '.join(allowed)}; got {_short(text)}")
        return text

    return parse


_CODING_FIELDS: _Fields = (("system", _text, None), ("code", _text, None), ("display", _text, None))
_CODING_KEYS = _keys(_CODING_FIELDS)


def _coding(value: Any, path: str) -> Coding:
    system, code, display = _values(value, path, _CODING_FIELDS, _CODING_KEYS)
    if system is None or code is None:
        raise InputError(path, "a code needs a system and a code")
    try:
        # Its own constructor: it writes the system's canonical URI (a converter).
        return Coding(system=system, code=code, display=display)
    except ValueError as error:
        raise InputError(f"{path}.system" if path else "system", str(error)) from None


def _list(parse: Callable[[Any, str], T]) -> Callable[[Any, str], tuple[T, ...]]:
    def parse_all(value: Any, path: str) -> tuple[T, ...]:
        if not isinstance(value, list | tuple):
            raise InputError(path, f"expected a list, got {_kind(value)}")
        return tuple([parse(item, f"{path}[{index}]") for index, item in enumerate(value)])

    return parse_all
