"""Limits on what ketacds reads, in one place (documented in docs/input-format.md, "Limits").

Every reader of outside input (case files, FHIR bundles, NDJSON lines, CDS Hooks
requests, scenario and rules files) holds to these, so that no input, however made,
gives a traceback, a hang or a crash: it is an error that says where it is.

- :data:`MAX_DOCUMENT_BYTES`: one document (a file, an NDJSON line, a request body).
- :data:`MAX_DEPTH`: nesting of mappings and lists (deeper input would exhaust the stack).
- :data:`MAX_NODES`: values in one YAML document once its aliases are expanded (a few
  hundred bytes of nested aliases otherwise expand to billions of values).
- :data:`MAX_ALIAS_VALUES`: values a YAML document gains through its aliases (1 KB of
  aliases expanding to 59,000 values took seconds to read, within ``MAX_NODES``).
- :data:`MAX_NUMBER_CHARS`, :data:`MAX_EXPONENT`, :data:`MIN_EXPONENT`: a number as
  written, and its size (``1E+999999999`` takes minutes to round; ``1e30`` mg overflows
  exact arithmetic). No clinical quantity comes near these.
- :data:`MAX_HEADER_BYTES`, :data:`MAX_HEADERS`: the request headers the service reads.
- :data:`RECORD_SECONDS`: how long a batch worker may spend on one record.

:func:`find_problem` walks parsed data (without recursion) and names the first value
past a limit by its field path; :func:`loads_json` is the strict JSON reader (exact
decimals, duplicate keys refused).
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = [
    "MAX_ALIAS_VALUES",
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_EXPONENT",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "MAX_NODES",
    "MAX_NUMBER_CHARS",
    "MIN_EXPONENT",
    "RECORD_SECONDS",
    "DuplicateKey",
    "JsonProblem",
    "duplicate_position",
    "find_problem",
    "join_path",
    "loads_json",
]

#: Bytes in one document (file, NDJSON line or request body): 32 MiB.
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024
#: Levels of nested mappings and lists in one document.
MAX_DEPTH = 64
#: Values in one YAML document after alias expansion (the bundled rules: about 13,000 in all).
MAX_NODES = 200_000
#: Values a YAML document gains by its aliases (each use of an alias counts every value
#: under its anchor); the project's own YAML files use a few dozen.
MAX_ALIAS_VALUES = 10_000
#: Characters of one number as written (digits, sign, point, exponent).
MAX_NUMBER_CHARS = 40
#: Largest decimal exponent of a number: 10^15 and beyond are refused.
MAX_EXPONENT = 14
#: Smallest decimal exponent of a non-zero number.
MIN_EXPONENT = -30
#: Bytes of all request headers together (names and values) the service accepts.
MAX_HEADER_BYTES = 32 * 1024
#: Request headers the service accepts.
MAX_HEADERS = 100
#: Seconds a batch worker may spend on one record before it is reported as an error.
RECORD_SECONDS = 30.0


class JsonProblem(ValueError):
    """Text that is not JSON ketacds accepts; ``line`` is 1-based when known."""

    def __init__(self, reason: str, line: int | None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(reason)


class DuplicateKey(JsonProblem):
    """A JSON object names the same key twice."""


def join_path(path: str, key: str | int) -> str:
    """``medications`` + 2 -> ``medications[2]``; ``patient`` + ``weight`` -> ``patient.weight``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def number_problem(value: int | Decimal) -> str | None:
    """Why ``value`` is past the number limits, or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if abs(value) >= 10 ** (MAX_EXPONENT + 1):
            return f"number too large (at most {MAX_EXPONENT + 1} digits before the point)"
        return None
    if not value.is_finite():
        return "numbers must be finite"
    if value and value.adjusted() > MAX_EXPONENT:
        return f"number too large (at most {MAX_EXPONENT + 1} digits before the point)"
    if value and value.adjusted() < MIN_EXPONENT:
        return f"number too small (smallest non-zero is 1e{MIN_EXPONENT})"
    if len(value.as_tuple().digits) > MAX_NUMBER_CHARS:
        return f"number too long (at most {MAX_NUMBER_CHARS} digits)"
    return None


def find_problem(data: Any) -> tuple[str, str] | None:
    """The first value of ``data`` past a limit, as ``(field path, reason)``, or ``None``.

    Checks nesting depth and every number; iterative, so any depth is safe to walk.
    (The number of values is bounded by :data:`MAX_DOCUMENT_BYTES` for JSON, and by
    :data:`MAX_NODES` for YAML, whose aliases can multiply it.) Almost all input is within
    the limits, so a quick pass that keeps no field paths decides that first; only input
    with a problem is walked again to name it.
    """
    if _within_limits(data):
        return None
    return _first_problem(data)


_LARGEST_INT = 10 ** (MAX_EXPONENT + 1)


def _within_limits(data: Any) -> bool:
    """Whether no value of ``data`` is past a limit (level by level, no paths kept)."""
    level = [data]
    depth = 0
    while level:
        below: list[Any] = []
        for value in level:
            kind = type(value)
            if kind is str or value is None or kind is bool:
                continue
            if kind is int:
                if -_LARGEST_INT < value < _LARGEST_INT:
                    continue
                return False
            if isinstance(value, Mapping):
                below.extend(value.values())
            elif isinstance(value, list | tuple):
                below.extend(value)
            else:
                if isinstance(value, int | Decimal | float) and _number_reason(value) is not None:
                    return False
                continue
            if depth >= MAX_DEPTH:
                return False
        level = below
        depth += 1
    return True


def _first_problem(data: Any) -> tuple[str, str] | None:
    """:func:`find_problem`, walking in document order and keeping each value's field path."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, Mapping):
            if depth >= MAX_DEPTH:
                return path or "(top level)", f"nested more than {MAX_DEPTH} levels deep"
            stack.extend((v, join_path(path, str(k)), depth + 1) for k, v in reversed(list(value.items())))
        elif isinstance(value, list | tuple):
            if depth >= MAX_DEPTH:
                return path or "(top level)", f"nested more than {MAX_DEPTH} levels deep"
            stack.extend((v, join_path(path, i), depth + 1) for i, v in reversed(list(enumerate(value))))
        elif isinstance(value, int | Decimal | float):
            reason = _number_reason(value)
            if reason is not None:
                return path or "(top level)", reason
    return None


def _number_reason(value: int | Decimal | float) -> str | None:
    """Why a number is past the limits, or ``None``; a float is JSON read by another parser."""
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return "numbers must be finite"
        return number_problem(Decimal(repr(value)))
    return number_problem(value)


def _int(text: str) -> int | Decimal:
    # int() refuses more than 4,300 digits with a ValueError; a Decimal is checked by find_problem.
    return Decimal(text) if len(text) > MAX_NUMBER_CHARS else int(text)


def _no_constant(name: str) -> Any:
    raise JsonProblem(f"{name} is not a number JSON allows", None)


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(f"duplicate key {key!r}", None)
        out[key] = value
    return out


def loads_json(text: str) -> Any:
    """Parse JSON text strictly: exact decimals, no NaN or Infinity, no duplicate keys.

    Numbers and depth are not checked here: pass the result to :func:`find_problem`.

    Raises:
        JsonProblem: not JSON, a duplicate key (with the line of its second use), a
            non-finite constant, or nested too deeply to parse.
    """
    if len(text) > MAX_DOCUMENT_BYTES:
        raise JsonProblem(f"larger than {MAX_DOCUMENT_BYTES // 2**20} MiB", None)
    try:
        return json.loads(
            text, parse_float=Decimal, parse_int=_int, parse_constant=_no_constant, object_pairs_hook=_pairs
        )
    except json.JSONDecodeError as error:
        raise JsonProblem(f"invalid JSON: {error.msg}", error.lineno) from None
    except DuplicateKey as error:
        raise DuplicateKey(error.reason, _duplicate_line(text)) from None
    except RecursionError:
        raise JsonProblem(f"invalid JSON: nested more than {MAX_DEPTH} levels deep", None) from None


class _Located(Exception):
    def __init__(self, position: int) -> None:
        self.position = position


def _duplicate_line(text: str) -> int | None:
    """The line of the first repeated key, found by a slower pass that knows positions."""
    position = duplicate_position(text)
    return None if position is None else text.count("\n", 0, position) + 1


def duplicate_position(text: str) -> int | None:
    """Where the first repeated key of JSON ``text`` starts (``None``: none, or not JSON).

    A slower pass that knows positions: only for text known to repeat a key.
    """
    # The pure-Python scanner calls decoder.parse_object with positions; the C one does not.
    py_json: Any = json
    whitespace = py_json.decoder.WHITESPACE.match
    scanstring = py_json.decoder.scanstring

    def parse_object(s_and_end: tuple[str, int], strict: bool, scan_once: Any, *_: Any) -> tuple[Any, int]:
        s, end = s_and_end
        seen: set[str] = set()
        out: dict[str, Any] = {}
        end = whitespace(s, end).end()
        if s[end : end + 1] == "}":
            return out, end + 1
        while True:
            start = end
            key, end = scanstring(s, end + 1, strict)
            if key in seen:
                raise _Located(start)
            seen.add(key)
            end = whitespace(s, end).end() + 1  # the colon
            value, end = scan_once(s, whitespace(s, end).end())
            out[key] = value
            end = whitespace(s, end).end()
            if s[end : end + 1] == "}":
                return out, end + 1
            end = whitespace(s, end + 1).end()

    decoder: Any = json.JSONDecoder(parse_float=Decimal, parse_int=_int, parse_constant=_no_constant)
    decoder.parse_object = parse_object
    scan = py_json.scanner.py_make_scanner(decoder)
    try:
        scan(text, whitespace(text, 0).end())
    except _Located as found:
        return found.position
    except (ValueError, RecursionError):  # pragma: no cover - the fast pass saw valid JSON
        return None
    return None  # pragma: no cover
