"""One worker process's running service: its settings, engine, store and HTTP client.

Everything here is used from the worker's event loop thread only (the engine and the
SQLite connection run in place: see "Concurrency" in :mod:`ketacds.server.app`). The
lifespan in :mod:`ketacds.server.app` fills in the engine, mapping, store, HTTP client
and token verifier before the first request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import attrs
import httpx
from fastapi import HTTPException

from ketacds.engine.api import Engine
from ketacds.server.auth import TokenVerifier
from ketacds.server.settings import ServiceSettings
from ketacds.server.store import Store
from ketacds.terminology.mapping import FhirMapping

__all__ = ["Service", "utcnow"]


def utcnow() -> dt.datetime:
    """The current time in UTC: the service's default clock."""
    return dt.datetime.now(dt.UTC)


@attrs.define
class Service:
    """One worker's state: settings, engine, store, HTTP client and token verifier.

    Attributes:
        settings: the configuration.
        clock: gives ``now`` for each assessment and stored row.
        new_uuid: makes card and suggestion uuids.
        broken: set (to the exception's name) when the engine failed: every later
            request of this worker is answered 503.
    """

    settings: ServiceSettings
    clock: Callable[[], dt.datetime]
    new_uuid: Callable[[], str]
    engine: Engine | None = None
    mapping: FhirMapping | None = None
    store: Store | None = None
    http: httpx.AsyncClient | None = None
    verifier: TokenVerifier | None = None
    broken: str | None = None

    def ready(self) -> tuple[Engine, FhirMapping, Store, httpx.AsyncClient]:
        """The engine, mapping, store and HTTP client.

        Raises:
            HTTPException: 503 once the engine of this worker has failed.
        """
        if self.broken is not None:
            raise HTTPException(503, f"the engine of this worker failed ({self.broken}); restart it")
        # All four are set by the lifespan before the first request.
        assert self.engine is not None
        assert self.mapping is not None
        assert self.store is not None
        assert self.http is not None
        return self.engine, self.mapping, self.store, self.http
