"""Running scenarios: expectations checked against rules and Assessment, the clinical diff, JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ketacds import ScenarioError
from ketacds.scenarios import load_scenario_file, load_suite, run_scenario, run_suite, validate, write_junit
from support import SCENARIO, write_scenario


@pytest.fixture
def engine(slice_engine):
    """These tests assert exact rule content: they run on the frozen 0.1.0 rules."""
    return slice_engine


def scenario(tmp_path: Path, text: str = SCENARIO):
    return load_scenario_file(write_scenario(tmp_path, text)).scenarios[0]


def with_expect(expect: str) -> str:
    return SCENARIO.split("expect:")[0] + "expect:\n" + expect


class TestValidate:
    @pytest.mark.parametrize(
        ("expect", "message", "suggestion"),
        [
            ("  status: contraindicatd\n", "unknown status 'contraindicatd'", "contraindicated"),
            ("  findings: [KCDS-CI-010]\n", "no rule KCDS-CI-010 in ketacds-core", "KCDS-CI-004"),
            (
                "  absent: [{rule: KCDS-CI-001, severity: absolut}]\n",
                "unknown severity 'absolut'",
                "absolute",
            ),
            (
                "  findings: [{title: Aneurysmal vascular diseas}]\n",
                "no rule has the title",
                "Aneurysmal vascular disease",
            ),
            ("  findings: [KCDS-CAND-001]\n", "is a derivation rule", None),
            ("  monitoring: [KCDS-CI-001]\n", "KCDS-CI-001 is not a monitoring rule", "KCDS-MON-001"),
            ("  data_gaps: [wieght]\n", "no data-gap rule is about 'wieght'", "weight"),
            ("  dose: {label: standard}\n", "no dosing rule has the label 'standard'", None),
        ],
    )
    def test_names_the_rules_lack_are_errors_at_their_line(
        self, tmp_path, engine, expect, message, suggestion
    ):
        """A misspelt name would make an expectation pass forever, so it is a bad scenario instead."""
        with pytest.raises(ScenarioError) as caught:
            validate(scenario(tmp_path, with_expect(expect)), engine.ruleset)

        assert (13, True, suggestion) == (
            caught.value.line,
            message in caught.value.reason,
            caught.value.suggestion,
        )

    def test_names_may_be_written_in_any_case(self, tmp_path, engine):
        """Data gaps, titles and dose labels are matched without regard to case or spacing."""
        expect = (
            "  data_gaps: [Weight, kcds-gap-001]\n"
            "  findings: [{title: aneurysmal  vascular disease}]\n"
            "  dose: {label: Standard (actual body weight)}\n"
        )
        validate(
            scenario(tmp_path, with_expect(expect).replace("kcds-gap-001", "KCDS-GAP-001")), engine.ruleset
        )


class TestOutcomes:
    def test_a_scenario_that_holds_passes(self, tmp_path, engine):
        """Every expectation met: pass, with the Assessment kept."""
        result = run_scenario(engine, scenario(tmp_path))

        assert ("pass", (), "") == (result.outcome, result.mismatches, result.report)
        assert "no-concerns-found" == result.assessment.status

    def test_every_kind_of_expectation_can_fail(self, tmp_path, engine):
        """Each wrong expectation is one mismatch, in file order, with its line."""
        expect = (
            "  status: contraindicated\n"
            "  findings: [KCDS-CI-001, {rule: KCDS-CAND-002, severity: caution}]\n"
            "  absent: [KCDS-MON-002]\n"
            "  dose: {mg: 34}\n"
            "  monitoring: [KCDS-MON-003]\n"
            "  data_gaps: [weight]\n"
        )
        result = run_scenario(engine, scenario(tmp_path, with_expect(expect)))

        assert "fail" == result.outcome
        assert [
            ("status", 13),
            ("finding", 14),
            ("finding", 14),
            ("absent", 15),
            ("dose", 16),
            ("monitoring", 17),
            ("data-gap", 18),
        ] == [(m.kind, m.line) for m in result.mismatches]

    def test_no_data_gaps_and_dose_none(self, tmp_path, engine):
        """`no_data_gaps` fails on any gap; `dose: none` fails on any dose."""
        text = with_expect("  no_data_gaps: true\n  dose: none\n").replace("birth_date: 1981-03-14, ", "")
        text = text.replace("route: esketamine-nasal", "route: ketamine-iv")
        result = run_scenario(engine, scenario(tmp_path, text))

        assert ["dose", "no-data-gaps"] == [m.kind for m in result.mismatches]
        assert ("KCDS-DOSE-001",) == result.mismatches[0].why

    def test_text_and_not_text_search_what_the_rules_say(self, tmp_path, engine):
        """`text` must be in the Assessment's text and `not_text` must not; case and spacing do not matter.

        In the frozen 0.1.0 rules KCDS-CAND-002 prints both labels' management in a US
        assessment: `not_text` catches it and names the rule and the field.
        """
        expect = (
            "  text: [labelled  TRD INDICATION, an absent phrase]\n"
            "  not_text: ['EU: with an SSRI', 'Japan:']\n"
        )
        result = run_scenario(engine, scenario(tmp_path, with_expect(expect)))

        assert [("text", 13), ("not-text", 14)] == [(m.kind, m.line) for m in result.mismatches]
        missing, found = result.mismatches
        assert "“an absent phrase”" in missing.summary
        assert ("KCDS-CAND-002",) == found.why
        assert found.actual.startswith("KCDS-CAND-002 management: “US: as monotherapy")
        assert "✗ The Assessment's text must not contain “EU: with an SSRI”  (line 14)" in result.report

    def test_not_text_ignores_the_patients_own_data(self, tmp_path, engine):
        """The record's words ("because of" labels) are not the rules' text: a drug name is not found."""
        result = run_scenario(engine, scenario(tmp_path, with_expect("  not_text: [venlafaxine]\n")))

        assert ("pass", "venlafaxine") == (result.outcome, result.assessment.findings[0].basis[-1].label[:11])

    def test_empty_text_is_a_bad_scenario(self, tmp_path, engine):
        """Text that is only spaces would be found everywhere (or nowhere): an error at its line."""
        with pytest.raises(ScenarioError) as caught:
            validate(scenario(tmp_path, with_expect("  not_text: ['  ']\n")), engine.ruleset)

        assert (13, "the text to look for is empty") == (caught.value.line, caught.value.reason)

    def test_dose_values_are_compared_within_the_tolerance(self, tmp_path, engine):
        """34.0 mg is 0.5 mg/kg × 68 kg; a tolerance covers a near value, not a far one."""
        base = with_expect(
            "  dose: {mg: 34.1, mg_per_kg: 0.5, dosing_weight_kg: 68, infusion_minutes: 40, TOL}\n"
        )
        base = base.replace("route: esketamine-nasal", "route: ketamine-iv")
        near = run_scenario(engine, scenario(tmp_path, base.replace("TOL", "tolerance: 0.1")))
        far = run_scenario(engine, scenario(tmp_path, base.replace(", TOL", "")))

        assert ("pass", "fail") == (near.outcome, far.outcome)
        assert "34.1 mg, over 40 min, 0.5 mg/kg, dosing weight 68 kg" == far.mismatches[0].expected
        tight = run_scenario(engine, scenario(tmp_path, base.replace("TOL", "tolerance: 0.01")))
        assert tight.mismatches[0].expected.endswith("(± 0.01)")

    def test_a_missing_labelled_dose_explains_the_rule(self, tmp_path, engine):
        """Expecting the ideal-body-weight dose when BMI is below 30 names the rule that did not fire."""
        text = with_expect("  dose: {label: 'alternative (ideal body weight, Devine)', mg: 30}\n")
        result = run_scenario(
            engine, scenario(tmp_path, text.replace("route: esketamine-nasal", "route: ketamine-iv"))
        )

        assert ("KCDS-DOSE-002",) == result.mismatches[0].why_not
        assert "BMI 30 or more — BMI is 25" in result.report

    def test_a_finding_found_under_another_severity(self, tmp_path, engine):
        """A finding that fired with another severity than expected says which."""
        result = run_scenario(
            engine, scenario(tmp_path, with_expect("  findings: [{rule: KCDS-MON-001, severity: caution}]\n"))
        )

        assert ("severity caution", "reported with severity info") == (
            result.mismatches[0].expected,
            result.mismatches[0].actual,
        )

    def test_bad_scenarios_and_bad_cases_are_errors_not_failures(self, tmp_path, engine):
        """An unknown rule id, or a jurisdiction the rules do not know, is a bad scenario at its line."""
        unknown = run_scenario(engine, scenario(tmp_path, with_expect("  findings: [KCDS-XX-001]\n")))
        elsewhere = run_scenario(
            engine, scenario(tmp_path, SCENARIO.replace("jurisdiction: US", "jurisdiction: ZZ"))
        )

        assert ("error", True) == (unknown.outcome, unknown.bad_scenario)
        assert "case.scenario.yaml:13: no rule KCDS-XX-001" in unknown.report
        assert ("error", True) == (elsewhere.outcome, elsewhere.bad_scenario)
        assert "case.scenario.yaml:11: context.jurisdiction: unknown jurisdiction 'ZZ'" in elsewhere.report

    def test_an_engine_failure_is_an_error_of_the_engine(self, tmp_path, engine, monkeypatch):
        """If the engine fails, the scenario is in error and the scenario is not blamed."""
        from ketacds import EvaluationError

        def fail(*_args, **_kwargs):
            raise EvaluationError("boom", rule_id="KCDS-CI-001")

        monkeypatch.setattr(engine, "assess", fail)
        result = run_scenario(engine, scenario(tmp_path))

        assert ("error", False) == (result.outcome, result.bad_scenario)
        assert "the engine failed, no result: rule KCDS-CI-001: boom" in result.report
        suite = run_suite(engine, [scenario(tmp_path)])
        write_junit(suite, tmp_path / "junit.xml")
        error = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite/testcase/error")

        assert 3 == suite.exit_code
        assert "the engine failed, no result: rule KCDS-CI-001: boom" == error.get("message")


class TestClinicalDiff:
    def test_a_wrong_expectation_reads_as_a_clinical_diff(self, tmp_path, engine):
        """The diff names the scenario line, expected vs engine, and why the rule did not fire."""
        text = SCENARIO.replace("  absent: [KCDS-CI-004]\n", "  findings: [KCDS-CI-001]\n").replace(
            "  findings: [KCDS-CAND-002]\n", ""
        )
        text = text.replace(
            "code: F33.2}}", "code: F33.2}}\n  - {name: aortic aneurysm, clinical_status: resolved}"
        )
        text = text.replace("status: no-concerns-found", "status: contraindicated")
        report = run_scenario(engine, scenario(tmp_path, text)).report
        lines = report.splitlines()

        assert lines[0] == "FAIL: TRD, esketamine in the US"
        assert "case.scenario.yaml:1" in lines[1]
        assert "  ✗ Overall status  (line 14)" in lines
        assert "      expected:    contraindicated — An absolute contraindication applies." in report
        assert (
            "        KCDS-CI-001 Aneurysmal vascular disease: it needs: is active — it is not active" in lines
        )
        assert "  ✗ Finding KCDS-CI-001 Aneurysmal vascular disease must be present  (line 15)" in lines
        assert "          Closest: aortic aneurysm (resolved)" in lines
        assert "            ✗ is active — it is not active" in lines
        assert "          Near miss: one condition short of firing." in lines
        assert "  2 of 2 expectations did not hold." in lines

    def test_an_unexpected_finding_shows_the_facts_it_matched(self, tmp_path, engine):
        """For a finding that must be absent, the diff shows why it fired."""
        text = with_expect("  absent: [KCDS-INT-001]\n").replace(
            "trials:", "medications:\n  - {name: Klonopin, dose: 0.5, unit: mg, frequency: qhs}\ntrials:"
        )
        report = run_scenario(engine, scenario(tmp_path, text)).report

        assert "          Matched: Klonopin 0.5 mg 1/day (active)" in report
        assert (
            "          The rule says: A benzodiazepine with esketamine adds CNS depression: more sedation."
            in report
        )

    def test_a_status_that_is_not_serious_enough_lists_the_candidates(self, tmp_path, engine, monkeypatch):
        """Expecting "incomplete" on a complete record lists the gap rules and why each did not fire."""
        from ketacds.scenarios import diff

        monkeypatch.setattr(diff, "_MAX_CANDIDATES", 4)
        text = with_expect("  status: incomplete\n").replace(
            "title: TRD", "source: US-ESK-2019 §1\ntitle: TRD"
        )
        report = run_scenario(engine, scenario(tmp_path, text)).report

        assert "  Source: US-ESK-2019 §1" in report
        assert "      rules that could give incomplete here, and why they did not fire:" in report
        assert "        KCDS-GAP-002 Blood pressure not recorded: it needs: no observation with:" in report
        assert (
            "        KCDS-GAP-006 No active depressive disorder recorded: it needs: no condition with:"
            in report
        )
        assert "        … and 1 more" in report

    def test_a_status_that_is_too_serious_names_the_deciding_findings(self, tmp_path, engine):
        """Expecting less than the engine says shows the findings that set the status, with their basis."""
        text = with_expect("  status: no-concerns-found\n").replace("value: 128", "value: 150")
        report = run_scenario(engine, scenario(tmp_path, text)).report

        assert (
            "      decided by:  KCDS-CI-004 Pre-dose blood pressure above 140/90 mmHg, "
            "because of: systolic 150 mmHg" in report
        )


class TestSuite:
    def test_exit_codes(self, tmp_path, engine):
        """0 all pass, 1 a failure, 2 a bad scenario or file, 3 an engine failure."""
        good, bad_file = tmp_path / "good.scenario.yaml", tmp_path / "bad.scenario.yaml"
        good.write_text(SCENARIO)
        bad_file.write_text("- not a scenario\n")
        scenarios, errors = load_suite([tmp_path])
        failing = scenario(tmp_path, with_expect("  status: defer\n"))
        unknown = scenario(tmp_path, with_expect("  findings: [KCDS-XX-001]\n"))

        assert 0 == run_suite(engine, scenarios).exit_code
        assert 1 == run_suite(engine, [*scenarios, failing]).exit_code
        assert 2 == run_suite(engine, scenarios, file_errors=errors).exit_code
        assert 2 == run_suite(engine, [failing, unknown]).exit_code
        assert [] == load_suite([tmp_path / "missing"])[0]

    def test_junit_xml(self, tmp_path, engine):
        """One testcase per scenario, with the diff as the failure text and bad files as errors."""
        failing = scenario(tmp_path, with_expect("  status: defer\n"))
        passing = scenario(tmp_path)
        problem = ScenarioError("unknown key", file="x.scenario.yaml", line=3)
        path = tmp_path / "out" / "junit.xml"

        write_junit(run_suite(engine, [passing, failing], file_errors=[problem]), path)
        suite = ET.parse(path).getroot().find("testsuite")

        assert ("3", "1", "1") == (suite.get("tests"), suite.get("failures"), suite.get("errors"))
        cases = suite.findall("testcase")
        assert ["(scenario file)", "TRD, esketamine in the US", "TRD, esketamine in the US"] == [
            c.get("name") for c in cases
        ]
        assert cases[2].find("failure").text.startswith("FAIL: TRD, esketamine in the US")
        assert "1" == cases[1].get("line")
