"""Loopback load test of the CDS Hooks service: a constant request rate from a second process.

Usage::

    make load                                          # 50, 100, 200 requests/s, 30 s each, 2 workers
    .venv/bin/python benchmarks/load_cds.py --rates 50,100,200 --duration 30 --against main
    .venv/bin/python benchmarks/load_cds.py --quick    # smoke test: 50 requests/s for 3 s

What happens:

1. ``ketacds serve`` starts as its own process (``--workers`` uvicorn workers, JWT
   authentication on, trusting the CDS Hooks specification's example issuer) on a free
   port of 127.0.0.1, and is warmed up.
2. This process builds the requests beforehand: ``patient-view`` calls with each of the
   ten Synthea patients as prefetch (what an EHR would prefetch for the service's
   templates), and ``order-sign`` calls for an esketamine order; and one fresh ES384
   token per request (a token is refused the second time: replay protection).
3. It sends them open-loop at a constant rate (request *i* is due at ``i / rate`` s,
   whatever happened to earlier ones) over keep-alive connections (a minimal HTTP/1.1
   client, so that the generator's own CPU use stays small beside the service's), and
   times each from its due time to the last byte of the answer, so queueing shows.

4. It reads the CPU time (user + system) of the server process and its worker processes
   before and after each rate's load: the CPU per answered request is the robust figure
   on a shared machine (latency moves with whatever else runs).

It reports, per rate, the CPU per request, the rate of answers, p50 / p90 / p99 / max
latency, and the status codes. With ``--against REV`` the service of another git
revision (unpacked with ``git archive``, run with ``PYTHONPATH`` at its ``src``) gets
the same load in the same run, and each figure is shown beside it with the ratio
old / new. Bounded in count and time, and on loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import replace_section  # benchmarks/ is not a package

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"  # test input copied into the repository (PROVENANCE.md)
ISSUER = "https://fhir-ehr.example.com/"
READ_CODES = {"55284-4", "85354-9", "8480-6", "8462-4", "29463-7", "8302-2", "39156-5", "44261-6", "82810-3"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_view(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """A transaction bundle's resources as a FHIR server holds them (``urn:uuid:`` → ``Type/id``)."""
    ids = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}

    def rewrite(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: rewrite(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rewrite(v) for v in value]
        return ids.get(value, value) if isinstance(value, str) else value

    return [rewrite(e["resource"]) for e in bundle["entry"]]


def prefetch(resources: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(r)
    (patient,) = by_type["Patient"]

    def search(items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in items]}

    observations = [
        o for o in by_type.get("Observation", []) if {c.get("code") for c in o["code"]["coding"]} & READ_CODES
    ]
    return patient["id"], {
        "patient": patient,
        "conditions": search(by_type.get("Condition", [])),
        "medications": search(by_type.get("MedicationRequest", [])),
        "medicationStatements": search(by_type.get("MedicationStatement", [])),
        "observations": search(observations),
        "allergies": search(by_type.get("AllergyIntolerance", [])),
    }


def bodies() -> list[tuple[str, bytes]]:
    """(service id, JSON body) pairs: patient-view per Synthea patient, and an esketamine order-sign each."""
    out = []
    for path in sorted((DATA / "fhir").glob("synthea-r4-*.json")):
        patient_id, data = prefetch(server_view(json.loads(path.read_text())))
        context = {"userId": "Practitioner/load", "patientId": patient_id}
        out.append(("ketacds-patient-view", {"hook": "patient-view", "context": context, "prefetch": data}))
        order = {
            "resourceType": "MedicationRequest",
            "id": "load-order",
            "status": "draft",
            "intent": "order",
            "subject": {"reference": f"Patient/{patient_id}"},
            "medicationCodeableConcept": {"text": "esketamine 28 MG nasal spray (Spravato)"},
            "dosageInstruction": [
                {
                    "route": {"coding": [{"system": "http://snomed.info/sct", "code": "46713006"}]},
                    "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "wk"}},
                    "doseAndRate": [
                        {
                            "doseQuantity": {
                                "value": 112,
                                "unit": "mg",
                                "system": "http://unitsofmeasure.org",
                                "code": "mg",
                            }
                        }
                    ],
                }
            ],
        }
        draft = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}
        out.append(
            (
                "ketacds-order-sign",
                {"hook": "order-sign", "context": {**context, "draftOrders": draft}, "prefetch": data},
            )
        )
    return [(service, json.dumps({**body, "hookInstance": "{instance}"}).encode()) for service, body in out]


def start_server(
    port: int, workers: int, directory: Path, src: Path, backend: str | None = None
) -> subprocess.Popen[bytes]:
    """``ketacds serve`` of the package under ``src`` (JWT on), in its own process group."""
    issuers = directory / "issuers.yaml"
    issuers.write_text(f"issuers:\n  - iss: {ISSUER}\n    jwks_file: {DATA / 'cds-hooks/jwks-public.json'}\n")
    command = [
        sys.executable,
        "-m",
        "ketacds.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--issuers",
        str(issuers),
        "--database",
        str(directory / "cds.sqlite3"),
        "--log-level",
        "warning",
        *(["--backend", backend] if backend else []),
    ]
    log = (directory / "serve.log").open("wb")
    # ``src`` first: the package of that revision, whatever else is on the path (orjson, ...)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)


def wait_ready(base: str, process: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the service exited during start-up")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the service did not start")


def tokens(base: str, services: list[str]) -> list[str]:
    key = jwt.PyJWK(json.loads((DATA / "cds-hooks" / "jwk-private-EXAMPLE-ONLY.json").read_text())).key
    now = int(time.time())
    return [
        jwt.encode(
            {
                "iss": ISSUER,
                "aud": f"{base}/cds-services/{service}",
                "iat": now,
                "exp": now + 600,
                "jti": str(uuid.uuid4()),
            },
            key,
            algorithm="ES384",
            headers={"kid": "example-kid"},
        )
        for service in services
    ]


#: Status recorded for a request that could not even be sent within ``--max-wait`` of its due time.
NOT_SENT = -1


class _Connection:
    """One keep-alive HTTP/1.1 connection: a minimal client, so the load generator stays cheap."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, bearer: str) -> int:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Bearer {bearer}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        await self.reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection", "").lower() == "close":
            self.writer.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def run_load(
    base: str, plan: list[tuple[str, bytes, str]], rate: float, connections: int, max_wait: float = 30.0
) -> list[tuple[float, int]]:
    """Send ``plan`` open-loop at ``rate``/s over at most ``connections`` keep-alive connections.

    A request waits for a free connection (that wait counts in its latency); one still
    waiting ``max_wait`` s after its due time is not sent and counted as NOT_SENT, so an
    overloaded service shows as such instead of the run never ending.
    """
    host, port = base.removeprefix("http://").split(":")
    pool: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(_Connection(host, int(port)))
    results: list[tuple[float, int]] = [(0.0, NOT_SENT)] * len(plan)
    start = time.perf_counter() + 0.5

    async def one(index: int, service: str, body: bytes, bearer: str) -> None:
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        connection = await pool.get()
        try:
            if time.perf_counter() - due > max_wait:
                results[index] = (time.perf_counter() - due, NOT_SENT)
                return
            payload = body.replace(b"{instance}", str(uuid.uuid4()).encode())
            try:
                status = await asyncio.wait_for(
                    connection.post(f"/cds-services/{service}", payload, bearer), 30
                )
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                connection.close()
                status = 0
            results[index] = (time.perf_counter() - due, status)
        finally:
            pool.put_nowait(connection)

    await asyncio.gather(*(one(i, s, b, t) for i, (s, b, t) in enumerate(plan)))
    while not pool.empty():
        pool.get_nowait().close()
    return results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of the server process ``pid`` and all its worker children so far."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:  # pragma: no cover - a worker that exited
            continue
        total += times.user + times.system
    return total


def unpack(revision: str, directory: Path) -> Path:
    """The ``src`` tree (and the rulesets) of ``revision``, unpacked with ``git archive``; its ``src``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision, "src", "rulesets"],
        check=True,
        capture_output=True,
    ).stdout
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
    return directory / "src"


class Target:
    """One running ``ketacds serve`` (this tree's, or another revision's) and its base URL."""

    def __init__(
        self, name: str, src: Path, workers: int, directory: Path, backend: str | None = None
    ) -> None:
        self.name = name
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = start_server(self.port, workers, directory, src, backend)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the process group this script started
            self.process.wait(timeout=30)


@dataclasses.dataclass
class Outcome:
    """One load run against one target: per-request CPU, latencies, statuses, rate answered."""

    requests: int
    answered_per_second: float
    cpu_ms_per_request: float
    latencies: list[float]
    statuses: dict[int, int]

    def figure(self, name: str) -> float:
        if name == "cpu":
            return self.cpu_ms_per_request
        return percentile(self.latencies, {"p50": 50, "p90": 90, "p99": 99}[name])


def new_patient(body: bytes, ids: dict[bytes, bytes]) -> bytes:
    """The same hook call about a patient never seen: the patient's id replaced by a fresh UUID.

    The id is in the context, the Patient resource and every other resource's ``subject``,
    so every resource's content is new: no cache keyed by a record or by a resource's
    content can hit (``ids`` remembers each body's patient id).
    """
    patient_id = ids.get(body)
    if patient_id is None:
        patient_id = ids[body] = json.loads(body.replace(b"{instance}", b"-"))["context"][
            "patientId"
        ].encode()
    return body.replace(patient_id, str(uuid.uuid4()).encode())


def load(
    target: Target, requests: list[tuple[str, bytes]], rate: float, duration: float, args: Any
) -> Outcome:
    """Send ``rate`` requests/s for ``duration`` s to ``target``; the CPU its processes used per 200."""
    count = max(1, int(rate * duration))
    chosen = [requests[i % len(requests)] for i in range(count)]
    if args.new_patients:
        ids: dict[bytes, bytes] = {}
        chosen = [(service, new_patient(body, ids)) for service, body in chosen]
    plan = [(s, b, t) for (s, b), t in zip(chosen, tokens(target.base, [s for s, _ in chosen]), strict=True)]
    cpu_before = cpu_seconds(target.process.pid)
    began = time.perf_counter()
    results = asyncio.run(run_load(target.base, plan, rate, args.connections, args.max_wait))
    elapsed = time.perf_counter() - began
    cpu = cpu_seconds(target.process.pid) - cpu_before
    served = sum(1 for _, status in results if status == 200)
    statuses: dict[int, int] = {}
    for _, status in results:
        statuses[status] = statuses.get(status, 0) + 1
    return Outcome(
        requests=len(results),
        answered_per_second=served / elapsed,
        cpu_ms_per_request=cpu * 1000 / served if served else float("nan"),
        latencies=[seconds * 1000 for seconds, status in results if status == 200] or [float("nan")],
        statuses=statuses,
    )


def warm(target: Target, requests: list[tuple[str, bytes]], count: int) -> None:
    """Requests before the measured ones: every worker imports, compiles and caches what it will."""
    plan = [requests[i % len(requests)] for i in range(count)]
    tokened = [(s, b, t) for (s, b), t in zip(plan, tokens(target.base, [s for s, _ in plan]), strict=True)]
    asyncio.run(run_load(target.base, tokened, 20, 8))


def _statuses(outcome: Outcome) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(outcome.statuses.items()))


def report(
    args: Any, rates: list[float], outcomes: dict[tuple[str, float], Outcome], sizes: list[int]
) -> str:
    """The Markdown report: one row per rate (and, with ``--against``, the other revision beside it)."""
    lines = [
        f"# CDS Hooks service under load ({time.strftime('%Y-%m-%d')})",
        "",
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load average before "
        f"{args.load_before:.2f}; `ketacds serve --workers {args.workers}"
        f"{f' --backend {args.backend}' if args.backend else ''}`, **JWT on** (ES384, "
        "replay protection); open loop for "
        f"{args.duration:g} s per rate from a second process.",
        {
            "both": "Requests: patient-view (10 Synthea patients as the spec's prefetch) and order-sign "
            "(an esketamine order), alternating",
            "patient-view": "Requests: patient-view only (10 Synthea patients as the spec's prefetch)",
            "order-sign": "Requests: order-sign only (an esketamine order, 10 Synthea patients as prefetch)",
        }[args.hook]
        + f"; bodies {sizes[0] // 1000}–{sizes[-1] // 1000} kB; "
        + (
            "**every request about a new patient** (`--new-patients`: the patient's id replaced by a "
            "fresh UUID in every resource, so no per-process cache of records or resources hits)."
            if args.new_patients
            else "the ten patients recur, so the service's per-process caches of records and resources "
            "hit after each patient's first call (`--new-patients` makes every call a new patient)."
        ),
        "",
    ]
    if args.against:
        lines += [
            f"This tree beside `{args.against}`"
            f"{' (with its default backend)' if args.backend else ''} "
            "(same load, same run, one after the other per rate); "
            "ratio = old / new (> 1: this tree is better).",
            "",
            "| rate/s | CPU ms/request new | old | ratio | p50 ms new | old | ratio "
            "| p90 ms new | old | ratio | p99 ms new | old | ratio "
            "| answered/s new | old | statuses new | old |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for rate in rates:
            new, old = outcomes[("new", rate)], outcomes[("old", rate)]
            cells = [f"{rate:g}"]
            for name in ("cpu", "p50", "p90", "p99"):
                a, b = new.figure(name), old.figure(name)
                digits = 2 if name == "cpu" else 1
                cells += [f"{a:.{digits}f}", f"{b:.{digits}f}"]
                cells.append(f"{b / a:.2f}×" if a else "–")
            cells += [
                f"{new.answered_per_second:.0f}",
                f"{old.answered_per_second:.0f}",
                _statuses(new),
                _statuses(old),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    else:
        lines += [
            "| rate/s | requests | answered 200/s | CPU ms/request | p50 ms | p90 ms | p99 ms | max ms "
            "| statuses |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for rate in rates:
            o = outcomes[("new", rate)]
            lines.append(
                f"| {rate:g} | {o.requests} | {o.answered_per_second:.0f} | {o.cpu_ms_per_request:.2f} | "
                f"{o.figure('p50'):.1f} | {o.figure('p90'):.1f} | {o.figure('p99'):.1f} | "
                f"{max(o.latencies):.1f} | {_statuses(o)} |"
            )
    lines += [
        "",
        "CPU ms/request: user + system CPU time of the server process and its worker processes during "
        "the load, divided by the requests answered 200 (the robust figure on a shared machine). "
        "Latency is from each request's due time to the end of its answer; "
        f"status {NOT_SENT} = not sent within {args.max_wait:g} s of its due time (client-side backlog).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rates", default="50,100,200", help="requests per second (open loop), comma-separated"
    )
    parser.add_argument("--rate", type=float, help="one rate (the same as --rates RATE)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load per rate")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--connections", type=int, default=32, help="client connections")
    parser.add_argument(
        "--max-wait", type=float, default=30.0, help="drop a request not sent this long after due"
    )
    parser.add_argument("--against", metavar="REV", help="the same load against this git revision's service")
    parser.add_argument(
        "--hook",
        choices=["both", "patient-view", "order-sign"],
        default="both",
        help="the calls sent: patient-view and order-sign alternating (default), or one of them",
    )
    parser.add_argument(
        "--backend", help="this tree's engine backend (ketacds serve --backend); the other revision's default"
    )
    parser.add_argument(
        "--new-patients",
        action="store_true",
        help="every request about a patient never seen (the patient's id replaced by a fresh UUID)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: 50 requests/s for 3 s")
    parser.add_argument("--out", type=Path, help="also write the report (Markdown) here")
    parser.add_argument(
        "--write",
        type=Path,
        help="put the report in this file's load section (load-new-patients with --new-patients; make bench)",
    )
    args = parser.parse_args()
    if args.quick:
        args.rates, args.duration = "50", 3.0
    rates = [args.rate] if args.rate else [float(r) for r in args.rates.split(",") if r.strip()]
    if max(rates) * args.duration > 30_000:
        raise SystemExit("bounded: at most 30,000 requests per run")
    args.load_before = os.getloadavg()[0]

    requests = [(s, b) for s, b in bodies() if args.hook == "both" or s == f"ketacds-{args.hook}"]
    outcomes: dict[tuple[str, float], Outcome] = {}
    with tempfile.TemporaryDirectory() as temp:
        sources = {"new": ROOT / "src"}
        if args.against:
            sources["old"] = unpack(args.against, Path(temp) / "old")
        targets: list[Target] = []
        try:
            for name, src in sources.items():
                backend = args.backend if name == "new" else None  # an older revision may not have it
                targets.append(Target(name, src, args.workers, Path(temp) / f"serve-{name}", backend))
            for target in targets:
                wait_ready(target.base, target.process)
                warm(target, requests, 40 if args.quick else 100)
            for rate in rates:
                for target in targets:
                    outcomes[(target.name, rate)] = load(target, requests, rate, args.duration, args)
        finally:
            for target in targets:
                target.stop()

    text = report(args, rates, outcomes, sorted(len(b) for _, b in requests))
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    if args.write:  # under the document's own heading: the report's title line is left out
        section = "load-new-patients" if args.new_patients else "load"
        replace_section(args.write, section, text.split("\n", 1)[1].lstrip("\n"))


if __name__ == "__main__":
    main()
