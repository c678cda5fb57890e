"""Why a rule fired or did not: checks over the IR, near misses, missing data, scope, flags."""

from __future__ import annotations

import pytest

import ketacds
from ketacds import InputError, load_case, load_case_file
from ketacds.scenarios import CaseAnalysis
from support import EXAMPLES, TRD


@pytest.fixture
def engine(slice_engine):
    """These tests assert exact rule content: they run on the frozen 0.1.0 rules."""
    return slice_engine


US_ESKETAMINE = {"route": "esketamine-nasal", "jurisdiction": "US", "now": "2026-11-21T09:00:00-05:00"}


def analyse(engine, **case):
    data = {
        "patient": {"birth_date": "1981-03-14", "sex": "female", "weight": "68 kg", "height": "165 cm"},
        "conditions": [{"code": {"system": "icd-10-cm", "code": "F33.2"}}],
        "trials": TRD,
        "context": US_ESKETAMINE,
    }
    data.update(case)
    record, context = load_case(data)
    return CaseAnalysis(engine, record, context)


def bp(systolic: int, diastolic: int) -> list[dict[str, object]]:
    time = "2026-11-21T08:30:00-05:00"
    return [
        {"name": "systolic", "value": systolic, "unit": "mmHg", "time": time},
        {"name": "diastolic", "value": diastolic, "unit": "mmHg", "time": time},
    ]


class TestFired:
    def test_a_fired_rule_shows_each_match_with_its_values(self, engine):
        """The facts matched and every threshold, with the values that met it."""
        e = analyse(engine, observations=bp(152, 96)).explain("KCDS-CI-004")

        assert ("fired", False) == (e.verdict, e.near_miss)
        assert [1, 2] == [m.alternative for m in e.matches]
        assert [
            "in value set “Systolic blood pressure”",
            "is the latest reading of its kind",
            "value above 140",
        ] == [c.needs for c in e.matches[0].checks]
        assert "value is 152 mmHg" == e.matches[0].checks[2].found
        assert e.reason().startswith("it fired on: systolic 152 mmHg at 2026-11-21T08:30:00-05:00")

    def test_a_derived_flag_is_traced_to_its_producer(self, engine):
        """A flag check says which rule derived it, from which facts."""
        e = analyse(engine).explain("KCDS-CAND-002")
        flag = e.matches[0].checks[-1]

        assert "the flag “trd-trial-criteria” has been derived" == flag.needs
        assert flag.because[0].startswith("derived by KCDS-CAND-001 (Two adequate antidepressant trials")
        assert "escitalopram trial (current episode, 8 weeks, response none)" in flag.because[0]


class TestNotFired:
    def test_the_closest_match_and_its_failing_check(self, engine):
        """Blood pressure 138/84: one check short in each alternative, a near miss."""
        e = analyse(engine, observations=bp(138, 84)).explain("KCDS-CI-004")

        assert ("not-fired", True) == (e.verdict, e.near_miss)
        assert "it needs: value above 140 — value is 138 mmHg" == e.reason()
        assert [1, 1] == [len(m.failing) for m in e.matches]

    def test_a_missing_datum_is_named(self, engine):
        """No weight: the dose rule needs it, and says it is the missing datum."""
        record, context = load_case_file(EXAMPLES / "05-iv-incomplete-record.yaml")
        e = CaseAnalysis(engine, record, context).explain("KCDS-DOSE-001")

        assert (("weight",), False) == (e.missing_data, e.near_miss)
        assert "Missing data that would decide it: weight." in e.to_text()

    def test_an_absent_record_type_is_missing_only_when_the_rule_asks_for_any(self, engine):
        """No trials: "a trial is recorded" names a missing datum; no medications is just "none"."""
        analysis = analyse(engine, trials=[])

        assert ("antidepressant trial",) == analysis.explain("KCDS-CAND-004").missing_data
        assert () == analysis.explain("KCDS-INT-001").missing_data
        assert "no medication is recorded" == analysis.explain("KCDS-INT-001").closest.checks[0].found

    def test_a_flag_not_derived_explains_its_producer(self, engine):
        """TRD not met: the indication rule's flag check says why the trial rule did not fire."""
        trials = [TRD[0], {**TRD[1], "weeks": 5}]
        e = analyse(engine, trials=trials).explain("KCDS-CAND-002")
        flag = e.closest.checks[-1]

        assert ("not-fired", True, False) == (e.verdict, e.near_miss, flag.held)
        assert "did not fire: it needs: duration 6 weeks or more — duration is 5 weeks" in flag.because[0]

    def test_a_negated_flag_that_was_derived(self, engine):
        """ "Not indicated" did not fire because the indication flag exists: a near miss with its producer."""
        e = analyse(engine).explain("KCDS-CAND-004")
        check = e.closest.checks[-1]

        assert ("the flag “indicated” has not been derived", False, "but it was derived") == (
            check.needs,
            check.held,
            check.found,
        )
        assert check.because[0].startswith("derived by KCDS-CAND-002")

    def test_a_negated_pattern_that_matches(self, engine):
        """A blood pressure is recorded, so the gap rule shows it as what stops it."""
        e = analyse(engine, observations=bp(128, 78)).explain("KCDS-GAP-002")

        assert e.matches[0].checks[0].found.startswith("but recorded: systolic 128 mmHg")
        assert not e.near_miss

    def test_a_comparison_with_another_fact(self, engine):
        """Two trials of one drug: the reference test is what fails, named by the alias."""
        trials = [TRD[0], {**TRD[0], "dose": 10}]
        e = analyse(engine, trials=trials).explain("KCDS-CAND-001")

        assert "it needs: drug differs from the drug of ‘first’ — drug is escitalopram" == e.reason()

    def test_depth_limits_how_far_flags_are_followed(self, engine):
        """At depth 0 a flag's producer is named without its own explanation."""
        trials = [TRD[0], {**TRD[1], "weeks": 5}]
        e = analyse(engine, trials=trials).explain("KCDS-CAND-002", depth=0)

        assert (
            "KCDS-CAND-001 (Two adequate antidepressant trials without adequate response) did not fire"
            == (e.closest.checks[-1].because[0])
        )


class TestScope:
    def test_a_rule_for_another_route_would_fire(self, engine):
        """The IV dose rule for an esketamine case: out of scope, but its condition holds."""
        e = analyse(engine).explain("KCDS-DOSE-001")

        assert ("out-of-scope", True, True) == (e.verdict, e.would_fire, e.near_miss)
        assert "it applies only to ketamine-iv, not esketamine-nasal" == e.scope
        assert "would fire if it applied here" in e.to_text()

    def test_a_rule_for_another_jurisdiction(self, engine):
        """A US-only rule in Germany names the jurisdictions Germany lies within."""
        e = analyse(engine, context={**US_ESKETAMINE, "jurisdiction": "DE"}).explain("KCDS-MON-002")

        assert "it applies only in US, not DE (within EU)" == e.scope


class TestApi:
    def test_the_public_function(self, engine):
        """ketacds.explain answers for one rule, as text a pharmacist can read."""
        record, context = load_case_file(EXAMPLES / "04-esketamine-bp-defer.yaml")
        text = ketacds.explain(engine, record, context, "KCDS-CI-004").to_text()

        assert text.startswith("KCDS-CI-004 · Pre-dose blood pressure above 140/90 mmHg\n")
        assert "FIRED for esketamine-nasal in US." in text
        assert "Evidence: US-ESK-2019 §5.6 Increase in blood pressure; EU-ESK §4.2 / §4.4" in text

    def test_an_unknown_rule_is_an_input_error_with_a_suggestion(self, engine):
        """A misspelt rule id says which rule was probably meant."""
        record, context = load_case_file(EXAMPLES / "04-esketamine-bp-defer.yaml")

        with pytest.raises(
            InputError, match=r"no rule 'KCDS-CI-04' in ketacds-core \(did you mean KCDS-CI-004\?\)"
        ):
            ketacds.explain(engine, record, context, "KCDS-CI-04")
