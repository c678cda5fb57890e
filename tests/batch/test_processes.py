"""Batch runs on real worker processes: the same output, kill -9 and Ctrl-C, dying workers.

These start real processes (``ketacds batch`` itself, and its spawned workers), so they
take seconds each; they are what shows that an overnight run can be trusted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from batch_support import (
    HANG,
    POISON,
    CrashingReader,
    HangingReader,
    batch_command,
    outputs,
    run_batch_process,
    write_cases,
)
from ketacds.batch import BatchOptions, run_batch
from ketacds.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_cases(tmp_path_factory.mktemp("input") / "cases.ndjson", 800, bad={7: "{oops"})


@pytest.fixture(scope="module")
def reference(source: Path, tmp_path_factory) -> Path:
    """The uninterrupted run, in this process (--workers 1)."""
    out = tmp_path_factory.mktemp("reference") / "results"
    result = CliRunner().invoke(
        main, ["batch", str(source), "--out", str(out), "--workers", "1", "--chunk-size", "40"]
    )
    assert 0 == result.exit_code, result.output
    return out


def test_two_workers_give_the_output_of_one(source: Path, reference: Path, tmp_path: Path):
    """--workers 2 (two processes) writes byte for byte what --workers 1 writes."""
    run = run_batch_process(
        str(source), "--out", str(tmp_path / "two"), "--workers", "2", "--chunk-size", "40"
    )

    assert 0 == run.returncode, run.stderr
    assert outputs(reference) == outputs(tmp_path / "two")
    assert "Status" in run.stdout


ARGS = ("--workers", "2", "--chunk-size", "40")


def _start(source: Path, out: Path, log: Path) -> subprocess.Popen[bytes]:
    # Its own session, so that the test can signal it and its workers together (as a
    # terminal or a job scheduler would), and SIGINT is not ignored as in a background job.
    command = batch_command(str(source), "--out", str(out), *ARGS, "--quiet")
    with log.open("wb") as stderr:
        return subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=stderr)


def _wait_for_parts(out: Path, process: subprocess.Popen[bytes], count: int) -> int:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        done = len(list((out / "parts").glob("*.part"))) if (out / "parts").exists() else 0
        if done >= count or process.poll() is not None:
            return done
        time.sleep(0.02)
    raise AssertionError("the run committed no chunk in time")


def test_kill_9_mid_run_then_resume_is_exact(source: Path, reference: Path, tmp_path: Path):
    """SIGKILL (process and workers) mid-run, then --resume: the output of an uninterrupted run."""
    out = tmp_path / "killed"
    process = _start(source, out, tmp_path / "log")
    done = _wait_for_parts(out, process, 3)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    assert -signal.SIGKILL == process.returncode  # killed mid-run, not finished
    assert 3 <= done < 21
    assert not (out / "assessments.ndjson").exists()
    resumed = run_batch_process(
        str(source), "--out", str(out), "--workers", "2", "--chunk-size", "40", "--resume"
    )
    assert 0 == resumed.returncode, resumed.stderr
    assert outputs(reference) == outputs(out)


def test_ctrl_c_commits_running_chunks_then_resume_is_exact(source: Path, reference: Path, tmp_path: Path):
    """SIGINT stops the run with exit 130 after committing what was running; --resume finishes it."""
    out = tmp_path / "interrupted"
    process = _start(source, out, tmp_path / "log")
    _wait_for_parts(out, process, 2)
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=120)
    stderr = (tmp_path / "log").read_text()

    assert 130 == process.returncode, stderr
    assert "--resume" in stderr
    resumed = run_batch_process(
        str(source), "--out", str(out), "--workers", "2", "--chunk-size", "40", "--resume"
    )
    assert 0 == resumed.returncode, resumed.stderr
    assert outputs(reference) == outputs(out)


def test_a_record_that_kills_its_worker_is_an_error_and_the_run_goes_on(tmp_path: Path):
    """A worker process dying on one record: that record is an error, every other one is assessed."""
    source = write_cases(tmp_path / "cases.ndjson", 30, bad={12: POISON.decode()})
    options = BatchOptions(
        input=source, out=tmp_path / "out", reader=CrashingReader(), workers=2, chunk_size=5
    )
    result = run_batch(options)
    errors = (tmp_path / "out" / "errors.ndjson").read_text().splitlines()

    assert (30, 1) == (result.summary.assessed, result.summary.errors)
    assert 1 == len(errors)
    assert '"error": "WorkerDied"' in errors[0]
    assert '"record": 12' in errors[0]


def test_a_record_over_the_time_limit_is_an_error_and_the_run_goes_on(tmp_path: Path):
    """A record that hangs in C code (the GIL held) is stopped by the per-record limit, not waited for."""
    source = write_cases(tmp_path / "cases.ndjson", 20, bad={9: '{"x": "' + HANG.decode() + '"}'})
    options = BatchOptions(
        input=source,
        out=tmp_path / "out",
        reader=HangingReader(),
        workers=2,
        chunk_size=5,
        record_seconds=2.0,
    )
    began = time.monotonic()
    result = run_batch(options)
    errors = (tmp_path / "out" / "errors.ndjson").read_text().splitlines()

    assert time.monotonic() - began < 60  # the hanging sum alone would take hours
    assert (20, 1) == (result.summary.assessed, result.summary.errors)
    assert 1 == len(errors)
    assert '"error": "RecordTimeLimit"' in errors[0]
    assert '"record": 9' in errors[0]
    assert "time limit of 2 s" in errors[0]


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc: children, their children, ...)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for a reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_the_parent_alone_ends_its_workers_and_resource_tracker(source: Path, tmp_path: Path):
    """Only the main process is killed (not its group): the workers and the tracker must not live on."""
    out = tmp_path / "orphaned"
    process = _start(source, out, tmp_path / "log")
    _wait_for_parts(out, process, 2)
    children = _descendants(process.pid)
    try:
        assert len(children) >= 3, children  # two workers and the resource tracker
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(pid) for pid in children):
            time.sleep(0.1)

        assert [] == [pid for pid in children if _alive(pid)]
        parts = sorted((out / "parts").glob("*.part"))
        time.sleep(1.5)
        assert parts == sorted((out / "parts").glob("*.part"))  # nothing is still writing
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
