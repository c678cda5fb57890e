"""What-if: edit a case, assess it again, and say what changed.

The edit language (``docs/what-if.md``), as given on the command line:

``set FIELD=VALUE``
    a patient field (``age``, ``birth_date``, ``sex``, ``weight``, ``height``,
    ``pregnant``, ``lactating``, ``hepatic_class``) or a context field (``route``,
    ``jurisdiction``, ``now``, ``setting``); values are written as in a patient file
    (``weight=120kg``, ``pregnant=true``); an empty value (``weight=``) makes the
    field unknown. Setting ``age`` forgets the birth date and the reverse.
``add KIND ITEM``
    adds a medication, condition, trial or observation. ITEM is a mapping in the
    patient-file shape (``{name: clonazepam, dose: 0.5, unit: mg, frequency: bid}``)
    or a shorthand: a name or ``system:code`` (``rxnorm:2598``, ``icd-10-cm:I71.40``);
    for a medication optionally followed by dose, unit and frequency
    (``clonazepam 0.5 mg bid``); for an observation ``NAME=VALUE [UNIT]``
    (``systolic=150 mmHg``), timed at the assessment's ``now``.
``remove KIND WHAT``
    removes every item of that kind whose name, display, code (``F33.2`` or
    ``icd-10-cm:F33.2``) or value set (id or title, e.g. ``benzodiazepines``) is WHAT;
    an observation also matches by any of its components. It is an error when
    nothing matches.

Edits are applied in order. Nothing here knows a clinical fact: the rules decide
what the edited case means.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

import attrs

from ketacds._yaml import YamlProblem, load_yaml
from ketacds.errors import InputError
from ketacds.models.compare import compare_assessments as compare
from ketacds.models.inputs import Coding, Context, PatientRecord, canonical_system
from ketacds.models.load import load_context, load_record
from ketacds.models.results import Assessment, DoseOption, Finding
from ketacds.reporting import dose_text
from ketacds.terminology.valuesets import Terminology, normalise_name
from ketacds.vocabulary import DATA_GAP, MONITORING
from ketacds.yamldoc import suggest

__all__ = [
    "KINDS",
    "PATIENT_FIELDS",
    "Changes",
    "Edit",
    "apply_edits",
    "compare_assessments",
    "parse_edit",
]

#: What ``add`` and ``remove`` work on, by the word used on the command line.
KINDS = {
    "med": "medications",
    "condition": "conditions",
    "trial": "trials",
    "observation": "observations",
}

#: Patient fields ``set`` may change (with the short names it accepts).
PATIENT_FIELDS = {
    "age": "age_years",
    "age_years": "age_years",
    "birth_date": "birth_date",
    "sex": "sex",
    "weight": "weight",
    "height": "height",
    "pregnant": "pregnant",
    "lactating": "lactating",
    "hepatic_class": "hepatic_class",
}
_CONTEXT_FIELDS = ("route", "jurisdiction", "now", "setting")

_MEDICATION = re.compile(
    r"^(?P<ident>.+?)(?:\s+(?P<dose>\d+(?:\.\d+)?)\s*(?P<unit>[^\s\d]+)(?:\s+(?P<frequency>.+))?)?$"
)
_OBSERVATION = re.compile(r"^(?P<ident>[^=]+?)\s*=\s*(?P<value>[-+]?\d+(?:\.\d+)?)\s*(?P<unit>\S.*?)?\s*$")


@attrs.frozen
class Edit:
    """One edit: ``set`` a field, or ``add`` / ``remove`` an item of a kind (a key of :data:`KINDS`)."""

    action: Literal["set", "add", "remove"]
    kind: str
    text: str

    def describe(self) -> str:
        """The edit as the user wrote it: ``weight=120kg``, ``+ med clonazepam``."""
        if self.action == "set":
            return self.text
        return f"{'+' if self.action == 'add' else '−'} {self.kind} {self.text}"


def parse_edit(action: str, kind: str, text: str) -> Edit:
    """Check the shape of one edit (its content is checked when it is applied).

    Raises:
        InputError: the action or kind is unknown, or ``set`` lacks ``=``.
    """
    if action == "set":
        if "=" not in text:
            raise InputError("--set", f"expected FIELD=VALUE, got {text!r}")
        return Edit("set", "field", text)
    if action not in ("add", "remove") or kind not in KINDS:
        raise InputError(f"--{action}-{kind}", "unknown edit")
    if not text.strip():
        raise InputError(f"--{action}-{kind}", "needs an item")
    return Edit("add" if action == "add" else "remove", kind, text.strip())


def _fail(edit: Edit, reason: str) -> InputError:
    option = "--set" if edit.action == "set" else f"--{edit.action}-{edit.kind}"
    return InputError(f"{option} {edit.text}", reason)


def _scalar(text: str) -> Any:
    """A value as YAML reads it (``true`` → True, ``70`` → 70), keeping text as text."""
    try:
        value = load_yaml(text)[0]
    except YamlProblem:
        return text
    return value if isinstance(value, bool | int | Decimal | str) else text


def _set(record: PatientRecord, context: Context, edit: Edit) -> tuple[PatientRecord, Context]:
    name, _, raw = edit.text.partition("=")
    name, raw = name.strip().lower(), raw.strip()
    value = _scalar(raw) if raw else None
    if name in PATIENT_FIELDS:
        field = PATIENT_FIELDS[name]
        parsed = None
        if value is not None:
            try:
                parsed = getattr(load_record({"patient": {field: value}}).patient, field)
            except InputError as error:
                raise _fail(edit, error.reason) from None
        changes: dict[str, Any] = {field: parsed}
        if field == "age_years":
            changes["birth_date"] = None
        if field == "birth_date":
            changes["age_years"] = None
        return attrs.evolve(record, patient=attrs.evolve(record.patient, **changes)), context
    if name in _CONTEXT_FIELDS:
        current: dict[str, Any] = {
            "route": context.route,
            "jurisdiction": context.jurisdiction,
            "now": context.now.isoformat(),
            "setting": context.setting,
        }
        current[name] = raw or None
        try:
            return record, load_context(current)
        except InputError as error:
            raise _fail(edit, error.reason) from None
    known = sorted({*PATIENT_FIELDS, *_CONTEXT_FIELDS})
    close = suggest(name, known)
    hint = f" (did you mean {close!r}?)" if close else ""
    raise _fail(edit, f"unknown field {name!r}{hint}; fields: {', '.join(known)}")


def _identity(text: str) -> dict[str, Any]:
    """``rxnorm:2598`` → a code; anything else → a name."""
    system, colon, code = text.partition(":")
    if colon and code and " " not in system:
        try:
            return {"code": {"system": canonical_system(system), "code": code.strip()}}
        except ValueError:
            pass
    return {"name": text.strip()}


def _item(edit: Edit, context: Context) -> dict[str, Any]:
    text = edit.text
    if text.startswith("{"):
        try:
            data = load_yaml(text)[0]
        except YamlProblem as problem:
            raise _fail(edit, f"not a valid mapping: {problem.reason}") from None
        if not isinstance(data, dict):  # pragma: no cover - text starting with '{' is a mapping or invalid
            raise _fail(edit, "expected a mapping")
        return data
    if edit.kind == "med":
        match = _MEDICATION.match(text)
        assert match is not None  # the pattern matches any non-empty text
        item = _identity(match["ident"])
        if match["dose"]:
            item |= {"dose": Decimal(match["dose"]), "unit": match["unit"]}
        if match["frequency"]:
            item["frequency"] = match["frequency"]
        return item
    if edit.kind == "observation":
        match = _OBSERVATION.match(text)
        if match is None:
            raise _fail(edit, "expected NAME=VALUE [UNIT], e.g. systolic=150 mmHg, or a mapping")
        item = _identity(match["ident"]) | {"value": Decimal(match["value"]), "time": context.now.isoformat()}
        if match["unit"]:
            item["unit"] = match["unit"]
        return item
    return _identity(text)


def _add(record: PatientRecord, context: Context, edit: Edit) -> PatientRecord:
    key = KINDS[edit.kind]
    item = _item(edit, context)
    try:
        parsed = getattr(load_record({"patient": {}, key: [item]}), key)[0]
    except InputError as error:
        field = error.path.split("]", 1)[-1].lstrip(".")
        raise _fail(edit, f"{field}: {error.reason}" if field else error.reason) from None
    changes: dict[str, Any] = {key: (*getattr(record, key), parsed)}
    return attrs.evolve(record, **changes)


def _names(item: Any) -> set[str]:
    """Every way an item (or one of its components) may be named."""
    names: set[str] = set()
    for part in (item, *getattr(item, "components", ())):
        if part.name:
            names.add(normalise_name(part.name))
        code: Coding | None = part.code
        if code is not None:
            short = code.system.rsplit("/", 1)[-1]
            names |= {normalise_name(code.code), normalise_name(f"{short}:{code.code}")}
            names.add(normalise_name(f"{code.system}:{code.code}"))
            if code.display:
                names.add(normalise_name(code.display))
    return names


def _valuesets(item: Any, terminology: Terminology | None, titles: Mapping[str, str]) -> set[str]:
    if terminology is None:
        return set()
    found: set[str] = set()
    for part in (item, *getattr(item, "components", ())):
        for vs in terminology.tag(part.code, part.name):
            found |= {vs, normalise_name(titles.get(vs, vs))}
    return found


def _label(item: Any) -> str:
    if item.name:
        return str(item.name)
    return f"{item.code.system.rsplit('/', 1)[-1]}:{item.code.code}"


def _remove(
    record: PatientRecord, edit: Edit, terminology: Terminology | None, titles: Mapping[str, str]
) -> PatientRecord:
    key = KINDS[edit.kind]
    items: Sequence[Any] = getattr(record, key)
    wanted = normalise_name(edit.text)
    # A code typed as system:code may use any accepted name of the system.
    identity = _identity(edit.text)
    if "code" in identity:
        wanted_code = normalise_name(f"{identity['code']['system']}:{identity['code']['code']}")
    else:
        wanted_code = wanted
    kept = [
        item
        for item in items
        if not ({wanted, wanted_code} & (_names(item) | _valuesets(item, terminology, titles)))
    ]
    if len(kept) == len(items):
        recorded = ", ".join(_label(item) for item in items) or "none"
        raise _fail(edit, f"nothing matches; recorded {key}: {recorded}")
    changes: dict[str, Any] = {key: tuple(kept)}
    return attrs.evolve(record, **changes)


def apply_edits(
    record: PatientRecord,
    context: Context,
    edits: Iterable[Edit],
    *,
    terminology: Terminology | None = None,
    valueset_titles: Mapping[str, str] | None = None,
) -> tuple[PatientRecord, Context]:
    """Apply ``edits`` in order.

    Args:
        record: the case to edit.
        context: its context.
        edits: from :func:`parse_edit`.
        terminology: lets ``remove`` match by value set.
        valueset_titles: lets ``remove`` match a value set by its title.

    Raises:
        InputError: an edit cannot be applied; the path names the option and its text.
    """
    titles = valueset_titles or {}
    for edit in edits:
        if edit.action == "set":
            record, context = _set(record, context, edit)
        elif edit.action == "add":
            record = _add(record, context, edit)
        else:
            record = _remove(record, edit, terminology, titles)
    return record, context


@attrs.frozen(kw_only=True)
class Changes:
    """What changed between two Assessments of the same patient."""

    status: tuple[str, str] | None
    added: tuple[str, ...]
    removed: tuple[str, ...]
    dose: tuple[str, ...]
    monitoring_added: tuple[str, ...]
    monitoring_removed: tuple[str, ...]
    gaps_added: tuple[str, ...]
    gaps_removed: tuple[str, ...]

    @property
    def nothing(self) -> bool:
        """Whether the two Assessments say the same."""
        return not any(getattr(self, a.name) for a in attrs.fields(Changes))

    def lines(self) -> list[str]:
        """One line per change, ``+`` for what appeared and ``−`` for what went."""
        if self.nothing:
            return ["No change: the same status, findings, dose, monitoring and data gaps."]
        out = []
        if self.status:
            out.append(f"Status: {self.status[0]} → {self.status[1]}")
        out += [f"+ {text}" for text in self.added]
        out += [f"− {text}" for text in self.removed]
        out += [f"Dose {text}" for text in self.dose]
        out += [f"+ Monitoring: {text}" for text in self.monitoring_added]
        out += [f"− Monitoring: {text}" for text in self.monitoring_removed]
        out += [f"+ Data gap: {text}" for text in self.gaps_added]
        out += [f"− Data gap: {text}" for text in self.gaps_removed]
        return out


def _dose_text(option: DoseOption | None) -> str:
    return "none" if option is None else dose_text(option)


def compare_assessments(before: Assessment, after: Assessment) -> Changes:
    """What ``after`` says differently from ``before``, in words.

    The comparing is :func:`ketacds.models.compare.compare_assessments`; this words it.
    """
    changes = compare(before, after)
    # Monitoring items and data gaps are findings too; they are listed under their own names.
    own = (MONITORING, DATA_GAP)
    old = {f.rule_id: f for f in before.findings}
    new = {f.rule_id: f for f in after.findings}

    def finding(rule_id: str, source: Mapping[str, Finding]) -> str:
        f = source[rule_id]
        return f"{rule_id} {f.title} [{f.severity}]"

    old_doses = {o.label: o for o in (before.dose.options if before.dose else ())}
    new_doses = {o.label: o for o in (after.dose.options if after.dose else ())}
    dose = [
        f"“{label}”: {_dose_text(old_doses.get(label))} → {_dose_text(new_doses.get(label))}"
        for label in changes.dose_labels
    ]
    old_mon = {m.rule_id: m.title for m in before.monitoring}
    new_mon = {m.rule_id: m.title for m in after.monitoring}
    old_gaps = {g.rule_id: g.missing for g in before.data_gaps}
    new_gaps = {g.rule_id: g.missing for g in after.data_gaps}
    return Changes(
        status=(before.status, after.status) if changes.status else None,
        added=tuple(finding(i, new) for i in changes.appeared if new[i].category not in own),
        removed=tuple(finding(i, old) for i in changes.vanished if old[i].category not in own),
        dose=tuple(dose),
        monitoring_added=tuple(f"{new_mon[i]} [{i}]" for i in changes.monitoring_added),
        monitoring_removed=tuple(f"{old_mon[i]} [{i}]" for i in changes.monitoring_removed),
        gaps_added=tuple(f"{new_gaps[i]} [{i}]" for i in changes.gaps_added),
        gaps_removed=tuple(f"{old_gaps[i]} [{i}]" for i in changes.gaps_removed),
    )
