"""The ASGI layer in front of the service: size limits and UTF-8, before anything else runs.

:class:`BodyLimit` answers oversized headers (431), oversized bodies (413) and bodies
that are not UTF-8 or carry a lone surrogate escape (400) itself, before the app (and
the token check) sees the request.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ketacds import limits

__all__ = ["BodyLimit"]


class BodyLimit:
    """ASGI middleware: headers past the limits get 431, a body over ``limit`` bytes 413.

    Both before the app (and the token check) sees the request; the header limits are
    :data:`ketacds.limits.MAX_HEADER_BYTES` and :data:`ketacds.limits.MAX_HEADERS`.

    The body is read here (up to the limit) and replayed to the app, so neither a
    declared ``Content-Length`` nor a chunked body can get past the limit.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one ASGI connection."""
        if scope["type"] == "http":
            headers = scope.get("headers") or []
            size = sum(len(name) + len(value) for name, value in headers)
            if len(headers) > limits.MAX_HEADERS or size > limits.MAX_HEADER_BYTES:
                await _answer(
                    send,
                    431,
                    f"the request headers are larger than {limits.MAX_HEADER_BYTES} bytes "
                    f"or more than {limits.MAX_HEADERS}",
                )
                return
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(send)
            return
        body = b""
        buffer: bytearray | None = None  # a body in more than one message (most come in one)
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            if buffer is not None:
                buffer += chunk
            elif more:
                buffer = bytearray(chunk)
            else:
                body = bytes(chunk)  # the one message's bytes, not a copy
            if len(body if buffer is None else buffer) > self.limit:
                await self._refuse(send)
                return
        if buffer is not None:
            body = bytes(buffer)
        try:  # json.loads would read UTF-8-encoded surrogates ("surrogatepass"): refused here
            body.decode("utf-8")
        except UnicodeDecodeError as error:
            await _answer(send, 400, f"the request body is not UTF-8 (byte {error.start + 1})")
            return
        if _has_u_escape(body) and _SURROGATE_ESCAPE.search(body) and _LONE_SURROGATE.search(body):
            await _answer(
                send, 400, "the request body is not valid JSON: a \\u escape names a lone surrogate"
            )
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any) -> None:
        await _answer(send, 413, f"the request body is larger than {self.limit} bytes")


#: A JSON ``\\uD800``-``\\uDFFF`` escape that is not half of a pair: text no response can
#: hold (it was echoed into a card and made the answer a 500; found by the fuzz harness).
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)

#: Any ``\\uD800``-``\\uDFFF`` escape: what :data:`_LONE_SURROGATE` needs to find one. The
#: full pattern (its look-arounds tried at every byte) takes milliseconds on a large body,
#: this one microseconds, and almost no body has a surrogate escape at all.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


#: Backslashes :func:`_has_u_escape` looks at one by one before it searches the rest at once.
_BACKSLASHES_LOOKED_AT = 32


def _has_u_escape(body: bytes) -> bool:
    """Whether ``body`` holds a backslash followed by ``u`` (as ``in`` finds it), found faster.

    ``in`` looks at almost every byte for a two-byte needle ending in a common letter (≈
    35 µs on a 50 KB body); a backslash alone is found at memory speed, and most bodies
    have a handful. Past :data:`_BACKSLASHES_LOOKED_AT` of them, ``in`` searches the rest.
    """
    at = body.find(b"\\")
    for _ in range(_BACKSLASHES_LOOKED_AT):
        if at == -1:
            return False
        if body[at + 1 : at + 2] == b"u":
            return True
        at = body.find(b"\\", at + 1)
    return at != -1 and body.find(b"\\u", at) != -1


async def _answer(send: Any, status: int, error: str) -> None:
    """A JSON error answer sent straight from the ASGI layer, closing the connection."""
    payload = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": payload})
