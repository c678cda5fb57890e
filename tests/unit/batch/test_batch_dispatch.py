"""The dispatcher's policies, with an in-memory executor: dying workers, poison, Ctrl-C."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from ketacds.batch import BatchError
from ketacds.batch.readers import Item
from ketacds.batch.runner import _Dispatcher
from ketacds.batch.summary import Tally
from ketacds.batch.work import Chunk, ChunkResult


class Died(Exception):
    """A worker process died."""


class FakeWorkers:
    """Runs chunks at once; a chunk holding a poison item 'kills its worker'."""

    def __init__(self, poison: set[int], *, interrupt_at: int | None = None) -> None:
        self.poison = poison
        self.recovered = 0
        self.waits = 0
        self.interrupt_at = interrupt_at
        self.submitted: list[tuple[int, ...]] = []

    def submit(self, chunk: Chunk) -> Future[ChunkResult]:
        future: Future[ChunkResult] = Future()
        self.submitted.append(tuple(i.index for i in chunk.items))
        if any(item.index in self.poison for item in chunk.items):
            future.set_exception(Died())
        else:
            lines = tuple(f"record {item.index}" for item in chunk.items)
            future.set_result(ChunkResult(chunk.number, lines, (), Tally()))
        return future

    def wait_first(self, futures):
        self.waits += 1
        if self.waits == self.interrupt_at:
            raise KeyboardInterrupt
        return {next(iter(futures))}

    def recover(self, _future) -> None:
        self.recovered += 1
        self.dispatcher.count_death()


def chunks(count: int, size: int = 3) -> list[Chunk]:
    return [
        Chunk(n, tuple(Item(i, f"line {i}", b"") for i in range(n * size, (n + 1) * size)))
        for n in range(count)
    ]


def dispatcher(workers: FakeWorkers, limit: int = 2) -> _Dispatcher:
    workers.dispatcher = _Dispatcher(workers.submit, workers.wait_first, (Died,), workers.recover, limit)
    return workers.dispatcher


def test_every_chunk_comes_back_once():
    """Without deaths, every chunk's result is yielded exactly once."""
    results = list(dispatcher(FakeWorkers(set())).run(iter(chunks(5))))

    assert [0, 1, 2, 3, 4] == sorted(r.number for r in results)


def test_a_poisonous_record_is_isolated_and_reported():
    """A chunk whose worker died is redone record by record; only the poison record is an error."""
    workers = FakeWorkers({4})
    results = {r.number: r for r in dispatcher(workers).run(iter(chunks(3)))}

    assert ("record 3", "record 5") == results[1].assessments
    assert 1 == len(results[1].errors)
    assert '"error": "WorkerDied"' in results[1].errors[0]
    assert '"record": 4' in results[1].errors[0]
    assert {"the worker process died while assessing this record": 1} == dict(results[1].tally.errors)
    assert [(3,), (4,), (5,)] == workers.submitted[-3:]
    assert 2 == workers.recovered


def test_workers_that_never_succeed_stop_the_run():
    """Deaths without any success in between stop the run with BatchError, rather than loop."""
    workers = FakeWorkers(set(range(100)))

    with pytest.raises(BatchError, match="keep dying"):
        list(dispatcher(workers).run(iter(chunks(10))))


def test_ctrl_c_finishes_what_runs_then_stops():
    """Ctrl-C while waiting: chunks started are finished and yielded, nothing new starts, then it stops."""
    workers = FakeWorkers(set(), interrupt_at=2)
    results: list[ChunkResult] = []

    with pytest.raises(KeyboardInterrupt):
        results.extend(dispatcher(workers, limit=3).run(iter(chunks(10))))

    assert 4 == len(workers.submitted)
    assert [0, 1, 2, 3] == [r.number for r in results]


def test_a_second_ctrl_c_stops_at_once():
    """A second Ctrl-C while finishing up is not held back."""

    class Impatient(FakeWorkers):
        def wait_first(self, futures):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        list(dispatcher(Impatient(set())).run(iter(chunks(4))))
