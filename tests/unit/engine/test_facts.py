"""Facts: normalised units, derived quantities, identities and gaps left as gaps."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import attrs
import pytest

from ketacds import (
    Context,
    InputError,
    Medication,
    Observation,
    ObservationComponent,
    Patient,
    PatientRecord,
    Quantity,
    load_record,
)

NOW = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)
CONTEXT = Context(route="ketamine-iv", jurisdiction="US", now=NOW)


def facts(engine, record):
    return engine.facts(record, CONTEXT).by_id()


def test_unknown_fields_are_left_out(engine):
    """A patient with nothing known has a fact with no clinical fields at all."""
    assert {"t": "patient", "id": "patient"} == facts(engine, PatientRecord(patient=Patient()))["patient"]


def test_units_and_bmi(engine):
    """Pounds and inches become kg and cm exactly; BMI is exact too; only the label rounds."""
    record = PatientRecord(
        patient=Patient(
            weight=Quantity(value=Decimal(154), unit="lb"), height=Quantity(value=Decimal(65), unit="in")
        )
    )
    factset = engine.facts(record, CONTEXT)
    patient = factset.by_id()["patient"]

    assert (Decimal("69.85322498"), Decimal("165.1")) == (patient["weight_kg"], patient["height_cm"])
    assert patient["bmi"] * Decimal("1.651") ** 2 == patient["weight_kg"]  # to 120 digits
    assert "69.85 kg, 165.1 cm, BMI 25.6" in factset.labels["patient"]


def test_nothing_is_rounded_before_rules_compare_it(engine):
    """75.4 mg IV at 100 kg is 0.754 mg/kg, above KCDS-ORD-003's 0.75 (0.3.0 rounded it to 0.75)."""
    from ketacds.models.inputs import Order

    record = PatientRecord(patient=Patient(weight=Quantity(value=Decimal(100), unit="kg")))
    context = attrs.evolve(CONTEXT, order=Order(name="ketamine", dose=Decimal("75.4"), unit="mg"))
    factset = engine.facts(record, context)
    order = next(f for f in factset.facts if f["t"] == "order")

    assert Decimal("0.754") == order["mg_per_kg"]
    assert "(0.75 mg/kg)" in factset.labels[order["id"]]
    assert all(not isinstance(v, float) for fact in factset.facts for v in fact.values())


def test_latest_reading_per_value_set(engine):
    """Only the newest current reading of each kind is marked latest; old and untimed ones are history."""
    old = Observation(name="systolic", value=Decimal(120), unit="mmHg", time=NOW - dt.timedelta(days=7))
    new = Observation(name="systolic", value=Decimal(150), unit="mmHg", time=NOW - dt.timedelta(hours=1))
    untimed = Observation(name="systolic", value=Decimal(130), unit="mmHg")
    found = facts(engine, PatientRecord(patient=Patient(), observations=(old, new, untimed)))
    readings = sorted(
        (f["value"], f["latest"], f.get("hours_ago")) for f in found.values() if f["t"] == "observation"
    )

    assert [(120, False, 168), (130, False, None), (150, True, 1)] == readings


def test_lone_untimed_reading_is_never_latest(engine):
    """A reading without a time is never the current value (issue 14), and is reported as an error."""
    bp = Observation(
        name="blood pressure",
        components=(
            ObservationComponent(name="systolic", value=Decimal(150), unit="mmHg"),
            ObservationComponent(name="diastolic", value=Decimal(95), unit="mmHg"),
        ),
    )
    built = engine.facts(PatientRecord(patient=Patient(), observations=(bp,)), CONTEXT)

    assert [False, False] == [f["latest"] for f in built.facts if f["t"] == "observation"]
    assert {"untimed-reading"} == {issue.code for issue in built.quality}


def test_ids_come_from_content_or_input(engine):
    """Ids are the input's own when given, else a digest of the content."""
    record = load_record(
        {"patient": {}, "conditions": [{"id": "c1", "name": "depression"}, {"name": "depression"}]}
    )
    ids = sorted(i for i in facts(engine, record) if i.startswith("condition:"))

    assert "condition:c1" in ids
    assert 2 == len(ids)


def test_two_different_items_with_one_id_are_refused(engine):
    """The same explicit id on two different items is an input error."""
    record = load_record(
        {"patient": {}, "conditions": [{"id": "c1", "name": "depression"}, {"id": "c1", "name": "psychosis"}]}
    )

    with pytest.raises(InputError, match="used by two different items"):
        facts(engine, record)


@pytest.mark.parametrize(
    ("patient", "message"),
    [
        ({"birth_date": "2030-01-01"}, "after the assessment time"),
        ({"birth_date": "1980-01-01", "age_years": 30}, "birth_date gives 46"),
    ],
)
def test_contradictions_are_input_errors(engine, patient, message):
    """A record that contradicts itself is refused, naming the field."""
    with pytest.raises(InputError, match=message):
        facts(engine, load_record({"patient": patient}))


def test_daily_dose(engine):
    """Daily dose is dose × frequency, in mg (mcg converted), and its diazepam equivalent (Ashton)."""
    record = load_record(
        {
            "patient": {},
            "medications": [{"name": "clonazepam", "dose": 500, "unit": "mcg", "frequency": "tid"}],
        }
    )
    found = facts(engine, record)
    medication = next(f for f in found.values() if f["t"] == "medication")

    assert (0.5, 1.5, ["benzodiazepines", "clonazepam"]) == (
        medication["dose_mg"],
        medication["daily_mg"],
        medication["vs"],
    )
    assert (30, 30) == (
        medication["diazepam_eq_mg_day"],
        found["patient"]["benzodiazepine_diazepam_eq_mg_day"],
    )


def test_a_number_beyond_exact_arithmetic_is_an_input_error(engine):
    """1e308 mg cannot be converted exactly: the field is named, nothing is rounded.

    Case files never get this far (the loader's number limits refuse it first); a record
    built in Python does.
    """
    with pytest.raises(InputError, match=r"medications\[0\]\.dose: number too large"):
        load_record({"patient": {}, "medications": [{"name": "sertraline", "dose": "1e308", "unit": "mg"}]})
    record = attrs.evolve(
        load_record({"patient": {}}),
        medications=(Medication(name="sertraline", dose=Decimal("1e308"), unit="mg"),),
    )

    with pytest.raises(InputError, match=r"medications\[0\].*beyond the 120 significant digits"):
        engine.facts(record, CONTEXT)


def test_a_label_rounds_but_never_fails():
    """Labels round to their quantum; a number too long for that is shown as it is."""
    from ketacds.engine.facts import shown

    assert "68.04" == shown(Decimal("68.0388555"), Decimal("0.01"))
    assert "70" == shown(70, Decimal("0.1"))
    assert "1E+119" == shown(Decimal("1E+119"), Decimal("0.01"))


def test_a_label_is_written_as_format_writes_it():
    """``shown`` writes every number as rounding then ``format(..., "f")`` would."""
    import decimal
    import random
    from decimal import ROUND_HALF_EVEN

    from ketacds.engine.numbers import _EXACT, _HUNDREDTH, _TENTH, _THOUSANDTH, shown

    def reference(value, quantum):
        if value.__class__ is int and quantum.as_tuple().exponent <= 0:
            return str(value)
        try:
            rounded = Decimal(value).quantize(quantum, ROUND_HALF_EVEN, context=_EXACT)
        except decimal.InvalidOperation:
            return str(value)
        if rounded == rounded.to_integral_value():
            return format(rounded.quantize(Decimal(1), context=_EXACT), "f")
        return format(rounded.normalize(_EXACT), "f")

    rng = random.Random(18)
    values = [Decimal("-0"), Decimal("-0.001"), Decimal("1E+200"), 0, -3, 10**130, 2.5]
    values += [Decimal(rng.randint(-(10**12), 10**12)).scaleb(rng.randint(-12, 12)) for _ in range(3000)]
    for quantum in (_TENTH, _HUNDREDTH, _THOUSANDTH, Decimal(1), Decimal("1E-9"), Decimal("1E+2")):
        for value in values:
            assert shown(value, quantum) == reference(value, quantum)


def test_hours_since_a_reading_are_exact():
    import decimal

    from ketacds.engine.numbers import _EXACT
    from ketacds.engine.readings import _hours

    with decimal.localcontext(_EXACT):
        for delta in (
            dt.timedelta(0),
            dt.timedelta(minutes=20),
            dt.timedelta(days=-1, seconds=5),
            dt.timedelta(microseconds=1),
        ):
            seconds = Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / 1_000_000
            assert repr(_hours(delta)) == repr(seconds / 3600)
