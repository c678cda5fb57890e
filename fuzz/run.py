"""The process pool: one case at a time per worker, crashes and hangs counted, not fatal."""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from multiprocessing.connection import Connection, wait
from typing import Any

from fuzz.report import Report
from fuzz.seeds import case
from fuzz.targets import TARGETS, WARMUPS

__all__ = ["KILL_SECONDS", "run"]

#: A case still running after this long is killed (and counted: ``hang-killed``).
KILL_SECONDS = 60.0


def _worker(connection: Connection, target_name: str, seed: int) -> None:
    target = TARGETS[target_name]
    warmup = WARMUPS.get(target_name)
    if warmup is not None:
        warmup()
    while True:
        index = connection.recv()
        if index is None:
            return
        name, _, document = case(seed, index)
        began = time.perf_counter()
        outcome = target(document)
        seconds = time.perf_counter() - began
        connection.send(
            (index, outcome.kind, outcome.detail, outcome.status, seconds, name, outcome.severity)
        )


class _Slot:
    """One worker process and the case it is running."""

    def __init__(self, context: Any, target: str, seed: int) -> None:
        self.connection, child = multiprocessing.Pipe()
        self.process = context.Process(target=_worker, args=(child, target, seed), daemon=True)
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
    """Run cases ``0 .. cases-1`` of the run seeded ``seed`` and return the report."""
    # forkserver: workers are forked from a clean single-threaded server process (never from
    # a caller that may hold threads or a durable_rules ruleset), with the harness preloaded.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["fuzz.run", "fuzz.preload"])
    report = Report(seed=seed, target=target)
    pending = iter(range(cases))
    slots = [_Slot(context, target, seed) for _ in range(max(1, min(workers, cases)))]
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
                name = case(seed, current)[0]
                code = slot.process.exitcode
                report.add(
                    current, "crash", f"worker died with exit code {code}", now - slot.began, name=name
                )
                slot.reap()
                slots[number] = slot = _Slot(context, target, seed)
            elif now - slot.began > KILL_SECONDS:
                name = case(seed, current)[0]
                report.add(
                    current,
                    "hang-killed",
                    f"still running after {KILL_SECONDS:g} s",
                    now - slot.began,
                    name=name,
                )
                slot.process.kill()
                slot.stop()
                slots[number] = slot = _Slot(context, target, seed)
            else:
                continue
            if progress and report.cases % step == 0:
                print(
                    f"  {report.cases}/{cases} cases, {report.kinds['disagreement']} disagreements, "
                    f"{report.kinds['crash']} crashes",
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
