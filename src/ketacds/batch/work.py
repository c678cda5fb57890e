"""The work of a batch worker: assess one chunk of items with the process's Engine.

The same function runs in the main process (``--workers 1``), in local worker
processes and on Dask workers. Each process builds one Engine (pinned to the
ruleset digest the run started with, so that every worker runs the same rules),
then calls :func:`gc.freeze`: the compiled rules are never garbage, and full
collections would otherwise walk them again and again.

A record that cannot be assessed becomes an error line with its reason; it never
stops the chunk. If the engine itself fails (a durable_rules error leaves its
program unusable), that record is an error and the process builds a new Engine
for the next one.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import attrs

from ketacds import limits
from ketacds.batch.readers import Item, Reader, decode_case
from ketacds.batch.summary import Tally
from ketacds.engine.api import Engine
from ketacds.errors import KetacdsError
from ketacds.models.load import load_context
from ketacds.models.results import Assessment
from ketacds.ruleset.ir import RuleSet

__all__ = [
    "Chunk",
    "ChunkResult",
    "WorkerConfig",
    "arm_record_timer",
    "assess_chunk",
    "assessment_line",
    "die_with_parent",
    "error_line",
    "prepare",
]


@attrs.frozen
class WorkerConfig:
    """Everything a worker needs besides its items (pickled to every worker).

    Attributes:
        reader: decodes each item's payload.
        digest: the ruleset digest every worker must run.
        rules_dir: the ruleset directory (``None``: the bundled rules).
        context: default context fields (``route``, ``jurisdiction``, ``now``, ...).
        override: the defaults replace each case's own context fields, rather than
            only filling in the ones it lacks.
        verify_sample: the shadow check's rate (``Engine(verify_sample=...)``); a
            disagreement is the record's error line (``VerificationError``).
        record_seconds: the time limit per record in a local worker process (see
            :func:`arm_record_timer`).
        run: the run's identity, written into each part file's header (so that a part
            of another run is recognised on resume).
        backend: the engine backend's registered name (``Engine(backend=...)``).
    """

    reader: Reader
    digest: str
    rules_dir: str | None = None
    context: tuple[tuple[str, Any], ...] = ()
    override: bool = False
    verify_sample: float = 0.0
    record_seconds: float = limits.RECORD_SECONDS
    run: str = ""
    backend: str = "durable"

    def context_for(self, own: Mapping[str, Any]) -> dict[str, Any]:
        """A case's context data with the run's defaults applied."""
        defaults = dict(self.context)
        return {**own, **defaults} if self.override else {**defaults, **own}


@attrs.frozen
class Chunk:
    """Consecutive items, assessed together and stored together.

    ``commit``: a worker that can write the output directory commits the chunk itself;
    false for the single records of a chunk assessed one at a time.
    """

    number: int
    items: tuple[Item, ...]
    commit: bool = True


@attrs.frozen
class ChunkResult:
    """One output line per item (assessments and errors apart, each in input order).

    ``committed``: the worker already wrote the chunk's part file (the lines are then
    left out, so that they do not travel back to the main process); ``sha256`` is then
    that file's checksum. ``first``: the input index of the chunk's first record.
    """

    number: int
    assessments: tuple[str, ...]
    errors: tuple[str, ...]
    tally: Tally
    committed: bool = False
    first: int = 0
    sha256: str | None = None

    @property
    def records(self) -> int:
        """How many input records this result covers."""
        return sum(self.tally.statuses.values()) + sum(self.tally.errors.values())


_engines: dict[tuple[str, str | None, float, str], Engine] = {}


def prepare(config: WorkerConfig, ruleset: RuleSet | None = None) -> Engine:
    """This process's Engine for ``config`` (built, and the heap frozen, on first use).

    ``ruleset``: the rules already loaded (by the main process), to build it from.
    """
    key = (config.digest, config.rules_dir, config.verify_sample, config.backend)
    engine = _engines.get(key)
    if engine is None:
        if ruleset is not None:
            engine = Engine.from_ruleset(
                ruleset,
                expected_digest=config.digest,
                verify_sample=config.verify_sample,
                rules_dir=config.rules_dir,
                backend=config.backend,
            )
        else:
            engine = Engine(
                config.rules_dir,
                expected_digest=config.digest,
                verify_sample=config.verify_sample,
                backend=config.backend,
            )
        _engines[key] = engine
        gc.collect()
        gc.freeze()
    return engine


_timed = False  # whether this process is a local worker, where a record's time is limited
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> None:
    """End this worker process when the process that started it dies, even by ``kill -9``.

    On Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` has the kernel kill this process when
    its parent dies, even inside C code that holds the GIL. Everywhere, a daemon thread
    also watches the parent id and exits when it changes (the parent died and this
    process was adopted). Once the workers are gone, multiprocessing's resource tracker
    sees its last pipe closed and ends too: nothing is left writing parts.
    """
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
            pass
    if os.getppid() != parent:  # pragma: no cover - the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="ketacds-parent-watch", daemon=True).start()


def arm_record_timer() -> None:
    """Limit each record's time in this process (a local worker; Linux and other Unix).

    Before each record a real-time interval timer is set to ``record_seconds``; its
    SIGALRM has the default action, so the kernel ends the process when it fires, even
    inside C code that holds the GIL (exact arithmetic on a huge exponent, a durable_rules
    call). The main process then assesses the chunk record by record and reports the
    record that ran out of time (``RecordTimeLimit``); the run goes on.
    """
    global _timed
    if hasattr(signal, "setitimer"):
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        _timed = True


def _timer(seconds: float) -> None:
    if _timed:
        signal.setitimer(signal.ITIMER_REAL, seconds)


def assess_chunk(config: WorkerConfig, chunk: Chunk, ruleset: RuleSet | None = None) -> ChunkResult:
    """Assess every item of ``chunk``; bad records become error lines.

    ``ruleset``: the rules the main process loaded, for this process's first Engine.
    """
    engine = prepare(config, ruleset)
    assessments: list[str] = []
    errors: list[str] = []
    tally = Tally()
    for item in chunk.items:
        patient: str | None = None
        try:
            _timer(config.record_seconds)
            try:
                record, own = decode_case(config.reader, item.payload, engine)
                patient = record.patient.id
                assessment = engine.assess(record, load_context(config.context_for(own)))
            finally:
                _timer(0)
        except Exception as error:  # one bad record must not stop a night's run
            reason = str(error) if isinstance(error, KetacdsError) else f"{type(error).__name__}: {error}"
            errors.append(error_line(item, patient, type(error).__name__, reason))
            tally.add_error(reason)
            if not engine.usable:
                _engines.clear()
                engine = prepare(config)
            continue
        assessments.append(assessment_line(item, patient, assessment))
        tally.add(assessment)
    first = chunk.items[0].index if chunk.items else 0
    return ChunkResult(chunk.number, tuple(assessments), tuple(errors), tally, first=first)


def assessment_line(item: Item, patient: str | None, assessment: Assessment) -> str:
    """One line of ``assessments.ndjson``: the record's place, its patient id and the Assessment.

    The same text as ``json.dumps`` of the whole with sorted keys; built around
    :meth:`Assessment.to_json` so the assessment is encoded once.
    """
    return (
        f'{{"assessment": {assessment.to_json()}, "patient": {_text(patient)}, '
        f'"record": {item.index}, "source": {_text(item.source)}}}'
    )


def error_line(item: Item, patient: str | None, kind: str, reason: str) -> str:
    """One line of ``errors.ndjson``: the record's place, the error type and the reason."""
    data = {"error": kind, "patient": patient, "reason": reason, "record": item.index, "source": item.source}
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def _text(value: str | None) -> str:
    return json.dumps(value, ensure_ascii=False)
