"""What ketacds is told: one patient's record and the planned treatment.

Every class is a frozen attrs class. They validate types and vocabularies on
construction; :mod:`ketacds.models.load` turns dicts, JSON and YAML into them and
names the field path of every error. Nothing here knows any clinical threshold.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal, get_args

import attrs
from attrs import validators as v

from ketacds.models.quality import DataQualityIssue
from ketacds.vocabulary import ROUTES, Route, Setting

__all__ = [
    "CODE_SYSTEMS",
    "ROUTES",
    "Allergy",
    "AntidepressantTrial",
    "Coding",
    "Condition",
    "Context",
    "Medication",
    "Observation",
    "ObservationComponent",
    "Order",
    "Patient",
    "PatientRecord",
    "Plan",
    "Quantity",
    "SubstanceUse",
    "canonical_system",
]

Sex = Literal["female", "male", "other", "unknown"]
ConditionStatus = Literal["active", "recurrence", "relapse", "inactive", "remission", "resolved"]
MedicationStatus = Literal["active", "on-hold", "intended", "stopped", "completed"]
TrialResponse = Literal["none", "partial", "response", "remission", "unknown"]
TrialEpisode = Literal["current", "previous"]
SubstanceStatus = Literal["current", "former", "never"]
HepaticClass = Literal["A", "B", "C"]


def _aware(_inst: object, attribute: attrs.Attribute[Any], value: dt.datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{attribute.name} must be timezone-aware")


def _in(kind: Any) -> Any:
    return v.in_(get_args(kind))


def _opt(validator: Any) -> Any:
    return v.optional(validator)


@attrs.frozen(kw_only=True)
class Quantity:
    """A measured amount with its unit, exact (``Decimal``).

    ``time``, when known, is when it was measured: a weight older than its validity
    window (``rulesets/validity.yaml``) is not used as the current weight. Without a
    time, the value is taken as stated for this assessment.
    """

    value: Decimal = attrs.field(validator=v.instance_of(Decimal))
    unit: str = attrs.field(validator=v.instance_of(str))
    time: dt.datetime | None = attrs.field(default=None, validator=[_opt(v.instance_of(dt.datetime)), _aware])


#: The code systems ketacds reads, by canonical URI, with the short names accepted for each.
CODE_SYSTEMS: dict[str, tuple[str, ...]] = {
    "http://snomed.info/sct": ("snomed", "sct", "snomed-ct"),
    "http://hl7.org/fhir/sid/icd-10-cm": ("icd-10-cm", "icd10cm", "icd-10"),
    "http://www.nlm.nih.gov/research/umls/rxnorm": ("rxnorm",),
    "http://www.whocc.no/atc": ("atc",),
    "http://loinc.org": ("loinc",),
}
_SYSTEM_BY_NAME = {name: uri for uri, names in CODE_SYSTEMS.items() for name in (uri.lower(), *names)}


def canonical_system(system: str) -> str:
    """Return the canonical URI of a code system given by URI or short name.

    Raises:
        ValueError: the system is not one ketacds reads.
    """
    try:
        return _SYSTEM_BY_NAME[system.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(n for names in CODE_SYSTEMS.values() for n in names))
        raise ValueError(f"unknown code system {system!r}; known: {known}") from None


@attrs.frozen(kw_only=True)
class Coding:
    """A code in a code system (``http://snomed.info/sct``, ``http://loinc.org``, ...).

    Short names (``snomed``, ``icd-10-cm``, ``rxnorm``, ``atc``, ``loinc``) become URIs.
    """

    system: str = attrs.field(converter=canonical_system)
    code: str = attrs.field(validator=v.instance_of(str))
    display: str | None = attrs.field(default=None, validator=_opt(v.instance_of(str)))


_coding = _opt(v.instance_of(Coding))
_text = _opt(v.instance_of(str))
_decimal = _opt(v.instance_of(Decimal))


def _needs_code_or_name(inst: Any) -> None:
    if inst.code is None and not inst.name:
        raise ValueError(f"{type(inst).__name__} needs a code or a name")


@attrs.frozen(kw_only=True)
class Patient:
    """Demographics and physiology. Unknown is ``None``, never a default value."""

    id: str | None = attrs.field(default=None, validator=_text)
    birth_date: dt.date | None = attrs.field(default=None, validator=_opt(v.instance_of(dt.date)))
    age_years: int | None = attrs.field(default=None, validator=_opt(v.instance_of(int)))
    sex: Sex | None = attrs.field(default=None, validator=_opt(_in(Sex)))
    weight: Quantity | None = attrs.field(default=None, validator=_opt(v.instance_of(Quantity)))
    height: Quantity | None = attrs.field(default=None, validator=_opt(v.instance_of(Quantity)))
    pregnant: bool | None = attrs.field(default=None, validator=_opt(v.instance_of(bool)))
    #: When the pregnancy status was recorded (FHIR: the status observation's time); a
    #: status older than its validity window (``rulesets/validity.yaml``) is not used.
    pregnant_time: dt.datetime | None = attrs.field(
        default=None, validator=[_opt(v.instance_of(dt.datetime)), _aware]
    )
    lactating: bool | None = attrs.field(default=None, validator=_opt(v.instance_of(bool)))
    hepatic_class: HepaticClass | None = attrs.field(default=None, validator=_opt(_in(HepaticClass)))
    #: Recorded as deceased: ketacds refuses to assess (:class:`~ketacds.errors.NotAssessedError`).
    deceased: bool | None = attrs.field(default=None, validator=_opt(v.instance_of(bool)))


@attrs.frozen(kw_only=True)
class Condition:
    """A diagnosis or problem, coded and/or named."""

    id: str | None = attrs.field(default=None, validator=_text)
    code: Coding | None = attrs.field(default=None, validator=_coding)
    name: str | None = attrs.field(default=None, validator=_text)
    clinical_status: ConditionStatus = attrs.field(default="active", validator=_in(ConditionStatus))
    onset: dt.date | None = attrs.field(default=None, validator=_opt(v.instance_of(dt.date)))

    def __attrs_post_init__(self) -> None:
        _needs_code_or_name(self)


@attrs.frozen(kw_only=True)
class Medication:
    """A medication the patient takes or is planned to take."""

    id: str | None = attrs.field(default=None, validator=_text)
    code: Coding | None = attrs.field(default=None, validator=_coding)
    name: str | None = attrs.field(default=None, validator=_text)
    dose: Decimal | None = attrs.field(default=None, validator=_decimal)
    unit: str | None = attrs.field(default=None, validator=_text)
    frequency_per_day: Decimal | None = attrs.field(default=None, validator=_decimal)
    as_needed: bool = attrs.field(default=False, validator=v.instance_of(bool))
    status: MedicationStatus = attrs.field(default="active", validator=_in(MedicationStatus))

    def __attrs_post_init__(self) -> None:
        _needs_code_or_name(self)
        if self.dose is not None and self.unit is None:
            raise ValueError("a medication dose needs a unit")


@attrs.frozen(kw_only=True)
class ObservationComponent:
    """One part of a panel observation, e.g. the systolic value of a blood pressure."""

    code: Coding | None = attrs.field(default=None, validator=_coding)
    name: str | None = attrs.field(default=None, validator=_text)
    value: Decimal = attrs.field(validator=v.instance_of(Decimal))
    unit: str | None = attrs.field(default=None, validator=_text)

    def __attrs_post_init__(self) -> None:
        _needs_code_or_name(self)


@attrs.frozen(kw_only=True)
class Observation:
    """A measurement: vital sign, body measure or rating-scale score."""

    id: str | None = attrs.field(default=None, validator=_text)
    code: Coding | None = attrs.field(default=None, validator=_coding)
    name: str | None = attrs.field(default=None, validator=_text)
    value: Decimal | None = attrs.field(default=None, validator=_decimal)
    unit: str | None = attrs.field(default=None, validator=_text)
    time: dt.datetime | None = attrs.field(default=None, validator=[_opt(v.instance_of(dt.datetime)), _aware])
    components: tuple[ObservationComponent, ...] = attrs.field(
        default=(), validator=v.deep_iterable(v.instance_of(ObservationComponent))
    )

    def __attrs_post_init__(self) -> None:
        _needs_code_or_name(self)
        if self.value is None and not self.components:
            raise ValueError("an observation needs a value or components")


@attrs.frozen(kw_only=True)
class Allergy:
    """An allergy or intolerance to a substance."""

    id: str | None = attrs.field(default=None, validator=_text)
    code: Coding | None = attrs.field(default=None, validator=_coding)
    name: str | None = attrs.field(default=None, validator=_text)
    status: Literal["active", "inactive", "resolved"] = attrs.field(
        default="active", validator=v.in_(("active", "inactive", "resolved"))
    )

    def __attrs_post_init__(self) -> None:
        _needs_code_or_name(self)


@attrs.frozen(kw_only=True)
class AntidepressantTrial:
    """One past antidepressant treatment: drug, dose, duration and what it did."""

    id: str | None = attrs.field(default=None, validator=_text)
    code: Coding | None = attrs.field(default=None, validator=_coding)
    name: str | None = attrs.field(default=None, validator=_text)
    dose: Decimal | None = attrs.field(default=None, validator=_decimal)
    unit: str | None = attrs.field(default=None, validator=_text)
    weeks: Decimal | None = attrs.field(default=None, validator=_decimal)
    response: TrialResponse = attrs.field(default="unknown", validator=_in(TrialResponse))
    episode: TrialEpisode = attrs.field(default="current", validator=_in(TrialEpisode))
    adequate_dose: bool | None = attrs.field(default=None, validator=_opt(v.instance_of(bool)))

    def __attrs_post_init__(self) -> None:
        _needs_code_or_name(self)
        if self.dose is not None and self.unit is None:
            raise ValueError("a trial dose needs a unit")


@attrs.frozen(kw_only=True)
class SubstanceUse:
    """Use of alcohol or another substance."""

    id: str | None = attrs.field(default=None, validator=_text)
    code: Coding | None = attrs.field(default=None, validator=_coding)
    name: str | None = attrs.field(default=None, validator=_text)
    status: SubstanceStatus = attrs.field(default="current", validator=_in(SubstanceStatus))

    def __attrs_post_init__(self) -> None:
        _needs_code_or_name(self)


def _tuple_of(kind: type) -> Any:
    return attrs.field(default=(), validator=v.deep_iterable(v.instance_of(kind), v.instance_of(tuple)))


@attrs.frozen(kw_only=True)
class PatientRecord:
    """Everything known about one patient.

    An empty list means "none recorded", which the rules treat as a data gap where
    it matters, never as "none present".
    """

    patient: Patient = attrs.field(validator=v.instance_of(Patient))
    conditions: tuple[Condition, ...] = _tuple_of(Condition)
    medications: tuple[Medication, ...] = _tuple_of(Medication)
    observations: tuple[Observation, ...] = _tuple_of(Observation)
    allergies: tuple[Allergy, ...] = _tuple_of(Allergy)
    trials: tuple[AntidepressantTrial, ...] = _tuple_of(AntidepressantTrial)
    substance_use: tuple[SubstanceUse, ...] = _tuple_of(SubstanceUse)
    #: What an adapter (FHIR) could not read or read with an assumption; never silent.
    data_quality: tuple[DataQualityIssue, ...] = _tuple_of(DataQualityIssue)


@attrs.frozen(kw_only=True)
class Order:
    """The ordered dose of the planned treatment, checked against the dosing rules.

    It comes from a drafted order (a CDS Hooks ``order-select`` or ``order-sign``
    request) or from a case file's ``context.order``. ``per_week`` is the number of
    administrations per week (twice weekly is 2, daily is 7).

    .. versionadded:: 0.1.0
    """

    id: str | None = attrs.field(default=None, validator=_text)
    code: Coding | None = attrs.field(default=None, validator=_coding)
    name: str | None = attrs.field(default=None, validator=_text)
    dose: Decimal | None = attrs.field(default=None, validator=_decimal)
    unit: str | None = attrs.field(default=None, validator=_text)
    per_week: Decimal | None = attrs.field(default=None, validator=_decimal)

    def __attrs_post_init__(self) -> None:
        _needs_code_or_name(self)
        if self.dose is not None and self.unit is None:
            raise ValueError("an ordered dose needs a unit")


@attrs.frozen(kw_only=True)
class Plan:
    """The planned session, when one is being ordered: dose, frequency, week of treatment.

    A dose may be given in mg, in mg/kg, or both; the rules check it against the
    protocol. Everything is optional: without a plan, the rules advise a dose instead.

    ``session_number`` is the number of this session in the course, from 1 (the first
    session, day 1). ``missed_sessions`` counts the planned sessions missed since the last
    session given; ``symptoms_worsened`` says whether depressive symptoms worsened since
    then: ``None`` is "not recorded", a data gap wherever the advice depends on it, never
    "no worsening".
    """

    dose_mg: Decimal | None = attrs.field(default=None, validator=_decimal)
    dose_mg_per_kg: Decimal | None = attrs.field(default=None, validator=_decimal)
    sessions_per_week: Decimal | None = attrs.field(default=None, validator=_decimal)
    treatment_week: int | None = attrs.field(default=None, validator=_opt(v.instance_of(int)))
    session_number: int | None = attrs.field(default=None, validator=_opt(v.instance_of(int)))
    missed_sessions: int | None = attrs.field(default=None, validator=_opt(v.instance_of(int)))
    symptoms_worsened: bool | None = attrs.field(default=None, validator=_opt(v.instance_of(bool)))

    def __attrs_post_init__(self) -> None:
        if self.session_number == 1 and self.treatment_week not in (None, 1):
            week = self.treatment_week
            raise ValueError(
                f"session 1 is the first session of the course, in week 1; got treatment week {week}"
            )


@attrs.frozen(kw_only=True)
class Context:
    """The planned treatment and the moment of assessment.

    ``now`` is required and must be timezone-aware: nothing in ketacds reads the clock.
    ``order``, when given, is the ordered dose to check against the dosing rules.
    """

    route: Route = attrs.field(validator=_in(Route))
    jurisdiction: str = attrs.field(validator=v.matches_re(r"^[A-Z]{2}$"))
    now: dt.datetime = attrs.field(validator=[v.instance_of(dt.datetime), _aware])
    setting: Setting | None = attrs.field(default=None, validator=_opt(_in(Setting)))
    plan: Plan | None = attrs.field(default=None, validator=_opt(v.instance_of(Plan)))
    order: Order | None = attrs.field(default=None, validator=_opt(v.instance_of(Order)))
