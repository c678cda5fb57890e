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

The plain path reads parts of FastAPI that are not its documented API (a route's
``dependant``, ``body_field`` and ``_embed_body_fields``, and ``ModelField.validate``).
A FastAPI without them is no error: the route then leaves every request to FastAPI
(``PlainRouteBase.plain_path`` is False, logged once as a warning), which answers
exactly as the plain path would, only with more CPU.

:class:`PlainDispatch` goes one step further: in front of the whole app, it hands a
POST whose path a plain route matches to that route's :meth:`plain` directly, past
FastAPI's middleware stack and router (≈ 60 µs a call more), answering what it raises
with the app's own exception handlers, as that stack would.
"""

from __future__ import annotations

import email.message
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from ketacds.server.codec import JSONRequest, JSONRoute

__all__ = ["Answer", "PlainDispatch", "PlainRouteBase", "plain_route"]

log = logging.getLogger("ketacds.server")

#: The scope key of a request :class:`PlainDispatch` found not plain (the route does not try again).
_TRIED = "ketacds.plain_tried"

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


class PlainRouteBase(JSONRoute):
    """What :class:`PlainDispatch` calls on a route of :func:`plain_route`."""

    #: Whether this route answers plain requests itself (False: this FastAPI lacks what
    #: :meth:`plain` reads, and FastAPI answers every request).
    plain_path: bool = False

    def _plain_path_off(self, why: str) -> None:
        """Leave every request to FastAPI from now on, saying why (once per route)."""
        if self.plain_path:
            self.plain_path = False
            log.warning("%s: FastAPI answers every request (slower, the same answers): %s", self.path, why)

    async def plain(self, request: JSONRequest) -> Response | None:
        """The answer to a plain request, or ``None`` when FastAPI must read it."""
        raise NotImplementedError  # pragma: no cover - each plain_route class has its own


def plain_route(answer: Answer) -> type[PlainRouteBase]:
    """A route class whose plain requests are answered by ``answer`` (see the module's docstring)."""

    class PlainRoute(PlainRouteBase):
        """A :class:`~ketacds.server.codec.JSONRoute` answering plain requests with ``answer``."""

        def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
            super().__init__(path, endpoint, **kwargs)
            self.plain_path = True
            try:
                dependant = self.dependant
                body = self.body_field
                shaped = not (
                    body is None
                    or not callable(body.validate)
                    or len(dependant.body_params) != 1
                    or self._embed_body_fields
                    or dependant.query_params
                    or dependant.header_params
                    or dependant.cookie_params
                )
                dependant.path_params  # noqa: B018 - read by plain()
            except AttributeError as missing:  # another FastAPI: its own handler reads every request
                self._plain_path_off(f"this FastAPI has no {missing.name or missing}")
                return
            if not shaped:  # pragma: no cover - a programming error, found when the app is built
                raise TypeError(f"{path}: a plain route takes one JSON body and path parameters only")

        async def plain(self, request: JSONRequest) -> Response | None:
            """The answer to a plain request, or ``None`` when FastAPI must read it."""
            if not self.plain_path:
                return None
            content_type = request.headers.get("content-type")
            if not content_type or not _is_json(content_type):
                return None
            if not await request.body():
                return None
            try:
                data = await request.json()
            except Exception:  # FastAPI reads it again, and answers its error
                return None
            values = self._validated(data, request.path_params)
            if values is None:
                return None
            body, path_values = values
            return await answer(request, body, **path_values)

        def _validated(self, data: Any, path_params: dict[str, Any]) -> tuple[Any, dict[str, Any]] | None:
            """The body and path parameters as FastAPI's own fields validate them (``None``: not valid)."""
            assert self.body_field is not None  # checked in __init__
            try:
                body, errors = self.body_field.validate(data, {}, loc=("body",))
                if errors:
                    return None
                values: dict[str, Any] = {}
                for field in self.dependant.path_params:
                    value, errors = field.validate(
                        path_params.get(field.alias), {}, loc=("path", field.alias)
                    )
                    if errors:
                        return None
                    values[field.name] = value
            except (TypeError, AttributeError) as error:  # validate is not what it was in this FastAPI
                self._plain_path_off(f"its field validation failed: {type(error).__name__}: {error}")
                return None
            except Exception:  # any other surprise: FastAPI reads this request itself
                return None
            return body, values

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            """:meth:`plain`, then FastAPI's own handler when it gives ``None`` (the same request)."""
            handler = APIRoute.get_route_handler(self)  # FastAPI's, without JSONRoute's wrapper

            async def route(request: Request) -> Response:
                json_request = JSONRequest(request.scope, request.receive)
                # (not tried twice: a request PlainDispatch has tried is FastAPI's)
                response = None if _TRIED in request.scope else await self.plain(json_request)
                if response is None:
                    response = await handler(json_request)
                return response

            return route

    return PlainRoute


class PlainDispatch:
    """ASGI: a POST to a plain route handed to its :meth:`~PlainRouteBase.plain` before FastAPI's stack.

    The request's path is matched against the app's plain routes as the router matches
    it (their own path patterns and converters; only without a root path); the body is
    read and given to the route's ``plain`` as its only message. When ``plain`` answers,
    that answer is sent; when it raises, the exception is answered as FastAPI's
    middleware would answer it: by the app's handler for its status code or class
    (:class:`~starlette.exceptions.HTTPException`), or else by its handler for 500 or
    ``Exception``, after which it is raised again (for the server to log). Everything
    else (another method or path, a request ``plain`` leaves to FastAPI) goes to the app
    with its body, as it came.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.routes = [
            r
            for r in app.router.routes
            if isinstance(r, PlainRouteBase) and r.plain_path and r.methods == {"POST"}
        ]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one ASGI connection."""
        matched = self._match(scope) if scope["type"] == "http" and scope["method"] == "POST" else None
        if matched is None:
            await self.app(scope, receive, send)
            return
        route, params = matched
        messages = []
        more = True
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # a disconnect: the app sees it as it came
            more = message.get("more_body", False)

        def replayed() -> Callable[[], Awaitable[Any]]:
            pending = list(messages)

            async def replay() -> Any:
                return pending.pop(0) if pending else await receive()

            return replay

        if not more:
            body = b"".join(m.get("body", b"") for m in messages)
            plain_scope = {**scope, "path_params": params, "endpoint": route.endpoint, "route": route}
            try:
                response = await self._plain(route, plain_scope, body)
            except Exception as error:  # as Starlette's ServerErrorMiddleware: answered, then raised
                handler = self._unexpected_handler()
                if handler is None:  # pragma: no cover - the service installs one
                    raise
                await (await _called(handler, Request(plain_scope), error))(plain_scope, replayed(), send)
                raise
            if response is not None:
                await response(plain_scope, replayed(), send)
                return
        await self.app({**scope, _TRIED: True} if not more else scope, replayed(), send)

    def _match(self, scope: Any) -> tuple[PlainRouteBase, dict[str, Any]] | None:
        if scope.get("root_path"):
            return None
        for route in self.routes:
            found = route.path_regex.match(scope["path"])
            if found:
                converters = route.param_convertors
                return route, {k: converters[k].convert(v) for k, v in found.groupdict().items()}
        return None

    async def _plain(self, route: PlainRouteBase, scope: Any, body: bytes) -> Response | None:
        """``route.plain``'s answer, or the app's answer to what it raised (``None``: the app's to answer)."""
        delivered = False

        async def receive() -> Any:
            nonlocal delivered
            if delivered:  # pragma: no cover - the body is read once
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        request = JSONRequest(scope, receive)
        try:
            return await route.plain(request)
        except Exception as error:  # as Starlette's ExceptionMiddleware: its handler answers, if any
            handler = self._handler(error)
            if handler is None:
                raise
            return await _called(handler, request, error)

    def _handler(self, error: Exception) -> Any:
        """The app's handler of ``error`` as its exception middleware finds it (``None``: unhandled)."""
        handlers = self.app.exception_handlers
        if isinstance(error, HTTPException) and error.status_code != 500 and error.status_code in handlers:
            return handlers[error.status_code]
        for cls in type(error).__mro__:
            if cls is not Exception and cls in handlers:
                return handlers[cls]
        return None

    def _unexpected_handler(self) -> Any:
        """The app's handler of 500 or ``Exception`` (the last of them, as Starlette takes it)."""
        found = None
        for key, value in self.app.exception_handlers.items():
            if key in (500, Exception):
                found = value
        return found


async def _called(handler: Any, request: Request, error: Exception) -> Response:
    """An exception handler's answer (an async handler awaited)."""
    response = handler(request, error)
    if inspect.isawaitable(response):
        response = await response
    assert isinstance(response, Response)
    return response
