"""Clinical invariants over random patients: harm is monotone, statuses are safe,
doses stay in bounds, and every finding rests on the input."""

from __future__ import annotations

from decimal import Decimal

import attrs
from hypothesis import given
from hypothesis import strategies as st

from ketacds import Engine, InputError, PatientRecord, Quantity
from ketacds.engine.facts import build_facts
from strategies import NOW, adversarial_records, contexts, harm_conditions, records

_ENGINE = Engine()
_TABLE = _ENGINE.ruleset.status
_BLOCKING_SEVERITIES = {s for s, status in _TABLE.severities if status in _TABLE.blocking}
_GAP_STATUS = "incomplete"
_ESKETAMINE_DOSES = {Decimal(28), Decimal(56), Decimal(84)}


def _rank(status: str) -> int:
    return _TABLE.rank(status)


def _contraindications(assessment):
    return {f.rule_id for f in assessment.findings if f.category == "contraindication"}


@given(record=records, context=contexts, extra=st.lists(harm_conditions, min_size=1, max_size=3))
def test_adding_a_contraindication_fact_never_helps(record: PatientRecord, context, extra):
    """Adding a condition only contraindication rules read never removes a contraindication
    nor makes the status less serious."""
    before = _ENGINE.assess(record, context)
    after = _ENGINE.assess(attrs.evolve(record, conditions=(*record.conditions, *extra)), context)

    assert _contraindications(before) <= _contraindications(after)
    assert _rank(after.status) <= _rank(before.status)


@given(record=records, context=contexts, data=st.data())
def test_removing_a_medication_never_adds_an_interaction(record: PatientRecord, context, data):
    """Taking a medication away never creates an interaction finding."""
    if not record.medications:
        return
    index = data.draw(st.integers(0, len(record.medications) - 1))
    fewer = attrs.evolve(record, medications=record.medications[:index] + record.medications[index + 1 :])
    interactions = lambda a: {f.rule_id for f in a.findings if f.category == "interaction"}  # noqa: E731

    assert interactions(_ENGINE.assess(fewer, context)) <= interactions(_ENGINE.assess(record, context))


@given(record=st.one_of(records, adversarial_records), context=contexts)
def test_status_is_never_reassuring_when_it_should_not_be(record: PatientRecord, context):
    """An absolute contraindication means 'contraindicated'; a data gap or blocking finding
    never comes with 'cautions' or 'no-concerns-found'; M rules never block."""
    try:
        result = _ENGINE.assess(record, context)
    except InputError:
        return  # adversarial input may be refused, loudly and specifically
    severities = {f.severity for f in result.findings}
    if "absolute" in severities:
        assert "contraindicated" == result.status
    if result.data_gaps:
        assert _rank(result.status) <= _rank(_GAP_STATUS)
    if result.status in ("cautions", "no-concerns-found"):
        assert not severities & _BLOCKING_SEVERITIES
    assert not any(f.advisory and f.severity in _BLOCKING_SEVERITIES for f in result.findings)


@given(record=records, context=contexts)
def test_doses_stay_within_bounds(record: PatientRecord, context):
    """Weight-based doses are mg/kg × dosing weight (to 0.1 mg) within 0.1–1.0 mg/kg;
    esketamine doses are 28, 56 or 84 mg."""
    dose = _ENGINE.assess(record, context).dose
    for option in dose.options if dose else ():
        if option.mg_per_kg is not None:
            assert Decimal("0.1") <= option.mg_per_kg <= Decimal("1.0")
            if option.dose_mg is not None:
                assert abs(option.dose_mg - option.mg_per_kg * option.dosing_weight_kg) <= Decimal("0.05")
        else:
            assert option.dose_mg in _ESKETAMINE_DOSES


@given(record=records, context=contexts)
def test_doses_do_not_depend_on_the_weight_unit(record: PatientRecord, context):
    """The same weight in kg and in lb gives the same dose advice.

    The weight drawn is read as pounds, and the same weight is written exactly in kg
    (1 lb is 0.45359237 kg exactly); the other way round, kg / 0.45359237 does not
    terminate, so the two would not be the same weight (facts are exact to 120 digits).
    """
    weight = record.patient.weight
    if weight is None or weight.unit != "kg":
        return
    in_lb = attrs.evolve(
        record, patient=attrs.evolve(record.patient, weight=Quantity(value=weight.value, unit="lb"))
    )
    in_kg = Quantity(value=weight.value * Decimal("0.45359237"), unit="kg")
    other = attrs.evolve(record, patient=attrs.evolve(record.patient, weight=in_kg))
    record = in_lb

    assert _ENGINE.assess(record, context).dose == _ENGINE.assess(other, context).dose


@given(record=records, context=contexts)
def test_every_finding_rests_on_the_input(record: PatientRecord, context):
    """Each finding names a rule with evidence, and cites only facts built from the input."""
    result = _ENGINE.assess(record, context)
    facts = {
        f["id"]
        for f in build_facts(
            record, context, _ENGINE.terminology, _ENGINE.ruleset.tables, _ENGINE.ruleset.validity
        ).facts
    }
    rules = {r.id: r for r in _ENGINE.ruleset.rules}
    for finding in result.findings:
        assert finding.rule_id in rules
        assert finding.evidence
        assert {b.id for b in finding.basis} <= facts
    for firing in result.trace:
        assert {f for f in firing.facts if not f.startswith("flag:")} <= facts


def _order_threshold(rule_id: str) -> tuple[str, Decimal]:
    """The (operator, constant) of the rule's ``mg_per_kg`` test, read from the ruleset."""
    from ketacds.ruleset.ir import Pattern

    (pattern,) = [c for c in (_ENGINE.ruleset.rule(rule_id).when,) if isinstance(c, Pattern)] or [
        c for c in getattr(_ENGINE.ruleset.rule(rule_id).when, "items", ()) if isinstance(c, Pattern)
    ]
    (test,) = [t for t in pattern.tests if t.field == "mg_per_kg"]
    assert isinstance(test.value, int | Decimal)
    return test.op, Decimal(test.value)


_ORD_003 = "KCDS-ORD-003"


@st.composite
def _dose_and_weight(draw):
    """A weight (kg, many decimal places) and an ordered dose (mg): random, or exactly at the
    rule's threshold, or a hair (10^-k mg, k up to 25) either side of it."""
    _, threshold = _order_threshold(_ORD_003)
    weight = Decimal(draw(st.integers(1, 10**9))).scaleb(-draw(st.integers(0, 7)))
    how = draw(st.sampled_from(["random", "at", "above", "below"]))
    if how == "random":
        dose = Decimal(draw(st.integers(0, 10**12))).scaleb(-draw(st.integers(0, 12)))
    else:
        dose = threshold * weight
        hair = Decimal(1).scaleb(-draw(st.integers(1, 25)))
        dose += {"at": 0, "above": hair, "below": -hair}[how]
    return abs(dose), weight


def _ord_003_fires(dose: Decimal, weight: Decimal) -> dict[str, bool]:
    """Whether KCDS-ORD-003 fires for an IV ketamine order of ``dose`` mg at ``weight`` kg, per engine."""
    from ketacds import Context, Patient
    from ketacds.models.inputs import Order

    record = PatientRecord(patient=Patient(age_years=40, weight=Quantity(value=weight, unit="kg")))
    context = Context(
        route="ketamine-iv", jurisdiction="US", now=NOW, order=Order(name="ketamine", dose=dose, unit="mg")
    )
    return {
        backend: _ORD_003 in _ENGINE.assess(record, context, backend=backend).rule_ids
        for backend in ("durable", "reference")
    }


@given(dose_and_weight=_dose_and_weight())
def test_an_order_rule_fires_exactly_when_the_exact_dose_per_kg_crosses_its_threshold(dose_and_weight):
    """KCDS-ORD-003 (``mg_per_kg > 0.75`` in rulesets/orders.yaml) fires iff dose / weight > 0.75,
    decided exactly (dose > 0.75 × weight: no division, no rounding), on both engines, for a
    plausible weight and dose (an implausible one is reported and never used).

    On 0.3.0 the mg/kg was rounded to 0.01 first: 75.4 mg at 100 kg read 0.75 and the
    rule did not fire.
    """
    dose, weight = dose_and_weight
    op, threshold = _order_threshold(_ORD_003)
    assert op == "gt"
    # An implausible weight or dose (rulesets/validity.yaml) is not used, so nothing is compared.
    validity = _ENGINE.ruleset.validity
    assert validity is not None
    believed = all(
        declared is None or declared.plausible(value)
        for declared, value in (
            (validity.range_of("patient", "weight_kg"), weight),
            (validity.range_of("order", "dose_mg"), dose),
        )
    )
    expected = believed and dose > threshold * weight  # exact: a product of finite decimals

    assert {"durable": expected, "reference": expected} == _ord_003_fires(dose, weight), (dose, weight)


def test_the_order_threshold_example_from_the_issue():
    """75.4 mg at 100 kg is above 0.75 mg/kg (0.3.0 rounded it to 0.75); 75 mg is not."""
    assert {"durable": True, "reference": True} == _ord_003_fires(Decimal("75.4"), Decimal(100))
    assert {"durable": False, "reference": False} == _ord_003_fires(Decimal(75), Decimal(100))
