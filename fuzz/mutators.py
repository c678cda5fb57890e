"""Mutators: each changes a document (plain data, the ``ketacds assess`` input shape) in place.

A mutator is ``(document, rng) -> None``; it picks what to change with ``rng`` only, so
a case is reproduced from its seed. When a document has nothing a mutator can change
(no time, no code), the mutator leaves it as it is.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

__all__ = ["MUTATORS", "Mutator", "mutate"]

Mutator = Callable[[Any, random.Random], None]
Path = tuple[Any, ...]  # keys and indexes from the document root

_QUANTITY = re.compile(r"^\s*(-?[0-9][0-9.]*)\s*([^\s0-9].*)$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _walk(node: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in list(node.items()):
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, index))


def _set(document: Any, path: Path, value: Any) -> None:
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _pick(rng: random.Random, found: list[tuple[Path, Any]]) -> tuple[Path, Any] | None:
    return found[rng.randrange(len(found))] if found else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


# ------------------------------------------------------------------------- numbers


def extreme_number(rng: random.Random, original: Any = 1) -> Any:
    """A number (or something posing as one) that a reader or an engine may get wrong."""
    base = abs(Decimal(str(original))) if _is_number(original) else Decimal(1)
    kind = rng.choice(
        [
            "tiny",
            "tiny",
            "tiny-decimal",
            "huge",
            "huge-int",
            "negative",
            "zero",
            "many-places",
            "many-places",
            "exponent-text",
            "hair",
            "hair",
            "not-a-number",
        ]
    )
    if kind == "tiny":  # a float: written 1e-05 by Python's repr, the 0.3.0 bug
        return rng.randint(1, 9) * float(f"1e-{rng.randint(5, 15)}")
    if kind == "tiny-decimal":
        return Decimal(rng.randint(1, 999)).scaleb(-rng.randint(5, 30))
    if kind == "huge":
        return float(rng.randint(1, 9) * 10 ** rng.randint(6, 15))
    if kind == "huge-int":
        return rng.randint(1, 9) * 10 ** rng.randint(6, 30)
    if kind == "negative":
        return -base if base else -1
    if kind == "zero":
        return rng.choice([0, 0.0, Decimal("0.000")])
    if kind == "many-places":
        return Decimal(f"{rng.randint(0, 300)}.{rng.randrange(10**25):025d}")
    if kind == "exponent-text":
        return rng.choice(["1e-05", "1E+3", "2.5e2", "7e-7", "1e308", "-0.0", "+5"])
    if kind == "hair":  # the value give or take 10^-k: exactly where rounding decides
        step = Decimal(1).scaleb(-rng.randint(1, 20))
        return base + rng.choice([-step, step])
    return rng.choice(["NaN", "Infinity", "-inf", "", "12,5", "１２", "0x10", True, None, [], "ten"])


def numbers(document: Any, rng: random.Random) -> None:
    """Replace a number, or the number of a quantity (``"70 kg"``), by an extreme one."""
    found = [
        (path, value)
        for path, value in _walk(document)
        if path and (_is_number(value) or (isinstance(value, str) and _QUANTITY.match(value)))
    ]
    picked = _pick(rng, found)
    if picked is None:
        return
    path, value = picked
    if isinstance(value, str):
        match = _QUANTITY.match(value)
        assert match is not None
        number = extreme_number(rng, Decimal(match.group(1)) if match.group(1).count(".") <= 1 else 1)
        text = repr(number) if isinstance(number, float) else str(number)
        _set(document, path, f"{text} {match.group(2)}")
    else:
        _set(document, path, extreme_number(rng, value))


# --------------------------------------------------------------------------- codes

_UNKNOWN_CODES = ["X99.9", "999999999", "F33.2.9", "f33.2", " F33.2", "", "I21", "401303003", "0", "NaN"]
_SYSTEMS = ["http://snomed.info/sct", "icd-10-cm", "http://example.org/unknown", "", "rxnorm", "SNOMED"]
_NAMES = ["SERTRALINE", "sertraline hydrochloride 50 mg tablet", "clonazepam", "Diazepam [Valium]", "", "?"]


def codes(document: Any, rng: random.Random) -> None:
    """Change a code, a code system or an item's name (unknown, other system, empty, odd case)."""
    found = [
        (path, value)
        for path, value in _walk(document)
        if path and path[-1] in ("code", "system", "name") and isinstance(value, str)
    ]
    picked = _pick(rng, found)
    if picked is None:
        return
    path, _ = picked
    pool = {"code": _UNKNOWN_CODES, "system": _SYSTEMS, "name": _NAMES}[path[-1]]
    _set(document, path, rng.choice(pool))


# -------------------------------------------------------------------------- fields


def dropped(document: Any, rng: random.Random) -> None:
    """Remove one key anywhere (a value, a unit, a time, the route, the whole patient)."""
    found = [(path, value) for path, value in _walk(document) if isinstance(value, dict) and value]
    picked = _pick(rng, found)
    if picked is None:
        return
    _, node = picked
    del node[rng.choice(sorted(node, key=str))]


def wrong_type(document: Any, rng: random.Random) -> None:
    """Put a value of the wrong type anywhere (a list for a number, null for a mapping, ...)."""
    found = [(path, value) for path, value in _walk(document) if path]
    picked = _pick(rng, found)
    if picked is None:
        return
    _set(document, picked[0], rng.choice([None, True, [], {}, "x", 0, -1, [{}], {"value": 1}]))


def duplicated(document: Any, rng: random.Random) -> None:
    """Repeat a list item, as it is or with one number changed."""
    found = [(path, value) for path, value in _walk(document) if isinstance(value, list) and value]
    picked = _pick(rng, found)
    if picked is None:
        return
    _, items = picked
    twin = copy.deepcopy(items[rng.randrange(len(items))])
    if rng.random() < 0.5:
        numbers(twin, rng)
    items.insert(rng.randrange(len(items) + 1), twin)


# --------------------------------------------------------------------------- times


def times(document: Any, rng: random.Random) -> None:
    """Move a time or date (future, far past, microseconds), change its offset, or garble it."""
    found = [
        (path, value) for path, value in _walk(document) if isinstance(value, str) and _TIME.match(value)
    ]
    picked = _pick(rng, found)
    if picked is None:
        return
    path, value = picked
    kind = rng.choice(["shift", "shift", "micro", "offset", "naive", "garbage"])
    if kind == "garbage":
        _set(
            document,
            path,
            rng.choice(
                [
                    "yesterday",
                    "2026-02-30T00:00:00Z",
                    "9999-12-31T23:59:59Z",
                    "0001-01-01",
                    "2026-11-21T25:00:00Z",
                    "2026-11-21T09:00:00+25:00",
                ]
            ),
        )
        return
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return
    date_only = len(value) == 10
    try:
        moment = _moved(moment, kind, date_only, rng)
        _set(document, path, moment.date().isoformat() if date_only else moment.isoformat())
    except (OverflowError, ValueError):
        return


def _moved(moment: dt.datetime, kind: str, date_only: bool, rng: random.Random) -> dt.datetime:
    if kind == "shift":
        seconds = rng.choice([1, 59, 3600, 7200, 86400, 86400 * 42, 86400 * 400, 86400 * 365 * 80])
        moment += dt.timedelta(seconds=seconds * rng.choice([-1, 1]) + rng.choice([0, 1, -1]))
    elif kind == "micro":
        moment += dt.timedelta(microseconds=rng.choice([-1, 1, 999_999]))
    elif kind == "offset" and not date_only:
        offset = dt.timedelta(hours=rng.choice([-12, -8, 0, 5.5, 14]))
        moment = moment.astimezone(dt.timezone(offset))
    elif kind == "naive" and not date_only:
        moment = moment.replace(tzinfo=None)
    return moment


MUTATORS: dict[str, Mutator] = {
    "numbers": numbers,
    "numbers-again": numbers,  # numbers are the engine's weak spot: drawn twice as often
    "codes": codes,
    "dropped": dropped,
    "wrong-type": wrong_type,
    "duplicated": duplicated,
    "times": times,
}


def mutate(name: str, document: Any, rng: random.Random) -> None:
    """Apply the mutator ``name`` to ``document`` in place."""
    MUTATORS[name](document, rng)
