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


def test_a_fastapi_without_what_the_plain_path_reads_answers_every_request_itself(monkeypatch, caplog):
    # A FastAPI whose routes lack a private attribute the plain path reads: no error, and
    # every request is FastAPI's, answered as always.
    from fastapi.routing import APIRoute

    built = APIRoute.__init__

    def without_embed_fields(self: Any, *args: Any, **kwargs: Any) -> None:
        built(self, *args, **kwargs)
        del self._embed_body_fields

    monkeypatch.setattr(APIRoute, "__init__", without_embed_fields)
    with caplog.at_level("WARNING", logger="ketacds.server"):
        app = _app()
    dispatch = PlainDispatch(app)
    assert dispatch.routes == []
    assert "FastAPI answers every request" in caplog.text
    assert "_embed_body_fields" in caplog.text
    monkeypatch.setattr(APIRoute, "__init__", built)
    for case in CASES:
        assert _call(dispatch, *case) == _call(_app(), *case), case


def test_a_field_validation_unlike_fastapis_own_turns_the_plain_path_off(caplog):
    # ModelField.validate with another signature (a FastAPI release): the request is
    # answered by FastAPI, and so is every later one.
    app = _app()
    dispatch = PlainDispatch(app)
    (route,) = dispatch.routes

    class OtherField:
        def validate(self, *_args: Any, **_kwargs: Any) -> Any:
            raise TypeError("validate() got an unexpected keyword argument 'loc'")

    # What the plain path reads; FastAPI's own handler keeps the field it was built with.
    route.body_field = OtherField()  # type: ignore[assignment]
    body = json.dumps({"what": "x", "count": 2}).encode()
    expected = _call(_app(), "POST", "/things/a", body, b"application/json")
    with caplog.at_level("WARNING", logger="ketacds.server"):
        assert _call(dispatch, "POST", "/things/a", body, b"application/json") == expected
    assert route.plain_path is False
    assert "its field validation failed: TypeError" in caplog.text
    assert _call(dispatch, "POST", "/things/a", body, b"application/json") == expected
    assert expected[0]["status"] == 200
