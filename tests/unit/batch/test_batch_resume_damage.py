"""--resume verifies every part file before trusting it: damaged ones are redone, never used.

Each case damages the parts of an interrupted run, then resumes: the output must be
byte for byte the uninterrupted run's, and the damaged part must be named.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from batch_support import outputs, write_cases
from ketacds.batch import BatchOptions, Interrupted, NdjsonReader, run_batch
from ketacds.cli import main


class StopAfter:
    def __init__(self, chunks: int) -> None:
        self.chunks = chunks

    def start(self, total: int | None, done: int) -> None:
        pass

    def advance(self, records: int) -> None:
        self.chunks -= 1
        if self.chunks == 0:
            raise KeyboardInterrupt


def options(source: Path, out: Path, **changes) -> BatchOptions:
    return BatchOptions(input=source, out=out, reader=NdjsonReader(), workers=1, chunk_size=6, **changes)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_cases(tmp_path_factory.mktemp("input") / "cases.ndjson", 30, bad={4: "{oops"})


@pytest.fixture(scope="module")
def complete(source: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("complete") / "results"
    run_batch(options(source, out))
    return out


def interrupted(source: Path, out: Path, chunks: int = 3) -> Path:
    """A run stopped after ``chunks`` committed chunks; returns its parts directory."""
    with pytest.raises(Interrupted):
        run_batch(options(source, out), StopAfter(chunks))
    return out / "parts"


def truncate(parts: Path) -> None:
    path = parts / "000001.part"
    path.write_bytes(path.read_bytes()[:-40])


def duplicate(parts: Path) -> None:
    shutil.copy(parts / "000000.part", parts / "000002.part")


def zero_bytes(parts: Path) -> None:
    (parts / "000001.part").write_bytes(b"")


def garble(parts: Path) -> None:
    path = parts / "000002.part"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x20
    path.write_bytes(bytes(data))


def garbled_header(parts: Path) -> None:
    (parts / "000000.part").write_bytes(b"\x00\xffnot json\n{}\n")


def drop_line(parts: Path) -> None:
    """A whole line removed, and the header's counts and checksum made to match: only the ledger knows."""
    import hashlib
    import json

    path = parts / "000001.part"
    header, *body = path.read_text(encoding="utf-8").splitlines(keepends=True)
    data = json.loads(header)
    body = body[1:]
    data["assessments"] -= 1
    data["records"] -= 1
    data["body_sha256"] = hashlib.sha256("".join(body).encode()).hexdigest()
    path.write_text(json.dumps(data, sort_keys=True) + "\n" + "".join(body), encoding="utf-8")


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (truncate, "000001.part is truncated or altered"),
    "duplicated": (duplicate, "000002.part holds chunk 0, not 2"),
    "zero-byte": (zero_bytes, "000001.part is empty"),
    "garbled": (garble, "000002.part is truncated or altered"),
    "garbled header": (garbled_header, "000000.part has no readable header"),
    "consistent but short": (drop_line, "000001.part holds records 6..10, not those the ledger recorded"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_part_is_redone_and_the_output_is_exact(source, complete, tmp_path, case):
    damage, expected = DAMAGE[case]
    out = tmp_path / "results"
    damage(interrupted(source, out))

    result = run_batch(options(source, out, resume=True))

    assert 1 == len(result.redone), result.redone
    assert result.redone[0].startswith(expected)
    assert outputs(complete) == outputs(out)


def test_a_part_of_another_run_is_redone(source, complete, tmp_path):
    """Same chunk number, another input: its header names another run."""
    other = write_cases(tmp_path / "other.ndjson", 30, seed=7)
    foreign = interrupted(other, tmp_path / "other-results")
    out = tmp_path / "results"
    parts = interrupted(source, out, chunks=1)
    shutil.copy(foreign / "000001.part", parts / "000001.part")

    result = run_batch(options(source, out, resume=True))

    assert ("000001.part belongs to another run",) == result.redone
    assert outputs(complete) == outputs(out)


def test_a_part_missing_from_the_ledger_is_redone(source, complete, tmp_path):
    """A part committed as the run was killed, before the ledger line was written."""
    out = tmp_path / "results"
    interrupted(source, out)
    ledger = out / "manifest.parts.ndjson"
    ledger.write_text("".join(ledger.read_text().splitlines(keepends=True)[:-1]) + '{"chunk": 2, "fi')

    result = run_batch(options(source, out, resume=True))

    assert ("000002.part is not in the run's ledger (written as the run was stopped?)",) == result.redone
    assert outputs(complete) == outputs(out)


def test_good_parts_are_kept(source, complete, tmp_path):
    out = tmp_path / "results"
    interrupted(source, out)

    result = run_batch(options(source, out, resume=True))

    assert () == result.redone
    assert 30 - 18 + 1 == result.records  # only the three chunks not yet done (31 records in all)
    assert outputs(complete) == outputs(out)


def test_the_command_line_names_each_redone_part(source, complete, tmp_path):
    out = tmp_path / "results"
    zero_bytes(interrupted(source, out))

    outcome = CliRunner().invoke(
        main,
        [
            "batch",
            str(source),
            "--out",
            str(out),
            "--workers",
            "1",
            "--chunk-size",
            "6",
            "--resume",
            "--quiet",
        ],
    )

    assert 0 == outcome.exit_code, outcome.output
    assert "warning: resume: parts/000001.part is empty; assessed again" in outcome.stderr
    assert outputs(complete) == outputs(out)
