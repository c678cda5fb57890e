"""The one home of Hypothesis strategies: plausible patients and planned treatments.

Codes are drawn from the bundled value sets (and from codes no value set knows),
so the rules have something to match and something to ignore.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import strategies as st

from ketacds import (
    Allergy,
    AntidepressantTrial,
    Coding,
    Condition,
    Context,
    Medication,
    Observation,
    ObservationComponent,
    Patient,
    PatientRecord,
    Quantity,
    SubstanceUse,
    load_ruleset,
)
from ketacds.ruleset import ir

NOW = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)
_RULESET = load_ruleset()
_CODES = sorted(
    {(c.system, c.code) for vs in _RULESET.valuesets for c in vs.codes}
    | {("http://hl7.org/fhir/sid/icd-10-cm", "J45.909"), ("http://snomed.info/sct", "73211009")}
)
_NAMES = sorted({n for vs in _RULESET.valuesets for n in vs.names} | {"sertraline", "metformin"})
JURISDICTIONS = sorted(j.id for j in _RULESET.jurisdictions)
ROUTES = ("ketamine-iv", "esketamine-nasal", "ketamine-other")


def decimals(low: int, high: int, places: int = 1) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=low, max_value=high, places=places, allow_nan=False, allow_infinity=False)


codings = st.sampled_from(_CODES).map(lambda sc: Coding(system=sc[0], code=sc[1]))
names = st.sampled_from(_NAMES)


@st.composite
def code_or_name(draw: st.DrawFn) -> dict[str, object]:
    if draw(st.booleans()):
        return {"code": draw(codings), "name": None}
    return {"code": None, "name": draw(names)}


patients = st.builds(
    Patient,
    age_years=st.one_of(st.none(), st.integers(0, 110)),
    sex=st.one_of(st.none(), st.sampled_from(["female", "male", "other", "unknown"])),
    weight=st.one_of(
        st.none(),
        st.builds(Quantity, value=decimals(3, 250), unit=st.just("kg")),
        st.builds(Quantity, value=decimals(7, 550), unit=st.just("lb")),
    ),
    height=st.one_of(st.none(), st.builds(Quantity, value=decimals(50, 220), unit=st.just("cm"))),
    pregnant=st.one_of(st.none(), st.booleans()),
    hepatic_class=st.one_of(st.none(), st.sampled_from(["A", "B", "C"])),
)

conditions = code_or_name().flatmap(
    lambda cn: st.builds(
        Condition,
        clinical_status=st.sampled_from(["active", "recurrence", "inactive", "resolved"]),
        **{k: st.just(v) for k, v in cn.items()},
    )
)

medications = code_or_name().flatmap(
    lambda cn: st.builds(
        Medication,
        dose=st.one_of(st.none(), decimals(0, 400)),
        unit=st.just("mg"),
        frequency_per_day=st.one_of(st.none(), st.sampled_from([Decimal(1), Decimal(2), Decimal(3)])),
        as_needed=st.booleans(),
        status=st.sampled_from(["active", "stopped", "on-hold"]),
        **{k: st.just(v) for k, v in cn.items()},
    )
)

trials = st.builds(
    AntidepressantTrial,
    name=st.sampled_from(["sertraline", "escitalopram", "venlafaxine", "bupropion", "mirtazapine"]),
    dose=st.one_of(st.none(), decimals(5, 300)),
    unit=st.just("mg"),
    weeks=st.one_of(st.none(), decimals(0, 20, 0)),
    response=st.sampled_from(["none", "partial", "response", "remission", "unknown"]),
    episode=st.sampled_from(["current", "previous"]),
    adequate_dose=st.one_of(st.none(), st.booleans()),
)

times = st.one_of(
    st.none(), st.integers(0, 24 * 30).map(lambda minutes: NOW - dt.timedelta(minutes=minutes * 60))
)

blood_pressures = st.builds(
    Observation,
    name=st.just("blood pressure"),
    time=times,
    components=st.tuples(
        st.builds(
            ObservationComponent, name=st.just("systolic"), value=decimals(80, 220, 0), unit=st.just("mmHg")
        ),
        st.builds(
            ObservationComponent, name=st.just("diastolic"), value=decimals(40, 130, 0), unit=st.just("mmHg")
        ),
    ),
)

single_observations = st.builds(
    Observation,
    name=st.sampled_from(["systolic blood pressure", "diastolic blood pressure", "phq-9", "heart rate"]),
    value=decimals(0, 200, 0),
    unit=st.just("mmHg"),
    time=times,
)

allergies = code_or_name().flatmap(
    lambda cn: st.builds(
        Allergy, status=st.sampled_from(["active", "resolved"]), **{k: st.just(v) for k, v in cn.items()}
    )
)
substance_uses = st.builds(SubstanceUse, name=st.sampled_from(["alcohol", "cannabis"]))


def _tuples(elements: st.SearchStrategy[object], max_size: int) -> st.SearchStrategy[tuple[object, ...]]:
    return st.lists(elements, max_size=max_size).map(tuple)


records = st.builds(
    PatientRecord,
    patient=patients,
    conditions=_tuples(conditions, 4),
    medications=_tuples(medications, 4),
    observations=_tuples(st.one_of(blood_pressures, single_observations), 3),
    allergies=_tuples(allergies, 1),
    trials=_tuples(trials, 4),
    substance_use=_tuples(substance_uses, 1),
)

contexts = st.builds(
    Context,
    route=st.sampled_from(ROUTES),
    jurisdiction=st.sampled_from(JURISDICTIONS),
    now=st.just(NOW),
)


# Tests on one number field, for the linter's logic (tests/property/test_logic_properties.py).
# Small integer bounds: every interval between them contains a half-integer of the grid below.
_bounds = st.integers(min_value=-3, max_value=3)
number_tests = st.lists(
    st.one_of(
        st.builds(ir.Test, st.just("x"), st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"]), _bounds),
        st.builds(ir.Test, st.just("x"), st.just("in"), st.lists(_bounds, min_size=1, max_size=3).map(tuple)),
        st.builds(ir.Test, st.just("x"), st.just("present"), st.booleans()),
    ),
    max_size=4,
)
#: The values (None: unknown) against which a set of number tests is checked by brute force.
NUMBER_GRID = (None, *(Decimal(n) / 2 for n in range(-9, 10)))
