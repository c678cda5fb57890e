"""Reading scenario files: the format, the shipped JSON Schema, and errors that name file and line."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest

from ketacds import ScenarioError
from ketacds._yaml import load_yaml
from ketacds.scenarios import find_scenario_files, load_scenario_file, scenario_schema
from ketacds.scenarios.load import input_path
from support import EXAMPLES, SCENARIO, SCENARIOS
from support import write_scenario as write


def error_of(tmp_path: Path, text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        load_scenario_file(write(tmp_path, text))
    return caught.value


class TestFormat:
    def test_one_scenario_per_file(self, tmp_path):
        """A mapping with `expect` is one scenario, starting at its title line."""
        loaded = load_scenario_file(write(tmp_path, SCENARIO))

        assert ["TRD, esketamine in the US"] == [s.title for s in loaded.scenarios]
        assert 1 == loaded.scenarios[0].line
        assert "esketamine-nasal" == loaded.scenarios[0].context.route

    def test_several_scenarios_inherit_author_and_source(self, tmp_path):
        """`scenarios:` holds a list; the file's author and source are defaults."""
        body = SCENARIO.replace("\n", "\n    ").rstrip()
        again = body.replace("in the US", "again")
        text = f"author: A. Pharmacist\nsource: US-ESK-2019\nscenarios:\n  - {body}\n  - {again}\n"
        text = text.replace(
            "  - title: TRD, esketamine again", "  - source: own\n    title: TRD, esketamine again"
        )
        loaded = load_scenario_file(write(tmp_path, text))

        assert [("A. Pharmacist", "US-ESK-2019"), ("A. Pharmacist", "own")] == [
            (s.author, s.source) for s in loaded.scenarios
        ]
        assert [4, 20] == [s.line for s in loaded.scenarios]

    def test_expectations_keep_their_lines_and_exact_numbers(self, tmp_path):
        """Each expectation knows its line; numbers are exact decimals."""
        text = SCENARIO + "  dose: {label: standard (actual body weight), mg: 34.0, tolerance: 0.05}\n"
        text += "  monitoring: [KCDS-MON-001]\n  data_gaps: [weight]\n  no_data_gaps: true\n"
        expect = load_scenario_file(write(tmp_path, text)).scenarios[0].expect

        assert (13, 14, 15) == (expect.status.line, expect.findings[0].line, expect.absent[0].line)
        assert (Decimal("34.0"), Decimal("0.05"), 16) == (
            expect.dose.mg,
            expect.dose.tolerance,
            expect.dose.line,
        )
        assert (17, 18, 19) == (expect.monitoring[0].line, expect.data_gaps[0].line, expect.no_data_gaps_line)
        assert 7 == expect.count

    def test_text_and_not_text_keep_their_lines(self, tmp_path):
        """`text` and `not_text` are lists of words, each with its line; spacing is folded."""
        text = SCENARIO + "  text: [labelled   TRD]\n  not_text:\n    - 'EU:'\n    - SSRI or SNRI\n"
        expect = load_scenario_file(write(tmp_path, text)).scenarios[0].expect

        assert [("labelled TRD", True, 16), ("EU:", False, 18), ("SSRI or SNRI", False, 19)] == [
            (t.text, t.present, t.line) for t in expect.text
        ]
        assert 6 == expect.count

    def test_findings_by_rule_or_by_category_and_title(self, tmp_path):
        """A finding is a rule id, or a mapping with rule, category, title and severity."""
        text = SCENARIO.replace(
            "findings: [KCDS-CAND-002]",
            "findings:\n"
            "    - {category: candidacy, title: Treatment-resistant  depression (esketamine indication)}\n"
            "    - {rule: KCDS-MON-001, severity: info}",
        )
        first, second = load_scenario_file(write(tmp_path, text)).scenarios[0].expect.findings

        assert ("candidacy", "Treatment-resistant depression (esketamine indication)") == (
            first.category,
            first.title,
        )
        assert ("KCDS-MON-001", "info") == (second.rule_id, second.severity)
        assert "KCDS-MON-001 with severity info" == second.describe()

    def test_describe_and_line_of(self, tmp_path):
        """Expectations name themselves as written; a path without its own line takes its parent's."""
        text = SCENARIO.replace("[KCDS-CAND-002]", "[{category: candidacy, title: TRD criteria not met}]")
        loaded = load_scenario_file(write(tmp_path, text)).scenarios[0]

        assert "candidacy finding “TRD criteria not met”" == loaded.expect.findings[0].describe()
        assert (11, 2) == (loaded.line_of(("context", "nothing")), loaded.line_of(("patient", "weight")))

    def test_dose_none(self, tmp_path):
        """`dose: none` expects no dose advice at all."""
        expect = load_scenario_file(write(tmp_path, SCENARIO + "  dose: none\n")).scenarios[0].expect

        assert expect.dose is not None
        assert expect.dose.none

    def test_the_starter_suite_loads(self):
        """The project's own scenario files load."""
        assert 50 < sum(len(load_scenario_file(p).scenarios) for p in find_scenario_files([SCENARIOS]))


class TestErrors:
    @pytest.mark.parametrize(
        ("change", "line", "message"),
        [
            (
                "  finding: [KCDS-CI-001]\n",
                16,
                "expect.finding: unknown key 'finding' (did you mean 'findings'?)",
            ),
            ("  monitoring: [KCDS-MON-1]\n", 16, "'KCDS-MON-1' is not a rule id like KCDS-CI-001"),
            ("  dose: nothing\n", 16, "expect.dose: expected 'none' or a mapping; got 'nothing'"),
            ("  dose: {mg: -1}\n", 16, "expect.dose.mg: must not be negative, got -1"),
            ("  dose: {}\n", 16, "expect.dose: must not be empty"),
            ("  no_data_gaps: yes please\n", 16, "expected true or false, got text"),
            ("  absent: [{category: candidacy}]\n", 16, "the key 'absent' appears twice"),
            (
                "  data_gaps: [{category: candidacy}]\n",
                16,
                "expect.data_gaps[0]: expected text, got a mapping",
            ),
        ],
    )
    def test_expectation_errors_name_the_line(self, tmp_path, change, line, message):
        """Every mistake in `expect` is reported with its line and what is wrong, in words."""
        error = error_of(tmp_path, SCENARIO + change)

        assert (line, True) == (error.line, message in str(error)), str(error)

    @pytest.mark.parametrize(
        ("old", "new", "message"),
        [
            ("title: TRD, esketamine in the US", "title: 3", "title: expected text, got a number"),
            (
                "patient: {birth_date: 1981-03-14, sex: female, weight: 68 kg, height: 165 cm}",
                "patient: true",
                "patient: expected a mapping, got true or false",
            ),
            (
                "  findings: [KCDS-CAND-002]",
                "  findings: [[KCDS-CAND-002]]",
                "findings[0]: expected a mapping, got a list",
            ),
            ("expect:\n", "expect:\n\n", None),
        ],
    )
    def test_wrong_kinds_of_value(self, tmp_path, old, new, message):
        """A value of the wrong kind says what was expected and what was found."""
        text = SCENARIO.replace(old, new)
        if message is None:
            text = text.split("expect:")[0] + "expect:\n"
            message = "expect: expected a mapping, got nothing"
        assert message in str(error_of(tmp_path, text))

    def test_a_finding_needs_a_rule_or_a_title(self, tmp_path):
        """A finding mapping with neither `rule` nor `title` says what it needs."""
        error = error_of(tmp_path, SCENARIO.replace("[KCDS-CAND-002]", "[{category: candidacy}]"))

        assert "expect.findings[0]: needs 'rule' or 'title'" in str(error)

    def test_case_errors_use_the_case_loader_and_point_at_the_field(self, tmp_path):
        """A unit the engine cannot read is reported at its own line."""
        error = error_of(tmp_path, SCENARIO.replace("weight: 68 kg", "weight: 68 stone"))

        assert (2, "patient.weight: unknown unit 'stone'") == (error.line, error.reason)

    @pytest.mark.parametrize(
        ("old", "new", "line", "message", "suggestion"),
        [
            ("route: esketamine-nasal", "route: esketamine-nasl", 11, "expected one of", None),
            (
                "{code: {system",
                "{clinical_stats: active, code: {system",
                4,
                "conditions[0].clinical_stats",
                "clinical_status",
            ),
            (
                "jurisdiction: US,",
                "jurisdiction: US, setings: home,",
                11,
                "context.setings: unknown field",
                "setting",
            ),
            (
                "{name: systolic,",
                "{name: systolic, codes: x,",
                9,
                "observations[0].codes: unknown field",
                "code",
            ),
        ],
    )
    def test_the_case_loader_judges_the_case_with_a_did_you_mean(
        self, tmp_path, old, new, line, message, suggestion
    ):
        """Case keys and values are judged by the same loader as `ketacds assess`, at their line."""
        error = error_of(tmp_path, SCENARIO.replace(old, new))

        assert (line, True, suggestion) == (error.line, message in error.reason, error.suggestion)

    def test_titles_must_differ(self, tmp_path):
        """Two scenarios with one title are refused, naming the first."""
        body = SCENARIO.replace("\n", "\n    ").rstrip()
        error = error_of(tmp_path, f"scenarios:\n  - {body}\n  - {body}\n")

        assert (17, True) == (error.line, "the first at line 2" in error.reason)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("- a list\n", "a scenario file is a mapping"),
            ("title: only a title\n", "needs 'expect' (one scenario) or 'scenarios'"),
            ("scenarios: []\n", "scenarios: must not be empty"),
            (
                "title: x\nexpect: {}\npatient: {}\n"
                "context: {route: ketamine-iv, jurisdiction: US, now: 2026-01-01T00:00:00Z}\n",
                "title: is too short",
            ),
            ("title: a\n  b: [\n", "not valid YAML"),
            ("expect: {}\n", "'title' is required"),
        ],
    )
    def test_file_level_errors(self, tmp_path, text, message):
        """Files that are not scenarios at all say so."""
        assert message in str(error_of(tmp_path, text))

    def test_unreadable_and_missing_files(self, tmp_path):
        """A missing path or a binary file is a ScenarioError, not a crash."""
        binary = tmp_path / "bin.scenario.yaml"
        binary.write_bytes(b"\xff\xfe\x00")

        with pytest.raises(ScenarioError, match="no such file"):
            find_scenario_files([tmp_path / "nope"])
        with pytest.raises(ScenarioError, match="not a UTF-8 text file"):
            load_scenario_file(binary)
        with pytest.raises(ScenarioError, match="cannot read"):
            load_scenario_file(tmp_path)


class TestDiscovery:
    def test_directories_are_searched_recursively_for_scenario_files(self, tmp_path):
        """Directories yield their *.scenario.yaml files, sorted; a file given by name is taken as is."""
        (tmp_path / "b").mkdir()
        for name in ("b/two.scenario.yaml", "one.scenario.yaml", "notes.yaml"):
            (tmp_path / name).write_text(SCENARIO)
        explicit = tmp_path / "notes.yaml"

        found = find_scenario_files([tmp_path, explicit, tmp_path / "one.scenario.yaml"])

        assert ["b/two.scenario.yaml", "one.scenario.yaml", "notes.yaml"] == [
            p.relative_to(tmp_path).as_posix() for p in found
        ]

    def test_input_paths_become_document_paths(self):
        """`medications[2].unit` → ("medications", 2, "unit")."""
        assert ("medications", 2, "unit") == input_path("medications[2].unit")
        assert () == input_path("(top level)")


class TestSchema:
    def test_the_schema_is_valid_json_schema(self):
        """The shipped schema is itself valid (draft 2020-12)."""
        jsonschema.Draft202012Validator.check_schema(scenario_schema())

    @pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
    def test_every_example_patient_is_a_valid_scenario_case(self, example):
        """The case part of the schema accepts every example patient file (the input format)."""
        data = load_yaml((EXAMPLES / example).read_text())[0]
        data["expect"] = {}
        data.pop("description", None)

        assert [] == [e.message for e in jsonschema.Draft202012Validator(scenario_schema()).iter_errors(data)]
