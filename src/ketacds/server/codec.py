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

import hashlib
import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

try:
    import orjson
except ImportError:  # pragma: no cover - the server extra installs it
    orjson = None  # type: ignore[assignment,unused-ignore]

__all__ = ["KEPT_PREFETCH", "JSONRequest", "JSONRoute", "dumps", "json_response", "loads"]

#: Every digit to ``0`` (the rest as it is), so that a run of digits is found by ``bytes.find``.
_DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0000000000")
_RUN = b"0" * 19
_SPACE = b" \t\r\n"
_lock = threading.Lock()


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
    """A JSON body as data, exactly as :func:`json.loads` reads it (and raising what it raises).

    A large hook call's ``prefetch`` object whose exact bytes were read before is not
    read again (:func:`_with_known_prefetch`): the data given out may then share it with
    earlier answers, so nothing may change data this function gives out.
    """
    if orjson is not None and len(body) >= _SPLIT_MIN:
        data = _with_known_prefetch(body)
        if data is not None:
            return data
    if orjson is not None and not _long_integer(body):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # json.loads gives the error the service has always given
    return json.loads(body)


#: Bodies at least this long are read with :func:`_with_known_prefetch` first.
_SPLIT_MIN = 8 * 1024
#: ``prefetch`` objects remembered (their data, by the SHA-256 of their bytes), least recently used out first.
KEPT_PREFETCH = 64
#: The candidate ends of a ``prefetch`` object tried (the last ``}`` of the body first).
_CANDIDATE_ENDS = 8
_PREFETCH = b'"prefetch"'
#: A JSON string standing for the ``prefetch`` object in the rest of the body: random per
#: process, so no body can hold it (letters only: no run of digits).
_STAND_IN = "ketacds-prefetch-" + secrets.token_hex(16).translate(str.maketrans("0123456789", "ghijklmnop"))
_STAND_IN_JSON = f'"{_STAND_IN}"'.encode()
_known_prefetch: OrderedDict[bytes, Any] = OrderedDict()


def _with_known_prefetch(body: bytes) -> Any:
    """``orjson.loads(body)``, reading a top-level ``prefetch`` object apart and only once; ``None``: not so.

    The body is cut into the ``prefetch`` object's bytes (from the ``{`` after the first
    ``"prefetch":``, to a ``}`` tried from the body's end) and the rest, in which a
    string stands in for it. When the rest reads as a JSON object whose ``prefetch`` is
    that string, and the cut-out bytes are one JSON object, the body is exactly that
    object with that value in place of the string (JSON's grammar is context-free), so
    its data is the rest's with the value put back. Integer literals of 19 digits or more
    are looked for in both parts (:func:`_long_integer`; its answer on the body is the
    same, as no run of digits is cut), the object's bytes only when they are new. The
    cut-out bytes are read once: their data is remembered by their SHA-256
    (:data:`KEPT_PREFETCH` of them). Any
    other body (no such key, a rest or an object that does not read, an object nested
    too deep for orjson inside the body) gives ``None``: it is read whole, as before.
    """
    assert orjson is not None
    if _misses.count > _MISSES_ALLOWED and _misses.count > 4 * _misses.hits:
        return None  # this client's bodies are not cut right (see _Misses)
    key_at = body.find(_PREFETCH)
    if key_at == -1:
        return None
    start = key_at + len(_PREFETCH)
    while start < len(body) and body[start] in _SPACE:
        start += 1
    if body[start : start + 1] != b":":
        return None
    start += 1
    while start < len(body) and body[start] in _SPACE:
        start += 1
    if body[start : start + 1] != b"{":
        return None
    end = len(body)
    for _ in range(_CANDIDATE_ENDS):
        end = body.rfind(b"}", start, end)
        if end == -1:
            return None
        text = body[:start] + _STAND_IN_JSON + body[end + 1 :]
        if _long_integer(text):  # (the cuts are at "{" and "}": no run of digits is cut)
            return None
        try:
            rest = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(rest, dict) or rest.get("prefetch") != _STAND_IN:
            return None
        rest["prefetch"] = _prefetch_object(body[start : end + 1])
        if rest["prefetch"] is None:
            _misses.count += 1
            return None
        _misses.hits += 1
        return rest
    return None


class _Misses:
    """How often a cut gave a rest that reads but bytes that are not one object, and how often one worked.

    That happens when members with object values follow ``prefetch`` (the cut is then
    tried at one of their ``}``): the bytes are read in vain, and the body again whole.
    Past :data:`_MISSES_ALLOWED` of them, four times as many as cuts that worked, this
    process stops cutting bodies (the data given out is the same either way).
    """

    count = 0
    hits = 0


_misses = _Misses()
_MISSES_ALLOWED = 64


def _prefetch_object(text: bytes) -> Any:
    """The data of a ``prefetch`` object's bytes, remembered; ``None`` when they are not one JSON object."""
    digest = hashlib.sha256(text).digest()
    with _lock:
        found = _known_prefetch.get(digest)
        if found is not None:
            _known_prefetch.move_to_end(digest)
            return found
    assert orjson is not None
    if _long_integer(text):
        return None
    try:  # in a list, so as deep in orjson's nesting limit as in the body (a member of its object)
        (data,) = orjson.loads(b"[" + text + b"]")
    except (orjson.JSONDecodeError, ValueError):
        return None  # (ValueError: more than one value, "{...}, {...}")
    if not isinstance(data, dict):  # pragma: no cover - bytes from "{" to "}" that read are an object
        return None
    with _lock:
        _known_prefetch[digest] = data
        if len(_known_prefetch) > KEPT_PREFETCH:
            _known_prefetch.popitem(last=False)
    return data


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
