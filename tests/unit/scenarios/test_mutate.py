"""Rule mutation testing: the operators, killing and surviving mutants, sampling, reports."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import attrs
import pytest

from ketacds.ruleset import ir
from ketacds.scenarios import OPERATORS, load_scenario_file, mutants, run_mutation
from ketacds.scenarios.mutate import _step
from support import SCENARIO, write_scenario


@pytest.fixture
def engine(slice_engine):
    """These tests assert exact rule content: they run on the frozen 0.1.0 rules."""
    return slice_engine


def by_rule(engine, rule_id):
    return {(m.operator, m.description) for m in mutants(engine.ruleset) if m.rule_id == rule_id}


class TestOperators:
    def test_thresholds_move_by_one_unit_of_their_last_digit(self):
        """140 moves by 1; 0.5 by 0.1; 30.0 by 0.1."""
        assert (1, Decimal("0.1"), Decimal("0.1")) == (
            _step(140),
            _step(Decimal("0.5")),
            _step(Decimal("30.0")),
        )

    def test_the_blood_pressure_rule(self, engine):
        """Each threshold up and down, each boundary, each yes/no, each test dropped, each branch dropped."""
        found = by_rule(engine, "KCDS-CI-004")

        assert {
            ("threshold-up", "in item 1: value above 140 → value above 141"),
            ("threshold-down", "in item 1: value above 140 → value above 139"),
            ("boundary", "in item 1: value above 140 → value 140 or more"),
            ("flip", "in item 2: is the latest reading of its kind → is not the latest reading of its kind"),
            ("drop-test", "in item 2: dropped “value above 90”"),
            (
                "drop-condition",
                "dropped “an observation: in value set “Diastolic blood pressure”; is the latest "
                "reading of its kind; value above 90”",
            ),
            ("severity-up", "severity defer → off-label"),
            ("severity-down", "severity defer → data-gap"),
            ("scope-narrow", "no longer applies in EU"),
            ("scope-widen", "applies to every route"),
            ("scope-widen", "applies in every jurisdiction"),
        } <= found

    def test_value_lists_and_aliases(self, engine):
        """A value leaves an `in` list; a pattern whose name another uses is never dropped."""
        found = by_rule(engine, "KCDS-CAND-001")

        assert ("drop-value", "in ‘first’: response is none or partial → response is partial") in found
        assert ("drop-test", "in item 2: dropped “drug differs from the drug of ‘first’”") in found
        assert not any(op == "drop-condition" and "(call it ‘first’)" in text for op, text in found)
        assert any(
            op == "drop-condition" and "drug differs from the drug of ‘first’”" in text for op, text in found
        )

    def test_derivation_rules_have_no_severity_mutants_and_flags_are_kept(self, engine):
        """A derivation has no finding to reweigh; flag patterns are not mutated inside."""
        assert not any(op.startswith("severity") for op, _ in by_rule(engine, "KCDS-CAND-001"))
        assert not any("flag" in text and op == "drop-test" for op, text in by_rule(engine, "KCDS-CAND-002"))

    def test_every_operator_is_used_on_the_slice(self, engine):
        """The slice exercises every operator at least once."""
        assert set(OPERATORS) == {m.operator for m in mutants(engine.ruleset)}

    def test_mutants_inside_negation_stay_negated(self, engine):
        """A test inside `not` is mutated in place; the `not` remains."""
        mutant = next(
            m for m in mutants(engine.ruleset) if m.rule_id == "KCDS-GAP-006" and m.operator == "flip"
        )

        assert isinstance(mutant.rule.when, ir.Not)
        assert ir.Test("active", "eq", False) in mutant.rule.when.item.tests  # type: ignore[union-attr]


def suite(tmp_path: Path, *expectations: str):
    body = SCENARIO.split("expect:")[0] + "expect:\n" + "".join(expectations)
    return load_scenario_file(write_scenario(tmp_path, body)).scenarios


class TestRun:
    def test_a_boundary_scenario_kills_threshold_mutants(self, tmp_path, engine):
        """128/78 with `absent: CI-004`: moving 140 by one survives; dropping the threshold does not."""
        report = run_mutation(engine, suite(tmp_path, "  absent: [KCDS-CI-004]\n"), rule_ids=["KCDS-CI-004"])
        killed = {r.mutant.description: r.killed for r in report.results}

        assert killed["in item 1: value above 140 → value above 139"] is False
        assert killed["in item 1: dropped “value above 140”"] is True
        assert report.survivors
        assert 0 < report.score() < 100
        assert [
            ("contraindications.yaml", len(report.valid), sum(r.killed for r in report.valid))
        ] == report.by_file()

    def test_scenarios_failing_on_the_real_rules_are_left_out(self, tmp_path, engine):
        """A scenario that already fails cannot kill anything; it is listed instead."""
        report = run_mutation(engine, suite(tmp_path, "  status: defer\n"), rule_ids=["KCDS-MON-001"])

        assert (1, 0, 100.0 if not report.valid else 0.0) == (
            len(report.baseline_failures),
            report.scenarios,
            report.score(),
        )

    def test_sampling_is_reproducible(self, tmp_path, engine):
        """--max-mutants picks the same mutants every time."""
        scenarios = suite(tmp_path, "  status: no-concerns-found\n")
        first = run_mutation(engine, scenarios, max_mutants=5, operators=["flip", "boundary"])
        second = run_mutation(engine, scenarios, max_mutants=5, operators=["flip", "boundary"])

        assert [r.mutant.key for r in first.results] == [r.mutant.key for r in second.results]
        assert 5 == len(first.results) < first.total_mutants
        assert "(a sample of 5 of" in first.summary()

    def test_a_mutant_that_is_not_a_valid_ruleset_is_skipped(self, tmp_path, engine, monkeypatch):
        """A mutant the loader would refuse (here: a cycle through `not`) is reported, not run."""
        from ketacds.scenarios import mutate

        real = mutate.mutants

        def cyclic(ruleset):
            rule = ruleset.rule("KCDS-CAND-002")
            loop = attrs.evolve(rule, when=ir.Not(ir.Pattern("flag", (ir.Test("name", "eq", "indicated"),))))
            return [
                *real(ruleset)[:1],
                mutate.Mutant(rule_id=rule.id, operator="flip", description="loop", rule=loop),
            ]

        monkeypatch.setattr(mutate, "mutants", cyclic)
        report = run_mutation(engine, suite(tmp_path, "  status: no-concerns-found\n"))

        assert ["cycle through 'not'"] == [
            r.invalid.split(" takes part in a ")[1][:19] for r in report.results if r.invalid
        ]
        assert "1 mutant(s) were not well-formed rulesets and were skipped." in report.to_markdown()

    def test_markdown_report(self, tmp_path, engine):
        """The report has a score per ruleset file and a table of survivors."""
        report = run_mutation(engine, suite(tmp_path, "  absent: [KCDS-CI-004]\n"), rule_ids=["KCDS-CI-004"])
        text = report.to_markdown()

        assert text.startswith("# Rule mutation testing: ketacds-core 0.1.0\n")
        assert "| `contraindications.yaml` |" in text
        assert (
            "| `KCDS-CI-004` | `contraindications.yaml:68` | threshold-down "
            "| in item 1: value above 140 → value above 139 |" in text
        )


def test_nested_conditions_are_described_and_names_are_respected(engine):
    """A rule with `any` inside `all`: dropping the `any` is described in words, joined by "or"."""
    from ketacds.ruleset.ir import RuleSet

    first = ir.Pattern("trial", (ir.Test("weeks", "gte", 6),), "first")
    either = ir.AnyOf(
        (
            ir.Pattern("trial", (ir.Test("drug", "ne", ir.Ref("first", "drug")),)),
            ir.Pattern("condition", (ir.Test("active", "eq", True),)),
        )
    )
    rule = attrs.evolve(engine.ruleset.rule("KCDS-CI-003"), when=ir.All((first, either)))
    ruleset: RuleSet = attrs.evolve(engine.ruleset, rules=(rule,))
    found = {(m.operator, m.description) for m in mutants(ruleset)}

    assert (
        "drop-condition",
        "dropped “an antidepressant trial: drug differs from the drug of ‘first’ or a condition: is active”",
    ) in found
    assert not any(op == "drop-condition" and "(call it ‘first’)" in text for op, text in found)


def test_errors_count_as_failures_and_kills(tmp_path, engine, monkeypatch):
    """A mutant that makes assessing fail is killed; a scenario the real rules cannot assess is left out."""
    from ketacds import EvaluationError
    from ketacds.engine.api import Engine
    from ketacds.scenarios import mutate

    scenarios = suite(tmp_path, "  status: no-concerns-found\n")

    def explode(*_args, **_kwargs):
        raise EvaluationError("boom")

    monkeypatch.setattr(mutate, "evaluate", explode)  # only mutants are evaluated through this name
    report = run_mutation(engine, scenarios, rule_ids=["KCDS-MON-001"], operators=["flip", "severity-up"])

    assert [True] == [r.killed for r in report.results]
    assert "None: every mutant was caught by a scenario." in report.to_markdown()

    monkeypatch.setattr(Engine, "assess", explode)
    left_out = run_mutation(engine, scenarios, rule_ids=["KCDS-MON-001"], operators=["severity-up"])

    assert (1, 0) == (len(left_out.baseline_failures), left_out.scenarios)
    assert "Scenarios left out because they fail on the real rules:" in left_out.to_markdown()


def test_incremental_runs_give_the_verdicts_of_full_re_evaluation(engine):
    """Re-evaluating only the mutated rule's cone kills exactly the mutants a full re-run kills."""
    from ketacds import KetacdsError
    from ketacds.engine.api import Engine
    from ketacds.scenarios import compare, load_suite
    from support import SCENARIOS

    scenarios, _ = load_suite([SCENARIOS])
    chosen = [m for m in mutants(engine.ruleset) if m.rule_id.startswith("KCDS-CAND")]  # flags: cones
    chosen += [m for m in mutants(engine.ruleset) if m.operator in ("severity-up", "scope-widen")]
    report = run_mutation(engine, scenarios, rule_ids=sorted({m.rule_id for m in chosen}))
    fast = {r.mutant.key: r.killed for r in report.results if r.mutant in chosen}

    passing = [s for s in scenarios if s.where not in report.baseline_failures]

    def killed_by_full_run(mutant) -> bool:
        rules = tuple(mutant.rule if r.id == mutant.rule_id else r for r in engine.ruleset.rules)
        changed = Engine.from_ruleset(attrs.evolve(engine.ruleset, rules=rules))
        for scenario in passing:
            try:
                assessment = changed.assess(scenario.record, scenario.context, backend="reference")
            except KetacdsError:
                return True
            if compare(scenario, assessment, changed.ruleset):
                return True
        return False

    assert {m.key: killed_by_full_run(m) for m in chosen} == fast
