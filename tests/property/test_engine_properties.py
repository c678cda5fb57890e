"""Properties of the engine over random patients (strategies in tests/strategies.py)."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ketacds import Engine, InputError, PatientRecord
from strategies import contexts, extreme_contexts, extreme_records, records, seen_records, trd_records

_ENGINE = Engine()  # module-level: Hypothesis runs many examples against one engine

_LISTS = ("conditions", "medications", "observations", "allergies", "trials", "substance_use")


@given(record=records, context=contexts, data=st.data())
def test_permuting_input_facts_never_changes_the_assessment(record: PatientRecord, context, data):
    """Any permutation of every input list gives an identical Assessment."""
    shuffled = attrs.evolve(
        record, **{name: tuple(data.draw(st.permutations(getattr(record, name)))) for name in _LISTS}
    )

    assert _ENGINE.assess(record, context) == _ENGINE.assess(shuffled, context)


@given(record=records, context=contexts)
def test_durable_and_reference_agree(record: PatientRecord, context):
    """durable_rules, the reference evaluator and the compiled backend fire alike on the same facts."""
    _, durable = _ENGINE.evaluate(record, context)
    _, reference = _ENGINE.evaluate(record, context, backend="reference")
    _, compiled = _ENGINE.evaluate(record, context, backend="compiled")

    assert reference == durable == compiled


@settings(max_examples=50)
@given(first=records, second=records, context=contexts)
def test_no_state_leaks_between_patients(first: PatientRecord, second: PatientRecord, context):
    """Assessing A then B gives the same B as assessing B alone in a fresh engine."""
    _ENGINE.assess(first, context)

    with Engine.from_ruleset(_ENGINE.ruleset) as fresh:
        alone = fresh.assess(second, context)

    assert alone == _ENGINE.assess(second, context)


@given(record=st.one_of(records, seen_records), context=contexts)
def test_reassuring_status_only_without_gaps(record: PatientRecord, context):
    """'no-concerns-found' and 'cautions' never come with a data gap, a blocking finding or
    a data-quality error (a value not believed, a reading from the future or untimed), and
    only with a current reading of every kind a rule reads as current (issue 14)."""
    result = _ENGINE.assess(record, context)
    if result.status in ("no-concerns-found", "cautions"):
        assert () == result.data_gaps
        assert not any(
            f.severity in ("absolute", "relative", "off-label", "defer", "not-indicated")
            for f in result.findings
        )
        assert not [i for i in result.data_quality if i.severity == "error"]
        facts = _ENGINE.facts(record, context).facts
        for kind in ("systolic-blood-pressure", "diastolic-blood-pressure"):
            if any(kind in f.get("vs", ()) for f in facts if f["t"] == "observation"):
                assert any(kind in f["vs"] and f["latest"] for f in facts if f["t"] == "observation")


@given(record=trd_records, context=contexts)
def test_engines_agree_on_joins(record: PatientRecord, context):
    """The engines agree where rules compare facts with each other (two different drugs)."""
    _, durable = _ENGINE.evaluate(record, context)
    _, reference = _ENGINE.evaluate(record, context, backend="reference")
    _, compiled = _ENGINE.evaluate(record, context, backend="compiled")

    assert reference == durable == compiled


@given(record=records, context=contexts)
def test_compiled_patterns_match_like_the_reference(record: PatientRecord, context):
    """The compiled absence patterns give the reference's answer on every fact."""
    from ketacds.engine.match import compile_pattern, matches

    facts = _ENGINE.facts(record, context).facts
    for program in (_ENGINE.warm(route, "US") for route in ("ketamine-iv", "esketamine-nasal")):
        for pattern in program.absent_patterns.values():
            check = compile_pattern(pattern)

            assert [matches(pattern, f, {}) for f in facts] == [check(f) for f in facts]


def test_a_pattern_with_references_cannot_be_compiled_alone():
    """Compiling a pattern that refers to another fact is refused."""
    import pytest

    from ketacds.engine.match import compile_pattern
    from ketacds.ruleset.ir import Pattern, Ref, Test

    with pytest.raises(ValueError, match="references"):
        compile_pattern(Pattern("trial", (Test("drug", "ne", Ref("first", "drug")),)))


@given(record=records, context=contexts)
def test_to_dict_is_attrs_asdict(record: PatientRecord, context):
    """The fast serialiser gives exactly what attrs.asdict gives (decimals as strings)."""
    from ketacds.models.results import _serialise

    result = _ENGINE.assess(record, context)

    assert attrs.asdict(result, value_serializer=_serialise) == result.to_dict()


@given(record=records, context=contexts)
def test_to_json_is_sorted_json_of_attrs_asdict(record: PatientRecord, context):
    """to_json is exactly json.dumps of attrs.asdict with sorted keys (no key order is left to chance)."""
    import json

    from ketacds.models.results import _serialise

    result = _ENGINE.assess(record, context)
    data = attrs.asdict(result, value_serializer=_serialise)
    expected = json.dumps(data, sort_keys=True, ensure_ascii=False)

    assert expected == result.to_json()
    assert expected == json.dumps(result.to_dict(), ensure_ascii=False)


@settings(max_examples=300)
@given(record=extreme_records, context=extreme_contexts)
def test_durable_and_reference_agree_on_extreme_magnitudes(record: PatientRecord, context):
    """1e-12 ... 1e12, many decimal places, a hair from each threshold: the same firings.

    On 0.3.0 a number below 0.0001 reached durable_rules as ``1e-05`` and durable
    silently dropped every later fact of the assessment.
    """
    try:
        _, durable = _ENGINE.evaluate(record, context)
    except InputError:
        with pytest.raises(InputError):
            _ENGINE.evaluate(record, context, backend="reference")
        with pytest.raises(InputError):
            _ENGINE.evaluate(record, context, backend="compiled")
        return
    _, reference = _ENGINE.evaluate(record, context, backend="reference")
    _, compiled = _ENGINE.evaluate(record, context, backend="compiled")

    assert reference == durable == compiled


@given(record=st.one_of(records, extreme_records), context=st.one_of(contexts, extreme_contexts))
def test_compiled_tests_decide_like_the_reference(record: PatientRecord, context):
    """Each boolean property sent to durable holds exactly when the reference's test holds."""
    from ketacds.engine.match import compile_test, passes
    from ketacds.ruleset.ir import Ref

    try:
        facts = _ENGINE.facts(record, context).facts
    except InputError:
        return
    tests = {
        t
        for rule in _ENGINE.ruleset.rules
        for p in _patterns(rule.when)
        for t in p.tests
        if not isinstance(t.value, Ref) and t.op != "member"
    }
    probes = [*facts, {"t": "x", "weeks": True, "value": "140", "active": 1, "sex": 0}]
    for test in sorted(tests, key=repr):
        check = compile_test(test)
        assert [passes(test, f, {}) for f in probes] == [check(f) for f in probes], test


def _patterns(condition):
    from ketacds.ruleset.ir import Not, Pattern

    if isinstance(condition, Pattern):
        yield condition
    for item in getattr(condition, "items", ()):
        yield from _patterns(item)
    if isinstance(condition, Not):
        yield from _patterns(condition.item)
