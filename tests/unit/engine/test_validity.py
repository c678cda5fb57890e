"""rulesets/validity.yaml: loading (file:line errors, did-you-mean, digest) and what the
facts make of it (implausible values, readings from the future, validity windows)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

from ketacds import (
    Context,
    Engine,
    Observation,
    ObservationComponent,
    Patient,
    PatientRecord,
    Quantity,
    RulesetError,
    load_ruleset,
)
from ketacds.models.inputs import Order, Plan
from ketacds.ruleset import checks
from ketacds.ruleset.ir import canonical, from_canonical
from ketacds.ruleset.load import load_checked
from rulesets_fixtures import copy_rules, line_of, replace

NOW = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)
IV = Context(route="ketamine-iv", jurisdiction="US", now=NOW)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    return copy_rules(tmp_path)


@pytest.fixture(scope="module")
def engine():
    with Engine() as built:
        yield built


# ------------------------------------------------------------------------ loading


def test_the_bundled_file_loads_into_the_ir_and_the_digest(rules_dir: Path):
    """Every range and window is in the canonical form: changing one changes the digest."""
    ruleset = load_ruleset(rules_dir)
    assert ruleset.validity is not None
    systolic = ruleset.validity.range_of("observation", "systolic-blood-pressure")
    assert systolic is not None
    assert systolic.current_hours == Decimal(12)
    assert from_canonical(canonical(ruleset)) == ruleset

    replace(rules_dir, "validity.yaml", "current_within_hours: 12", "current_within_hours: 6")

    assert load_ruleset(rules_dir).digest != ruleset.digest


def test_every_range_has_a_rationale_and_evidence():
    """No bare number: each range says why and cites the register."""
    validity = load_ruleset().validity
    assert validity is not None
    for item in validity.ranges:
        assert item.rationale
        assert item.evidence
    assert validity.future_evidence


@pytest.mark.parametrize(
    ("old", "new", "message", "suggestion", "needle", "code"),
    [
        (
            "in: systolic-blood-pressure",
            "in: systolic-blood-presure",
            "unknown value set",
            "systolic-blood-pressure",
            "systolic-blood-presure",
            checks.UNKNOWN_VALUESET,
        ),
        (
            "field: patient.weight_kg",
            "field: patient.weight_kgs",
            "no number field 'weight_kgs'",
            "weight_kg",
            "patient.weight_kgs",
            checks.VALIDITY,
        ),
        (
            "field: patient.age_years",
            "field: patiant.age_years",
            "not 'patiant'",
            "patient",
            "patiant.age_years",
            checks.VALIDITY,
        ),
        (
            "plausible: {gte: 40, lte: 300}",
            "plausible: {gte: 300, lte: 40}",
            "is not below the upper bound",
            None,
            "gte: 300, lte: 40",
            checks.VALIDITY,
        ),
        (
            "unit: mmHg",
            "unit: stone",
            "unknown unit",
            None,
            "unit: stone",
            checks.VALIDITY,
        ),
        (
            "- {source: KETACDS-ENG, section: Nothing unseen (future readings)}",
            "- {source: KETACDS-ENGG, section: Nothing unseen (future readings)}",
            "unknown source",
            "KETACDS-ENG",
            "KETACDS-ENGG",
            checks.UNKNOWN_SOURCE,
        ),
        (
            "    current_within_hours: 12\n    rationale: >-\n      Range: clinical",
            "    current_within_hour: 12\n    rationale: >-\n      Range: clinical",
            "unknown key 'current_within_hour'",
            "current_within_hours",
            "current_within_hour:",
            checks.UNKNOWN_KEY,
        ),
    ],
)
def test_errors_point_at_file_and_line(rules_dir: Path, old, new, message, suggestion, needle, code):
    """A mistake in validity.yaml is reported at its line, with a did-you-mean, under its lint code."""
    replace(rules_dir, "validity.yaml", old, new)

    with pytest.raises(RulesetError) as info:
        load_ruleset(rules_dir)

    error = info.value
    assert message in error.reason
    assert "validity.yaml" == error.file
    assert suggestion == error.suggestion
    assert code == error.code
    assert error.line is not None
    assert abs(line_of(rules_dir, needle, "validity.yaml") - error.line) <= 1


def test_a_range_given_twice_is_refused(rules_dir: Path):
    """One quantity, one range: a second one names the first's line."""
    replace(
        rules_dir,
        "validity.yaml",
        "  - field: patient.height_cm\n",
        "  - field: patient.weight_kg\n",
    )

    with pytest.raises(RulesetError, match="has a range already"):
        load_ruleset(rules_dir)


def test_the_linter_reports_validity_problems(rules_dir: Path):
    """The collecting loader (lint) reports the problem instead of stopping."""
    replace(rules_dir, "validity.yaml", "field: patient.weight_kg", "field: patient.weight_kgs")

    problems = load_checked(rules_dir).problems

    assert [checks.VALIDITY] == [p.code for p in problems]


def test_a_ruleset_without_the_file_has_no_ranges(rules_dir: Path):
    """validity.yaml is optional for test fixtures; the bundled ruleset has it."""
    (rules_dir / "validity.yaml").unlink()

    assert load_ruleset(rules_dir).validity is None


# ------------------------------------------------------------------------ facts


def _bp(systolic: int, diastolic: int, time: dt.datetime | None) -> Observation:
    return Observation(
        name="blood pressure",
        time=time,
        components=(
            ObservationComponent(name="systolic", value=Decimal(systolic), unit="mmHg"),
            ObservationComponent(name="diastolic", value=Decimal(diastolic), unit="mmHg"),
        ),
    )


def _observations(built) -> list[dict]:
    return sorted((f for f in built.facts if f["t"] == "observation"), key=lambda f: f["vs"])


def test_a_reading_from_the_future_is_an_error_and_never_latest(engine):
    """A year after now: reported, its value left out; the earlier reading is the latest."""
    record = PatientRecord(
        patient=Patient(),
        observations=(
            _bp(190, 115, NOW - dt.timedelta(minutes=30)),
            _bp(120, 80, NOW + dt.timedelta(days=365)),
        ),
    )
    built = engine.facts(record, IV)

    latest = [f["value"] for f in built.facts if f["t"] == "observation" and f["latest"]]
    assert [115, 190] == sorted(latest)
    assert {"future-reading"} == {i.code for i in built.quality if i.severity == "error"}


def test_the_clock_skew_tolerance_is_the_rulesets(engine):
    """Three minutes after now is now (tolerance 5 minutes); ten minutes is the future."""
    near = engine.facts(
        PatientRecord(patient=Patient(), observations=(_bp(120, 80, NOW + dt.timedelta(minutes=3)),)), IV
    )
    far = engine.facts(
        PatientRecord(patient=Patient(), observations=(_bp(120, 80, NOW + dt.timedelta(minutes=10)),)), IV
    )

    assert all(f["latest"] for f in _observations(near))
    assert not any(f["latest"] for f in _observations(far))


def test_a_now_at_the_end_of_the_calendar_is_assessed_not_an_engine_error(engine):
    """``now`` on 9999-12-31 (found by make fuzz): the future check must not overflow the date."""
    end = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    record = PatientRecord(
        patient=Patient(weight=Quantity(value=Decimal(70), unit="kg", time=end - dt.timedelta(days=1))),
        observations=(_bp(120, 80, end - dt.timedelta(minutes=30)),),
    )

    built = engine.facts(record, attrs.evolve(IV, now=end))

    assert all(f["latest"] for f in _observations(built))


@pytest.mark.parametrize(
    ("systolic", "diastolic", "current"),
    [
        (-500, -20, set()),
        (0, 0, set()),
        (139, -90, {139}),  # the systolic is plausible alone; there is no current diastolic
        (120, 130, set()),  # diastolic not below systolic: neither is believed
        (400, 80, {80}),
    ],
)
def test_implausible_blood_pressure_is_not_believed(engine, systolic, diastolic, current):
    """Outside its range, or diastolic not below systolic: an error, and not the current value."""
    built = engine.facts(
        PatientRecord(
            patient=Patient(), observations=(_bp(systolic, diastolic, NOW - dt.timedelta(hours=1)),)
        ),
        IV,
    )

    assert "implausible" in {i.code for i in built.quality if i.severity == "error"}
    assert current == {f["value"] for f in _observations(built) if f["latest"]}
    assert all("value" not in f for f in _observations(built) if not f["latest"])


@pytest.mark.parametrize(
    ("weight", "unit"),
    [(Decimal("0.1"), "kg"), (Decimal(900), "kg"), (Decimal(5000), "kg"), (Decimal(68), "g")],
)
def test_no_weight_and_no_dose_from_an_implausible_weight(engine, weight, unit):
    """The weight is left out (so KCDS-GAP-001 fires) and no dose is computed from it."""
    record = PatientRecord(
        patient=Patient(age_years=40, sex="male", weight=Quantity(value=weight, unit=unit))
    )
    built = engine.facts(record, IV)
    patient = next(f for f in built.facts if f["t"] == "patient")

    assert "weight_kg" not in patient
    assert built.dose_inputs.weight_kg is None
    assert [("error", "implausible", "patient.weight")] == [
        (i.severity, i.code, i.path) for i in built.quality
    ]
    assessment = engine.assess(record, IV)
    assert assessment.dose is None
    assert "weight" in {gap.missing for gap in assessment.data_gaps}


def test_weight_and_height_that_do_not_belong_together_are_both_dropped(engine):
    """Each plausible alone, but a BMI of 2.6: neither is believed."""
    record = PatientRecord(
        patient=Patient(
            weight=Quantity(value=Decimal(5), unit="kg"), height=Quantity(value=Decimal(140), unit="cm")
        )
    )
    patient = next(f for f in engine.facts(record, IV).facts if f["t"] == "patient")

    assert {"t", "id"} == set(patient)


def test_an_implausible_age_is_left_out(engine):
    """Age 1,000,000: an error, and age unknown (so KCDS-GAP-007 fires)."""
    built = engine.facts(PatientRecord(patient=Patient(age_years=1_000_000)), IV)

    assert "age_years" not in next(f for f in built.facts if f["t"] == "patient")
    assert ["patient.age_years"] == [i.path for i in built.quality]


def test_plan_and_order_fields_outside_their_range_are_left_out(engine):
    """Zero sessions a week, an order of 0 mg: left out, reported, and no dose computed from the order."""
    context = Context(
        route="esketamine-nasal",
        jurisdiction="US",
        now=NOW,
        plan=Plan(sessions_per_week=Decimal(0)),
        order=Order(name="esketamine", dose=Decimal(0), unit="mg", per_week=Decimal(2)),
    )
    built = engine.facts(PatientRecord(patient=Patient()), context)
    plan = next(f for f in built.facts if f["t"] == "plan")
    order = next(f for f in built.facts if f["t"] == "order")

    assert "sessions_per_week" not in plan
    assert "dose_mg" not in order
    assert order["per_week"] == 2
    assert built.dose_inputs.ordered_mg is None
    assert {"context.plan.sessions_per_week", "context.order.dose_mg"} == {i.path for i in built.quality}


def test_untimed_and_stale_readings_are_never_current(engine):
    """Neither is the latest: the stale one is history (info); the untimed one might be the
    newest, so it is an error (the status cannot reassure while it stands)."""
    record = PatientRecord(
        patient=Patient(),
        observations=(
            _bp(150, 95, None),
            _bp(160, 100, NOW - dt.timedelta(hours=13)),
            _bp(120, 80, NOW - dt.timedelta(hours=11)),
        ),
    )
    built = engine.facts(record, IV)

    assert [80, 120] == sorted(f["value"] for f in built.facts if f["t"] == "observation" and f["latest"])
    assert {"stale-reading"} == {i.code for i in built.quality if i.severity == "info"}
    assert {"untimed-reading"} == {i.code for i in built.quality if i.severity == "error"}


def test_a_stale_dangerous_reading_is_the_gaps_basis(engine):
    """200/120 a week ago: no current reading, so KCDS-GAP-012 fires and shows it."""
    record = PatientRecord(patient=Patient(), observations=(_bp(200, 120, NOW - dt.timedelta(days=7)),))
    assessment = engine.assess(record, Context(route="esketamine-nasal", jurisdiction="US", now=NOW))
    gap = assessment.finding("KCDS-GAP-012")

    assert gap is not None
    assert {"systolic 200 mmHg", "diastolic 120 mmHg"} == {b.label.split(" at ")[0] for b in gap.basis}
    assert assessment.finding("KCDS-CI-004") is None


@pytest.mark.parametrize(("days_ago", "used"), [(7, True), (29, True), (31, False), (-1, False)])
def test_a_timed_weight_is_used_only_inside_its_window(engine, days_ago, used):
    """A weight with a time is current for 30 days; older (or from the future) it is not used."""
    weight = Quantity(value=Decimal(80), unit="kg", time=NOW - dt.timedelta(days=days_ago))
    built = engine.facts(PatientRecord(patient=Patient(weight=weight)), IV)

    assert used == ("weight_kg" in next(f for f in built.facts if f["t"] == "patient"))
    assert used == (built.dose_inputs.weight_kg is not None)


@pytest.mark.parametrize(
    ("age", "current"), [(dt.timedelta(hours=12), True), (dt.timedelta(hours=12, seconds=1), False)]
)
def test_the_window_is_compared_exactly(engine, age, current):
    """12 hours is inside the window; one second more is not (hours_ago shows 12.0, but the
    comparison is on the exact age, never the rounded one)."""
    built = engine.facts(PatientRecord(patient=Patient(), observations=(_bp(128, 78, NOW - age),)), IV)

    assert [current, current] == [f["latest"] for f in _observations(built)]


@pytest.mark.parametrize(("days_ago", "kept"), [(10, True), (31, False)])
def test_a_timed_pregnancy_status_is_used_only_inside_its_window(engine, days_ago, kept):
    """A recorded "not pregnant" older than 30 days is unknown again (the gap asks for it)."""
    patient = Patient(
        sex="female", age_years=30, pregnant=False, pregnant_time=NOW - dt.timedelta(days=days_ago)
    )
    built = engine.facts(PatientRecord(patient=patient), IV)

    assert kept == ("pregnant" in next(f for f in built.facts if f["t"] == "patient"))


def test_issues_built_without_validators_are_valid(engine):
    """The fact builders write their data-quality issues unvalidated (``readings._new_issue``):
    each one passes its class's validators and equals the same issue built by keyword."""
    from ketacds import load_case
    from ketacds.errors import KetacdsError
    from ketacds.models.quality import DataQualityIssue
    from ketacds.synthetic import synthetic_cases

    built = [
        engine.facts(
            PatientRecord(
                patient=Patient(weight=Quantity(value=Decimal(5000), unit="kg")),
                observations=(
                    _bp(400, 80, NOW - dt.timedelta(hours=1)),
                    _bp(120, 130, NOW - dt.timedelta(hours=2)),
                    _bp(120, 80, NOW + dt.timedelta(days=365)),
                    _bp(120, 80, None),
                ),
            ),
            IV,
        )
    ]
    for data in synthetic_cases(300):
        try:
            record, context = load_case(data)
            built.append(engine.facts(record, context))
        except KetacdsError:
            continue
    codes = set()
    for facts in built:
        for issue in facts.quality:
            attrs.validate(issue)
            assert issue == DataQualityIssue(**attrs.asdict(issue))
            codes.add(issue.code)
    expected = {"implausible", "future-reading", "stale-reading", "untimed-reading"}
    expected.add("unrecognised-medication")
    assert expected <= codes, codes
