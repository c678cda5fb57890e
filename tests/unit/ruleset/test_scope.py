"""Scope completeness: declared safety concepts, labels followed, refused programs.

Design principle 6: scoping never leaves a hole. Every program (route × jurisdiction)
covers each safety concept the manifest declares for its route, follows a label that
does, or is refused; never an assessment with fewer rules.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner

from ketacds import (
    Condition,
    Context,
    Engine,
    InputError,
    Observation,
    Patient,
    PatientRecord,
    ProgramRefusedError,
    RulesetError,
    load_ruleset,
)
from ketacds.cli import main
from ketacds.models.inputs import Coding, Quantity
from ketacds.reporting import render
from ketacds.ruleset import checks, scope
from ketacds.ruleset.ir import canonical_json, from_canonical
from ketacds.ruleset.lint import lint
from rulesets_fixtures import RULES, copy_rules, line_of, replace

NOW = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(RULES)


def _bp(systolic: int, diastolic: int) -> tuple[Observation, ...]:
    when = NOW - dt.timedelta(minutes=30)
    return (
        Observation(name="systolic blood pressure", value=Decimal(systolic), unit="mm[Hg]", time=when),
        Observation(name="diastolic blood pressure", value=Decimal(diastolic), unit="mm[Hg]", time=when),
    )


def _record(**changes: object) -> PatientRecord:
    record = PatientRecord(
        patient=Patient(
            birth_date=dt.date(1970, 1, 1), sex="male", weight=Quantity(value=Decimal(80), unit="kg")
        ),
        observations=_bp(120, 80),
    )
    return attrs.evolve(record, **changes)


def _context(route: str, jurisdiction: str) -> Context:
    return Context(route=route, jurisdiction=jurisdiction, now=NOW)  # type: ignore[arg-type]


class TestDeclarations:
    def test_the_bundled_manifest_declares_concepts_by_reference_fact_id(self):
        ruleset = load_ruleset(RULES)
        ids = {c.id for c in ruleset.concepts}

        assert {"CI_ANEURYSM", "CI_AVM", "DEFER_BP_PREDOSE_140_90", "MON_ESK_OBS_2H", "CI_BP_ICP_RISK"} <= ids
        assert ruleset.rule("KCDS-CI-001").concepts == ("CI_ANEURYSM",)
        # AVM is named only in the US label.
        assert ("US",) == next(c for c in ruleset.concepts if c.id == "CI_AVM").jurisdictions

    def test_concepts_follows_and_refusals_are_in_the_canonical_form(self):
        ruleset = load_ruleset(RULES)

        again = from_canonical(json.loads(canonical_json(ruleset)))

        assert again == ruleset
        assert again.concepts == ruleset.concepts
        assert again.refusals == ruleset.refusals
        assert again.follows("esketamine-nasal", "CH") == ruleset.follows("esketamine-nasal", "CH")

    def test_a_rule_naming_an_undeclared_concept_is_refused_with_file_line_and_a_suggestion(self, tmp_path):
        rules_dir = copy_rules(tmp_path)
        replace(rules_dir, "contraindications.yaml", "concepts: [CI_ANEURYSM]", "concepts: [CI_ANEURISM]")

        with pytest.raises(RulesetError) as info:
            load_ruleset(rules_dir)

        assert checks.UNKNOWN_CONCEPT == info.value.code
        assert "contraindications.yaml" == info.value.file
        assert line_of(rules_dir, "CI_ANEURISM", "contraindications.yaml") == info.value.line
        assert "CI_ANEURYSM" == info.value.suggestion

    @pytest.mark.parametrize(
        ("old", "new", "message"),
        [
            ("        label: EU\n", "        label: XX\n", "unknown jurisdiction 'XX'"),
            (
                "      esketamine-nasal:\n        label: EU",
                "      esketamine-nasel:\n        label: EU",
                "unknown route",
            ),
            (
                "- {route: esketamine-nasal, jurisdiction: CA,",
                "- {route: esketamine-nasal, jurisdiction: ZZ,",
                "unknown jurisdiction 'ZZ'",
            ),
            ("  - {id: CI_ANEURYSM, title", "  - {id: CI_ICH_HISTORY, title", "declared twice"),
            (
                "    jurisdictions: [US]\n    note: Named",
                "    jurisdictions: [UZ]\n    note: Named",
                "unknown jurisdiction 'UZ'",
            ),
        ],
    )
    def test_a_broken_manifest_declaration_is_a_manifest_error(self, tmp_path, old, new, message):
        rules_dir = copy_rules(tmp_path)
        replace(rules_dir, "manifest.yaml", old, new)

        with pytest.raises(RulesetError) as info:
            load_ruleset(rules_dir)

        assert checks.MANIFEST == info.value.code
        assert message in info.value.reason
        assert "manifest.yaml" == info.value.file
        assert info.value.line is not None


class TestCoverage:
    def test_every_bundled_program_is_covered_followed_or_refused(self):
        ruleset = load_ruleset(RULES)

        states = {program: scope.coverage(ruleset, *program).state for program in scope.programs(ruleset)}

        assert "gap" not in states.values()
        assert "covered" == states[("esketamine-nasal", "US")] == states[("esketamine-nasal", "EU")]
        assert "covered" == states[("esketamine-nasal", "CH")] == states[("esketamine-nasal", "GB")]
        assert "refused" == states[("esketamine-nasal", "CA")]
        assert {"covered"} == {states[("ketamine-iv", j.id)] for j in ruleset.jurisdictions}
        assert {"covered"} == {states[("ketamine-other", j.id)] for j in ruleset.jurisdictions}

    def test_ch_and_gb_esketamine_follow_the_eu_label(self):
        ruleset = load_ruleset(RULES)

        for jurisdiction in ("CH", "GB"):
            found = scope.coverage(ruleset, "esketamine-nasal", jurisdiction)
            assert found.follows is not None
            assert "EU" == found.follows.label
            assert found.follows.basis
            assert (jurisdiction, "EU") == found.scope
            ids = {r.id for r in scope.rules_for(ruleset, "esketamine-nasal", jurisdiction)}
            assert {"KCDS-CI-001", "KCDS-CI-004", "KCDS-CAND-017", "KCDS-CI-009"} <= ids
            assert "KCDS-CI-002" not in ids  # US only: following the EU label never brings US rules
        # Following is per route: IV ketamine in CH keeps its own (Swiss) rules only.
        assert ("CH",) == ruleset.program_scope("ketamine-iv", "CH")

    def test_a_missing_concept_is_a_gap_only_where_nothing_covers_it(self, tmp_path):
        rules_dir = copy_rules(tmp_path)
        replace(rules_dir, "contraindications.yaml", "    concepts: [CI_ANEURYSM]\n", "")
        ruleset = load_ruleset(rules_dir)

        found = scope.coverage(ruleset, "esketamine-nasal", "EU")

        assert "gap" == found.state
        assert ("CI_ANEURYSM",) == found.missing
        assert "refused" == scope.coverage(ruleset, "esketamine-nasal", "CA").state


class TestEngine:
    def test_ch_esketamine_aortic_aneurysm_with_bp_200_120_is_contraindicated(self, engine):
        record = _record(
            conditions=(Condition(code=Coding(system="icd-10-cm", code="I71.40")),),
            observations=_bp(200, 120),
        )

        result = engine.assess(record, _context("esketamine-nasal", "CH"))

        assert "contraindicated" == result.status
        assert {"KCDS-CI-001", "KCDS-CI-004"} <= set(result.rule_ids)
        assert "EU" == result.provenance.follows
        assert result.provenance.follows_basis
        assert ("CH", "EU") == result.provenance.jurisdiction_scope
        assert "Label followed: EU" in render(result, "text")

    def test_a_programme_of_its_own_label_names_none_followed(self, engine):
        result = engine.assess(_record(), _context("esketamine-nasal", "US"))

        assert result.provenance.follows is None

    @pytest.mark.parametrize(
        ("route", "jurisdiction", "missing"),
        [
            ("esketamine-nasal", "CA", ("CAND_AGE_ESK", "CI_ANEURYSM")),
        ],
    )
    def test_a_refused_program_is_an_input_error_naming_the_missing_concepts(
        self, engine, route, jurisdiction, missing
    ):
        with pytest.raises(ProgramRefusedError) as info:
            engine.assess(_record(), _context(route, jurisdiction))

        error = info.value
        assert isinstance(error, InputError)
        assert "context.route" == error.path
        assert (route, jurisdiction) == (error.route, error.jurisdiction)
        assert set(missing) <= set(error.missing)
        assert error.declared
        for concept in missing:
            assert concept in str(error)
        assert f"refuses {route} in {jurisdiction}" in str(error)

    def test_an_undeclared_gap_is_refused_too_never_assessed_with_fewer_rules(self):
        ruleset = load_ruleset(RULES)
        # A ruleset built in code (no loader, no lint) that lost a concept's only rule in the EU.
        rules = tuple(
            attrs.evolve(rule, concepts=()) if rule.id == "KCDS-CI-009" else rule for rule in ruleset.rules
        )
        engine = Engine.from_ruleset(attrs.evolve(ruleset, rules=rules))

        with pytest.raises(ProgramRefusedError) as info:
            engine.assess(_record(), _context("esketamine-nasal", "DE"))

        assert not info.value.declared
        assert ("CI_RECENT_CV_EVENT_EU",) == info.value.missing
        assert "declares neither a label to follow nor a refusal" in str(info.value)
        # The US program does not need that concept: it still assesses.
        assert engine.assess(_record(), _context("esketamine-nasal", "US")).status

    def test_the_cli_exits_2_on_a_refused_program(self, tmp_path: Path):
        case = tmp_path / "case.yaml"
        case.write_text(
            "patient: {birth_date: 1970-01-01, sex: male, weight: 80 kg}\n"
            "context: {route: esketamine-nasal, jurisdiction: CA, now: 2026-11-21T09:00:00Z}\n",
            encoding="utf-8",
        )

        outcome = CliRunner().invoke(main, ["assess", str(case)])

        assert 2 == outcome.exit_code
        assert "CI_ANEURYSM" in outcome.output


class TestLint:
    def test_the_bundled_rules_have_no_concept_gap(self):
        report = lint(RULES)

        assert [] == [f.text() for f in report.findings if f.code in (checks.CONCEPT_GAP, "KL051")]

    def test_a_fixture_missing_a_concept_fails_lint(self, tmp_path):
        rules_dir = copy_rules(tmp_path)
        replace(rules_dir, "monitoring.yaml", "    concepts: [MON_ESK_OBS_2H]\n", "")

        report = lint(rules_dir)

        gaps = [f for f in report.errors if f.code == checks.CONCEPT_GAP]
        assert 1 == len(gaps)
        assert "MON_ESK_OBS_2H" in gaps[0].message
        assert "esketamine-nasal in US" in gaps[0].message
        assert "manifest.yaml" == gaps[0].file

    def test_lint_exits_1_on_a_gap(self, tmp_path):
        rules_dir = copy_rules(tmp_path)
        replace(rules_dir, "monitoring.yaml", "    concepts: [MON_ESK_OBS_2H]\n", "")

        outcome = CliRunner().invoke(main, ["rules", "lint", str(rules_dir)])

        assert 1 == outcome.exit_code
        assert "KL050" in outcome.output


class TestProgramsCommand:
    def test_it_lists_every_program_with_its_state(self):
        outcome = CliRunner().invoke(main, ["rules", "programs", str(RULES), "--json"])

        assert 0 == outcome.exit_code
        found = {(p["route"], p["jurisdiction"]): p for p in json.loads(outcome.output)}
        assert "EU" == found[("esketamine-nasal", "GB")]["follows"]
        assert "CI_ANEURYSM" in found[("esketamine-nasal", "CA")]["missing"]
        assert "refused" == found[("esketamine-nasal", "CA")]["state"]
        assert "covered" == found[("ketamine-iv", "US")]["state"]

    def test_it_exits_1_on_a_gap(self, tmp_path):
        rules_dir = copy_rules(tmp_path)
        replace(rules_dir, "contraindications.yaml", "    concepts: [CI_ANEURYSM]\n", "")

        outcome = CliRunner().invoke(main, ["rules", "programs", str(rules_dir)])

        assert 1 == outcome.exit_code
        assert "esketamine-nasal  EU  gap          missing: CI_ANEURYSM" in outcome.output


class TestRefusalScenarios:
    CASE = (
        "title: {title}\n"
        "patient: {{birth_date: 1970-01-01, sex: male, weight: 80 kg}}\n"
        "context: {{route: {route}, jurisdiction: {jurisdiction}, now: 2026-11-21T09:00:00Z}}\n"
        "expect: {expect}\n"
    )

    def _run(self, engine: Engine, tmp_path: Path, route: str, jurisdiction: str, expect: str):
        from ketacds.scenarios.load import load_scenario_file
        from ketacds.scenarios.run import run_scenario

        path = tmp_path / "refusal.scenario.yaml"
        path.write_text(
            self.CASE.format(title="a case", route=route, jurisdiction=jurisdiction, expect=expect),
            encoding="utf-8",
        )
        (scenario,) = load_scenario_file(path).scenarios
        return run_scenario(engine, scenario)

    def test_an_expected_refusal_passes(self, engine, tmp_path):
        assert "pass" == self._run(engine, tmp_path, "esketamine-nasal", "CA", "{refused: true}").outcome

    def test_an_expected_refusal_of_an_assessed_program_fails(self, engine, tmp_path):
        result = self._run(engine, tmp_path, "esketamine-nasal", "US", "{refused: true}")

        assert "fail" == result.outcome
        assert ["refused"] == [m.kind for m in result.mismatches]

    def test_refused_stands_alone(self, engine, tmp_path):
        result = self._run(engine, tmp_path, "esketamine-nasal", "CA", "{refused: true, status: defer}")

        assert "error" == result.outcome
        assert result.bad_scenario
        assert "stands alone" in result.report

    def test_a_refused_program_without_the_expectation_is_a_bad_scenario_naming_the_concepts(
        self, engine, tmp_path
    ):
        result = self._run(engine, tmp_path, "esketamine-nasal", "CA", "{status: defer}")

        assert "error" == result.outcome
        assert "CI_BP_ICP_RISK" in result.report
