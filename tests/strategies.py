"""The one home of Hypothesis strategies: plausible patients and planned treatments.

Codes are drawn from the bundled value sets (and from codes no value set knows),
so the rules have something to match and something to ignore.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import attrs
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
    vocabulary,
)
from ketacds.models.inputs import Order, Plan
from ketacds.ruleset import ir, scope

NOW = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)
_RULESET = load_ruleset()
_CODES = sorted(
    {(c.system, c.code) for vs in _RULESET.valuesets for c in vs.codes}
    | {("http://hl7.org/fhir/sid/icd-10-cm", "J45.909"), ("http://snomed.info/sct", "73211009")}
)
_NAMES = sorted({n for vs in _RULESET.valuesets for n in vs.names} | {"sertraline", "metformin"})
JURISDICTIONS = sorted(j.id for j in _RULESET.jurisdictions)
#: The routes the rules assess somewhere (intranasal racemic ketamine is refused everywhere).
ROUTES = tuple(route for route in vocabulary.ROUTES if route != vocabulary.KETAMINE_INTRANASAL)


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

# Only the programs the bundled rules assess: the others are refused (ProgramRefusedError,
# tested in tests/unit/ruleset/test_scope.py), and widen by themselves as refusals are lifted.
PROGRAMS = tuple(
    program for program in scope.programs(_RULESET) if scope.coverage(_RULESET, *program).state == "covered"
)

contexts = st.sampled_from(PROGRAMS).map(
    lambda program: Context(route=program[0], jurisdiction=program[1], now=NOW)  # type: ignore[arg-type]
)

# Trials that often meet the TRD criteria and often share a drug, so that the join in
# KCDS-CAND-001 ("two *different* drugs") is exercised both ways.
adequate_trials = st.builds(
    AntidepressantTrial,
    name=st.sampled_from(["sertraline", "escitalopram", "sertraline"]),
    dose=st.sampled_from([None, Decimal(50), Decimal(100)]),
    unit=st.just("mg"),
    weeks=st.sampled_from([Decimal(8), Decimal(8), Decimal(4)]),
    response=st.sampled_from(["none", "partial", "none", "response"]),
    episode=st.sampled_from(["current", "current", "current", "previous"]),
    adequate_dose=st.sampled_from([True, True, True, None]),
)

trd_records = st.builds(
    PatientRecord,
    patient=patients,
    conditions=st.just((Condition(code=Coding(system="icd-10-cm", code="F33.2")),)),
    medications=_tuples(medications, 3),
    trials=st.lists(adequate_trials, min_size=2, max_size=4).map(tuple),
    observations=_tuples(blood_pressures, 2),
)


# ----------------------------------------------------------------------------------
# Adversarial input: empty, duplicated, conflicting, extreme and sparse records.


def _duplicated(record: PatientRecord) -> PatientRecord:
    return PatientRecord(
        patient=record.patient,
        conditions=record.conditions * 2,
        medications=record.medications * 2,
        observations=record.observations * 2,
        allergies=record.allergies,
        trials=record.trials * 2,
        substance_use=record.substance_use,
    )


extreme_patients = st.builds(
    Patient,
    age_years=st.sampled_from([0, 1, 17, 18, 64, 65, 110]),
    sex=st.sampled_from(["female", "male", "other", "unknown", None]),
    weight=st.sampled_from(
        [
            None,
            Quantity(value=Decimal("0.5"), unit="kg"),
            Quantity(value=Decimal(400), unit="kg"),
            Quantity(value=Decimal(900), unit="lb"),
        ]
    ),
    height=st.sampled_from(
        [None, Quantity(value=Decimal(30), unit="cm"), Quantity(value=Decimal(250), unit="cm")]
    ),
    pregnant=st.sampled_from([None, True, False]),
    lactating=st.sampled_from([None, True, False]),
)

adversarial_records = st.one_of(
    st.just(PatientRecord(patient=Patient())),
    records.map(_duplicated),
    st.builds(
        PatientRecord,
        patient=extreme_patients,
        conditions=_tuples(conditions, 6),
        medications=_tuples(medications, 6),
    ),
    # conflicting: the same item active and stopped, the same condition active and resolved
    st.builds(
        lambda cond, med: PatientRecord(
            patient=Patient(),
            conditions=(cond, Condition(code=cond.code, name=cond.name, clinical_status="resolved")),
            medications=(med, Medication(code=med.code, name=med.name, status="stopped")),
        ),
        conditions,
        medications,
    ),
)


# ----------------------------------------------------------------------------------
# Codes that only contraindication rules read (for the monotonicity of harm).


def _value_sets_read(categories: set[str], *, inside: bool) -> set[str]:
    from ketacds.ruleset.ir import All, AnyOf, Not, Pattern

    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, Pattern):
            found.update(str(v) for t in node.tests if t.op == "member" for v in t.value)  # type: ignore[union-attr]
        elif isinstance(node, Not):
            walk(node.item)
        elif isinstance(node, All | AnyOf):
            for item in node.items:
                walk(item)

    for rule in _RULESET.rules:
        if (rule.category in categories) == inside:
            walk(rule.when)
    return found


def _harm_codes() -> list[Coding]:
    from ketacds.terminology.valuesets import Terminology

    terminology = Terminology(_RULESET.valuesets)
    elsewhere = _value_sets_read({"contraindication"}, inside=False)
    harmful = _value_sets_read({"contraindication"}, inside=True)
    result = []
    for system, code in _CODES:
        tags = set(terminology.tag(Coding(system=system, code=code), None))
        if tags & harmful and not tags & elsewhere:
            result.append(Coding(system=system, code=code))
    return result


HARM_CODES = _harm_codes()
harm_conditions = st.builds(
    Condition, code=st.sampled_from(HARM_CODES), clinical_status=st.sampled_from(["active", "resolved"])
)


# ----------------------------------------------------------------------------------
# Random rulesets over the fact vocabulary, for the differential test of the engines.


def _random_pattern(draw: st.DrawFn, alias: str | None, refs: list[tuple[str, str]], *, multi: bool = False):
    from ketacds.ruleset.ir import Pattern, Ref, Test

    types = ["condition", "medication", "trial", "observation"] + ([] if multi else ["patient"])
    fact = draw(st.sampled_from(types))
    tests = []
    vs_ids = sorted(vs.id for vs in _RULESET.valuesets)
    if fact != "patient" and draw(st.booleans()):
        tests.append(
            Test(
                "vs",
                "member",
                tuple(draw(st.lists(st.sampled_from(vs_ids), min_size=1, max_size=2, unique=True))),
            )
        )
    numeric = {
        "patient": "age_years",
        "medication": "daily_mg",
        "trial": "weeks",
        "observation": "value",
        "condition": "onset_days_ago",
    }[fact]
    if draw(st.booleans()):
        op = draw(st.sampled_from(["gt", "gte", "lt", "lte", "eq", "ne"]))
        tests.append(Test(numeric, op, draw(st.integers(0, 200))))
    if draw(st.booleans()):
        field, values = {
            "patient": ("sex", ["female", "male"]),
            "condition": ("clinical_status", ["active", "resolved"]),
            "medication": ("status", ["active", "stopped"]),
            "trial": ("response", ["none", "partial", "response"]),
            "observation": ("unit", ["mmHg", ""]),
        }[fact]
        op = draw(st.sampled_from(["eq", "ne", "in", "not_in", "present"]))
        value = (
            draw(st.booleans())
            if op == "present"
            else tuple(draw(st.lists(st.sampled_from(values), min_size=1, max_size=2, unique=True)))
            if op in ("in", "not_in")
            else draw(st.sampled_from(values))
        )
        tests.append(Test(field, op, value))
    ref_fields = {"trial": "drug", "medication": "drug"}
    same_type = [a for a, f in refs if f == fact]
    if fact in ref_fields and same_type and draw(st.booleans()):
        tests.append(
            Test(ref_fields[fact], draw(st.sampled_from(["eq", "ne"])), Ref(same_type[0], ref_fields[fact]))
        )
    return Pattern(fact=fact, tests=tuple(tests), alias=alias)


@st.composite
def random_rulesets(draw: st.DrawFn):
    """A valid RuleSet of 1–8 random rules: joins, any, not over facts and over earlier flags."""
    import attrs as _attrs

    from ketacds.ruleset.ir import All, AnyOf, Evidence, FindingSpec, Not, Pattern, Rule, Test
    from ketacds.ruleset.plan import SINGLE_FACT_TYPES

    rules = []
    flags: list[str] = []
    for index in range(draw(st.integers(1, 8))):
        items = []
        refs: list[tuple[str, str]] = []
        singles: set[str] = set()
        for position in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["pattern", "pattern", "any", "not", "flag", "notflag"]))
            if kind in ("flag", "notflag") and flags:
                flag = Pattern(fact="flag", tests=(Test("name", "eq", draw(st.sampled_from(flags))),))
                items.append(flag if kind == "flag" else Not(flag))
                continue
            if kind == "not":
                items.append(Not(_random_pattern(draw, None, [])))
                continue
            if kind == "any":
                items.append(AnyOf(tuple(_random_pattern(draw, None, [], multi=True) for _ in range(2))))
                continue
            pattern = _random_pattern(draw, f"x{position}", refs)
            if pattern.fact in singles:
                continue
            if pattern.fact in SINGLE_FACT_TYPES:
                singles.add(pattern.fact)
            refs.append((f"x{position}", pattern.fact))
            items.append(pattern)
        if not items:
            items.append(Pattern(fact="patient"))
        derives = (f"f{index}",) if draw(st.booleans()) else ()
        flags.extend(derives)
        rules.append(
            Rule(
                id=f"KCDS-RND-{index:03d}",
                title=f"random rule {index}",
                category="interaction",
                severity=draw(st.sampled_from(["info", "caution", "relative", "absolute"])),
                routes=("ketamine-iv", "esketamine-nasal", "ketamine-other"),
                jurisdictions=("any",),
                when=All(tuple(items)) if len(items) > 1 else items[0],
                confidence="R",
                evidence=(Evidence(source="KETACDS-ENG"),),
                rationale="random rule for the differential test",
                finding=FindingSpec(message="random"),
                flags=derives,
            )
        )
    return _attrs.evolve(_RULESET, rules=tuple(rules))


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


# ----------------------------------------------------------------------------------
# Extreme magnitudes: 1e-12 ... 1e12 with many decimal places, and values a hair's
# breadth from every numeric threshold the rules compare with (where rounding, a float
# or an exponent written as ``1e-05`` would decide the answer).


def _thresholds() -> list[Decimal]:
    found: set[Decimal] = set()

    def walk(condition: object) -> None:
        if isinstance(condition, ir.Pattern):
            for test in condition.tests:
                values = test.value if isinstance(test.value, tuple) else (test.value,)
                found.update(
                    Decimal(v) for v in values if isinstance(v, int | Decimal) and not isinstance(v, bool)
                )
        for item in getattr(condition, "items", ()):
            walk(item)
        if isinstance(condition, ir.Not):
            walk(condition.item)

    for rule in _RULESET.rules:
        walk(rule.when)
    return sorted(found)


THRESHOLDS = _thresholds()


@st.composite
def extreme_numbers(draw: st.DrawFn) -> Decimal:
    """A non-negative Decimal: 0, a magnitude between 1e-12 and 1e12 with up to 18 significant
    digits, or a rule threshold give or take 10^-k (k up to 20)."""
    kind = draw(st.sampled_from(["magnitude", "magnitude", "near", "zero"]))
    if kind == "zero":
        return Decimal(0)
    if kind == "near":
        threshold = draw(st.sampled_from(THRESHOLDS))
        step = Decimal(1).scaleb(-draw(st.integers(1, 20)))
        return abs(threshold + draw(st.sampled_from([-step, Decimal(0), step])))
    digits = draw(st.integers(1, 18))
    mantissa = draw(st.integers(10 ** (digits - 1), 10**digits - 1))
    exponent = draw(st.integers(-12 - (digits - 1), 12 - (digits - 1)))
    return Decimal(mantissa).scaleb(exponent)


extreme = extreme_numbers()

extreme_times = st.one_of(
    st.none(),
    st.integers(0, 30 * 24 * 3600 * 10**6).map(lambda micro: NOW - dt.timedelta(microseconds=micro)),
    st.sampled_from(THRESHOLDS).flatmap(  # a reading hours_ago a hair from a threshold
        lambda hours: st.integers(-2, 2).map(
            lambda delta: NOW - dt.timedelta(hours=min(float(hours), 24 * 365), microseconds=delta)
        )
    ),
)

extreme_observations = st.one_of(
    st.builds(
        Observation,
        name=st.just("blood pressure"),
        time=extreme_times,
        components=st.tuples(
            st.builds(ObservationComponent, name=st.just("systolic"), value=extreme, unit=st.just("mmHg")),
            st.builds(ObservationComponent, name=st.just("diastolic"), value=extreme, unit=st.just("mmHg")),
        ),
    ),
    st.builds(
        Observation,
        name=st.sampled_from(["systolic blood pressure", "diastolic blood pressure", "phq-9", "heart rate"]),
        value=extreme,
        unit=st.just("mmHg"),
        time=extreme_times,
    ),
)

extreme_records = st.builds(
    PatientRecord,
    patient=st.builds(
        Patient,
        age_years=st.one_of(st.none(), st.integers(0, 110)),
        sex=st.one_of(st.none(), st.sampled_from(["female", "male"])),
        weight=st.one_of(
            st.none(), st.builds(Quantity, value=extreme, unit=st.sampled_from(["kg", "lb", "g"]))
        ),
        height=st.one_of(
            st.none(),
            st.builds(Quantity, value=extreme.filter(lambda d: d > 0), unit=st.sampled_from(["cm", "m"])),
        ),
        pregnant=st.one_of(st.none(), st.booleans()),
    ),
    conditions=_tuples(conditions, 3),
    medications=_tuples(
        code_or_name().flatmap(
            lambda cn: st.builds(
                Medication,
                dose=st.one_of(st.none(), extreme),
                unit=st.sampled_from(["mg", "g", "ug"]),
                frequency_per_day=st.one_of(st.none(), extreme),
                status=st.sampled_from(["active", "stopped"]),
                **{k: st.just(v) for k, v in cn.items()},
            )
        ),
        4,
    ),
    observations=_tuples(extreme_observations, 4),
    trials=_tuples(
        st.builds(
            AntidepressantTrial,
            name=st.sampled_from(["sertraline", "escitalopram", "venlafaxine"]),
            dose=st.one_of(st.none(), extreme),
            unit=st.just("mg"),
            weeks=st.one_of(st.none(), extreme),
            response=st.sampled_from(["none", "partial", "response"]),
            episode=st.sampled_from(["current", "previous"]),
            adequate_dose=st.one_of(st.none(), st.booleans()),
        ),
        3,
    ),
)

extreme_contexts = st.builds(
    Context,
    route=st.sampled_from(ROUTES),
    jurisdiction=st.sampled_from(JURISDICTIONS),
    now=st.just(NOW),
    plan=st.one_of(
        st.none(),
        st.builds(
            Plan,
            dose_mg=st.one_of(st.none(), extreme),
            dose_mg_per_kg=st.one_of(st.none(), extreme),
            sessions_per_week=st.one_of(st.none(), extreme),
            # Out-of-range counts (0, negative, huge) reach the validity ranges, not the rules.
            session_number=st.one_of(st.none(), st.integers(-2, 2000)),
            missed_sessions=st.one_of(st.none(), st.integers(-2, 2000)),
            symptoms_worsened=st.one_of(st.none(), st.booleans()),
        ),
    ),
    order=st.one_of(
        st.none(),
        st.builds(
            Order,
            name=st.sampled_from(["ketamine", "esketamine"]),
            dose=extreme,
            unit=st.sampled_from(["mg", "g", "ug"]),
            per_week=st.one_of(st.none(), extreme),
        ),
    ),
).map(
    # an order names the route's drug: another route's drug is an input error (Engine.facts)
    lambda c: (
        c
        if c.order is None
        else attrs.evolve(
            c,
            order=attrs.evolve(c.order, name="esketamine" if c.route == "esketamine-nasal" else "ketamine"),
        )
    )
)

# Records seen almost in full, with recent readings: their status is often reassuring
# or one step from it, so taking a datum away, or making a reading older or untimed,
# can show whether the engine ever reassures on less (issue 14).

recent_times = st.one_of(
    st.integers(0, 13 * 60).map(lambda minutes: NOW - dt.timedelta(minutes=minutes)),
    st.integers(13 * 60, 30 * 24 * 60).map(lambda minutes: NOW - dt.timedelta(minutes=minutes)),
)

seen_patients = st.builds(
    Patient,
    age_years=st.integers(18, 80),
    sex=st.sampled_from(["female", "male"]),
    weight=st.builds(Quantity, value=decimals(45, 150), unit=st.just("kg")),
    height=st.builds(Quantity, value=decimals(150, 200), unit=st.just("cm")),
    pregnant=st.just(False),
    lactating=st.just(False),
)

recent_blood_pressures = st.builds(
    Observation,
    name=st.just("blood pressure"),
    time=recent_times,
    components=st.tuples(
        st.builds(
            ObservationComponent, name=st.just("systolic"), value=decimals(100, 200, 0), unit=st.just("mmHg")
        ),
        st.builds(
            ObservationComponent, name=st.just("diastolic"), value=decimals(60, 99, 0), unit=st.just("mmHg")
        ),
    ),
)

recent_single_observations = st.one_of(
    st.builds(
        Observation,
        name=st.sampled_from(["systolic blood pressure", "diastolic blood pressure"]),
        value=decimals(60, 200, 0),
        unit=st.just("mmHg"),
        time=recent_times,
    ),
    st.builds(Observation, name=st.just("phq-9"), value=decimals(0, 27, 0), time=recent_times),
)

_trd_pair = (
    AntidepressantTrial(
        name="escitalopram",
        dose=Decimal(20),
        unit="mg",
        weeks=Decimal(8),
        response="none",
        adequate_dose=True,
    ),
    AntidepressantTrial(
        name="venlafaxine",
        dose=Decimal(225),
        unit="mg",
        weeks=Decimal(10),
        response="partial",
        adequate_dose=True,
    ),
)

seen_records = st.builds(
    PatientRecord,
    patient=seen_patients,
    conditions=st.just((Condition(code=Coding(system="icd-10-cm", code="F33.2")),)),
    medications=st.one_of(
        st.just((Medication(name="sertraline", dose=Decimal(100), unit="mg", frequency_per_day=Decimal(1)),)),
        _tuples(medications, 2),
    ),
    trials=st.lists(adequate_trials, max_size=1).map(lambda extra: (*_trd_pair, *extra)),
    observations=st.tuples(
        recent_blood_pressures,
        st.lists(st.one_of(recent_blood_pressures, recent_single_observations), max_size=2),
    ).map(lambda drawn: (drawn[0], *drawn[1])),
)
