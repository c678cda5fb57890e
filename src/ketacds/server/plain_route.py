"""A route answered without FastAPI's request handling when the request is plain.

FastAPI reads a request's parameters by solving the endpoint's dependencies: the path
parameters, the security schemes, the body, each through its machinery (≈ 100 µs of
CPU a call, a twentieth of a hook call). For the hook calls, almost every request is
*plain*: a JSON body (``Content-Type: application/json``) that validates, and path
parameters that validate. :func:`plain_route` makes a route class that checks exactly
that with the route's own fields (so with the very same validators) and then calls
``answer(request, body, **path_params)`` itself. Any other request (no or another
content type, an empty body, a body that does not parse or validate, a path
parameter that does not validate) is handed to FastAPI's own handler, which answers
it as it always has: with the same request object, whose body (and parsed JSON, if
any) it has already read.

The route is declared as usual (its endpoint's signature is the published OpenAPI
operation, and answers every request that is not plain), so the document does not
change. Only routes whose security schemes never refuse a request (``auto_error=False``:
the endpoint checks the token itself) and whose endpoint ignores them may use it.
"""

from __future__ import annotations

import email.message
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from ketacds.server.codec import JSONRequest, JSONRoute

__all__ = ["Answer", "plain_route"]

#: ``answer(request, body, **path_params)``: the response to a plain request.
Answer = Callable[..., Awaitable[Response]]


@functools.lru_cache(maxsize=32)
def _is_json(content_type: str) -> bool:
    """Whether FastAPI reads a body of this ``Content-Type`` as JSON (its own test, remembered)."""
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def plain_route(answer: Answer) -> type[JSONRoute]:
    """A route class whose plain requests are answered by ``answer`` (see the module's docstring)."""

    class PlainRoute(JSONRoute):
        """A :class:`~ketacds.server.codec.JSONRoute` answering plain requests with ``answer``."""

        def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
            super().__init__(path, endpoint, **kwargs)
            dependant = self.dependant
            body = self.body_field
            if (
                body is None
                or len(dependant.body_params) != 1
                or self._embed_body_fields
                or dependant.query_params
                or dependant.header_params
                or dependant.cookie_params
            ):  # pragma: no cover - a programming error, found when the app is built
                raise TypeError(f"{path}: a plain route takes one JSON body and path parameters only")

        async def plain(self, request: JSONRequest) -> Response | None:
            """The answer to a plain request, or ``None`` when FastAPI must read it."""
            content_type = request.headers.get("content-type")
            if not content_type or not _is_json(content_type):
                return None
            if not await request.body():
                return None
            try:
                data = await request.json()
            except Exception:  # FastAPI reads it again, and answers its error
                return None
            assert self.body_field is not None  # checked in __init__
            body, errors = self.body_field.validate(data, {}, loc=("body",))
            if errors:
                return None
            path_params = request.path_params
            values: dict[str, Any] = {}
            for field in self.dependant.path_params:
                value, errors = field.validate(path_params.get(field.alias), {}, loc=("path", field.alias))
                if errors:
                    return None
                values[field.name] = value
            return await answer(request, body, **values)

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            """:meth:`plain`, then FastAPI's own handler when it gives ``None`` (the same request)."""
            handler = APIRoute.get_route_handler(self)  # FastAPI's, without JSONRoute's wrapper

            async def route(request: Request) -> Response:
                json_request = JSONRequest(request.scope, request.receive)
                response = await self.plain(json_request)
                if response is None:
                    response = await handler(json_request)
                return response

            return route

    return PlainRoute
