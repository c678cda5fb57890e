"""The service's JSON codec: request bodies read as :func:`json.loads` reads them, answers written fast.

orjson (the ``server`` extra) reads and writes JSON several times faster than the
standard library. It is used only where it gives the same data:

* :func:`loads` takes orjson's result only for a body orjson reads *and* that holds no
  integer literal of 19 digits or more (orjson reads an integer past 64 bits as a float, where
  :func:`json.loads` keeps every digit); anything orjson refuses (``NaN``, a byte order
  mark, a UTF-16 body, ...) is read by :func:`json.loads`, so an invalid body gets the
  very same error as before.
* a body in which an object names one key twice is refused (:class:`DuplicateKeyError`),
  as ``ketacds.limits`` refuses it in every other reader; see :func:`loads`.
* :func:`dumps` writes an answer compactly as UTF-8, as Starlette's ``JSONResponse``
  does (the same data; only the bytes' layout may differ), falling back to
  :func:`json.dumps` for what orjson cannot write.

Without orjson installed both are the standard library's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from ketacds import limits

try:
    import orjson
except ImportError:  # pragma: no cover - the server extra installs it
    orjson = None  # type: ignore[assignment,unused-ignore]

__all__ = ["DuplicateKeyError", "JSONRequest", "JSONRoute", "dumps", "json_response", "loads"]

#: Every digit to ``0`` (the rest as it is), so that a run of digits is found by ``bytes.find``.
_DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0000000000")
_RUN = b"0" * 19
_SPACE = b" \t\r\n"


def _long_integer(body: bytes) -> bool:
    """Whether ``body`` may hold an integer literal of 19 digits or more.

    That is, a run of such digits alone between ``:``, ``[``, ``,`` (or the start) and
    ``,``, ``]``, ``}`` (or the end), a minus sign and spaces allowed. Text inside a
    string can look like one too: that body is then read by ``json.loads``, never wrongly.
    (Runs are found with ``bytes.translate`` and ``bytes.find``, then each run's neighbours
    looked at: a regular expression takes a millisecond on a large body.)
    """
    digits = body.translate(_DIGITS_TO_ZERO)
    start = digits.find(_RUN)
    while start != -1:
        end = start + len(_RUN)
        while end < len(digits) and digits[end] == 0x30:  # "0"
            end += 1
        before = start - 1
        if before >= 0 and body[before] == 0x2D:  # "-"
            before -= 1
        while before >= 0 and body[before] in _SPACE:
            before -= 1
        after = end
        while after < len(body) and body[after] in _SPACE:
            after += 1
        if (before < 0 or body[before] in b":[,") and (after == len(body) or body[after] in b",]}"):
            return True
        start = digits.find(_RUN, end)
    return False


class DuplicateKeyError(json.JSONDecodeError):
    """A JSON object of the body names the same key twice (``pos``: where its second use starts)."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``dict(pairs)``, refusing a key given twice (an ``object_pairs_hook``)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Repeated(key)
            seen.add(key)
    return out


class _Repeated(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _refuse_duplicates(body: bytes) -> Any:
    """``json.loads(body)``, raising :class:`DuplicateKeyError` naming a key an object gives twice."""
    try:
        return json.loads(body, object_pairs_hook=_unique)
    except _Repeated as repeated:
        text = body.decode(json.detect_encoding(body), "surrogatepass")
        at = limits.duplicate_position(text) or 0
        line = text.count("\n", 0, at) + 1
        column = at - text.rfind("\n", 0, at)
        raise DuplicateKeyError(
            f"duplicate key {repeated.key!r} (line {line}, column {column}): an object names it twice",
            text,
            at,
        ) from None


def _colon_escape(body: bytes) -> bool:
    r"""Whether ``body`` may write a colon as a ``\u`` escape (``\u003a``), uncounted by ``count(b":")``.

    Each backslash is found by ``bytes.find`` (memchr; a body has a few); past 64 of
    them, one search for the escape instead.
    """
    at = body.find(b"\\")
    for _ in range(64):
        if at == -1:
            return False
        if body.startswith(b"u003", at + 1):
            return True
        at = body.find(b"\\", at + 2)
    return b"\\u003" in body


def loads(body: bytes) -> Any:
    """A JSON body as data, as :func:`json.loads` reads it (and raising what it raises), or refused.

    A body in which an object gives one key twice is refused (:class:`DuplicateKeyError`,
    a :class:`json.JSONDecodeError` naming the key and where), as every reader of
    outside input refuses it (``ketacds.limits``): orjson and :func:`json.loads` would
    silently keep the last. Checked fast: every colon of a body is a key's or one inside
    a string, and the data orjson read, written again, has the same colons inside its
    strings, so the two counts of colons differ exactly when keys were lost. Only then,
    or when the body writes a colon as an escape, is it read again, slowly, to name the key.
    """
    if orjson is not None and not _long_integer(body):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # json.loads gives the error the service has always given
        else:
            if body.count(b":") == orjson.dumps(data).count(b":") and not _colon_escape(body):
                return data
            _refuse_duplicates(body)
            return data
    return _refuse_duplicates(body)


def dumps(data: Any) -> bytes:
    """``data`` as compact UTF-8 JSON (no NaN or infinity), as Starlette's ``JSONResponse`` writes it."""
    if orjson is not None:
        try:
            return bytes(orjson.dumps(data))
        except TypeError:  # an integer past 64 bits, or a type orjson does not write
            pass
    return json.dumps(data, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode(
        "utf-8"
    )


class JSONRequest(Request):
    """A request whose JSON body is read with :func:`loads`."""

    async def json(self) -> Any:
        """The body as JSON data (read once)."""
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class JSONRoute(APIRoute):
    """A FastAPI route that reads JSON bodies with :func:`loads` (FastAPI's documented route_class hook)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, given the request as a :class:`JSONRequest`."""
        handler = super().get_route_handler()

        async def fast(request: Request) -> Response:
            return await handler(JSONRequest(request.scope, request.receive))

        return fast


def json_response(data: Any) -> Response:
    """An ``application/json`` answer of ``data``, written with :func:`dumps`."""
    return Response(dumps(data), media_type="application/json")
