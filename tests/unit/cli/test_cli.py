"""The ketacds command line, run as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from ketacds.cli import main
from support import EXAMPLES


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run(*args: str) -> Result:
    """Run the CLI in-process (click's runner), with stdout and stderr apart."""
    outcome = CliRunner().invoke(main, list(args))
    if outcome.exception is not None and not isinstance(outcome.exception, SystemExit):
        raise outcome.exception
    return Result(outcome.exit_code, outcome.stdout, outcome.stderr)


def test_installed_command_runs_as_a_process():
    """The `ketacds` console script is installed and runs."""
    result = subprocess.run(
        [sys.executable, "-m", "ketacds.cli", "--version"], capture_output=True, text=True, check=False
    )

    assert 0 == result.returncode
    assert "ketacds, version" in result.stdout


def test_an_anchor_defined_twice_gives_one_line_on_stderr(tmp_path: Path):
    """YAML reusing an anchor name is read (the later one wins); no ruamel warning on stderr.

    Found by the cli fuzz target: the warning made a refusal several lines long.
    """
    case = tmp_path / "case.yaml"
    case.write_text("x: &a [1]\ny: &a [2]\npatient: {sex: female}\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "ketacds.cli", "assess", str(case)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert 2 == result.returncode
    assert [f"error: {case}: x: unknown field"] == result.stderr.splitlines()


def test_text_report():
    """The default report is readable text with the status, findings and their basis."""
    result = run("assess", str(EXAMPLES / "04-esketamine-bp-defer.yaml"))

    assert 0 == result.returncode
    assert "Status: DEFER" in result.stdout
    assert "KCDS-CI-004" in result.stdout
    assert "Because of: diastolic 96 mmHg at 2026-11-21T08:55:00-08:00; systolic 152 mmHg at" in result.stdout


def test_json_report_round_trips():
    """--format json prints the Assessment JSON."""
    result = run("assess", "--format", "json", str(EXAMPLES / "03-esketamine-aortic-aneurysm.yaml"))

    assert 0 == result.returncode
    assert "contraindicated" == json.loads(result.stdout)["status"]


def test_markdown_report():
    """--format markdown prints a findings table."""
    result = run("assess", "--format", "markdown", str(EXAMPLES / "02-trd-iv-ketamine-obese.yaml"))

    assert 0 == result.returncode
    assert "| `KCDS-DOSE-002` |" in result.stdout


def test_overrides_change_the_route():
    """--route and --jurisdiction override the file's context."""
    result = run(
        "assess",
        "--route",
        "ketamine-iv",
        "--jurisdiction",
        "EU",
        str(EXAMPLES / "01-trd-esketamine-us.yaml"),
    )

    assert 0 == result.returncode
    assert "Planned: ketamine-iv in EU" in result.stdout


def test_bad_input_exits_2_with_one_line_naming_the_field(tmp_path: Path):
    """Bad input: exit 2 and a single line that names the field."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "patient: {weight: 70 stone}\n"
        "context: {route: ketamine-iv, jurisdiction: US, now: 2026-11-21T09:00:00Z}\n"
    )
    result = run("assess", str(bad))

    assert 2 == result.returncode
    assert "" == result.stdout
    assert 1 == len(result.stderr.strip().splitlines())
    assert "patient.weight" in result.stderr


def test_missing_file_exits_2(tmp_path: Path):
    """A file that does not exist is bad input."""
    result = run("assess", str(tmp_path / "nope.yaml"))

    assert 2 == result.returncode


def test_several_files_in_json_make_a_list():
    """Two files with --format json print a JSON list of two Assessments."""
    result = run(
        "assess",
        "--format",
        "json",
        str(EXAMPLES / "01-trd-esketamine-us.yaml"),
        str(EXAMPLES / "05-iv-incomplete-record.yaml"),
    )

    assert ["cautions", "incomplete"] == [a["status"] for a in json.loads(result.stdout)]


def test_broken_rules_exit_2(tmp_path: Path):
    """A ruleset directory that does not load is reported in one line, exit 2."""
    result = run("assess", "--rules", str(tmp_path), str(EXAMPLES / "01-trd-esketamine-us.yaml"))

    assert 2 == result.returncode
    assert "no manifest.yaml" in result.stderr


def test_a_deceased_patient_is_not_assessed(tmp_path: Path):
    """patient.deceased: exit 2 with the reason, and no status printed."""
    case = (EXAMPLES / "01-trd-esketamine-us.yaml").read_text(encoding="utf-8")
    path = tmp_path / "deceased.yaml"
    path.write_text(case.replace("patient:\n", "patient:\n  deceased: true\n", 1), encoding="utf-8")

    result = run("assess", str(path))

    assert 2 == result.returncode
    assert "deceased" in result.stderr
    assert "Status" not in result.stdout
