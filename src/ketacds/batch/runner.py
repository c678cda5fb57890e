"""Run a batch: read the input in chunks, assess them on workers, commit, summarise.

Three ways to run the same work (:func:`ketacds.batch.work.assess_chunk`):

* ``workers=1``: in this process;
* ``workers=N``: N local worker processes (``spawn``), each with its own Engine;
* ``dask="local"`` or ``dask="tcp://host:8786"``: a Dask cluster, one Engine per
  worker process (a local cluster is started with processes and one thread each).

Workers build their Engine from the rules the main process loaded (pickled to them
once), pinned to its digest. Local workers commit their own chunks, so results never
travel back through a pipe; Dask workers (perhaps on other machines) send them back
and the main process commits them.

Chunks are dispatched as workers free up, at most two per worker in flight, so the
input is read lazily and memory stays flat however large it is. Each finished chunk
is committed at once (:mod:`ketacds.batch.store`). If a worker process dies (the C
engine can crash the process), the records of the chunks it took down with it are
assessed again one at a time, with nothing else running, so that a record that
kills its worker is known for certain: it is reported as an error, and one poisonous
record never stops the run. If workers die without any chunk ever succeeding (rules
missing on a Dask worker, say), the run stops with an error instead.

Ctrl-C stops dispatching, lets the chunks in progress finish and commits them, then
stops (a second Ctrl-C stops at once); ``--resume`` carries on from there.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol

import attrs

from ketacds import limits
from ketacds._version import __version__
from ketacds.batch.readers import Item, Reader, missing_context
from ketacds.batch.store import FORMAT, RunStore, fingerprint, run_id, write_part
from ketacds.batch.summary import Summary, Tally
from ketacds.batch.work import (
    Chunk,
    ChunkResult,
    WorkerConfig,
    arm_record_timer,
    assess_chunk,
    die_with_parent,
    error_line,
    prepare,
)
from ketacds.errors import BatchError, InputError, Interrupted
from ketacds.ruleset.ir import RuleSet
from ketacds.ruleset.load import load_ruleset

__all__ = ["BatchError", "BatchOptions", "BatchResult", "Interrupted", "Progress", "run_batch"]

#: Records per chunk: the unit of dispatch, of commit and of what a kill can lose.
DEFAULT_CHUNK_SIZE = 250
# Worker-pool restarts in a row, without any chunk succeeding, before giving up.
_MAX_FRUITLESS_RESTARTS = 3


@attrs.frozen
class BatchOptions:
    """What to run: see ``ketacds batch --help`` for each option."""

    input: Path
    out: Path
    reader: Reader
    workers: int = 1
    chunk_size: int = DEFAULT_CHUNK_SIZE
    resume: bool = False
    dask: str | None = None
    rules_dir: Path | None = None
    context: tuple[tuple[str, Any], ...] = ()
    override: bool = False
    verify_sample: float = 0.0
    record_seconds: float = limits.RECORD_SECONDS
    backend: str = "durable"


@attrs.frozen
class BatchResult:
    """What a finished run produced."""

    summary: Summary
    out: Path
    records: int  #: records assessed (or found bad) by this invocation
    seconds: float  #: wall time of this invocation
    redone: tuple[str, ...] = ()  #: part files that did not verify on resume, each with why


class Progress(Protocol):
    """Where the runner reports progress (the CLI draws a rich progress bar)."""

    def start(self, total: int | None, done: int) -> None:
        """The run begins: ``total`` records (if known), ``done`` already committed."""

    def advance(self, records: int) -> None:
        """``records`` more were committed."""


class _Silent:
    def start(self, total: int | None, done: int) -> None:
        pass

    def advance(self, records: int) -> None:
        pass


def run_batch(options: BatchOptions, progress: Progress | None = None) -> BatchResult:
    """Assess every record of ``options.input`` into ``options.out``.

    Raises:
        RulesetError: the rules cannot be loaded.
        InputError: the output directory holds another run, or the run to resume differs.
        BatchError: the workers keep dying, or the Dask cluster cannot be reached.
        Interrupted: Ctrl-C; the chunks finished so far are kept for ``--resume``.
    """
    began = time.perf_counter()
    progress = progress or _Silent()
    missing = missing_context(options.reader, dict(options.context))
    if missing:
        raise InputError(
            "context",
            f"{options.reader.name} input carries no treatment context; give "
            + ", ".join(f"--{key}" for key in missing),
        )
    ruleset = load_ruleset(options.rules_dir)
    digest = ruleset.digest
    store = RunStore(options.out)
    manifest = store.check(
        {
            "format": FORMAT,
            "input": str(options.input),
            "input_sha256": fingerprint(options.input),
            "reader": options.reader.name,
            "chunk_size": options.chunk_size,
            "digest": digest,
            "context": dict(options.context),
            "override": options.override,
            "package_version": __version__,
            "total": options.reader.count(options.input),
            # the default backend is not written: a durable run's manifest stays as it was
            **({"backend": options.backend} if options.backend != "durable" else {}),
        },
        resume=options.resume,
    )
    if manifest.get("complete"):
        return BatchResult(store.summary(ruleset, digest), options.out, 0, time.perf_counter() - began)
    identity = run_id(manifest)
    config = WorkerConfig(
        run=identity,
        reader=options.reader,
        digest=digest,
        rules_dir=str(options.rules_dir) if options.rules_dir is not None else None,
        context=options.context,
        override=options.override,
        verify_sample=options.verify_sample,
        record_seconds=options.record_seconds,
        backend=options.backend,
    )
    source = _ChunkSource(options.reader.items(options.input), options.chunk_size)
    records = 0
    try:
        # Workers (or the cluster) first: if they cannot start, nothing has been written.
        with _executor(options, config, ruleset) as run:
            redone = store.begin(manifest, resume=options.resume, run=identity)
            done = store.done()
            progress.start(manifest.get("total"), store.tally(done)[1])
            for result in run(chunk for chunk in source if chunk.number not in done):
                store.record(result, identity)
                records += result.records
                progress.advance(result.records)
    except KeyboardInterrupt:
        total = manifest.get("total")
        chunks = -(-total // options.chunk_size) if total is not None else "?"
        raise Interrupted(f"stopped after {len(store.done())} of {chunks} chunks") from None
    summary = store.finish(source.count, ruleset, digest)
    return BatchResult(summary, options.out, records, time.perf_counter() - began, redone)


class _ChunkSource:
    """Groups items into chunks of ``size``, counting the chunks it has produced."""

    def __init__(self, items: Iterable[Item], size: int) -> None:
        self._items = items
        self._size = size
        self.count = 0

    def __iter__(self) -> Iterator[Chunk]:
        batch: list[Item] = []
        for item in self._items:
            batch.append(item)
            if len(batch) == self._size:
                yield self._chunk(batch)
                batch = []
        if batch:
            yield self._chunk(batch)

    def _chunk(self, items: list[Item]) -> Chunk:
        chunk = Chunk(self.count, tuple(items))
        self.count += 1
        return chunk


# --------------------------------------------------------------------- executors

Runner = Callable[[Iterator[Chunk]], Iterator[ChunkResult]]


class _executor:  # used like a function, as a context manager
    """The way to run chunks that ``options`` ask for, as a context manager yielding a runner."""

    def __init__(self, options: BatchOptions, config: WorkerConfig, ruleset: RuleSet) -> None:
        self.options = options
        self.config = config
        self.ruleset = ruleset
        self.close: Callable[[], None] = lambda: None

    def __enter__(self) -> Runner:
        if self.options.dask is not None:
            return self._dask()
        if self.options.workers <= 1:
            prepare(self.config, self.ruleset)
            return lambda chunks: (assess_chunk(self.config, chunk) for chunk in chunks)
        pool = _Pool(self.options.workers, self.config, self.ruleset, RunStore(self.options.out).parts)
        self.close = pool.close
        dispatcher = _Dispatcher(
            pool.submit,
            _wait_first,
            (BrokenProcessPool,),
            pool.recover,
            2 * pool.size,
            self.options.record_seconds,
        )
        pool.on_restart = dispatcher.count_death
        return dispatcher.run

    def _dask(self) -> Runner:
        try:
            from distributed import Client, KilledWorker, LocalCluster
            from distributed import wait as dask_wait
        except ImportError:  # tested in a process where the extra cannot be imported
            # A usage problem (exit 2), not a failing cluster (exit 3).
            raise InputError("--dask", "needs the batch extra: pip install 'ketacds[batch]'") from None
        address = self.options.dask
        try:
            if address == "local":
                # No dashboard; the scheduler's small HTTP server (health checks) takes
                # any free port rather than 8787, which another cluster may hold.
                cluster = LocalCluster(
                    n_workers=max(1, self.options.workers),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    scheduler_kwargs={"dashboard": False},
                )
                client = Client(cluster)
            else:
                cluster = None
                client = Client(address)  # timeout: distributed.comm.timeouts.connect
        except OSError as error:
            raise BatchError(f"cannot reach the Dask scheduler {address}: {error}") from None

        def close() -> None:
            client.close()
            if cluster is not None:
                cluster.close()

        self.close = close
        size = max(1, sum(client.nthreads().values()))
        # The loaded rules travel to each worker once, so workers need no ruleset on disk.
        rules = client.scatter(self.ruleset, broadcast=True, hash=False)

        def submit(chunk: Chunk) -> Any:
            return client.submit(assess_chunk, self.config, chunk, rules, pure=False)

        def wait_first(futures: Iterable[Any]) -> set[Any]:
            return set(dask_wait(list(futures), return_when="FIRST_COMPLETED").done)

        # Dask replaces dead workers by itself; a task is retried on another worker
        # before it fails with KilledWorker: each of those is a death to count.
        dispatcher = _Dispatcher(submit, wait_first, (KilledWorker,), lambda _future: None, 2 * size)
        dispatcher.recover = lambda _future: dispatcher.count_death()
        return dispatcher.run

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _wait_first(futures: Iterable[Future[ChunkResult]]) -> set[Future[ChunkResult]]:
    return wait(list(futures), return_when=FIRST_COMPLETED).done


def _worker_init(config: WorkerConfig, ruleset: RuleSet) -> None:
    # Ctrl-C is the main process's to handle: it lets running chunks finish, then stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    arm_record_timer()
    prepare(config, ruleset)  # from the rules the main process loaded: no YAML to read again


def _assess_and_commit(config: WorkerConfig, parts: Path, chunk: Chunk) -> ChunkResult:
    """Assess a chunk and, in a local worker, write its part file: the lines stay here."""
    result = assess_chunk(config, chunk)
    if not chunk.commit:
        return result
    checksum = write_part(parts, result, config.run)
    return attrs.evolve(result, assessments=(), errors=(), committed=True, sha256=checksum)


class _Pool:
    """Local worker processes; rebuilt when one dies (a dead worker breaks the whole pool)."""

    def __init__(self, size: int, config: WorkerConfig, ruleset: RuleSet, parts: Path) -> None:
        self.size = size
        self.config = config
        self.ruleset = ruleset
        self.parts = parts
        self.generation = 0
        self.on_restart: Callable[[], None] = lambda: None
        self._pool = self._new()

    def _new(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.size,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(self.config, self.ruleset),
        )

    def _restart(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new()
        self.generation += 1
        self.on_restart()

    def submit(self, chunk: Chunk) -> Future[ChunkResult]:
        try:
            future = self._pool.submit(_assess_and_commit, self.config, self.parts, chunk)
        except BrokenProcessPool:  # a worker died since we last looked
            self._restart()
            future = self._pool.submit(_assess_and_commit, self.config, self.parts, chunk)
        future.generation = self.generation  # type: ignore[attr-defined]
        return future

    def recover(self, failed: Future[ChunkResult]) -> None:
        """After ``failed`` came back from a dead worker: a new pool, unless one was started since."""
        if getattr(failed, "generation", None) == self.generation:
            self._restart()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _Dispatcher:
    """Keeps chunks in flight; a chunk whose worker died is assessed again record by record."""

    def __init__(
        self,
        submit: Callable[[Chunk], Any],
        wait_first: Callable[[Iterable[Any]], set[Any]],
        died: tuple[type[BaseException], ...],
        recover: Callable[[Any], None],
        limit: int,
        record_seconds: float | None = None,
    ) -> None:
        self.record_seconds = record_seconds
        self.submit = submit
        self.wait_first = wait_first
        self.died = died
        self.recover = recover
        self.limit = limit
        self.fruitless = 0  # worker deaths since the last chunk that succeeded

    def count_death(self) -> None:
        """A worker died (once per death, not per future it took down)."""
        self.fruitless += 1
        if self.fruitless > _MAX_FRUITLESS_RESTARTS:
            raise BatchError("worker processes keep dying before finishing any chunk; see the log above")

    def run(self, chunks: Iterator[Chunk]) -> Iterator[ChunkResult]:
        in_flight: dict[Any, Chunk] = {}
        suspects: list[Chunk] = []
        stopping = False

        def fill() -> None:
            while not stopping and len(in_flight) < self.limit:
                chunk = next(chunks, None)
                if chunk is None:
                    return
                in_flight[self.submit(chunk)] = chunk

        fill()
        while in_flight:
            try:
                finished = self.wait_first(in_flight)
            except KeyboardInterrupt:
                if stopping:
                    raise
                stopping = True  # let running chunks finish and be committed
                for future in in_flight:
                    future.cancel()
                continue
            for future in finished:
                chunk = in_flight.pop(future)
                if future.cancelled():
                    continue
                try:
                    result = future.result()
                except self.died:
                    suspects.append(chunk)
                    self.recover(future)
                    continue
                self.fruitless = 0
                yield result
            fill()
        if stopping:
            raise KeyboardInterrupt
        for chunk in sorted(suspects, key=lambda c: c.number):
            yield self._isolate(chunk)

    def _isolate(self, chunk: Chunk) -> ChunkResult:
        """Assess a chunk whose worker died, one record at a time, with nothing else running."""
        assessments: list[str] = []
        errors: list[str] = []
        tally = Tally()
        for item in chunk.items:
            began = time.monotonic()
            future = self.submit(Chunk(chunk.number, (item,), commit=False))
            self.wait_first([future])
            try:
                result = future.result()
            except self.died:
                self.recover(future)
                limit = self.record_seconds
                if limit is not None and time.monotonic() - began >= limit:
                    kind = "RecordTimeLimit"
                    reason = f"not assessed within the time limit of {limit:g} s per record"
                else:
                    kind, reason = "WorkerDied", "the worker process died while assessing this record"
                errors.append(error_line(item, None, kind, reason))
                tally.add_error(reason)
                continue
            self.fruitless = 0
            assessments += result.assessments
            errors += result.errors
            tally.update(result.tally)
        first = chunk.items[0].index if chunk.items else 0
        return ChunkResult(chunk.number, tuple(assessments), tuple(errors), tally, first=first)


def default_workers() -> int:
    """One worker per core available to this process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1
