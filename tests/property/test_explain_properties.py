"""Properties of why / why not over random patients (strategies in tests/strategies.py)."""

from __future__ import annotations

from hypothesis import given

from ketacds import Engine, PatientRecord
from ketacds.scenarios import CaseAnalysis, load_suite
from strategies import contexts, records
from support import SCENARIOS

_ENGINE = Engine()  # module-level: Hypothesis runs many examples against one engine


@given(record=records, context=contexts)
def test_an_explanation_says_fired_exactly_when_the_evaluator_fires(record: PatientRecord, context):
    """For every rule: "fired" iff the reference evaluator fired it; a near miss never fired."""
    analysis = CaseAnalysis(_ENGINE, record, context)
    fired = {firing.rule_id for firing in analysis.raw.firings}
    for rule in _ENGINE.ruleset.rules:
        explanation = analysis.explain(rule.id, depth=0)

        assert (rule.id in fired) == explanation.fired
        assert not (explanation.fired and explanation.near_miss)
        if explanation.verdict == "not-fired":
            assert all(match.failing for match in explanation.matches)


def test_explanations_agree_with_the_evaluator_on_the_project_suite():
    """For every scenario of tests/scenarios and every rule, the same agreement holds."""
    scenarios, _ = load_suite([SCENARIOS])
    for scenario in scenarios:
        if scenario.expect.refused:
            continue  # a refused program has no evaluation to explain
        analysis = CaseAnalysis(_ENGINE, scenario.record, scenario.context)
        fired = {firing.rule_id for firing in analysis.raw.firings}
        for rule in _ENGINE.ruleset.rules:
            explanation = analysis.explain(rule.id, depth=0)

            assert (rule.id in fired) == explanation.fired, (rule.id, scenario.where)
            if explanation.verdict == "not-fired":
                assert all(match.failing for match in explanation.matches), (rule.id, scenario.where)
