"""The pharmacists' commands: scenarios run / coverage / mutate, explain, and what-if on assess."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketacds.cli import main
from support import EXAMPLES, SCENARIO, SLICE_RULES, write_scenario


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run(*args: str | Path) -> Result:
    """Run a command on the frozen 0.1.0 rules (a later --rules in ``args`` wins)."""
    words = [str(a) for a in args]
    at = 2 if words[0] == "scenarios" else 1
    outcome = CliRunner().invoke(main, [*words[:at], "--rules", str(SLICE_RULES), *words[at:]])
    if outcome.exception is not None and not isinstance(outcome.exception, SystemExit):
        raise outcome.exception
    return Result(outcome.exit_code, outcome.stdout, outcome.stderr)


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    """A directory with two passing scenarios in one file."""
    body = SCENARIO.replace("\n", "\n    ").rstrip()
    high = body.replace("title: TRD, esketamine in the US", "title: Systolic 150 defers").replace(
        "value: 128", "value: 150"
    )
    high = high.replace("status: no-concerns-found", "status: defer").replace(
        "absent: [KCDS-CI-004]", "absent: []"
    )
    folder = tmp_path / "suite"
    folder.mkdir()
    write_scenario(folder, f"scenarios:\n  - {body}\n  - {high}\n", "pair.scenario.yaml")
    return folder


@pytest.fixture
def wrong(tmp_path: Path) -> Path:
    """A scenario with a deliberately wrong status."""
    path = tmp_path / "wrong.scenario.yaml"
    path.write_text(SCENARIO.replace("status: no-concerns-found", "status: contraindicated"))
    return path


class TestRun:
    def test_a_passing_suite(self, tmp_path, suite):
        """All scenarios pass: exit 0, a table and a summary; JUnit XML on request."""
        junit = tmp_path / "junit.xml"
        result = run("scenarios", "run", suite, "--junit-xml", junit)

        assert 0 == result.returncode
        assert "| pass" in result.stdout.replace("│", "|")
        assert "2 passed, 0 failed, 0 in error" in result.stdout
        assert "0" == ET.parse(junit).getroot().find("testsuite").get("failures")

    def test_a_failure_prints_the_clinical_diff_and_exits_1(self, wrong):
        """A wrong expectation: exit 1 and the diff, pointing at the YAML line."""
        result = run("scenarios", "run", "--quiet", wrong)

        assert 1 == result.returncode
        assert "FAIL: TRD, esketamine in the US" in result.stdout
        assert "  ✗ Overall status  (line 13)" in result.stdout
        assert "0 passed, 1 failed, 0 in error" in result.stdout

    def test_a_bad_file_exits_2_and_the_others_still_run(self, tmp_path, wrong):
        """A file that is not a scenario is reported on stderr with its line; exit 2."""
        (tmp_path / "bad.scenario.yaml").write_text(SCENARIO.replace("expect:", "expected:"))
        result = run("scenarios", "run", tmp_path)

        assert 2 == result.returncode
        assert "bad.scenario.yaml:12: expected: unknown key 'expected' (did you mean 'expect'?)" in (
            result.stderr.replace("\n", "")
        )
        assert "0 passed, 1 failed, 0 in error, 1 bad file(s)" in result.stdout

    def test_keyword_and_backend(self, suite):
        """-k selects scenarios by title; --backend reference runs the oracle."""
        result = run("scenarios", "run", "-k", "systolic 150", "--backend", "reference", suite)

        assert "1 passed, 0 failed" in result.stdout
        assert "reference" in result.stdout

    def test_broken_rules_exit_2(self, tmp_path, suite):
        """A ruleset directory that does not load is one line on stderr, exit 2."""
        result = run("scenarios", "run", "--rules", tmp_path, suite)

        assert (2, True) == (result.returncode, "no manifest.yaml" in result.stderr)


class TestCoverage:
    def test_report_and_markdown(self, tmp_path, suite):
        """The table, the summary line, and a Markdown file."""
        markdown = tmp_path / "reports" / "coverage.md"
        result = run("scenarios", "coverage", suite, "--fail-under-rs", "10", "--markdown", markdown)

        assert 0 == result.returncode
        assert "2 scenarios · R/S rules fired: 5/23 (22%)" in result.stdout
        assert "KCDS-CAND-001" in result.stdout
        assert markdown.read_text().startswith("# Rule coverage")

    def test_fail_under_rs(self, tmp_path):
        """One scenario cannot fire every R and S rule: exit 1, naming the rules never fired."""
        path = tmp_path / "one.scenario.yaml"
        path.write_text(SCENARIO)
        result = run("scenarios", "coverage", "--quiet", "--fail-under-rs", "100", path)

        assert 1 == result.returncode
        assert "KCDS-" not in result.stdout.split("\n", 1)[0] or "Rule coverage" not in result.stdout
        assert "never fired: KCDS-CAND-003" in result.stderr.replace("\n", "")

    def test_bad_files_exit_2(self, tmp_path):
        """Coverage of a bad file is refused."""
        (tmp_path / "bad.scenario.yaml").write_text("- no\n")

        assert 2 == run("scenarios", "coverage", tmp_path).returncode


class TestMutate:
    def test_report_survivors_and_fail_under(self, tmp_path):
        """One rule, a small sample: the table, survivors, the score; --fail-under 100 fails."""
        path = tmp_path / "one.scenario.yaml"
        path.write_text(SCENARIO)
        markdown = tmp_path / "mutation.md"
        result = run(
            "scenarios",
            "mutate",
            path,
            "--rule",
            "KCDS-CI-004",
            "--max-mutants",
            "4",
            "--markdown",
            markdown,
            "--fail-under",
            "100",
        )

        assert 1 == result.returncode
        assert "contraindications.yaml" in result.stdout
        assert "mutation score" in result.stdout
        assert "below 100%" in result.stderr
        assert "a sample of 4 of" in markdown.read_text()

    def test_operator_filter_and_baseline_failures(self, wrong):
        """Scenarios that fail on the real rules are named and left out."""
        result = run("scenarios", "mutate", "--quiet", "--operator", "flip", "--rule", "KCDS-MON-001", wrong)

        assert 0 == result.returncode
        assert "left out (fails on the real rules)" in result.stdout

    def test_bad_files_exit_2(self, tmp_path):
        """Mutation testing with a bad file is refused."""
        (tmp_path / "bad.scenario.yaml").write_text("- no\n")

        assert 2 == run("scenarios", "mutate", tmp_path).returncode


class TestExplain:
    def test_text_for_a_patient_file(self):
        """Why the blood-pressure rule fired for example 04."""
        result = run("explain", EXAMPLES / "04-esketamine-bp-defer.yaml", "--rule", "KCDS-CI-004")

        assert 0 == result.returncode
        assert result.stdout.startswith("KCDS-CI-004 · Pre-dose blood pressure above 140/90 mmHg\n")
        assert "✓ value above 140 — value is 152 mmHg" in result.stdout

    def test_overrides_and_edits(self):
        """--route and what-if edits explain an edited copy of the case."""
        result = run(
            "explain",
            EXAMPLES / "04-esketamine-bp-defer.yaml",
            "--rule",
            "KCDS-CI-004",
            "--rule",
            "KCDS-DOSE-001",
            "--route",
            "ketamine-iv",
        )

        assert "DOES NOT APPLY to ketamine-iv in US" in result.stdout
        assert "KCDS-DOSE-001 · IV ketamine 0.5 mg/kg over 40 minutes" in result.stdout

    def test_json(self):
        """--format json gives the explanation as data."""
        result = run(
            "explain", EXAMPLES / "04-esketamine-bp-defer.yaml", "--rule", "KCDS-CI-001", "--format", "json"
        )
        data = json.loads(result.stdout)

        assert ("KCDS-CI-001", "not-fired") == (data["rule_id"], data["verdict"])

    def test_several_rules_in_json_make_a_list(self):
        """Two rules in JSON: a list."""
        result = run(
            "explain",
            EXAMPLES / "04-esketamine-bp-defer.yaml",
            "--rule",
            "KCDS-CI-001",
            "--rule",
            "KCDS-CI-004",
            "--format",
            "json",
        )

        assert ["KCDS-CI-001", "KCDS-CI-004"] == [e["rule_id"] for e in json.loads(result.stdout)]

    def test_a_scenario_in_a_scenario_file(self, suite):
        """In a file of several scenarios, --scenario picks one by title or number; overrides apply."""
        pair = suite / "pair.scenario.yaml"
        by_title = run("explain", pair, "--scenario", "systolic 150 defers", "--rule", "KCDS-CI-004")
        by_number = run("explain", pair, "--scenario", "1", "--rule", "KCDS-CI-004", "--jurisdiction", "EU")

        assert "FIRED for esketamine-nasal in US." in by_title.stdout
        assert "DID NOT FIRE for esketamine-nasal in EU." in by_number.stdout

    def test_a_file_of_one_scenario_needs_no_choice(self, tmp_path):
        """A scenario file with one scenario is explained without --scenario."""
        path = tmp_path / "one.scenario.yaml"
        path.write_text(SCENARIO)

        assert "FIRED for esketamine-nasal in US." in run("explain", path, "--rule", "KCDS-CAND-002").stdout

    @pytest.mark.parametrize(
        ("file", "args", "message"),
        [
            (EXAMPLES / "04-esketamine-bp-defer.yaml", ("--rule", "KCDS-CI-04"), "did you mean KCDS-CI-004?"),
            ("pair.scenario.yaml", ("--scenario", "nope"), "no scenario titled 'nope'"),
            (
                "pair.scenario.yaml",
                (),
                "holds 2 scenarios; choose one: 1. TRD, esketamine in the US; 2. Systolic",
            ),
        ],
    )
    def test_errors_exit_2(self, suite, file, args, message):
        """An unknown rule or scenario is one line on stderr, exit 2."""
        result = run("explain", suite / file, "--rule", "KCDS-CI-004", *args)

        assert 2 == result.returncode
        assert message in result.stderr.replace("\n", "")


class TestWhatIf:
    def test_assess_with_edits_shows_what_changed(self):
        """--set and --add-med re-assess and list the changes, then the edited report."""
        result = run(
            "assess",
            EXAMPLES / "02-trd-iv-ketamine-obese.yaml",
            "--set",
            "weight=120kg",
            "--remove-med",
            "benzodiazepines",
        )

        assert 0 == result.returncode
        assert result.stdout.startswith("What if: weight=120kg; − med benzodiazepines\n")
        assert (
            "  − KCDS-INT-002 Benzodiazepine with IV ketamine (CNS and respiratory depression) [caution]"
            in result.stdout
        )
        assert "(edited)" in result.stdout

    def test_json_and_markdown(self):
        """JSON carries the edits, the changes and both Assessments; Markdown a section of changes."""
        args = ("assess", EXAMPLES / "01-trd-esketamine-us.yaml", "--add-condition", "icd-10-cm:I71.40")
        data = json.loads(run(*args, "--format", "json").stdout)
        markdown = run(*args, "--format", "markdown").stdout

        assert (["+ condition icd-10-cm:I71.40"], "cautions", "contraindicated") == (
            data["edits"],
            data["before"]["status"],
            data["after"]["status"],
        )
        assert markdown.startswith(
            "## What if: + condition icd-10-cm:I71.40\n\n- Status: cautions → contraindicated\n"
        )

    def test_a_bad_edit_exits_2_naming_it(self):
        """An edit that cannot apply is bad input: one line, exit 2."""
        result = run("assess", EXAMPLES / "01-trd-esketamine-us.yaml", "--remove-med", "aspirin")

        assert 2 == result.returncode
        assert "--remove-med aspirin: nothing matches" in result.stderr.replace("\n", "")
