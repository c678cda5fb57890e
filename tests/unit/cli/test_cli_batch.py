"""`ketacds batch` at the command line: what it prints, writes, and exits with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from batch_support import write_cases
from ketacds.batch import BatchError, Interrupted
from ketacds.cli import batch as cli_batch
from ketacds.cli import main
from support import EXAMPLES, FHIR_BUNDLES


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
        "GB",
        "--override-context",
    )
    lines = [json.loads(line) for line in (out / "assessments.ndjson").read_text().splitlines()]

    assert 0 == result.exit_code, result.output
    assert "" == result.stdout
    assert len(list(EXAMPLES.glob("*.yaml"))) == len(lines)
    assert {"GB"} == {line["assessment"]["provenance"]["jurisdiction"] for line in lines}


def test_the_synthea_bundles_are_read_as_a_population(tmp_path: Path):
    """The shared Synthea bundles, as a directory, are one record each; the deceased are not assessed."""
    out = tmp_path / "out"
    context = ("--route", "esketamine-nasal", "--jurisdiction", "US", "--now", "2026-11-21T09:00:00Z")
    result = run(str(FHIR_BUNDLES), "--out", str(out), "--workers", "2", "--quiet", *context)
    lines = [json.loads(line) for line in (out / "assessments.ndjson").read_text().splitlines()]

    patients = [
        next(
            e["resource"]["id"]
            for e in json.loads(f.read_text())["entry"]
            if e["resource"]["resourceType"] == "Patient"
        )
        for f in sorted(FHIR_BUNDLES.glob("*.json"))
    ]
    deceased = [
        e["resource"]["id"]
        for f in sorted(FHIR_BUNDLES.glob("*.json"))
        for e in json.loads(f.read_text())["entry"]
        if e["resource"]["resourceType"] == "Patient" and "deceasedDateTime" in e["resource"]
    ]
    errors = [json.loads(line) for line in (out / "errors.ndjson").read_text().splitlines()]

    assert 0 == result.exit_code, result.output
    assert deceased, "the shared bundles hold deceased patients"
    assert [p for p in patients if p not in deceased] == [line["patient"] for line in lines]
    assert deceased == [e["patient"] for e in errors]
    assert {"NotAssessedError"} == {e["error"] for e in errors}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--input-format", "no-such-format"), "unknown input format"),
        (("--input-format", "fhir-bundles"), "fhir-bundles input carries no treatment context"),
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


def test_the_compiled_backend_gives_the_durable_lines_but_the_engine_name(source: Path, tmp_path: Path):
    """--backend compiled: the same output lines, provenance naming the generated Python; the
    backend is in the manifest, so a resume with another backend is refused."""
    from ketacds.engine.backends.compiled import COMPILED_ENGINE_NAME
    from ketacds.engine.backends.durable import ENGINE_NAME

    durable, compiled = tmp_path / "durable", tmp_path / "compiled"
    assert 0 == run(str(source), "--out", str(durable), "--workers", "1", "--quiet").exit_code
    result = run(str(source), "--out", str(compiled), "--workers", "1", "--quiet", "--backend", "compiled")
    again = run(str(source), "--out", str(compiled), "--workers", "1", "--quiet", "--resume")

    assert 0 == result.exit_code, result.output
    lines = (compiled / "assessments.ndjson").read_text()
    assert COMPILED_ENGINE_NAME in lines
    assert lines.replace(COMPILED_ENGINE_NAME, ENGINE_NAME) == (durable / "assessments.ndjson").read_text()
    assert "backend" not in json.loads((durable / "manifest.json").read_text())
    assert "compiled" == json.loads((compiled / "manifest.json").read_text())["backend"]
    assert 0 != again.exit_code
    assert "backend" in again.output
