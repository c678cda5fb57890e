"""Read patients and contexts from dicts, JSON or YAML, naming the path of every error.

The input shape (the same in JSON and YAML; see ``examples/`` and ``docs/input-format.md``)::

    patient: {birth_date: 1980-05-01, sex: female, weight: 70 kg, height: 165 cm}
    conditions: [{code: {system: ..., code: F33.2}, clinical_status: active}]
    medications: [{name: clonazepam, dose: 1, unit: mg, frequency: bid}]
    observations: [{name: blood pressure, time: ..., components: [...]}]
    allergies: [], trials: [...], substance_use: [...]
    context: {route: ketamine-iv, jurisdiction: US, now: 2026-11-21T09:00:00Z}

Unknown keys are errors: a misspelt field must never be silently ignored.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

from ketacds import limits
from ketacds._yaml import YamlProblem, load_yaml
from ketacds.dosing.units import canonical_unit
from ketacds.errors import InputError, KetacdsError
from ketacds.models.inputs import (
    Allergy,
    AntidepressantTrial,
    Coding,
    Condition,
    Context,
    Medication,
    Observation,
    ObservationComponent,
    Order,
    Patient,
    PatientRecord,
    Plan,
    Quantity,
    SubstanceUse,
)
from ketacds.vocabulary import FREQUENCIES, ROUTES

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
D = TypeVar("D")

_QUANTITY_TEXT = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*(\S.*?)\s*$")

_RECORD_KEYS = {
    "patient",
    "conditions",
    "medications",
    "observations",
    "allergies",
    "trials",
    "substance_use",
}


class _Reader:
    """Reads one mapping at ``path``, remembering which keys were used."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise InputError(path or "(top level)", f"expected a mapping, got {_kind(data)}")
        self.data = data
        self.path = path
        self.used: set[str] = set()

    def at(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, parse: Callable[[Any, str], T], default: D) -> T | D:
        self.used.add(key)
        value = self.data.get(key)
        if value is None:
            return default
        return parse(value, self.at(key))

    def finish(self, allowed: set[str] | None = None) -> None:
        extra = sorted(set(map(str, self.data)) - (allowed if allowed is not None else self.used))
        if extra:
            raise InputError(self.at(extra[0]), "unknown field")


def _kind(value: Any) -> str:
    return type(value).__name__ if value is not None else "nothing"


def _text(value: Any, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise InputError(path, f"expected text, got {_kind(value)}")
    text = str(value).strip()
    if not text:
        raise InputError(path, "must not be empty")
    return text


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(path, f"expected true or false, got {_short(value)}")
    return value


def _decimal(value: Any, path: str) -> Decimal:
    if isinstance(value, bool):
        raise InputError(path, f"expected a number, got {_short(value)}")
    if isinstance(value, float):
        value = repr(value)  # JSON without parse_float=Decimal: keep the written digits
    try:
        number = Decimal(str(value).strip()) if isinstance(value, str | int | Decimal) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise InputError(path, f"expected a number, got {_short(value)}")
    reason = limits.number_problem(number)
    if reason is not None:
        raise InputError(path, reason)
    return number


def _short(value: Any) -> str:
    """``repr(value)``, cut to 60 characters (a 5,000-digit number is no use in a message)."""
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 1000 else "a very long number"
    return text if len(text) <= 60 else text[:57] + "..."


def _non_negative(value: Any, path: str) -> Decimal:
    number = _decimal(value, path)
    if number < 0:
        raise InputError(path, f"must not be negative, got {number}")
    return number


def _int(value: Any, path: str) -> int:
    number = _decimal(value, path)
    if number != number.to_integral_value():
        raise InputError(path, f"expected a whole number, got {value}")
    return int(number)


def _date(value: Any, path: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(_text(value, path))
    except ValueError:
        raise InputError(path, f"expected a date like 1980-05-31, got {_short(value)}") from None


def _datetime(value: Any, path: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(_text(value, path))
        except ValueError:
            raise InputError(
                path, f"expected a date-time like 2026-11-21T09:00:00+00:00, got {_short(value)}"
            ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InputError(path, "must include a timezone (e.g. +00:00 or Z)")
    return moment


def _unit(value: Any, path: str, dimension: str | None = None) -> str:
    text = _text(value, path)
    try:
        canonical_unit(text, dimension)
    except KetacdsError as error:
        raise InputError(path, str(error)) from None
    return text


def _quantity(dimension: str) -> Callable[[Any, str], Quantity]:
    def parse(value: Any, path: str) -> Quantity:
        time: dt.datetime | None = None
        if isinstance(value, str):
            match = _QUANTITY_TEXT.match(value)
            if not match:
                raise InputError(path, f"expected a quantity like '70 kg', got {_short(value)}")
            number, unit = _decimal(match.group(1), path), match.group(2)
        else:
            reader = _Reader(value, path)
            maybe_number = reader.get("value", _non_negative, None)
            maybe_unit = reader.get("unit", _text, None)
            time = reader.get("time", _datetime, None)
            reader.finish()
            if maybe_number is None or maybe_unit is None:
                raise InputError(path, "a quantity needs a value and a unit")
            number, unit = maybe_number, maybe_unit
        if number < 0:
            raise InputError(path, f"must not be negative, got {number}")
        return Quantity(value=number, unit=_unit(unit, path, dimension), time=time)

    return parse


def _choice(*allowed: str) -> Callable[[Any, str], str]:
    def parse(value: Any, path: str) -> str:
        text = _text(value, path)
        if text not in allowed:
            raise InputError(path, f"expected one of {', '.join(allowed)}; got {_short(text)}")
        return text

    return parse


def _coding(value: Any, path: str) -> Coding:
    reader = _Reader(value, path)
    system = reader.get("system", _text, None)
    code = reader.get("code", _text, None)
    display = reader.get("display", _text, None)
    reader.finish()
    if system is None or code is None:
        raise InputError(path, "a code needs a system and a code")
    try:
        return Coding(system=system, code=code, display=display)
    except ValueError as error:
        raise InputError(reader.at("system"), str(error)) from None


def _list(parse: Callable[[Any, str], T]) -> Callable[[Any, str], tuple[T, ...]]:
    def parse_all(value: Any, path: str) -> tuple[T, ...]:
        if not isinstance(value, list | tuple):
            raise InputError(path, f"expected a list, got {_kind(value)}")
        return tuple(parse(item, f"{path}[{index}]") for index, item in enumerate(value))

    return parse_all


def _identity(reader: _Reader) -> dict[str, Any]:
    return {
        "id": reader.get("id", _text, None),
        "code": reader.get("code", _coding, None),
        "name": reader.get("name", _text, None),
    }


def _build(reader: _Reader, cls: Callable[..., T], **fields: Any) -> T:
    reader.finish()
    try:
        return cls(**fields)
    except (TypeError, ValueError) as error:
        raise InputError(reader.path, str(error)) from None


def _patient(value: Any, path: str) -> Patient:
    r = _Reader(value, path)
    return _build(
        r,
        Patient,
        id=r.get("id", _text, None),
        birth_date=r.get("birth_date", _date, None),
        age_years=r.get("age_years", _int, None),
        sex=r.get("sex", _choice("female", "male", "other", "unknown"), None),
        weight=r.get("weight", _quantity("mass"), None),
        height=r.get("height", _quantity("length"), None),
        pregnant=r.get("pregnant", _bool, None),
        pregnant_time=r.get("pregnant_time", _datetime, None),
        lactating=r.get("lactating", _bool, None),
        hepatic_class=r.get("hepatic_class", _choice("A", "B", "C"), None),
        deceased=r.get("deceased", _bool, None),
    )


def _condition(value: Any, path: str) -> Condition:
    r = _Reader(value, path)
    status = r.get(
        "clinical_status",
        _choice("active", "recurrence", "relapse", "inactive", "remission", "resolved"),
        "active",
    )
    return _build(r, Condition, **_identity(r), clinical_status=status, onset=r.get("onset", _date, None))


def _frequency(value: Any, path: str) -> Decimal:
    if isinstance(value, str) and not value.strip()[:1].isdigit():
        key = value.strip().lower()
        if key not in FREQUENCIES:
            known = ", ".join(sorted(FREQUENCIES))
            raise InputError(path, f"unknown frequency {_short(value)}; use a number per day or {known}")
        return FREQUENCIES[key]
    return _non_negative(value, path)


def _medication(value: Any, path: str) -> Medication:
    r = _Reader(value, path)
    identity = _identity(r)
    frequency = r.get("frequency", _frequency, None)
    per_day = r.get("frequency_per_day", _non_negative, None)
    if frequency is not None and per_day is not None:
        raise InputError(r.at("frequency"), "give frequency or frequency_per_day, not both")
    return _build(
        r,
        Medication,
        **identity,
        dose=r.get("dose", _non_negative, None),
        unit=r.get("unit", lambda v, p: _unit(v, p, "mass"), None),
        frequency_per_day=frequency if frequency is not None else per_day,
        as_needed=r.get("as_needed", _bool, False),
        status=r.get("status", _choice("active", "on-hold", "intended", "stopped", "completed"), "active"),
    )


def _component(value: Any, path: str) -> ObservationComponent:
    r = _Reader(value, path)
    return _build(
        r,
        ObservationComponent,
        **{k: v for k, v in _identity(r).items() if k != "id"},
        value=r.get("value", _decimal, None),
        unit=r.get("unit", _unit, None),
    )


def _observation(value: Any, path: str) -> Observation:
    r = _Reader(value, path)
    return _build(
        r,
        Observation,
        **_identity(r),
        value=r.get("value", _decimal, None),
        unit=r.get("unit", _unit, None),
        time=r.get("time", _datetime, None),
        components=r.get("components", _list(_component), ()),
    )


def _allergy(value: Any, path: str) -> Allergy:
    r = _Reader(value, path)
    status = r.get("status", _choice("active", "inactive", "resolved"), "active")
    return _build(r, Allergy, **_identity(r), status=status)


def _trial(value: Any, path: str) -> AntidepressantTrial:
    r = _Reader(value, path)
    return _build(
        r,
        AntidepressantTrial,
        **_identity(r),
        dose=r.get("dose", _non_negative, None),
        unit=r.get("unit", lambda v, p: _unit(v, p, "mass"), None),
        weeks=r.get("weeks", _non_negative, None),
        response=r.get("response", _choice("none", "partial", "response", "remission", "unknown"), "unknown"),
        episode=r.get("episode", _choice("current", "previous"), "current"),
        adequate_dose=r.get("adequate_dose", _bool, None),
    )


def _substance(value: Any, path: str) -> SubstanceUse:
    r = _Reader(value, path)
    status = r.get("status", _choice("current", "former", "never"), "current")
    return _build(r, SubstanceUse, **_identity(r), status=status)


def load_record(data: Mapping[str, Any], *, path: str = "") -> PatientRecord:
    """Build a :class:`PatientRecord` from plain data.

    Raises:
        InputError: with the path of the first field that cannot be read.
    """
    r = _Reader(data, path)
    patient = r.get("patient", _patient, None)
    if patient is None:
        raise InputError(r.at("patient"), "is required")
    record = PatientRecord(
        patient=patient,
        conditions=r.get("conditions", _list(_condition), ()),
        medications=r.get("medications", _list(_medication), ()),
        observations=r.get("observations", _list(_observation), ()),
        allergies=r.get("allergies", _list(_allergy), ()),
        trials=r.get("trials", _list(_trial), ()),
        substance_use=r.get("substance_use", _list(_substance), ()),
    )
    r.finish(_RECORD_KEYS | {"context"} | set(_EXTRA_TOP_LEVEL))
    return record


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
        Context,
        route=r.get("route", _choice(*ROUTES), None),
        jurisdiction=r.get("jurisdiction", _jurisdiction, None),
        now=r.get("now", _datetime, None),
        setting=r.get("setting", _text, None),
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
        Plan,
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


def _order(value: Any, path: str) -> Order:
    r = _Reader(value, path)
    return _build(
        r,
        Order,
        **_identity(r),
        dose=r.get("dose", _non_negative, None),
        unit=r.get("unit", lambda v, p: _unit(v, p, "mass"), None),
        per_week=r.get("per_week", _non_negative, None),
    )


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
