"""The CDS Hooks 2.0 service (FastAPI), one engine per worker process.

Endpoints:

``GET  /cds-services``                      discovery (public)
``POST /cds-services/{id}``                 a hook call → cards (JWT)
``POST /cds-services/{id}/feedback``        what the clinician did with cards (JWT)
``GET  /cds-services/{id}/feedback``        recorded feedback, with the rules of each card (JWT)
``GET  /docs/rules/{page}``                 the rendered rule docs the cards link to
``GET  /health``                            liveness, with the ruleset version and digest
``GET  /openapi.json``                      this API, published

Concurrency. durable_rules is not thread-safe and never releases the GIL, so every
piece of work that touches the engine (reading FHIR, assessing, rendering cards)
runs on one dedicated thread per worker process (a single-thread executor): never
two threads in the engine at once, while the event loop stays free for I/O (JWT key
fetches, FHIR fetches, other requests). SQLite work runs on a second dedicated
thread. Throughput comes from more worker processes (``ketacds serve --workers N``),
each with its own engine.

Privacy. Logs name the hook, the hook instance id, the status code, the number of
cards and the time taken: never a patient id, name, code or value. Error answers
never echo request values.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import attrs
import httpx
from fastapi import FastAPI, HTTPException, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from ketacds import limits
from ketacds._version import __version__
from ketacds.adapters.cds_hooks import (
    HOOKS,
    CardContext,
    RenderedCard,
    cards_for,
    error_card,
    prefetch_templates,
    render_template,
)
from ketacds.adapters.fhir import read_draft_orders, read_resources, validation_cache_stats
from ketacds.engine.api import Engine
from ketacds.errors import EvaluationError, InputError, NotAssessedError, ProgramRefusedError
from ketacds.models.inputs import Context, Medication, PatientRecord
from ketacds.models.quality import DataQualityIssue
from ketacds.ruleset.load import bundled_rules_dir
from ketacds.server.auth import AuthError, Claims, TokenVerifier
from ketacds.server.fhir_client import FetchError, allowed, fetch, next_pages
from ketacds.server.models import (
    CardsResponse,
    DiscoveryResponse,
    FeedbackQueryResponse,
    FeedbackRequest,
    HookRequest,
    Problem,
)
from ketacds.server.settings import ServiceSettings
from ketacds.server.store import IssuedCard, Store
from ketacds.terminology.mapping import FhirMapping, load_fhir_mapping

__all__ = ["SERVICES", "BodyLimit", "app_from_environment", "create_app"]

log = logging.getLogger("ketacds.server")
T = TypeVar("T")

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
_PAGE = re.compile(r"^[a-z0-9][a-z0-9-]*\.md$")
_bearer = HTTPBearer(auto_error=False, description="A JWT signed by the CDS client (ES384 or RS384)")
#: Declares the bearer token in the OpenAPI document; the token itself is checked by ``authenticate``.
Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _safe(value: str) -> str:
    """A hook instance id as logged: ids only, never free text that might carry patient data."""
    return value if _SAFE_ID.match(value) else "(not logged)"


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
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await self._refuse(send)
                return
        try:  # json.loads would read UTF-8-encoded surrogates ("surrogatepass"): refused here
            bytes(body).decode("utf-8")
        except UnicodeDecodeError as error:
            await _answer(send, 400, f"the request body is not UTF-8 (byte {error.start + 1})")
            return
        if _LONE_SURROGATE.search(body):
            await _answer(
                send, 400, "the request body is not valid JSON: a \\u escape names a lone surrogate"
            )
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
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


@attrs.define
class _Service:
    """One worker's state: settings, engine (on its own thread), store (on its own thread)."""

    settings: ServiceSettings
    clock: Callable[[], dt.datetime]
    new_uuid: Callable[[], str]
    engine_thread: ThreadPoolExecutor = attrs.field(
        factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="ketacds-engine")
    )
    store_thread: ThreadPoolExecutor = attrs.field(
        factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="ketacds-store")
    )
    engine: Engine | None = None
    mapping: FhirMapping | None = None
    store: Store | None = None
    http: httpx.AsyncClient | None = None
    verifier: TokenVerifier | None = None
    broken: str | None = None

    async def on_engine(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.engine_thread, work)

    async def on_store(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.store_thread, work)

    def ready(self) -> tuple[Engine, FhirMapping, Store, httpx.AsyncClient]:
        if self.broken is not None:
            raise HTTPException(503, f"the engine of this worker failed ({self.broken}); restart it")
        # All four are set by the lifespan before the first request.
        assert self.engine is not None
        assert self.mapping is not None
        assert self.store is not None
        assert self.http is not None
        return self.engine, self.mapping, self.store, self.http


def create_app(
    settings: ServiceSettings,
    *,
    clock: Callable[[], dt.datetime] = _utcnow,
    new_uuid: Callable[[], str] = lambda: str(uuid.uuid4()),
    fhir_transport: httpx.AsyncBaseTransport | None = None,
) -> BodyLimit:
    """Build the service (an ASGI app) for ``settings``.

    Args:
        settings: the configuration.
        clock: gives ``now`` for each assessment (the engine itself never reads the clock).
        new_uuid: makes card and suggestion uuids.
        fhir_transport: an httpx transport for FHIR and JWKS requests (tests).
    """
    service = _Service(settings=settings, clock=clock, new_uuid=new_uuid)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        def build() -> tuple[Engine, FhirMapping]:
            engine = Engine(settings.rules_dir)
            mapping = load_fhir_mapping(settings.rules_dir) if settings.rules_dir else load_fhir_mapping()
            # ketamine-intranasal is refused in every jurisdiction: no program to compile
            for route in ("esketamine-nasal", "ketamine-iv", "ketamine-other"):
                engine.warm(route, settings.jurisdiction)  # compile now, not on the first call
            return engine, mapping

        engine, mapping = await service.on_engine(build)
        service.engine, service.mapping = engine, mapping
        store = await service.on_store(lambda: Store(settings.database))
        service.store = store
        service.http = httpx.AsyncClient(transport=fhir_transport, follow_redirects=False)
        service.verifier = TokenVerifier(
            settings.issuers,
            service.http,
            leeway_seconds=settings.leeway_seconds,
            max_lifetime=settings.max_token_lifetime,
        )
        if not settings.auth:
            log.warning("authentication is OFF (--insecure-no-auth): for local use only")
        log.info(
            "ready: rules %s %s (%s), jurisdiction %s",
            engine.ruleset.name,
            engine.ruleset.version,
            engine.digest[:12],
            settings.jurisdiction,
        )
        try:
            yield
        finally:
            await service.http.aclose()
            await service.on_store(store.close)
            await service.on_engine(engine.close)
            service.engine_thread.shutdown()
            service.store_thread.shutdown()

    app = FastAPI(
        title="ketacds CDS Hooks service",
        version=__version__,
        description=(
            "CDS Hooks 2.0 service for ketamine and esketamine therapy (advisory only). "
            "Cards carry the basis of every statement: rule, inputs used, evidence and missing data."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    _install_error_handlers(app)
    _install_routes(app, service)
    return BodyLimit(app, settings.max_body_bytes)


def app_from_environment() -> BodyLimit:
    """The app of one uvicorn worker, from the settings ``ketacds serve`` put in the environment."""
    settings = ServiceSettings.from_environment()
    logger = logging.getLogger("ketacds")
    if not logger.handlers:  # uvicorn configures its own loggers only
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
        )
        logger.addHandler(handler)
    logger.setLevel(settings.log_level.upper())
    return create_app(settings)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = []
        json_error = False
        for item in error.errors():
            json_error |= item.get("type") == "json_invalid"
            where = ".".join(str(part) for part in item.get("loc", ()))
            problems.append(f"{where}: {item.get('msg', 'invalid')}")
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


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        401,
        message,
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{message}"'},
    )


def _install_routes(app: FastAPI, service: _Service) -> None:
    settings = service.settings
    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": Problem} for code in (400, 401, 404, 412, 413, 422, 503)
    }

    async def authenticate(request: Request, service_id: str, feedback: bool = False) -> Claims:
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
        fresh = await service.on_store(
            lambda: store.remember_token(claims["iss"], claims["jti"], int(claims["exp"]), service.clock())
        )
        if not fresh:
            raise _unauthorized("the token was already used (jti replayed)")
        return claims

    def known(service_id: str) -> tuple[str, str, str]:
        entry = SERVICES.get(service_id)
        if entry is None:
            raise HTTPException(404, f"no service {service_id!r}; see GET /cds-services")
        return entry

    @app.get(
        "/cds-services",
        response_model=DiscoveryResponse,
        responses={503: {"model": Problem}},
        tags=["CDS Hooks"],
    )
    async def discovery() -> dict[str, Any]:
        """The CDS services offered, with their prefetch templates."""
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

    @app.post(
        "/cds-services/{service_id}",
        response_model=CardsResponse,
        response_model_exclude_none=True,
        responses=errors,
        tags=["CDS Hooks"],
    )
    async def call(
        request: Request,
        body: HookRequest,
        service_id: str = PathParam(max_length=100),
        _credentials: Bearer = None,
    ) -> dict[str, Any]:
        """Answer a hook call with cards."""
        started = time.perf_counter()
        hook, _, _ = known(service_id)
        claims = await authenticate(request, service_id)
        if body.hook not in HOOKS:
            raise HTTPException(400, f"unknown hook {body.hook!r}; this service answers {hook}")
        if body.hook != hook:
            raise HTTPException(400, f"service {service_id} answers {hook}, not {body.hook}")
        context = _check_context(hook, body.context)
        resources, issues = await _prefetched(service, body, context)
        engine, mapping, store, _ = service.ready()
        now = service.clock()
        try:
            rendered = await service.on_engine(
                lambda: _evaluate(service, engine, mapping, hook, context, resources, issues, now)
            )
        except ProgramRefusedError as error:
            raise HTTPException(422, f"ketacds refuses this assessment: {error.reason}") from None
        except EvaluationError as error:
            service.broken = type(error).__name__
            log.error(
                "engine failure on hookInstance=%s; this worker now answers 503", _safe(body.hookInstance)
            )
            raise HTTPException(503, "the rule engine failed; no advice was given") from None
        issued: list[IssuedCard] = [
            (
                r.card["uuid"],
                service_id,
                hook,
                body.hookInstance,
                r.rule_ids,
                r.card["indicator"],
                f"{engine.ruleset.name} {engine.ruleset.version}",
                engine.digest,
            )
            for r in rendered
        ]
        await service.on_store(lambda: store.record_cards(issued, now))
        log.info(
            "hook=%s hookInstance=%s client=%s cards=%d ms=%.1f",
            hook,
            _safe(body.hookInstance),
            "yes" if claims else "-",
            len(rendered),
            (time.perf_counter() - started) * 1000,
        )
        return {"cards": [r.card for r in rendered]}

    @app.post("/cds-services/{service_id}/feedback", responses=errors, tags=["CDS Hooks"])
    async def feedback(
        request: Request,
        body: FeedbackRequest,
        service_id: str = PathParam(max_length=100),
        _credentials: Bearer = None,
    ) -> dict[str, int]:
        """Record what the clinician did with cards (accepted, or overridden with a reason)."""
        known(service_id)
        claims = await authenticate(request, service_id, feedback=True)
        _, _, store, _ = service.ready()
        items = [
            {**item.model_dump(mode="json"), "outcomeTimestamp": item.outcomeTimestamp.isoformat()}
            for item in body.feedback
        ]
        count = await service.on_store(
            lambda: store.record_feedback(service_id, items, claims.get("iss"), service.clock())
        )
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
        await authenticate(request, service_id, feedback=True)
        _, _, store, _ = service.ready()
        rows = await service.on_store(
            lambda: store.query_feedback(
                service=service_id, card=card, outcome=outcome, rule_id=rule_id, since=since, limit=limit
            )
        )
        return {"feedback": rows}

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
        if not _PAGE.match(page):
            raise HTTPException(404, "no such page")
        text = _rule_page(settings, engine, page)
        if text is None:
            raise HTTPException(404, "no such page")
        return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")


def _check_context(hook: str, context: Mapping[str, Any]) -> dict[str, Any]:
    problems = []
    if not isinstance(context.get("patientId"), str) or not context["patientId"].strip():
        problems.append("context.patientId: a patient id (text) is required")
    if hook != "patient-view":
        orders = context.get("draftOrders")
        if not isinstance(orders, Mapping) or orders.get("resourceType") != "Bundle":
            problems.append("context.draftOrders: a FHIR Bundle of the drafted orders is required")
    selections = context.get("selections")
    if (
        hook == "order-select"
        and selections is not None
        and (not isinstance(selections, list) or not all(isinstance(s, str) for s in selections))
    ):
        problems.append("context.selections: a list of resource references (text) is expected")
    if problems:
        raise HTTPException(422, "; ".join(problems))
    return dict(context)


async def _prefetched(
    service: _Service, body: HookRequest, context: Mapping[str, Any]
) -> tuple[list[Any], list[DataQualityIssue]]:
    """The prefetched resources, with whatever was missing fetched from the FHIR server.

    Raises:
        HTTPException: 412 when something needed is neither prefetched nor fetchable.
    """
    _, mapping, _, http = service.ready()
    settings = service.settings
    templates = prefetch_templates(mapping.observation_codes)
    given = body.prefetch or {}
    token = body.fhirAuthorization.access_token if body.fhirAuthorization else None
    server = body.fhirServer
    if server is not None and not allowed(server, settings.fhir_servers):
        server = None
        refused = True
    else:
        refused = False
    resources: list[Any] = []
    issues: list[DataQualityIssue] = []
    missing: dict[str, str] = {}
    for key, template in templates.items():
        if key in given:
            value = given[key]
            if value is None:
                continue  # the client found nothing for this query
            if isinstance(value, Mapping) and value.get("resourceType") == "Bundle" and server is not None:
                try:
                    value, complete = await next_pages(http, value, server, token, settings.fhir_timeout)
                except FetchError as error:
                    raise HTTPException(
                        412, f"prefetch {key!r}: could not read its next page ({error})"
                    ) from None
            elif isinstance(value, Mapping) and value.get("resourceType") == "Bundle":
                links = value.get("link")
                complete = not any(
                    isinstance(link, Mapping) and link.get("relation") == "next"
                    for link in (links if isinstance(links, list) else [])
                )
            else:
                complete = True
            if not complete:
                issues.append(
                    DataQualityIssue(
                        severity="error",
                        code="incomplete-prefetch",
                        message=f"Only part of the prefetched {key} could be read "
                        "(more pages on another server).",
                    )
                )
            resources.append(value)
            continue
        query = render_template(template, context, lambda text: quote(text, safe=""))
        if query is None:  # pragma: no cover - the context was checked to have patientId
            raise HTTPException(412, f"prefetch {key!r} is missing and its template cannot be filled")
        missing[key] = query
    if missing:
        if server is None:
            why = "fhirServer is not one this service may call" if refused else "no fhirServer was given"
            raise HTTPException(412, f"prefetch {', '.join(sorted(missing))} missing and {why}")

        async def one(key: str, query: str) -> Any:
            try:
                return await fetch(http, str(server), query, token, settings.fhir_timeout)
            except FetchError as error:
                raise HTTPException(412, f"could not fetch {key} from the FHIR server: {error}") from None

        resources += await asyncio.gather(*(one(k, q) for k, q in sorted(missing.items())))
    return resources, issues


def _evaluate(
    service: _Service,
    engine: Engine,
    mapping: FhirMapping,
    hook: str,
    context: Mapping[str, Any],
    resources: Sequence[Any],
    issues: Sequence[DataQualityIssue],
    now: dt.datetime,
) -> list[RenderedCard]:
    """Everything that touches the engine, on the engine thread."""
    settings = service.settings
    label = f"ketacds {engine.ruleset.name} {engine.ruleset.version} (rules sha256 {engine.digest[:12]})"

    def fail(summary: str, detail: str) -> list[RenderedCard]:
        return [
            RenderedCard(
                error_card(summary=summary, detail=detail, uuid=service.new_uuid, source_label=label)
            )
        ]

    try:
        record = read_resources(
            resources, patient_id=context["patientId"], mapping=mapping, terminology=engine.terminology
        )
    except InputError as error:
        return fail("ketacds could not read this patient's record", f"The record could not be read: {error}.")
    record = attrs.evolve(record, data_quality=(*record.data_quality, *issues))
    card_context = CardContext(
        hook=hook,
        ruleset=engine.ruleset,
        docs_url=settings.docs_url,
        mapping_version=f"{mapping.version} (sha256 {mapping.digest[:12]})",
        uuid=service.new_uuid,
    )

    def assess(record: PatientRecord, ctx: Context, cards: CardContext) -> list[RenderedCard]:
        try:
            return cards_for(engine.assess(record, ctx), cards)
        except ProgramRefusedError:
            raise  # the whole request is refused (HTTP 422), never answered with fewer rules
        except NotAssessedError as error:
            return fail("Not assessed: ketacds gives no advice for this patient", f"{error.reason}.")
        except InputError as error:
            return fail("ketacds could not assess this patient", f"The record cannot be assessed: {error}.")

    if hook == "patient-view":
        rendered: list[RenderedCard] = []
        for route in settings.patient_view_routes:
            ctx = Context(route=route, jurisdiction=settings.jurisdiction, now=now)  # type: ignore[arg-type]
            rendered += assess(record, ctx, card_context)
        return _most_serious_first(rendered)

    drafts = read_draft_orders(context["draftOrders"], mapping=mapping, terminology=engine.terminology)
    selected = context.get("selections")
    orders = [o for o in drafts.orders if hook != "order-select" or not selected or o.key in selected]
    if not orders:
        return []
    draft_keys = {o.key for o in drafts.orders}
    medications: list[Medication] = [
        m for m in record.medications if (m.id or "").split("#", 1)[0] not in draft_keys
    ]
    order_issues = {issue for order in drafts.orders for issue in order.issues}
    record = attrs.evolve(
        record,
        medications=(*medications, *drafts.medications),
        data_quality=(*record.data_quality, *(i for i in drafts.issues if i not in order_issues)),
    )
    rendered = []
    for order in orders:
        if order.route is None:
            reasons = "; ".join(i.message for i in order.issues if i.severity == "error")
            rendered += fail(
                "ketacds cannot check this ketamine order: its route is not one it assesses",
                f"Order `{order.key}`: {reasons or 'the route could not be read'}. No check was made.",
            )
            continue
        ctx = Context(
            route=order.route,  # type: ignore[arg-type]
            jurisdiction=settings.jurisdiction,
            now=now,
            order=order.order,
        )
        order_record = attrs.evolve(record, data_quality=(*record.data_quality, *order.issues))
        rendered += assess(
            order_record, ctx, attrs.evolve(card_context, order_resource=order.resource, order_key=order.key)
        )
    return _most_serious_first(rendered)


def _most_serious_first(rendered: list[RenderedCard]) -> list[RenderedCard]:
    rank = {"critical": 0, "warning": 1, "info": 2}
    return sorted(rendered, key=lambda r: rank[r.card["indicator"]])


def _rule_page(settings: ServiceSettings, engine: Engine, page: str) -> str | None:
    """A page of the rendered rule docs: the generated file when there is one, else a plain rendering."""
    directory = (
        Path(settings.rules_docs_dir)
        if settings.rules_docs_dir
        else bundled_rules_dir().parent / "docs" / "rules"
    )
    path = directory / page
    if path.is_file():
        return path.read_text(encoding="utf-8")
    ruleset = engine.ruleset
    if page == "index.md":
        files = sorted({(rule.file or "rules.yaml").rsplit("/", 1)[-1] for rule in ruleset.rules})
        lines = [f"# {ruleset.name} {ruleset.version}", "", f"sha256 `{engine.digest}`", ""]
        lines += [f"- [{name}]({name.removesuffix('.yaml')}.md)" for name in files]
        return "\n".join(lines) + "\n"
    rules = [
        r for r in ruleset.rules if (r.file or "").rsplit("/", 1)[-1] == page.removesuffix(".md") + ".yaml"
    ]
    if not rules:
        return None
    sources = {source.id: source.title for source in ruleset.sources}
    lines = [f"# {page.removesuffix('.md')} ({ruleset.name} {ruleset.version})", ""]
    for rule in rules:
        lines += [
            f'<a id="{rule.id.lower()}"></a>',
            f"## {rule.id}: {rule.title}",
            "",
            f"{rule.category}, severity {rule.severity}, confidence {rule.confidence}; "
            f"routes {', '.join(rule.routes)}; jurisdictions {', '.join(rule.jurisdictions)}",
            "",
            rule.finding.message if rule.finding else "(derives flags only)",
            "",
            f"Rationale: {rule.rationale}",
            "",
        ]
        lines += [
            f"- {e.source}: {sources.get(e.source, '')}{' — ' + e.section if e.section else ''}"
            for e in rule.evidence
        ]
        lines.append("")
    return "\n".join(lines)
