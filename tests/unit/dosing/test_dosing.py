"""Dose arithmetic: exact, parameterised by the rule, and explicit when it cannot compute."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ketacds.dosing.functions import DoseInputs, devine_ideal_body_weight_kg, weight_based

PARAMS = {"mg_per_kg": Decimal("0.5"), "infusion_minutes": 40, "weight": "actual"}


def test_actual_weight_dose():
    """0.5 mg/kg × 68 kg = 34.0 mg over 40 minutes."""
    result = weight_based(PARAMS, DoseInputs(weight_kg=Decimal(68), height_cm=None, sex=None))

    assert (Decimal("34.0"), Decimal("68.0"), 40) == (
        result.dose_mg,
        result.dosing_weight_kg,
        result.infusion_minutes,
    )


@pytest.mark.parametrize(
    ("height_cm", "sex", "expected"),
    [
        (Decimal("177.8"), "male", Decimal("73.0")),
        (Decimal("165"), "female", Decimal("56.9")),
        (Decimal(140), "male", Decimal(50)),
    ],
)
def test_devine(height_cm, sex, expected):
    """Devine: 50 / 45.5 kg + 2.3 kg per inch over 5 ft; the base weight at or under 5 ft."""
    assert expected == devine_ideal_body_weight_kg(height_cm, sex)


def test_devine_needs_female_or_male():
    """The formula is defined for female and male only."""
    with pytest.raises(ValueError, match="needs sex female or male"):
        devine_ideal_body_weight_kg(Decimal(170), "other")


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        (DoseInputs(weight_kg=None, height_cm=None, sex=None), "body weight is not recorded"),
        (DoseInputs(weight_kg=Decimal(90), height_cm=None, sex="male"), "height and sex"),
    ],
)
def test_missing_inputs_are_explained(inputs, reason):
    """When a dose cannot be computed the result says why, and has no dose."""
    basis = "actual" if inputs.weight_kg is None else "ideal-body-weight"
    result = weight_based({**PARAMS, "weight": basis}, inputs)

    assert None is result.dose_mg
    assert reason in result.not_computed


@given(st.decimals(min_value=1, max_value=300, places=2), st.sampled_from(["0.1", "0.5", "0.75", "1.0"]))
def test_dose_is_mg_per_kg_times_weight(weight, mg_per_kg):
    """The dose equals mg/kg × weight, within the 0.05 mg of rounding."""
    result = weight_based(
        {**PARAMS, "mg_per_kg": Decimal(mg_per_kg)}, DoseInputs(weight_kg=weight, height_cm=None, sex=None)
    )

    assert abs(result.dose_mg - Decimal(mg_per_kg) * weight) <= Decimal("0.05")
