"""Dose arithmetic: small pure functions that rules name and parameterise.

Rules decide *whether* and *which* protocol applies (``rulesets/dosing.yaml``); these
functions compute *how much*, in :class:`~decimal.Decimal`, from the parameters the
rule gives and the patient's measurements. They hold no clinical threshold of their
own: mg/kg, infusion time and the weight basis all come from the rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

import attrs

__all__ = [
    "FUNCTIONS",
    "PARAMETERS",
    "DoseInputs",
    "DoseResult",
    "devine_ideal_body_weight_kg",
    "fixed",
    "stepped",
    "weight_based",
]

_INCHES_PER_CM = Decimal(1) / Decimal("2.54")
_TENTH = Decimal("0.1")


@attrs.frozen(kw_only=True)
class DoseInputs:
    """The patient measurements a dose function may use (``None`` when unknown)."""

    weight_kg: Decimal | None
    height_cm: Decimal | None
    sex: str | None
    #: The dose of the drafted order in mg (``Context.order``), when there is one.
    ordered_mg: Decimal | None = None


@attrs.frozen(kw_only=True)
class DoseResult:
    """A computed dose, or the reason it could not be computed.

    Weight-based doses fill ``mg_per_kg``, ``weight_basis`` and ``dosing_weight_kg``;
    fixed doses leave them ``None``. ``schedule`` is the rule's wording of the schedule.
    """

    dose_mg: Decimal | None
    mg_per_kg: Decimal | None = None
    weight_basis: str | None = None
    dosing_weight_kg: Decimal | None = None
    infusion_minutes: int | None = None
    sessions_per_week: Decimal | None = None
    schedule: str | None = None
    formula: str | None = None
    not_computed: str | None = None


def devine_ideal_body_weight_kg(height_cm: Decimal, sex: str) -> Decimal:
    """Ideal body weight by Devine (1974): 50 kg (men) or 45.5 kg (women) + 2.3 kg per inch over 5 ft.

    Heights at or under 5 ft give the base weight (the formula is not defined below it).

    Raises:
        ValueError: ``sex`` is not ``"female"`` or ``"male"``.
    """
    base = {"male": Decimal(50), "female": Decimal("45.5")}
    if sex not in base:
        raise ValueError(f"the Devine formula needs sex female or male, not {sex!r}")
    inches_over_five_feet = max(Decimal(0), height_cm * _INCHES_PER_CM - 60)
    return (base[sex] + Decimal("2.3") * inches_over_five_feet).quantize(_TENTH, ROUND_HALF_EVEN)


def weight_based(params: Mapping[str, object], patient: DoseInputs) -> DoseResult:
    """Dose = ``mg_per_kg`` × dosing weight, rounded to 0.1 mg (half-even).

    Params:
        mg_per_kg: the dose per kilogram (number).
        infusion_minutes: the infusion time, when the protocol has one (whole number).
        weight: ``actual`` (measured weight) or ``ideal-body-weight`` (Devine).
    """
    mg_per_kg = Decimal(str(params["mg_per_kg"]))
    minutes = params.get("infusion_minutes")
    infusion = int(str(minutes)) if minutes is not None else None
    basis = str(params.get("weight", "actual"))
    formula = None
    reason = None
    weight: Decimal | None = None
    if basis == "actual":
        weight = patient.weight_kg
        reason = None if weight is not None else "body weight is not recorded"
    else:
        formula = "Devine (1974)"
        if patient.height_cm is None or patient.sex not in ("female", "male"):
            reason = "height and sex (female or male) are needed for ideal body weight"
        else:
            weight = devine_ideal_body_weight_kg(patient.height_cm, str(patient.sex))
    dose = None if weight is None else (mg_per_kg * weight).quantize(_TENTH, ROUND_HALF_EVEN)
    return DoseResult(
        mg_per_kg=mg_per_kg,
        weight_basis=basis,
        dosing_weight_kg=None if weight is None else weight.quantize(_TENTH, ROUND_HALF_EVEN),
        dose_mg=dose,
        infusion_minutes=infusion,
        schedule=_text(params.get("schedule")),
        formula=formula,
        not_computed=reason,
    )


def fixed(params: Mapping[str, object], patient: DoseInputs) -> DoseResult:
    """A fixed dose in mg (e.g. esketamine 56 mg), with the rule's frequency and schedule.

    Params:
        mg: the dose per session (number).
        sessions_per_week: how many sessions a week (number, optional).
        schedule: the schedule in words (optional).
    """
    del patient  # a fixed dose does not depend on the patient's measurements
    per_week = params.get("sessions_per_week")
    return DoseResult(
        dose_mg=Decimal(str(params["mg"])),
        sessions_per_week=Decimal(str(per_week)) if per_week is not None else None,
        schedule=_text(params.get("schedule")),
    )


def _text(value: object) -> str | None:
    return None if value is None else " ".join(str(value).split())


def stepped(params: Mapping[str, object], patient: DoseInputs) -> DoseResult:
    """The largest multiple of ``step_mg`` not above the ordered dose, capped at ``max_mg``.

    For products given in fixed device doses: an order between steps, or above the
    maximum, gets the nearest allowed dose below it. An order below one step gets
    none (a smaller dose cannot be given), and neither does a rule without an order.

    Params:
        step_mg: the dose of one device or step (number).
        max_mg: the largest allowed dose (number).
    """
    step = Decimal(str(params["step_mg"]))
    ceiling = Decimal(str(params["max_mg"]))
    formula = f"largest multiple of {step} mg not above the order, at most {ceiling} mg"
    ordered = patient.ordered_mg
    dose = None
    reason = None
    if ordered is None:
        reason = "no ordered dose to adjust"
    elif ordered < step:
        reason = f"the order is below the smallest allowed dose ({step} mg)"
    else:
        dose = min(ceiling, (ordered / step).to_integral_value(ROUND_FLOOR) * step)
    return DoseResult(dose_mg=dose, formula=formula, not_computed=reason)


DoseFunction = Callable[[Mapping[str, object], DoseInputs], DoseResult]

#: The functions rules may name in ``then.dose.function``.
FUNCTIONS: dict[str, DoseFunction] = {
    "weight-based": weight_based,
    "fixed": fixed,
    "stepped": stepped,
}

#: For each function: its parameters, whether each is required, and what is allowed:
#: ``"number"``, ``"text"``, or a tuple of the allowed words.
PARAMETERS: dict[str, dict[str, tuple[bool, str | tuple[str, ...]]]] = {
    "weight-based": {
        "mg_per_kg": (True, "number"),
        "infusion_minutes": (False, "number"),
        "weight": (True, ("actual", "ideal-body-weight")),
        "schedule": (False, "text"),
    },
    "fixed": {
        "mg": (True, "number"),
        "sessions_per_week": (False, "number"),
        "schedule": (False, "text"),
    },
    "stepped": {
        "step_mg": (True, "number"),
        "max_mg": (True, "number"),
    },
}
