"""The service's JSON codec: request bodies read as :func:`json.loads` reads them, answers written fast.

orjson (the ``server`` extra) reads and writes JSON several times faster than the
standard library. It is used only where it gives the same data:

* :func:`loads` takes orjson's result only for a body orjson reads *and* that holds no
  integer literal of 19 digits or more (orjson reads an integer past 64 bits as a float, where
  :func:`json.loads` keeps every digit); anything orjson refuses (``NaN``, a byte order
  mark, a UTF-16 body, ...) is read by :func:`json.loads`, so an invalid body gets the
  very same error as before.
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

try:
    import orjson
except ImportError:  # pragma: no cover - the server extra installs it
    orjson = None  # type: ignore[assignment,unused-ignore]

__all__ = ["JSONRequest", "JSONRoute", "dumps", "json_response", "loads"]

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


def loads(body: bytes) -> Any:
    """A JSON body as data, exactly as :func:`json.loads` reads it (and raising what it raises)."""
    if orjson is not None and not _long_integer(body):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # json.loads gives the error the service has always given
    return json.loads(body)


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
