"""Batch runs on a real Dask cluster (processes, one thread each): the same output as locally."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_support import outputs, write_cases
from ketacds.batch import BatchOptions, NdjsonReader, run_batch

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_cases(tmp_path_factory.mktemp("input") / "cases.ndjson", 150, bad={30: '{"patient": 1}'})


@pytest.fixture(scope="module")
def local(source: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "results"
    run_batch(BatchOptions(input=source, out=out, reader=NdjsonReader(), workers=1, chunk_size=20))
    return out


@pytest.fixture(scope="module")
def cluster():
    # Dashboard off; its HTTP server on any free port (not 8787, which may be taken).
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        scheduler_kwargs={"dashboard": False},
    ) as cluster:
        yield cluster


def test_a_dask_cluster_gives_the_local_output(source: Path, local: Path, cluster, tmp_path: Path):
    """Partitioned over a real LocalCluster's two worker processes: byte for byte the local results."""
    out = tmp_path / "dask"
    options = BatchOptions(
        input=source, out=out, reader=NdjsonReader(), chunk_size=20, dask=cluster.scheduler_address
    )
    result = run_batch(options)

    assert (150, 1) == (result.summary.assessed, result.summary.errors)
    assert outputs(local) == outputs(out)


def test_an_interrupted_dask_run_resumes_exactly(source: Path, local: Path, cluster, tmp_path: Path):
    """Chunks committed before an interruption are kept; --resume on the cluster does the rest."""
    from ketacds.batch import Interrupted

    class StopAfterTwo:
        def __init__(self) -> None:
            self.left = 2

        def start(self, total, done) -> None:
            pass

        def advance(self, records: int) -> None:
            self.left -= 1
            if self.left == 0:
                raise KeyboardInterrupt

    out = tmp_path / "dask"
    options = BatchOptions(
        input=source, out=out, reader=NdjsonReader(), chunk_size=20, dask=cluster.scheduler_address
    )
    with pytest.raises(Interrupted):
        run_batch(options, StopAfterTwo())
    run_batch(BatchOptions(**{**_fields(options), "resume": True}))

    assert outputs(local) == outputs(out)


def test_dask_local_starts_its_own_cluster(source: Path, local: Path, tmp_path: Path):
    """--dask local starts a LocalCluster (processes, one thread per worker), and stops it after."""
    out = tmp_path / "dask-local"
    run_batch(
        BatchOptions(input=source, out=out, reader=NdjsonReader(), workers=2, chunk_size=50, dask="local")
    )

    assert outputs(local) == outputs(out)


def test_an_unreachable_scheduler_is_a_batch_error(source: Path, tmp_path: Path):
    """A scheduler address nobody answers at is reported (and nothing is written)."""
    import dask

    from ketacds.batch import BatchError

    options = BatchOptions(
        input=source, out=tmp_path / "x", reader=NdjsonReader(), dask="tcp://127.0.0.1:9", chunk_size=20
    )
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        pytest.raises(BatchError, match="cannot reach"),
    ):
        run_batch(options)
    assert not (tmp_path / "x").exists()


def _fields(options: BatchOptions) -> dict:
    import attrs

    return attrs.asdict(options, recurse=False)
