"""The process pool: one case at a time per worker, crashes and hangs counted, not fatal."""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from fuzz.raw import raw_case, request_case
from fuzz.report import Report
from fuzz.seeds import case
from fuzz.targets import CONFIG, TARGETS, WARMUPS

__all__ = ["KILL_SECONDS", "run"]

#: A case still running after this long is killed (and counted: ``hang-killed``).
KILL_SECONDS = 60.0
#: The same for the loader, cli and service targets (anything past 2 s already fails them; the
#: limit also covers a cli worker measuring start-up before its first case).
KILL_SECONDS_RAW = 90.0

#: How each target's case *i* is built (default: a mutated document, :func:`fuzz.seeds.case`).
CASES: dict[str, Callable[[int, int], tuple[str, list[str], Any]]] = {
    "loader": raw_case,
    "cli": raw_case,
    "service": request_case,
}


def _worker(connection: Connection, target_name: str, seed: int, config: dict[str, Any]) -> None:
    CONFIG.update(config)
    target = TARGETS[target_name]
    build = CASES.get(target_name, case)
    warmup = WARMUPS.get(target_name)
    if warmup is not None:
        warmup()
    while True:
        index = connection.recv()
        if index is None:
            return
        name, _, document = build(seed, index)
        began = time.perf_counter()
        outcome = target(document)
        seconds = time.perf_counter() - began if outcome.seconds is None else outcome.seconds
        connection.send(
            (index, outcome.kind, outcome.detail, outcome.status, seconds, name, outcome.severity)
        )


class _Slot:
    """One worker process and the case it is running."""

    def __init__(self, context: Any, target: str, seed: int, config: dict[str, Any] | None = None) -> None:
        self.connection, child = multiprocessing.Pipe()
        self.process = context.Process(target=_worker, args=(child, target, seed, config or {}), daemon=True)
        self.process.start()
        child.close()
        self.index: int | None = None
        self.began = 0.0

    def give(self, index: int) -> None:
        self.index, self.began = index, time.perf_counter()
        self.connection.send(index)

    def reap(self) -> None:
        """Collect a worker that died (it is not asked to stop: it cannot hear)."""
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self.connection.send(None)
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def run(
    cases: int, *, seed: int = 1, workers: int = 2, target: str = "engine", progress: bool = False
) -> Report:
    """Run cases ``0 .. cases-1`` of the run seeded ``seed`` and return the report.

    The ``service`` target first starts one real service on 127.0.0.1 (see
    :mod:`fuzz.service`) that the workers post to; each worker of the ``cli`` target
    measures the CLI's start-up and subtracts it from every case's time.
    """
    if target == "service":
        from fuzz.service import fuzzed_service

        with fuzzed_service() as url:
            return _run(cases, seed, workers, target, progress, {"url": url})
    return _run(cases, seed, workers, target, progress, {})


def _run(cases: int, seed: int, workers: int, target: str, progress: bool, config: dict[str, Any]) -> Report:
    # forkserver: workers are forked from a clean single-threaded server process (never from
    # a caller that may hold threads or a durable_rules ruleset), with the harness preloaded.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["fuzz.run", "fuzz.preload"])
    build = CASES.get(target, case)
    kill_seconds = KILL_SECONDS if target in ("engine", "selftest") else KILL_SECONDS_RAW
    report = Report(seed=seed, target=target)
    if target == "cli":
        report.note = (
            "times are beyond start-up: each worker times an unmutated example (median of 3);"
            " a case over 2 s is timed again beside a fresh start-up"
        )
    pending = iter(range(cases))
    slots = [_Slot(context, target, seed, config) for _ in range(max(1, min(workers, cases)))]
    for slot in slots:
        index = next(pending, None)
        if index is not None:
            slot.give(index)
    step = max(1, cases // 20)
    while any(slot.index is not None for slot in slots):
        busy = [slot for slot in slots if slot.index is not None]
        ready = wait([s.connection for s in busy] + [s.process.sentinel for s in busy], timeout=1.0)
        now = time.perf_counter()
        for number, slot in enumerate(slots):
            current = slot.index
            if current is None:
                continue
            finished = _poll(slot) if slot.connection in ready else None
            if finished is not None:
                index, kind, detail, status, seconds, name, severity = finished
                report.add(index, kind, detail, seconds, status, name, severity)
            elif slot.process.sentinel in ready or not slot.process.is_alive():
                name = build(seed, current)[0]
                code = slot.process.exitcode
                report.add(
                    current, "crash", f"worker died with exit code {code}", now - slot.began, name=name
                )
                slot.reap()
                slots[number] = slot = _Slot(context, target, seed, config)
            elif now - slot.began > kill_seconds:
                name = build(seed, current)[0]
                report.add(
                    current,
                    "hang-killed",
                    f"still running after {kill_seconds:g} s",
                    now - slot.began,
                    name=name,
                )
                slot.process.kill()
                slot.stop()
                slots[number] = slot = _Slot(context, target, seed, config)
            else:
                continue
            if progress and report.cases % step == 0:
                print(
                    f"  {report.cases}/{cases} cases, {report.kinds['disagreement']} disagreements, "
                    f"{report.kinds['crash']} crashes"
                    + ("" if target == "engine" else f", {report.failures} failures"),
                    flush=True,
                )
            index = next(pending, None)
            slot.index = None
            if index is not None:
                slot.give(index)
    for slot in slots:
        slot.stop()
    return report


def _poll(slot: _Slot) -> tuple[Any, ...] | None:
    try:
        if slot.connection.poll():
            result: tuple[Any, ...] = slot.connection.recv()
            return result
    except (EOFError, OSError):
        return None
    return None
