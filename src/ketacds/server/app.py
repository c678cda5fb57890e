"""The CDS Hooks 2.0 service (FastAPI), one engine per worker process: the application factory.

Endpoints (see :mod:`ketacds.server.routes`):

``GET  /cds-services``                      discovery (public)
``POST /cds-services/{id}``                 a hook call → cards (JWT)
``POST /cds-services/{id}/feedback``        what the clinician did with cards (JWT)
``GET  /cds-services/{id}/feedback``        recorded feedback, with the rules of each card (JWT)
``GET  /docs/rules/{page}``                 the rendered rule docs the cards link to
``GET  /health``                            liveness, with the ruleset version and digest
``GET  /openapi.json``                      this API, published

How a request flows: :class:`~ketacds.server.middleware.BodyLimit` checks sizes and
encoding; the body is read as JSON (:mod:`~ketacds.server.codec`) and validated
against :class:`~ketacds.server.models.HookRequest`; :mod:`~ketacds.server.routes`
checks the service id and the token (:mod:`~ketacds.server.auth`);
:mod:`~ketacds.server.prefetch` gathers the FHIR resources (prefetched, or fetched by
:mod:`~ketacds.server.fhir_client`); :mod:`~ketacds.server.evaluation` assesses and
renders the cards; :mod:`~ketacds.server.store` records them.

Concurrency. Each worker process does all its work on its event loop's one thread:
the I/O (JWT key fetches, FHIR fetches) is awaited; reading FHIR, assessing,
rendering cards and the SQLite statements (a few tens of microseconds each) run in
place. durable_rules never releases the GIL, so a separate engine thread let nothing
else run meanwhile, and each hand-off to a thread cost more CPU (≈ 80 µs) than the
SQLite work it carried. Never two threads in the engine at once; throughput comes from
more worker processes (``ketacds serve --workers N``), each with its own engine.

Privacy. Logs name the hook, the hook instance id, the status code, the number of
cards and the time taken: never a patient id, name, code or value. Error answers
never echo request values.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from ketacds._version import __version__
from ketacds.engine.api import Engine
from ketacds.server.auth import TokenVerifier
from ketacds.server.codec import JSONRoute
from ketacds.server.middleware import BodyLimit
from ketacds.server.plain_route import PlainDispatch
from ketacds.server.routes import SERVICES, install_error_handlers, install_routes
from ketacds.server.service import Service, utcnow
from ketacds.server.settings import ServiceSettings
from ketacds.server.store import Store
from ketacds.terminology.mapping import FhirMapping
from ketacds.vocabulary import ESKETAMINE_NASAL, KETAMINE_IV, KETAMINE_OTHER

__all__ = ["GC_THRESHOLD", "SERVICES", "BodyLimit", "app_from_environment", "create_app", "tune_gc"]

log = logging.getLogger("ketacds.server")

#: The youngest generation's collection threshold in a worker process (Python's default is 700).
GC_THRESHOLD = 10_000


#: The bits a version 4 (random) UUID fixes (RFC 9562: version ``0100``, variant ``10``), and their values.
_UUID4_FIXED = (0xF000 << 64) | (0xC000 << 48)
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def random_uuid() -> str:
    """A random (version 4) UUID as text: what ``str(uuid.uuid4())`` gives, a few times faster.

    The same 16 bytes of :func:`os.urandom` with the same version and variant bits set
    (the ``uuid.UUID`` object and its checks are skipped: a card's uuid is only text).
    """
    value = (int.from_bytes(os.urandom(16), "big") & ~_UUID4_FIXED) | _UUID4_SET
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def tune_gc() -> None:
    """Set this process's garbage collector for answering hook calls (a worker process, after start-up).

    A hook call makes a few thousand containers (the body's JSON, the record, the facts,
    the cards) that live until it is answered. With Python's default threshold the
    collector runs in the middle of almost every call, finds them alive and promotes
    them, and the full collections that follow walk the whole heap, the engine and the
    rules included (≈ 100 ms each): 0.2-0.4 ms of CPU per call on average. So everything
    built at start-up is frozen out of collections (:func:`gc.freeze`: it lives as long
    as the worker), and the youngest generation's threshold is raised above what one
    call makes. Cyclic garbage is still collected, only less often; no answer changes.
    """
    gc.collect()
    gc.freeze()
    youngest, middle, oldest = gc.get_threshold()
    gc.set_threshold(max(youngest, GC_THRESHOLD), middle, oldest)


def create_app(
    settings: ServiceSettings,
    *,
    clock: Callable[[], dt.datetime] = utcnow,
    new_uuid: Callable[[], str] | None = None,
    fhir_transport: httpx.AsyncBaseTransport | None = None,
    worker_process: bool = False,
) -> BodyLimit:
    """Build the service (an ASGI app) for ``settings``.

    Args:
        settings: the configuration.
        clock: gives ``now`` for each assessment (the engine itself never reads the clock).
        new_uuid: makes card and suggestion uuids (default: :func:`random_uuid`).
        fhir_transport: an httpx transport for FHIR and JWKS requests (tests).
        worker_process: the app is its process's only one (a ``ketacds serve`` worker):
            :func:`tune_gc` once it has started.
    """
    service = Service(settings=settings, clock=clock, new_uuid=new_uuid or random_uuid)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        def build() -> tuple[Engine, FhirMapping]:
            engine = Engine(settings.rules_dir, backend=settings.backend)
            mapping = engine.terminology.fhir_mapping  # the tables of the rules it assesses with
            # ketamine-intranasal is refused in every jurisdiction: no program to compile
            for route in (ESKETAMINE_NASAL, KETAMINE_IV, KETAMINE_OTHER):
                engine.warm(route, settings.jurisdiction)  # compile now, not on the first call
            return engine, mapping

        engine, mapping = build()
        service.engine, service.mapping = engine, mapping
        store = Store(settings.database)
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
        if worker_process:
            tune_gc()
        try:
            yield
        finally:
            await service.http.aclose()
            store.close()
            engine.close()

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
    app.router.route_class = JSONRoute  # JSON bodies read with orjson where it reads the same
    install_error_handlers(app)
    install_routes(app, service)
    # A plain hook call is answered in front of FastAPI's stack (ketacds.server.plain_route).
    return BodyLimit(PlainDispatch(app), settings.max_body_bytes)


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
    return create_app(settings, worker_process=True)
