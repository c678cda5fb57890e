"""The ordered dose (Context.order) and data-quality issues, through the core."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import attrs
import pytest

from ketacds import Assessment, InputError, load_case, load_case_file
from ketacds.dosing.functions import DoseInputs, stepped
from ketacds.models.inputs import Order, Plan
from ketacds.models.quality import DataQualityIssue
from ketacds.reporting import render
from support import EXAMPLES

NOW = dt.datetime(2026, 11, 21, 14, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("ordered", "dose", "reason"),
    [
        (Decimal(112), Decimal(84), None),
        (Decimal(70), Decimal(56), None),
        (Decimal(20), None, "the order is below the smallest allowed dose (28 mg)"),
        (None, None, "no ordered dose to adjust"),
    ],
)
def test_stepped_dose(ordered, dose, reason):
    """The largest 28 mg step not above the order, at most 84 mg; none below one step or without an order."""
    result = stepped(
        {"step_mg": 28, "max_mg": 84},
        DoseInputs(weight_kg=None, height_cm=None, sex=None, ordered_mg=ordered),
    )

    assert (dose, reason, None) == (result.dose_mg, result.not_computed, result.mg_per_kg)


def test_an_order_without_a_dose_is_a_data_gap(engine):
    """An order without a stated dose cannot pass the dose checks: KCDS-ORD-004, at best incomplete."""
    record, context = load_case_file(EXAMPLES / "10-esketamine-order-above-maximum.yaml")
    result = engine.assess(record, attrs.evolve(context, order=Order(name="esketamine", per_week=Decimal(2))))

    assert "KCDS-ORD-004" in result.rule_ids
    assert "incomplete" == result.status


def test_an_allowed_order_passes(engine):
    """56 mg twice weekly in week 2 (induction): no order finding."""
    record, context = load_case_file(EXAMPLES / "10-esketamine-order-above-maximum.yaml")
    result = engine.assess(
        record,
        attrs.evolve(
            context,
            plan=Plan(treatment_week=2),
            order=Order(name="esketamine", dose=Decimal(56), unit="mg", per_week=Decimal(2)),
        ),
    )

    assert not [r for r in result.rule_ids if r.startswith("KCDS-ORD")]


def test_a_twice_weekly_order_without_a_week_is_a_data_gap(engine):
    """56 mg twice weekly with no treatment week: the phase checks cannot run, KCDS-ORD-181 shows it."""
    record, context = load_case_file(EXAMPLES / "10-esketamine-order-above-maximum.yaml")
    result = engine.assess(
        record,
        attrs.evolve(
            context, order=Order(name="esketamine", dose=Decimal(56), unit="mg", per_week=Decimal(2))
        ),
    )

    assert [r for r in result.rule_ids if r.startswith("KCDS-ORD")] == ["KCDS-ORD-181"]
    assert any(gap.missing == "treatment week" for gap in result.data_gaps)


def test_order_in_a_case_file():
    """context.order is read from a case file, and its errors name the field."""
    data = {
        "patient": {},
        "context": {
            "route": "esketamine-nasal",
            "jurisdiction": "US",
            "now": "2026-11-21T09:00:00Z",
            "order": {"name": "esketamine", "dose": 84, "unit": "mg", "per_week": 2},
        },
    }
    _, context = load_case(data)

    assert Order(name="esketamine", dose=Decimal(84), unit="mg", per_week=Decimal(2)) == context.order
    with pytest.raises(InputError, match=r"context\.order\.unit"):
        load_case({**data, "context": {**data["context"], "order": {"name": "x", "dose": 1, "unit": "mmHg"}}})


def test_quality_errors_are_one_fact_per_kind_and_make_the_status_incomplete(engine):
    """Three unreadable observations are one fact with a count; KCDS-GAP-013 fires; info is no fact."""
    record, context = load_case_file(EXAMPLES / "01-trd-esketamine-us.yaml")
    issues = tuple(
        DataQualityIssue(
            severity="error", code="unknown-unit", message=f"unit {i}", resource=f"Observation/o{i}"
        )
        for i in range(3)
    )
    record = attrs.evolve(
        record, data_quality=(*issues, DataQualityIssue(severity="info", code="not-read", message="Claim ×1"))
    )

    facts = [f for f in engine.facts(record, context).facts if f["t"] == "quality"]
    result = engine.assess(record, context)

    assert [
        {
            "t": "quality",
            "id": "quality:error:unknown-unit:Observation",
            "severity": "error",
            "code": "unknown-unit",
            "resource_type": "Observation",
        }
    ] == facts
    assert "incomplete" == result.status
    (basis,) = result.finding("KCDS-GAP-013").basis
    assert "data quality error (3 times): Observation: unit 0" == basis.label
    assert 4 == len(result.data_quality)


def test_data_quality_is_reported_and_round_trips(engine):
    """Data quality shows in text and Markdown reports and survives JSON; old JSON without it still reads."""
    record, context = load_case_file(EXAMPLES / "01-trd-esketamine-us.yaml")
    issue = DataQualityIssue(
        severity="warning",
        code="deceased",
        message="The patient is recorded as deceased.",
        resource="Patient/p",
        path="deceased",
    )
    result = engine.assess(attrs.evolve(record, data_quality=(issue,)), context)
    old = result.to_dict()
    del old["data_quality"]

    assert "- warning: The patient is recorded as deceased. [Patient/p deceased]" in render(result, "text")
    assert "### Data quality" in render(result, "markdown")
    assert result == Assessment.from_json(result.to_json())
    assert () == Assessment.from_dict(old).data_quality


def test_fixed_dose_in_reports(engine):
    """A fixed dose (no mg/kg) prints with its formula."""
    record, context = load_case_file(EXAMPLES / "10-esketamine-order-above-maximum.yaml")

    assert "nearest allowed session dose at or below the order: 84 mg (largest multiple of 28 mg" in render(
        engine.assess(record, context), "text"
    ).replace("\n  ", " ")


def test_ordered_mg_per_kg_needs_a_weight(engine):
    """Without a weight the order fact has a dose but no mg/kg (so the mg/kg rule cannot fire by accident)."""
    record, context = load_case_file(EXAMPLES / "11-iv-ketamine-order-high-dose.yaml")
    record = attrs.evolve(record, patient=attrs.evolve(record.patient, weight=None))
    (order,) = [f for f in engine.facts(record, context).facts if f["t"] == "order"]

    assert ("dose_mg" in order, "mg_per_kg" in order) == (True, False)
