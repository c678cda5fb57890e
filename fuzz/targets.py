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

__all__ = ["KINDS", "TARGETS", "WARMUPS", "Outcome", "engine_target"]

KINDS = ("assessed", "refused", "engine-error", "disagreement", "undocumented")


@attrs.frozen
class Outcome:
    """What one case did: its kind and, for anything but success, why (one line or a traceback)."""

    kind: str
    detail: str = ""
    status: str = ""
    #: for a disagreement: "status" if the statuses differ, "reassuring" if durable's is
    #: the more reassuring of the two (the failure that matters most)
    severity: str = ""


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
            engine._program(route, jurisdiction.id)


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


TARGETS: dict[str, Target] = {"engine": engine_target, "selftest": selftest_target}
#: Run once in each worker before its first case (so that start-up is not timed as a hang).
WARMUPS: dict[str, Callable[[], None]] = {"engine": engine_warmup}
