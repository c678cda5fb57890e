"""Read patients and contexts from dicts, JSON or YAML, naming the path of every error.

The input shape (the same in JSON and YAML; see ``examples/`` and ``docs/input-format.md``)::

    patient: {birth_date: 1980-05-01, sex: female, weight: 70 kg, height: 165 cm}
    conditions: [{code: {system: ..., code: F33.2}, clinical_status: active}]
    medications: [{name: clonazepam, dose: 1, unit: mg, frequency: bid}]
    observations: [{name: blood pressure, time: ..., components: [...]}]
    allergies: [], trials: [...], substance_use: [...]
    context: {route: ketamine-iv, jurisdiction: US, now: 2026-11-21T09:00:00Z}

Unknown keys are errors: a misspelt field must never be silently ignored.

Each field is parsed into the type its model asks for (the parsers are in
:mod:`ketacds.models.fields`), so the models are built without running their field
validators a second time (:mod:`ketacds.models.trusted`); their checks across fields
still run, and every error names the same path and says the same as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from ketacds import limits
from ketacds._yaml import YamlProblem, load_yaml
from ketacds.errors import InputError
from ketacds.models.fields import (
    _QUANTITY_TEXT,
    _bool,
    _choice,
    _coding,
    _date,
    _datetime,
    _decimal,
    _Fields,
    _int,
    _keys,
    _kind,
    _list,
    _made,
    _non_negative,
    _quantity,
    _Reader,
    _short,
    _text,
    _unit,
    _values,
)
from ketacds.models.inputs import (
    Allergy,
    AntidepressantTrial,
    Condition,
    Context,
    Medication,
    Observation,
    ObservationComponent,
    Order,
    Patient,
    PatientRecord,
    Plan,
    SubstanceUse,
)
from ketacds.models.trusted import trusted_constructor
from ketacds.vocabulary import FREQUENCIES, ROUTES, SETTINGS

__all__ = [
    "decode_text",
    "load_case",
    "load_case_file",
    "load_context",
    "load_record",
    "parse_document",
    "read_document",
]

T = TypeVar("T")

_RECORD_KEYS = {
    "patient",
    "conditions",
    "medications",
    "observations",
    "allergies",
    "trials",
    "substance_use",
}


# Every value the loader passes a model is already of the type and vocabulary that model
# asks for (that is what the parsers below check, naming the field path), so models are
# built by trusted constructors: positional, in field order, without validators, the
# checks across fields (``__attrs_post_init__``) still run. See ketacds.models.trusted.
_new_allergy = trusted_constructor(Allergy)
_new_condition = trusted_constructor(Condition)
_new_context = trusted_constructor(Context)
_new_medication = trusted_constructor(Medication)
_new_observation = trusted_constructor(Observation)
_new_component = trusted_constructor(ObservationComponent)
_new_order = trusted_constructor(Order)
_new_patient = trusted_constructor(Patient)
_new_record = trusted_constructor(PatientRecord)
_new_plan = trusted_constructor(Plan)
_new_substance = trusted_constructor(SubstanceUse)
_new_trial = trusted_constructor(AntidepressantTrial)


def _mass_unit(value: Any, path: str) -> str:
    return _unit(value, path, "mass")


#: The fields every item reads first (in this order), after its ``status`` where it has one.
_IDENTITY: _Fields = (("id", _text, None), ("code", _coding, None), ("name", _text, None))


def _build(reader: _Reader, cls: Callable[..., T], **fields: Any) -> T:
    reader.finish()
    try:
        return cls(**fields)
    except (TypeError, ValueError) as error:
        raise InputError(reader.path, str(error)) from None


_PATIENT_FIELDS: _Fields = (  # Patient's own field order
    ("id", _text, None),
    ("birth_date", _date, None),
    ("age_years", _int, None),
    ("sex", _choice("female", "male", "other", "unknown"), None),
    ("weight", _quantity("mass"), None),
    ("height", _quantity("length"), None),
    ("pregnant", _bool, None),
    ("pregnant_time", _datetime, None),
    ("lactating", _bool, None),
    ("hepatic_class", _choice("A", "B", "C"), None),
    ("deceased", _bool, None),
)
_PATIENT_KEYS = _keys(_PATIENT_FIELDS)


def _patient(value: Any, path: str) -> Patient:
    values = _values(value, path, _PATIENT_FIELDS, _PATIENT_KEYS)
    return _made(_new_patient, path, *values)


_CONDITION_FIELDS: _Fields = (
    (
        "clinical_status",
        _choice("active", "recurrence", "relapse", "inactive", "remission", "resolved"),
        "active",
    ),
    *_IDENTITY,
    ("onset", _date, None),
)
_CONDITION_KEYS = _keys(_CONDITION_FIELDS)


def _condition(value: Any, path: str) -> Condition:
    status, id_, code, name, onset = _values(value, path, _CONDITION_FIELDS, _CONDITION_KEYS)
    return _made(_new_condition, path, id_, code, name, status, onset)


def _frequency(value: Any, path: str) -> Decimal:
    if isinstance(value, str) and not value.strip()[:1].isdigit():
        key = value.strip().lower()
        if key not in FREQUENCIES:
            known = ", ".join(sorted(FREQUENCIES))
            raise InputError(path, f"unknown frequency {_short(value)}; use a number per day or {known}")
        return FREQUENCIES[key]
    return _non_negative(value, path)


# Read in two steps: frequency and frequency_per_day are refused together before the rest is read.
_MEDICATION_FIELDS: _Fields = (
    *_IDENTITY,
    ("frequency", _frequency, None),
    ("frequency_per_day", _non_negative, None),
)
_MEDICATION_DOSE_FIELDS: _Fields = (
    ("dose", _non_negative, None),
    ("unit", _mass_unit, None),
    ("as_needed", _bool, False),
    ("status", _choice("active", "on-hold", "intended", "stopped", "completed"), "active"),
)
_MEDICATION_KEYS = _keys(_MEDICATION_FIELDS + _MEDICATION_DOSE_FIELDS)


def _medication(value: Any, path: str) -> Medication:
    id_, code, name, frequency, per_day = _values(value, path, _MEDICATION_FIELDS)
    if frequency is not None and per_day is not None:
        raise InputError(
            f"{path}.frequency" if path else "frequency", "give frequency or frequency_per_day, not both"
        )
    dose, unit, as_needed, status = _values(value, path, _MEDICATION_DOSE_FIELDS, _MEDICATION_KEYS)
    per_day = frequency if frequency is not None else per_day
    return _made(_new_medication, path, id_, code, name, dose, unit, per_day, as_needed, status)


_COMPONENT_FIELDS: _Fields = (*_IDENTITY, ("value", _decimal, None), ("unit", _unit, None))
_COMPONENT_KEYS = _keys(_COMPONENT_FIELDS)


def _component(value: Any, path: str) -> ObservationComponent:
    # An id is read (and refused if not text), not kept.
    _id, code, name, number, unit = _values(value, path, _COMPONENT_FIELDS, _COMPONENT_KEYS)
    if number is None:  # the model's own refusal of a missing value, word for word
        return _made(ObservationComponent, path, code=code, name=name, value=number, unit=unit)
    return _made(_new_component, path, code, name, number, unit)


_OBSERVATION_FIELDS: _Fields = (  # Observation's own field order
    *_IDENTITY,
    ("value", _decimal, None),
    ("unit", _unit, None),
    ("time", _datetime, None),
    ("components", _list(_component), ()),
)
_OBSERVATION_KEYS = _keys(_OBSERVATION_FIELDS)


def _observation(value: Any, path: str) -> Observation:
    values = _values(value, path, _OBSERVATION_FIELDS, _OBSERVATION_KEYS)
    return _made(_new_observation, path, *values)


_ALLERGY_FIELDS: _Fields = (("status", _choice("active", "inactive", "resolved"), "active"), *_IDENTITY)
_ALLERGY_KEYS = _keys(_ALLERGY_FIELDS)


def _allergy(value: Any, path: str) -> Allergy:
    status, id_, code, name = _values(value, path, _ALLERGY_FIELDS, _ALLERGY_KEYS)
    return _made(_new_allergy, path, id_, code, name, status)


_TRIAL_FIELDS: _Fields = (  # AntidepressantTrial's own field order
    *_IDENTITY,
    ("dose", _non_negative, None),
    ("unit", _mass_unit, None),
    ("weeks", _non_negative, None),
    ("response", _choice("none", "partial", "response", "remission", "unknown"), "unknown"),
    ("episode", _choice("current", "previous"), "current"),
    ("adequate_dose", _bool, None),
)
_TRIAL_KEYS = _keys(_TRIAL_FIELDS)


def _trial(value: Any, path: str) -> AntidepressantTrial:
    values = _values(value, path, _TRIAL_FIELDS, _TRIAL_KEYS)
    return _made(_new_trial, path, *values)


_SUBSTANCE_FIELDS: _Fields = (("status", _choice("current", "former", "never"), "current"), *_IDENTITY)
_SUBSTANCE_KEYS = _keys(_SUBSTANCE_FIELDS)


def _substance(value: Any, path: str) -> SubstanceUse:
    status, id_, code, name = _values(value, path, _SUBSTANCE_FIELDS, _SUBSTANCE_KEYS)
    return _made(_new_substance, path, id_, code, name, status)


def load_record(data: Mapping[str, Any], *, path: str = "") -> PatientRecord:
    """Build a :class:`PatientRecord` from plain data.

    Raises:
        InputError: with the path of the first field that cannot be read.
    """
    r = _Reader(data, path)
    patient = r.get("patient", _patient, None)
    if patient is None:
        raise InputError(r.at("patient"), "is required")
    record = _new_record(
        patient,
        r.get("conditions", _CONDITIONS, ()),
        r.get("medications", _MEDICATIONS, ()),
        r.get("observations", _OBSERVATIONS, ()),
        r.get("allergies", _ALLERGIES, ()),
        r.get("trials", _TRIALS, ()),
        r.get("substance_use", _SUBSTANCES, ()),
        (),
    )
    r.finish(_RECORD_KEYS | {"context"} | set(_EXTRA_TOP_LEVEL))
    return record


_CONDITIONS = _list(_condition)
_MEDICATIONS = _list(_medication)
_OBSERVATIONS = _list(_observation)
_ALLERGIES = _list(_allergy)
_TRIALS = _list(_trial)
_SUBSTANCES = _list(_substance)

# Descriptive keys a case file may carry beside the record; they never reach the rules.
_EXTRA_TOP_LEVEL = ("title", "description")


def load_context(data: Mapping[str, Any], *, path: str = "context") -> Context:
    """Build a :class:`Context` from plain data.

    Keys: ``route``, ``jurisdiction``, ``now`` (required), ``setting``, and ``plan``
    (``dose`` as ``'56 mg'`` or ``'0.5 mg/kg'``, ``sessions_per_week``, ``treatment_week``,
    ``session_number``, ``missed_sessions``, ``symptoms_worsened``: true, false or unknown).

    Raises:
        InputError: with the path of the first field that cannot be read.
    """
    r = _Reader(data, path)
    for required in ("route", "jurisdiction", "now"):
        if data.get(required) is None:
            raise InputError(r.at(required), "is required")
    return _build(
        r,
        _new_context,
        route=r.get("route", _choice(*ROUTES), None),
        jurisdiction=r.get("jurisdiction", _jurisdiction, None),
        now=r.get("now", _datetime, None),
        setting=r.get("setting", _choice(*SETTINGS), None),
        plan=r.get("plan", _plan, None),
        order=r.get("order", _order, None),
    )


def _plan(value: Any, path: str) -> Plan:
    r = _Reader(value, path)
    dose_mg = dose_per_kg = None
    dose = r.get("dose", _text, None)
    if dose is not None:
        match = _QUANTITY_TEXT.match(dose)
        unit = match.group(2).replace(" ", "").lower() if match else ""
        if not match or unit not in ("mg", "mg/kg"):
            raise InputError(r.at("dose"), f"expected a dose like '56 mg' or '0.5 mg/kg', got {_short(dose)}")
        if unit == "mg":
            dose_mg = _decimal(match.group(1), r.at("dose"))
        else:
            dose_per_kg = _decimal(match.group(1), r.at("dose"))
    week = r.get("treatment_week", _int, None)
    if week is not None and week < 1:
        raise InputError(r.at("treatment_week"), f"weeks count from 1, got {week}")
    session = r.get("session_number", _int, None)
    if session is not None and session < 1:
        raise InputError(r.at("session_number"), f"sessions count from 1, got {session}")
    if session == 1 and week not in (None, 1):
        raise InputError(
            r.at("session_number"),
            f"session 1 is the first session of the course, so it is in week 1; the plan says week {week}",
        )
    missed = r.get("missed_sessions", _int, None)
    if missed is not None and missed < 0:
        raise InputError(r.at("missed_sessions"), f"expected 0 or more missed sessions, got {missed}")
    return _build(
        r,
        _new_plan,
        dose_mg=dose_mg,
        dose_mg_per_kg=dose_per_kg,
        sessions_per_week=r.get("sessions_per_week", _non_negative, None),
        treatment_week=week,
        session_number=session,
        missed_sessions=missed,
        symptoms_worsened=r.get("symptoms_worsened", _tri_state, None),
    )


def _tri_state(value: Any, path: str) -> bool | None:
    """``true``, ``false`` or ``unknown`` (stated as not known: the same as leaving it out)."""
    if value == "unknown":
        return None
    if not isinstance(value, bool):
        raise InputError(path, f"expected true, false or unknown, got {_short(value)}")
    return value


_ORDER_FIELDS: _Fields = (  # Order's own field order
    *_IDENTITY,
    ("dose", _non_negative, None),
    ("unit", _mass_unit, None),
    ("per_week", _non_negative, None),
)
_ORDER_KEYS = _keys(_ORDER_FIELDS)


def _order(value: Any, path: str) -> Order:
    values = _values(value, path, _ORDER_FIELDS, _ORDER_KEYS)
    return _made(_new_order, path, *values)


def _jurisdiction(value: Any, path: str) -> str:
    text = _text(value, path).upper()
    if not re.fullmatch(r"[A-Z]{2}", text):
        raise InputError(path, f"expected a two-letter jurisdiction code such as US, got {_short(value)}")
    return text


def load_case(
    data: Mapping[str, Any], *, overrides: Mapping[str, Any] | None = None
) -> tuple[PatientRecord, Context]:
    """Read a patient record and its ``context`` from one document.

    Args:
        data: the document (patient record keys plus ``context``).
        overrides: context fields that replace the document's (e.g. from the CLI).

    Raises:
        InputError: with the path of the first field that cannot be read.
    """
    if not isinstance(data, Mapping):
        raise InputError("(top level)", f"expected a mapping, got {_kind(data)}")
    context_data = data.get("context") or {}
    if not isinstance(context_data, Mapping):
        raise InputError("context", f"expected a mapping, got {_kind(context_data)}")
    merged = {**context_data, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    record = load_record(data)
    return record, load_context(merged)


def read_document(path: Path | str) -> Any:
    """Read a JSON (``.json``) or YAML file into plain data with exact decimals.

    Raises:
        InputError: the file cannot be read or parsed, is not UTF-8, or is past a limit
            of :mod:`ketacds.limits` (size, depth, numbers; duplicate keys in JSON).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > limits.MAX_DOCUMENT_BYTES:
            raise InputError(str(path), f"larger than {limits.MAX_DOCUMENT_BYTES // 2**20} MiB")
        raw = path.read_bytes()
    except OSError as error:
        raise InputError(str(path), f"cannot read file: {error.strerror}") from None
    return parse_document(decode_text(raw, str(path)), path.suffix, str(path))


def decode_text(raw: bytes, where: str) -> str:
    """``raw`` as UTF-8 text (a leading byte-order mark is dropped).

    Raises:
        InputError: naming the line and byte that is not UTF-8.
    """
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise InputError(f"{where}:{line}", f"not UTF-8 text (byte {error.start + 1})") from None


def parse_document(text: str, suffix: str, where: str) -> Any:
    """Parse JSON (``suffix`` ``.json``) or YAML text into plain data with exact decimals.

    ``where`` names the document in errors (its path, say), followed by the line. JSON
    with a key twice in one object is refused, as YAML is; so is anything past a limit
    of :mod:`ketacds.limits`, named by its field path (``patient.weight``).

    Raises:
        InputError: the text cannot be parsed or is past a limit.
    """
    if suffix.lower() == ".json":
        try:
            data = limits.loads_json(text)
        except limits.JsonProblem as error:
            raise InputError(f"{where}:{error.line}" if error.line else where, error.reason) from None
        problem = limits.find_problem(data)
        if problem is not None:
            raise InputError(*problem)
        return data
    try:
        return load_yaml(text)[0]
    except YamlProblem as error:
        raise InputError(
            f"{where}:{error.line}" if error.line else where, f"invalid YAML: {error.reason}"
        ) from None


def load_case_file(
    path: Path | str, *, overrides: Mapping[str, Any] | None = None
) -> tuple[PatientRecord, Context]:
    """Read a patient case from a JSON or YAML file (see :func:`load_case`)."""
    return load_case(read_document(path), overrides=overrides)
