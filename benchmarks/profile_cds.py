"""The CDS Hooks app driven in-process: CPU per request without HTTP, and where it goes.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/profile_cds.py --requests 400 --hook patient-view
    PYTHONPATH=src .venv/bin/python benchmarks/profile_cds.py --profile 30   # cProfile, top 30
    PYTHONPATH=src .venv/bin/python benchmarks/profile_cds.py --new-patients # no patient recurs

The app of ``ketacds serve`` (JWT on, trusting the specification's example issuer, a
temporary SQLite file) is built with :func:`ketacds.server.app.create_app` and called
as ASGI, one request after another, with the bodies and fresh tokens of
``benchmarks/load_cds.py``. Everything runs on one thread, so ``time.process_time``
and cProfile see all of a request's work (the HTTP server's own share is what
``load_cds.py`` adds). Run it with ``PYTHONPATH`` at another revision's ``src`` to
compare (before issue 18 the engine and SQLite ran on threads of their own: the CPU per
request still counts them, cProfile does not).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import inspect
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load_cds  # the benchmarks directory, put on the path above
from ketacds.server.app import create_app
from ketacds.server.settings import Issuer, ServiceSettings

BASE = "http://127.0.0.1:9"


async def call(app: Any, service: str, body: bytes, token: str) -> int:
    """One POST to the app; its status."""
    body = body.replace(b"{instance}", str(uuid.uuid4()).encode())
    path = f"/cds-services/{service}"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:9"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 9),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    status = 0

    async def receive() -> Any:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)  # pragma: no cover - the app reads the body once

    async def send(message: Any) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as temp:
        settings = ServiceSettings(
            public_url=BASE,
            issuers=(
                Issuer(iss=load_cds.ISSUER, jwks_file=str(load_cds.DATA / "cds-hooks/jwks-public.json")),
            ),
            database=f"{temp}/cds.sqlite3",
            log_level="warning",
            **({"backend": args.backend} if args.backend else {}),
        )
        # As a `ketacds serve` worker (its garbage collector tuned after start-up) where this revision can.
        worker = "worker_process" in inspect.signature(create_app).parameters
        app = create_app(settings, **({"worker_process": True} if worker else {}))
        requests = [
            (s, b) for s, b in load_cds.bodies() if args.hook == "both" or s == f"ketacds-{args.hook}"
        ]
        plan = [requests[i % len(requests)] for i in range(args.requests + args.warm)]
        if args.new_patients:  # every call about a patient never seen (load_cds.new_patient)
            ids: dict[bytes, bytes] = {}
            plan = [(service, load_cds.new_patient(body, ids)) for service, body in plan]
        tokens = load_cds.tokens(BASE, [s for s, _ in plan])
        startup: asyncio.Queue[Any] = asyncio.Queue()
        ready = asyncio.Event()

        async def lifespan_send(message: Any) -> None:
            if message["type"].startswith("lifespan.startup"):
                ready.set()

        startup.put_nowait({"type": "lifespan.startup"})
        life = asyncio.create_task(
            app({"type": "lifespan", "asgi": {"version": "3.0"}}, startup.get, lifespan_send)
        )
        await ready.wait()
        for (service, body), token in zip(plan[: args.warm], tokens, strict=False):
            assert await call(app, service, body, token) == 200
        profile = cProfile.Profile() if args.profile else None
        started = time.process_time()
        if profile:
            profile.enable()
        for (service, body), token in zip(plan[args.warm :], tokens[args.warm :], strict=True):
            assert await call(app, service, body, token) == 200
        if profile:
            profile.disable()
        cpu = time.process_time() - started
        per_request = cpu / args.requests * 1000
        patients = "every one a new patient" if args.new_patients else "ten patients recurring"
        print(
            f"{args.hook}: {per_request:.2f} ms CPU per request "
            f"({args.requests} requests, JWT on, {patients})"
        )
        if profile:
            pstats.Stats(profile).sort_stats("cumulative").print_stats(args.profile)
        startup.put_nowait({"type": "lifespan.shutdown"})
        await life


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="requests measured (after --warm ones)")
    parser.add_argument("--warm", type=int, default=40, help="requests before the measured ones")
    parser.add_argument("--hook", choices=["both", "patient-view", "order-sign"], default="patient-view")
    parser.add_argument("--backend", help="the engine backend (default: the service's)")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile; print the top N")
    parser.add_argument(
        "--new-patients",
        action="store_true",
        help="every request about a patient never seen (the patient's id replaced by a fresh UUID)",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
