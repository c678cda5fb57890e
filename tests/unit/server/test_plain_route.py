"""A plain route answers exactly as FastAPI would: in the route, and in front of the app (PlainDispatch)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel

from ketacds.server.codec import JSONRoute, json_response
from ketacds.server.plain_route import PlainDispatch, plain_route
from ketacds.server.routes import install_error_handlers


class Body(BaseModel):
    what: str
    count: int = 0


async def answer(request: Request, body: Body, item: str) -> Response:
    if body.what == "refuse":
        raise HTTPException(409, f"refused {item}", headers={"X-Why": "test"})
    if body.what == "fail":
        raise RuntimeError("boom")
    return json_response(
        {"item": item, "what": body.what, "count": body.count, "ct": request.headers["content-type"]}
    )


def _app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None)
    app.router.route_class = JSONRoute
    install_error_handlers(app)

    async def endpoint(request: Request, body: Body, item: str = PathParam(max_length=5)) -> Response:
        return await answer(request, body, item)

    app.router.add_api_route(
        "/things/{item}", endpoint, methods=["POST"], route_class_override=plain_route(answer)
    )

    @app.get("/things/{item}")
    async def read(item: str) -> dict[str, str]:
        return {"item": item}

    return app


def _call(app: Any, method: str, path: str, body: bytes, content_type: bytes | None, chunks: int = 1) -> Any:
    headers = [(b"host", b"test")] + ([(b"content-type", content_type)] if content_type else [])
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 9),
    }
    size = max(1, -(-len(body) // chunks))
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    messages = [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)
    ]
    sent: list[Any] = []

    async def receive() -> Any:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    async def run() -> Any:
        try:
            await app(scope, receive, send)
        except Exception as error:  # what reaches the server, after the 500 answer
            sent.append(("raised", type(error).__name__, str(error)))
        return sent

    return asyncio.run(run())


CASES = [
    ("POST", "/things/a", json.dumps({"what": "x", "count": 2}).encode(), b"application/json", 1),
    ("POST", "/things/a", json.dumps({"what": "x"}).encode(), b"application/json", 3),
    ("POST", "/things/a", json.dumps({"what": "x"}).encode(), b"application/fhir+json; charset=utf-8", 1),
    ("POST", "/things/a", json.dumps({"what": "x"}).encode(), b"text/plain", 1),
    ("POST", "/things/a", json.dumps({"what": "x"}).encode(), None, 1),
    ("POST", "/things/a", b"", b"application/json", 1),
    ("POST", "/things/a", b"{nope", b"application/json", 1),
    ("POST", "/things/a", b"[1]", b"application/json", 1),
    ("POST", "/things/a", json.dumps({"count": "many"}).encode(), b"application/json", 1),
    ("POST", "/things/toolong", json.dumps({"what": "x"}).encode(), b"application/json", 1),
    ("POST", "/things/a/", json.dumps({"what": "x"}).encode(), b"application/json", 1),
    ("POST", "/things/b", json.dumps({"what": "refuse"}).encode(), b"application/json", 1),
    ("POST", "/things/c", json.dumps({"what": "fail"}).encode(), b"application/json", 1),
    ("GET", "/things/a", b"", None, 1),
    ("PUT", "/things/a", json.dumps({"what": "x"}).encode(), b"application/json", 1),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]} {c[1]} {c[3]!r} {c[2][:12]!r}" for c in CASES])
def test_plain_dispatch_answers_as_the_app_does(case):
    assert _call(PlainDispatch(_app()), *case) == _call(_app(), *case)


def test_the_plain_path_is_taken_for_a_plain_request():
    app = _app()
    dispatch = PlainDispatch(app)
    (route,) = dispatch.routes
    calls = []
    plain = route.plain

    async def counted(request: Any) -> Any:
        response = await plain(request)
        calls.append(response is not None)
        return response

    route.plain = counted  # type: ignore[method-assign]
    _call(dispatch, "POST", "/things/a", b'{"what": "x"}', b"application/json")
    _call(dispatch, "POST", "/things/a", b'{"count": "x"}', b"application/json")
    assert calls == [True, False]  # the second one tried once, then left to FastAPI
