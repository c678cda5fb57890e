"""The HTTP routes of the CDS Hooks service, and the error answers they give.

:func:`install_routes` registers, in this order (the order of the OpenAPI document):

``GET  /cds-services``                      :func:`discovery_document` (public)
``POST /cds-services/{id}``                 :func:`answer_hook`: a hook call → cards (JWT)
``POST /cds-services/{id}/feedback``        what the clinician did with cards (JWT)
``GET  /cds-services/{id}/feedback``        recorded feedback, with the rules of each card (JWT)
``GET  /health``                            liveness, with the ruleset version and digest
``GET  /docs/rules/{page}``                 the rendered rule docs the cards link to

Each route is a small function that checks the service id, authenticates
(:func:`authenticate`) and hands the work to a named function here or in
:mod:`~ketacds.server.prefetch` (the FHIR resources), :mod:`~ketacds.server.evaluation`
(the cards) and :mod:`~ketacds.server.rule_docs`. :func:`install_error_handlers` turns
every refusal into ``{"error": ...}`` JSON with its status code.

Privacy. Logs name the hook, the hook instance id, the status code, the number of
cards and the time taken: never a patient id, name, code or value. Error answers
never echo request values.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from ketacds.adapters.cds_hooks import HOOKS, RenderedCard, prefetch_templates
from ketacds.adapters.fhir import validation_cache_stats
from ketacds.engine.api import Engine
from ketacds.errors import AuthError, EvaluationError, ProgramRefusedError
from ketacds.server.auth import Claims
from ketacds.server.codec import json_response
from ketacds.server.evaluation import check_context, evaluate
from ketacds.server.models import (
    CardsResponse,
    DiscoveryResponse,
    FeedbackQueryResponse,
    FeedbackRequest,
    HookRequest,
    Problem,
)
from ketacds.server.plain_route import plain_route
from ketacds.server.prefetch import prefetched
from ketacds.server.rule_docs import PAGE, rule_page
from ketacds.server.service import Service
from ketacds.server.store import IssuedCard

__all__ = [
    "SERVICES",
    "answer_hook",
    "authenticate",
    "discovery_document",
    "install_error_handlers",
    "install_routes",
    "known",
]

log = logging.getLogger("ketacds.server")

#: The discovery entries: one service per hook (the specification gives each one hook),
#: all answered by the same engine.
SERVICES: dict[str, tuple[str, str, str]] = {
    "ketacds-patient-view": (
        "patient-view",
        "ketacds: ketamine and esketamine candidacy",
        "When a chart opens: candidacy, contraindications, interactions, dose and monitoring for the "
        "configured ketamine or esketamine treatment, each with its basis, evidence and missing data.",
    ),
    "ketacds-order-select": (
        "order-select",
        "ketacds: ketamine and esketamine order check",
        "While a ketamine or esketamine order is drafted: the patient checked for that route, and the "
        "ordered dose and frequency checked against the dosing rules.",
    ),
    "ketacds-order-sign": (
        "order-sign",
        "ketacds: ketamine and esketamine order check at signing",
        "Before a ketamine or esketamine order is signed: only what needs attention (no card when the "
        "rules find nothing), with a safer dose to accept where the rules compute one.",
    ),
}
_USAGE = (
    "Advisory only. Give a ketamine or esketamine MedicationRequest in draftOrders for the order hooks. "
    "Authenticate with a JWT (ES384 or RS384) whose aud is this service's URL."
)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,80}$")
_bearer = HTTPBearer(auto_error=False, description="A JWT signed by the CDS client (ES384 or RS384)")
#: Declares the bearer token in the OpenAPI document; the token itself is checked by ``authenticate``.
Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


def install_error_handlers(app: FastAPI) -> None:
    """Answer every refusal as ``{"error": ...}`` JSON (400/422 for a request that does not parse)."""

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = []
        json_error = False
        for item in error.errors():
            json_error |= item.get("type") == "json_invalid"
            where = ".".join(str(part) for part in item.get("loc", ()))
            # A body that is not JSON: the decoder's own reason ("duplicate key 'value' ...").
            reason = (item.get("ctx") or {}).get("error") if item.get("type") == "json_invalid" else None
            problems.append(f"{where}: {reason or item.get('msg', 'invalid')}")
        if json_error:
            return JSONResponse({"error": "the request body is not valid JSON", "problems": problems}, 400)
        return JSONResponse(
            {"error": "the request does not match the CDS Hooks schema", "problems": problems[:20]}, 422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:  # pragma: no cover - defensive
        log.error("unexpected %s on %s %s", type(error).__name__, request.method, request.url.path)
        return JSONResponse({"error": "internal error; nothing was assessed"}, 500)


def install_routes(app: FastAPI, service: Service) -> None:
    """Register the service's routes on ``app``, answered with ``service``."""
    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": Problem} for code in (400, 401, 404, 412, 413, 422, 503)
    }
    _install_hook_routes(app, service, errors)
    _install_feedback_routes(app, service, errors)
    _install_operation_routes(app, service)


def _install_hook_routes(app: FastAPI, service: Service, errors: dict[int | str, dict[str, Any]]) -> None:
    """Discovery and the hook calls."""

    @app.get(
        "/cds-services",
        response_model=DiscoveryResponse,
        responses={503: {"model": Problem}},
        tags=["CDS Hooks"],
    )
    async def discovery() -> dict[str, Any]:
        """The CDS services offered, with their prefetch templates."""
        return discovery_document(service)

    async def answer(request: Request, body: HookRequest, service_id: str) -> Response:
        # Written here, not by FastAPI through CardsResponse (the documented schema):
        # the cards are this service's own, and validating them again costs more than
        # everything else around the assessment.
        return json_response(await answer_hook(service, request, body, service_id))

    async def call(
        request: Request,
        body: HookRequest,
        service_id: str = PathParam(max_length=100),
        _credentials: Bearer = None,
    ) -> Response:
        """Answer a hook call with cards."""
        return await answer(request, body, service_id)

    # A plain call (a JSON body that validates) is answered without FastAPI's dependency
    # solving, by ``answer`` with the same validated values; ``call`` is the documented
    # operation, and answers the rest (see ketacds.server.plain_route).
    app.router.add_api_route(
        "/cds-services/{service_id}",
        call,
        methods=["POST"],
        response_model=CardsResponse,
        response_model_exclude_none=True,
        responses=errors,
        tags=["CDS Hooks"],
        route_class_override=plain_route(answer),
    )


def _install_feedback_routes(app: FastAPI, service: Service, errors: dict[int | str, dict[str, Any]]) -> None:
    """Recording and reading what clinicians did with the cards."""

    @app.post("/cds-services/{service_id}/feedback", responses=errors, tags=["CDS Hooks"])
    async def feedback(
        request: Request,
        body: FeedbackRequest,
        service_id: str = PathParam(max_length=100),
        _credentials: Bearer = None,
    ) -> dict[str, int]:
        """Record what the clinician did with cards (accepted, or overridden with a reason)."""
        known(service_id)
        claims = await authenticate(service, request, service_id, feedback=True)
        _, _, store, _ = service.ready()
        items = [
            {**item.model_dump(mode="json"), "outcomeTimestamp": item.outcomeTimestamp.isoformat()}
            for item in body.feedback
        ]
        count = store.record_feedback(service_id, items, claims.get("iss"), service.clock())
        log.info("feedback service=%s items=%d", service_id, count)
        return {"recorded": count}

    @app.get(
        "/cds-services/{service_id}/feedback",
        response_model=FeedbackQueryResponse,
        responses=errors,
        tags=["CDS Hooks"],
    )
    async def feedback_query(
        request: Request,
        service_id: str = PathParam(max_length=100),
        card: str | None = Query(default=None, max_length=200),
        outcome: str | None = Query(default=None, pattern="^(accepted|overridden)$"),
        rule_id: str | None = Query(default=None, max_length=100),
        since: str | None = Query(default=None, max_length=40, description="ISO 8601: received at or after"),
        limit: int = Query(default=100, ge=1, le=1000),
        _credentials: Bearer = None,
    ) -> dict[str, Any]:
        """The feedback recorded for this service, newest first, with the rules of each card."""
        known(service_id)
        await authenticate(service, request, service_id, feedback=True)
        _, _, store, _ = service.ready()
        rows = store.query_feedback(
            service=service_id, card=card, outcome=outcome, rule_id=rule_id, since=_since(since), limit=limit
        )
        return {"feedback": rows}


def _install_operation_routes(app: FastAPI, service: Service) -> None:
    """Health and the rule docs."""

    @app.get("/health", responses={503: {"model": Problem}}, tags=["operations"])
    async def health() -> dict[str, Any]:
        """Whether this worker can assess, and with which rules."""
        engine, mapping, _, _ = service.ready()
        return {
            "status": "ok",
            "ruleset": engine.ruleset.name,
            "version": engine.ruleset.version,
            "digest": engine.digest,
            "fhir_mapping": mapping.version,
            "fhir_mapping_digest": mapping.digest,
            "fhir_validation_cache": validation_cache_stats(),
        }

    @app.get(
        "/docs/rules/{page}",
        responses={
            200: {
                "description": "The page, in Markdown",
                "content": {"text/markdown": {"schema": {"type": "string"}}},
            },
            404: {"model": Problem},
            503: {"model": Problem},
        },
        tags=["documentation"],
    )
    async def rule_docs(page: str = PathParam(max_length=100)) -> PlainTextResponse:
        """The rendered rule docs the cards link to (Markdown)."""
        engine, _, _, _ = service.ready()
        if not PAGE.match(page):
            raise HTTPException(404, "no such page")
        text = rule_page(service.settings, engine, page)
        if text is None:
            raise HTTPException(404, "no such page")
        return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")


def _since(since: str | None) -> str | None:
    """The ``since`` of a feedback query as stored times are written (UTC ISO 8601; no zone: UTC).

    Raises:
        HTTPException: 422 when it is not an ISO 8601 date or date-time (never compared as
            text, which would answer a query it cannot read with whatever sorts after it).
    """
    if since is None:
        return None
    try:
        when = dt.datetime.fromisoformat(since)
    except ValueError:
        raise HTTPException(
            422, "since: not an ISO 8601 date or date-time (such as 2026-11-21 or 2026-11-21T14:00:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat()


def discovery_document(service: Service) -> dict[str, Any]:
    """The discovery answer: each service with its hook and the prefetch templates."""
    _, mapping, _, _ = service.ready()
    templates = prefetch_templates(mapping.observation_codes)
    return {
        "services": [
            {
                "hook": hook,
                "id": service_id,
                "title": title,
                "description": description,
                "prefetch": templates,
                "usageRequirements": _USAGE,
            }
            for service_id, (hook, title, description) in SERVICES.items()
        ]
    }


async def answer_hook(
    service: Service, request: Request, body: HookRequest, service_id: str
) -> dict[str, Any]:
    """A hook call's answer: check the call, gather the resources, assess, record the cards issued.

    Raises:
        HTTPException: 400 (wrong hook), 401, 404 (unknown service), 412 (resources
            missing), 422 (context incomplete, or the rules refuse the route), 503
            (the engine failed: this worker answers 503 from now on).
    """
    started = time.perf_counter()
    hook, _, _ = known(service_id)
    claims = await authenticate(service, request, service_id)
    if body.hook not in HOOKS:
        raise HTTPException(400, f"unknown hook {body.hook!r}; this service answers {hook}")
    if body.hook != hook:
        raise HTTPException(400, f"service {service_id} answers {hook}, not {body.hook}")
    context = check_context(hook, body.context)
    resources, issues = await prefetched(service, body, context)
    engine, mapping, store, _ = service.ready()
    now = service.clock()
    try:
        rendered = evaluate(
            service.settings, service.new_uuid, engine, mapping, hook, context, resources, issues, now
        )
    except ProgramRefusedError as error:
        raise HTTPException(422, f"ketacds refuses this assessment: {error.reason}") from None
    except EvaluationError as error:
        service.broken = type(error).__name__
        log.error("engine failure on hookInstance=%s; this worker now answers 503", _safe(body.hookInstance))
        raise HTTPException(503, "the rule engine failed; no advice was given") from None
    issued = _issued(engine, service_id, hook, body.hookInstance, rendered)
    store.record_cards(issued, now)
    if log.isEnabledFor(logging.INFO):  # (its arguments are not worked out for a line not logged)
        log.info(
            "hook=%s hookInstance=%s client=%s cards=%d ms=%.1f",
            hook,
            _safe(body.hookInstance),
            "yes" if claims else "-",
            len(rendered),
            (time.perf_counter() - started) * 1000,
        )
    return {"cards": [r.card for r in rendered]}


def _issued(
    engine: Engine, service_id: str, hook: str, hook_instance: str, rendered: list[RenderedCard]
) -> list[IssuedCard]:
    """The store's rows for the cards of one answer (so feedback can name their rules)."""
    return [
        (
            r.card["uuid"],
            service_id,
            hook,
            hook_instance,
            r.rule_ids,
            r.card["indicator"],
            f"{engine.ruleset.name} {engine.ruleset.version}",
            engine.digest,
        )
        for r in rendered
    ]


async def authenticate(service: Service, request: Request, service_id: str, feedback: bool = False) -> Claims:
    """The claims of the request's bearer token, checked for this endpoint (``{}`` without auth).

    Raises:
        HTTPException: 401 with a ``WWW-Authenticate`` header saying why.
    """
    settings = service.settings
    if not settings.auth:
        return {}
    base = f"{settings.base_url}/cds-services/{service_id}"
    audiences = [f"{base}/feedback", base] if feedback else [base]
    assert service.verifier is not None
    if len(request.headers.getlist("authorization")) > 1:
        # Which one a proxy or another framework would check is anyone's guess: none is.
        raise _unauthorized("more than one Authorization header")
    try:
        claims = await service.verifier.verify(request.headers.get("authorization"), audiences)
    except AuthError as error:
        raise _unauthorized(str(error)) from None
    _, _, store, _ = service.ready()
    fresh = store.remember_token(claims["iss"], claims["jti"], int(claims["exp"]), service.clock())
    if not fresh:
        raise _unauthorized("the token was already used (jti replayed)")
    return claims


def known(service_id: str) -> tuple[str, str, str]:
    """The discovery entry (hook, title, description) of ``service_id``; 404 when there is none."""
    entry = SERVICES.get(service_id)
    if entry is None:
        raise HTTPException(404, f"no service {service_id!r}; see GET /cds-services")
    return entry


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        401,
        message,
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{message}"'},
    )


def _safe(value: str) -> str:
    """A hook instance id as logged: ids only, never free text that might carry patient data."""
    return value if _SAFE_ID.match(value) else "(not logged)"
