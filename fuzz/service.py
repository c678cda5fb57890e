"""One real CDS Hooks service for the ``service`` target, on 127.0.0.1 only.

:func:`fuzzed_service` serves :func:`ketacds.server.app.create_app` with uvicorn on a
thread of the harness's own process, on a free loopback port, for the length of one
run; the workers post the mutated requests to it. It runs without authentication
(``auth=False``, as ``--insecure-no-auth``: tokens are tested in
``tests/integration/test_cds_security.py``), with a fixed clock, a throw-away
database, and an allow-list of FHIR servers that names only a closed loopback port,
so no request makes it fetch from anywhere.
"""

from __future__ import annotations

import datetime as dt
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LOOPBACK", "fuzzed_service"]

LOOPBACK = "127.0.0.1"
NOW = dt.datetime(2026, 11, 21, 14, 0, tzinfo=dt.UTC)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@contextmanager
def fuzzed_service() -> Iterator[str]:
    """Start the service on ``http://127.0.0.1:PORT``, yield that URL, stop it."""
    import uvicorn

    from ketacds.server.app import create_app
    from ketacds.server.settings import ServiceSettings

    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="ketacds-fuzz-service-") as directory:
        settings = ServiceSettings(
            public_url=f"http://{LOOPBACK}:{port}",
            auth=False,
            database=str(Path(directory) / "cds.sqlite3"),
            fhir_servers=(f"http://{LOOPBACK}:9/nothing-is-fetched",),
            fhir_timeout=1.0,
            log_level="error",
        )
        config = uvicorn.Config(
            create_app(settings, clock=lambda: NOW),
            host=LOOPBACK,
            port=port,
            log_level="error",
            ws="none",
            lifespan="on",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="fuzzed-service", daemon=True)
        thread.start()
        deadline = time.monotonic() + 120
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fuzzed service did not start")
            time.sleep(0.05)
        try:
            yield f"http://{LOOPBACK}:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=30)
