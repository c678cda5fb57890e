"""Targets: what a case is run against. Each runs in a worker process and never raises.

A target is ``(document) -> Outcome``. It classifies every exception itself:

* ``refused``: an :class:`~ketacds.errors.InputError` (the input cannot be read);
* ``engine-error``: another documented ``ketacds.errors`` exception, raised loudly
  (for the engine: an ``EvaluationError``; never a result);
* ``undocumented``: any other exception (a bug: the harness fails);
* ``disagreement``: the durable_rules and reference results differ (the harness fails);
* ``assessed``: both engines gave the same firings and status.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["CONFIG", "KINDS", "TARGETS", "WARMUPS", "Outcome", "engine_target"]

KINDS = (
    "assessed",
    "refused",
    "engine-error",
    "disagreement",
    "undocumented",
    # the cli and service targets
    "traceback",
    "exit-code",
    "hang",
    "http-5xx",
    "connection",
)


@attrs.frozen
class Outcome:
    """What one case did: its kind and, for anything but success, why (one line or a traceback)."""

    kind: str
    detail: str = ""
    status: str = ""
    #: for a disagreement: "status" if the statuses differ, "reassuring" if durable's is
    #: the more reassuring of the two (the failure that matters most)
    severity: str = ""
    #: how long the case took, when the target measures it itself (the CLI: beyond start-up)
    seconds: float | None = None


Target = Callable[[Any], Outcome]

_ENGINE: Any = None


def _engine() -> Any:
    global _ENGINE
    if _ENGINE is None or not _ENGINE.usable:
        from ketacds import Engine

        _ENGINE = Engine()
    return _ENGINE


def _classify(error: BaseException) -> Outcome:
    from ketacds.errors import InputError, KetacdsError

    if isinstance(error, InputError):
        return Outcome("refused", f"{type(error).__name__}: {error}")
    if isinstance(error, KetacdsError):
        return Outcome("engine-error", f"{type(error).__name__}: {error}")
    return Outcome("undocumented", "".join(traceback.format_exception(error)).strip())


def engine_target(document: Any) -> Outcome:
    """Read the document, assess it with both engines, compare firings and status."""
    from ketacds import load_case

    try:
        record, context = load_case(document)
    except Exception as error:
        return _classify(error)
    engine = _engine()
    results = []
    for backend in ("durable", "reference"):
        try:
            results.append(engine.assess(record, context, backend=backend))
        except Exception as error:
            results.append(error)
    durable, reference = results
    if isinstance(durable, BaseException) or isinstance(reference, BaseException):
        if type(durable) is type(reference):  # both refused alike (an InputError from the facts)
            assert isinstance(durable, BaseException)
            return _classify(durable)
        if isinstance(durable, BaseException):
            outcome = _classify(durable)
            # durable failing loudly where the reference answers is a documented error,
            # never an answer; anything undocumented stays undocumented.
            return outcome
        assert isinstance(reference, BaseException)
        return Outcome(
            "undocumented", f"the reference evaluator failed where durable answered: {reference!r}"
        )
    durable_firings = [(f.rule_id, f.facts) for f in durable.trace]
    reference_firings = [(f.rule_id, f.facts) for f in reference.trace]
    if durable_firings != reference_firings or durable.status != reference.status:
        only_d = sorted({r for r, _ in set(durable_firings) - set(reference_firings)})
        only_r = sorted({r for r, _ in set(reference_firings) - set(durable_firings)})
        rank = engine.ruleset.status.rank  # lower is more serious
        severity = ""
        if durable.status != reference.status:
            severity = "reassuring" if rank(durable.status) > rank(reference.status) else "status"
        return Outcome(
            "disagreement",
            f"status durable {durable.status} vs reference {reference.status}; "
            f"firings only in durable: {only_d}; only in reference: {only_r}",
            durable.status,
            severity,
        )
    return Outcome("assessed", status=durable.status)


def engine_warmup() -> None:
    """Build the Engine and compile every program before the first case is timed."""
    from ketacds.models.inputs import ROUTES

    engine = _engine()
    for route in ROUTES:
        for jurisdiction in engine.ruleset.jurisdictions:
            engine.warm(route, jurisdiction.id)


def selftest_target(document: Any) -> Outcome:
    """For the harness's own tests: crashes (SIGSEGV), raises or succeeds, by the document's content."""
    import hashlib
    import os
    import signal

    digest = hashlib.sha256(repr(document).encode()).digest()[0] % 3
    if digest == 0:
        os.kill(os.getpid(), signal.SIGSEGV)
    if digest == 1:
        try:
            raise ZeroDivisionError("selftest")
        except ZeroDivisionError as error:
            return _classify(error)
    return Outcome("assessed", status="selftest")


# ------------------------------------------------------------------ loader, cli, service

#: The treatment context a FHIR Bundle is assessed in (a Bundle carries none).
BUNDLE_CONTEXT = {"route": "esketamine-nasal", "jurisdiction": "US", "now": "2026-11-21T09:00:00Z"}
#: Settings a target reads in its worker (``service``: the URL; ``cli``: the start-up time).
CONFIG: dict[str, Any] = {}


def loader_target(raw_input: Any) -> Outcome:
    """Read raw bytes as ``ketacds assess`` does, then assess.

    Case files go through ``decode_text``, ``parse_document`` and ``load_case``; FHIR
    Bundles through ``read_bundle`` (given the bytes) in :data:`BUNDLE_CONTEXT`.
    """
    from ketacds.adapters.fhir import read_bundle
    from ketacds.models.load import decode_text, load_case, load_context, parse_document

    kind, suffix, raw = raw_input
    engine = _engine()
    try:
        if kind == "bundle":
            record = read_bundle(raw, terminology=engine.terminology)
            context = load_context(BUNDLE_CONTEXT)
        else:
            record, context = load_case(parse_document(decode_text(raw, "(fuzz)"), suffix, "(fuzz)"))
        assessment = engine.assess(record, context)
    except Exception as error:
        return _classify(error)
    return Outcome("assessed", status=assessment.status)


def _ketacds() -> str:
    """The ``ketacds`` command of this environment (beside its python), else the one on PATH."""
    import shutil
    import sys
    from pathlib import Path

    beside = Path(sys.executable).parent / "ketacds"
    found = str(beside) if beside.exists() else shutil.which("ketacds")
    if found is None:
        raise RuntimeError("no ketacds command: pip install -e . first")
    return found


def cli_startup(runs: int = 3) -> float:
    """Seconds ``ketacds assess`` takes on an unmutated example (start-up and one assessment).

    The median of ``runs`` runs. Each worker measures it for itself, with the other
    workers busy, so that the start-up subtracted is the one under the same load; a case
    that seems over 2 s past it is timed again beside a fresh start-up (:func:`cli_target`).
    """
    import subprocess
    import time

    from fuzz.seeds import ROOT

    example = sorted((ROOT / "examples").glob("*.yaml"))[0]
    took = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(  # noqa: S603 - our own CLI on our own example
            [_ketacds(), "assess", str(example)], capture_output=True, check=False
        )
        took.append(time.perf_counter() - began)
    return sorted(took)[len(took) // 2]


def cli_target(raw_input: Any) -> Outcome:
    """``ketacds assess FILE`` as a subprocess: exit 0, 2 or 3, never a traceback, never 2 s past start-up."""
    import os
    import subprocess
    import tempfile
    import time

    kind, suffix, raw = raw_input
    startup = float(CONFIG.get("startup", 0.0))
    with tempfile.TemporaryDirectory(prefix="ketacds-fuzz-") as directory:
        path = os.path.join(directory, f"case{suffix}")
        with open(path, "wb") as file:
            file.write(raw)
        command = [_ketacds(), "assess", path]
        if kind == "bundle":
            command += ["--" + key + "=" + value for key, value in BUNDLE_CONTEXT.items()]
        began = time.perf_counter()
        try:
            done = subprocess.run(  # noqa: S603 - our own CLI on a file we wrote
                command, capture_output=True, timeout=startup + 30, check=False
            )
        except subprocess.TimeoutExpired:
            return Outcome("hang", f"no exit after {startup + 30:.0f} s", seconds=startup + 30)
        beyond = time.perf_counter() - began - startup
        if beyond > 2.0:
            # The cores are shared: time the case again right after a fresh start-up, and
            # keep the smaller excess (a real hang is slow both times).
            fresh = cli_startup(runs=1)
            began = time.perf_counter()
            subprocess.run(command, capture_output=True, timeout=startup + 30, check=False)  # noqa: S603
            beyond = min(beyond, time.perf_counter() - began - fresh)
    stderr = done.stderr.decode("utf-8", "replace")
    if "Traceback (most recent call last)" in stderr:
        return Outcome("traceback", stderr.strip(), seconds=beyond)
    if done.returncode not in (0, 2, 3):
        return Outcome("exit-code", f"exit {done.returncode}: {stderr.strip()[-300:]}", seconds=beyond)
    if done.returncode in (2, 3) and len(stderr.strip().splitlines()) != 1:
        return Outcome(
            "exit-code", f"exit {done.returncode} without one line on stderr: {stderr[-300:]}", seconds=beyond
        )
    kinds = {0: "assessed", 2: "refused", 3: "engine-error"}
    return Outcome(kinds[done.returncode], stderr.strip(), status=f"exit {done.returncode}", seconds=beyond)


def service_target(request: Any) -> Outcome:
    """POST a CDS Hooks request to the fuzzed service: never a 5xx, never a dropped connection, < 2 s."""
    import httpx

    service_id, body = request
    client = CONFIG.get("client")
    if client is None:
        client = CONFIG["client"] = httpx.Client(base_url=CONFIG["url"], timeout=30)
    try:
        response = client.post(
            f"/cds-services/{service_id}", content=body, headers={"Content-Type": "application/json"}
        )
    except httpx.TimeoutException as error:
        return Outcome("hang", f"{type(error).__name__}: no answer in 30 s")
    except httpx.TransportError as error:
        CONFIG.pop("client", None)
        return Outcome("connection", f"{type(error).__name__}: {error}")
    if response.status_code >= 500:
        return Outcome("http-5xx", f"{response.status_code}: {response.text[:300]}")
    if response.status_code >= 400:
        return Outcome(
            "refused", f"{response.status_code}: {response.text[:200]}", status=str(response.status_code)
        )
    return Outcome("assessed", status=str(response.status_code))


def cli_warmup() -> None:
    """Measure the CLI's start-up in this worker (:func:`cli_startup`)."""
    CONFIG["startup"] = cli_startup()


TARGETS: dict[str, Target] = {
    "engine": engine_target,
    "loader": loader_target,
    "cli": cli_target,
    "service": service_target,
    "selftest": selftest_target,
}
#: Run once in each worker before its first case (so that start-up is not timed as a hang).
WARMUPS: dict[str, Callable[[], None]] = {
    "engine": engine_warmup,
    "loader": engine_warmup,
    "cli": cli_warmup,
}
