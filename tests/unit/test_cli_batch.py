"""`ketacds batch` at the command line: what it prints, writes, and exits with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from batch_support import write_cases
from ketacds import cli_batch
from ketacds.batch import BatchError, Interrupted
from ketacds.cli import main
from support import EXAMPLES


def run(*args: str):
    return CliRunner().invoke(main, ["batch", *args])


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_cases(tmp_path_factory.mktemp("input") / "cases.ndjson", 12, bad={2: "[]"})


def test_a_run_prints_the_summary_and_where_the_files_are(source: Path, tmp_path: Path):
    """A complete run exits 0 and prints status counts, findings, bad records and the files written."""
    result = run(str(source), "--out", str(tmp_path / "out"), "--workers", "1")

    assert 0 == result.exit_code, result.output
    assert "Status" in result.stdout
    assert "13 records: 12 assessed, 1 could not be" in result.stdout
    assert "assessments.ndjson" in result.stdout


def test_a_directory_of_case_files_with_default_context(tmp_path: Path):
    """The example case files are read as a directory; --jurisdiction overrides with --override-context."""
    out = tmp_path / "out"
    result = run(
        str(EXAMPLES),
        "--out",
        str(out),
        "--workers",
        "1",
        "--quiet",
        "--jurisdiction",
        "CA",
        "--override-context",
    )
    lines = [json.loads(line) for line in (out / "assessments.ndjson").read_text().splitlines()]

    assert 0 == result.exit_code, result.output
    assert "" == result.stdout
    assert len(list(EXAMPLES.glob("*.yaml"))) == len(lines)
    assert {"CA"} == {line["assessment"]["provenance"]["jurisdiction"] for line in lines}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--input-format", "fhir-bulk"), "unknown input format"),
        (("--rules", "/nonexistent"), "no manifest.yaml"),
    ],
)
def test_bad_options_exit_2(source: Path, tmp_path: Path, args: tuple[str, ...], message: str):
    """An unknown input format or a ruleset that does not load: exit 2 with one line."""
    result = run(str(source), "--out", str(tmp_path / "out"), "--workers", "1", *args)

    assert 2 == result.exit_code
    assert message in result.stderr


def test_a_missing_input_exits_2(tmp_path: Path):
    """An input that does not exist is bad input."""
    result = run(str(tmp_path / "none.ndjson"), "--out", str(tmp_path / "out"))

    assert 2 == result.exit_code
    assert "no such file" in result.stderr


def test_an_occupied_output_directory_exits_2(source: Path, tmp_path: Path):
    """--out holding another run is refused (exit 2), pointing at --resume."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "something").write_text("x")
    result = run(str(source), "--out", str(tmp_path / "out"), "--workers", "1")

    assert 2 == result.exit_code
    assert "--resume" in result.stderr


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [(BatchError("workers keep dying"), 3, "workers keep dying"), (Interrupted("stopped"), 130, "--resume")],
)
def test_failures_and_interruptions_have_their_exit_codes(
    source, tmp_path, monkeypatch, error, code, message
):
    """Workers that keep dying exit 3; Ctrl-C exits 130 and says how to finish."""

    def fail(options, progress):
        raise error

    monkeypatch.setattr(cli_batch, "run_batch", fail)
    result = run(str(source), "--out", str(tmp_path / "out"))

    assert code == result.exit_code
    assert message in result.stderr
