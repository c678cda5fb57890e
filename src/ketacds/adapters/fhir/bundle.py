"""FHIR R4 → :class:`~ketacds.models.inputs.PatientRecord`, one resource at a time.

Real records are messy: a resource that does not validate, a product code ketacds
does not know, a unit it cannot convert, a condition marked entered-in-error. Each
resource is validated on its own with fhir.resources' R4B models (its default R5
models reject R4 data), so one bad resource never spoils the rest, and everything
that is not read, or read only with an assumption, becomes a
:class:`~ketacds.models.quality.DataQualityIssue` on the record: never a crash,
never silently dropped. Errors among them are facts the rules see (``KCDS-GAP-013``).

What is read (the codes are data, in ``rulesets/terminology/``):

==================================  ===============================================
Patient                             birthDate, gender; deceased[x] (the engine then
                                    refuses to assess: NotAssessedError)
Condition                           every coding in a known system; clinicalStatus;
                                    verificationStatus (refuted, entered-in-error
                                    left out; unconfirmed kept with a warning); onset
MedicationRequest / -Statement      RxNorm products → ingredients (with strengths);
                                    status; dose and frequency of the first dosage
                                    (R4 ``doseAndRate``; STU3 ``doseQuantity`` read
                                    leniently, with a warning); as needed
Observation                         the LOINC codes of ``fhir-r4.yaml``, newest
                                    ``keep_latest`` per code; panels by component;
                                    UCUM units; newest weight and height fill the
                                    patient; pregnancy status
AllergyIntolerance                  codes, clinicalStatus, verificationStatus
==================================  ===============================================

Entry points: :func:`read_bundle`, :func:`read_resources` (a record) and
:func:`read_draft_orders` (the ketamine or esketamine orders of a CDS Hooks
``draftOrders`` bundle, ready to assess).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from functools import cache
from typing import Any, TypeVar, cast

import attrs
from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.condition import Condition as FhirCondition
from fhir.resources.R4B.dosage import Dosage
from fhir.resources.R4B.medication import Medication as FhirMedication
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation as FhirObservation
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.quantity import Quantity as FhirQuantity
from pydantic import BaseModel, ValidationError

from ketacds import limits
from ketacds.dosing.units import canonical_unit
from ketacds.errors import InputError, KetacdsError
from ketacds.models.inputs import (
    Allergy,
    Coding,
    Condition,
    Context,
    Medication,
    Observation,
    ObservationComponent,
    Order,
    Patient,
    PatientRecord,
    Quantity,
    canonical_system,
)
from ketacds.models.load import decode_text, load_context, parse_document
from ketacds.models.quality import DataQualityIssue, QualitySeverity
from ketacds.ruleset.load import load_ruleset
from ketacds.terminology.mapping import FhirMapping, Ingredient, load_fhir_mapping
from ketacds.terminology.valuesets import Terminology, terminology_for

__all__ = [
    "VALIDATION_CACHE_SIZE",
    "DraftOrder",
    "DraftOrders",
    "bundle_resources",
    "read_bundle",
    "read_draft_orders",
    "read_resources",
    "validation_cache_stats",
]

Resource = Mapping[str, Any]
M = TypeVar("M", bound=BaseModel)

_RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_LOINC = "http://loinc.org"
_SNOMED = "http://snomed.info/sct"
_UCUM = "http://unitsofmeasure.org"
_READ_TYPES = {
    "Patient",
    "Condition",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "AllergyIntolerance",
    "Medication",
}
# Days in each FHIR Timing.periodUnit (UCUM: mo is the mean Julian month, a the Julian year).
_PERIOD_DAYS = {
    "s": Fraction(1, 86400),
    "min": Fraction(1, 1440),
    "h": Fraction(1, 24),
    "d": Fraction(1),
    "wk": Fraction(7),
    "mo": Fraction("30.4375"),
    "a": Fraction("365.25"),
}
_RATE_PLACES = Decimal("0.0001")
_REQUEST_STATUS = {
    "active": "active",
    "on-hold": "on-hold",
    "draft": "intended",
    "completed": "completed",
    "stopped": "stopped",
}
_STATEMENT_STATUS = {
    "active": "active",
    "on-hold": "on-hold",
    "intended": "intended",
    "completed": "completed",
    "stopped": "stopped",
}
_EXCLUDED_STATUS = {"cancelled", "entered-in-error", "not-taken"}
_CURRENT = ("active", "on-hold", "intended")
_CONDITION_STATUS = {"active", "recurrence", "relapse", "inactive", "remission", "resolved"}
_ALLERGY_STATUS = {"active", "inactive", "resolved"}
_OBSERVATION_EXCLUDED = {"entered-in-error", "cancelled"}


# The elements read of each resource type: only these are validated (see _Reader._validate).
_READ_ELEMENTS: dict[str, frozenset[str]] = {
    "Patient": frozenset(
        {"resourceType", "id", "gender", "birthDate", "deceasedBoolean", "deceasedDateTime"}
    ),
    "Condition": frozenset(
        {
            "resourceType",
            "id",
            "clinicalStatus",
            "verificationStatus",
            "code",
            "subject",
            "onsetDateTime",
            "onsetPeriod",
        }
    ),
    "Observation": frozenset(
        {
            "resourceType",
            "id",
            "status",
            "code",
            "subject",
            "effectiveDateTime",
            "effectiveInstant",
            "effectivePeriod",
            "issued",
            "valueQuantity",
            "valueCodeableConcept",
            "dataAbsentReason",
            "component",
        }
    ),
    "MedicationRequest": frozenset(
        {
            "resourceType",
            "id",
            "status",
            "intent",
            "subject",
            "medicationCodeableConcept",
            "medicationReference",
            "dosageInstruction",
            "contained",
        }
    ),
    "MedicationStatement": frozenset(
        {
            "resourceType",
            "id",
            "status",
            "subject",
            "medicationCodeableConcept",
            "medicationReference",
            "dosage",
            "contained",
        }
    ),
    "AllergyIntolerance": frozenset(
        {"resourceType", "id", "clinicalStatus", "verificationStatus", "code", "patient"}
    ),
    "Medication": frozenset({"resourceType", "id", "code"}),
}


class _ValidationCache:
    """Validation outcomes by resource content (least recently used out first), shared by one process."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[str, tuple[Any, str | None, bool]] = OrderedDict()
        self.lock = threading.Lock()
        self.hits = self.misses = 0

    def validate(self, model: type[M], resource: Mapping[str, Any]) -> tuple[M | None, str | None, bool]:
        """``(model or None, the problem if invalid, whether the STU3 dose was read leniently)``."""
        key = f"{model.__name__}\0{json.dumps(resource, sort_keys=True, separators=(',', ':'), default=str)}"
        with self.lock:
            found = self.entries.get(key)
            if found is not None:
                self.entries.move_to_end(key)
                self.hits += 1
                return cast(tuple[M | None, str | None, bool], found)
            self.misses += 1
        outcome = _validate_uncached(model, resource)
        with self.lock:
            self.entries[key] = outcome
            if len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return outcome


def _validate_uncached(model: type[M], resource: Mapping[str, Any]) -> tuple[M | None, str | None, bool]:
    try:
        return model.model_validate(resource), None, False
    except ValidationError as error:
        lenient = _stu3_dosage(resource)
        if lenient is not None:
            try:
                return model.model_validate(lenient), None, True
            except ValidationError:
                pass
        return None, _summarise(error), False


#: Validated resources are kept per process, up to this many (the models are never changed after).
VALIDATION_CACHE_SIZE = 20_000
_VALIDATED = _ValidationCache(VALIDATION_CACHE_SIZE)


@attrs.frozen(kw_only=True)
class DraftOrder:
    """A drafted ketamine or esketamine order, ready to be assessed.

    Attributes:
        key: the order's resource as ``MedicationRequest/id``.
        resource: the drafted resource as sent (to build suggestions that update it).
        route: the planned route it orders, or ``None`` when it cannot be told.
        order: the ordered drug, dose and frequency.
        issues: what could not be read about this order.
    """

    key: str
    resource: Resource = attrs.field(eq=False, repr=False)
    route: str | None
    order: Order
    issues: tuple[DataQualityIssue, ...] = ()


@attrs.frozen(kw_only=True)
class DraftOrders:
    """What a ``draftOrders`` bundle holds.

    Attributes:
        orders: the ketamine and esketamine orders, to assess one by one.
        medications: every other drafted medication, as ``intended`` (they may interact).
        issues: what could not be read.
    """

    orders: tuple[DraftOrder, ...]
    medications: tuple[Medication, ...]
    issues: tuple[DataQualityIssue, ...]


@cache
def _bundled_terminology() -> Terminology:
    return terminology_for(load_ruleset())


def bundle_resources(bundle: Resource) -> list[tuple[str | None, Any]]:
    """The ``(fullUrl, resource)`` of every entry of a Bundle, nested bundles flattened.

    Raises:
        InputError: ``bundle`` is not a FHIR Bundle.
    """
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        raise InputError("(top level)", "expected a FHIR Bundle (resourceType 'Bundle')")
    return list(_flatten(bundle, None))


def _flatten(item: Any, full_url: str | None) -> Iterator[tuple[str | None, Any]]:
    if isinstance(item, Mapping) and item.get("resourceType") == "Bundle":
        entries = item.get("entry")
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, Mapping):
                url = entry.get("fullUrl")
                yield from _flatten(entry.get("resource"), url if isinstance(url, str) else None)
            else:
                yield None, entry
    else:
        yield full_url, item


def validation_cache_stats() -> dict[str, int]:
    """How often a resource's validation was found in the per-process cache (for operations)."""
    return {"hits": _VALIDATED.hits, "misses": _VALIDATED.misses, "size": len(_VALIDATED.entries)}


def read_bundle(
    bundle: Resource | str | bytes,
    *,
    patient_id: str | None = None,
    mapping: FhirMapping | None = None,
    terminology: Terminology | None = None,
) -> PatientRecord:
    """Read one patient's record from a FHIR R4 Bundle (any type: transaction, searchset, ...).

    Args:
        bundle: the Bundle as JSON data, or as JSON text (``str`` or UTF-8 ``bytes``),
            read as :func:`ketacds.models.load.parse_document` reads JSON.
        patient_id: the patient's id, when the bundle may hold other patients' data.
        mapping: the FHIR reading rules (default: the bundled ``rulesets/terminology/``).
        terminology: the value sets (default: the bundled rulesets').

    Raises:
        InputError: ``bundle`` is not a Bundle (or not JSON), or it holds several
            patients and no ``patient_id`` says which one to read.
    """
    data: Any = bundle
    if isinstance(bundle, str | bytes):
        text = decode_text(bundle, "(bundle)") if isinstance(bundle, bytes) else bundle
        data = parse_document(text, ".json", "(bundle)")
    return read_resources(
        bundle_resources(data), patient_id=patient_id, mapping=mapping, terminology=terminology
    )


def is_bundle(document: Any) -> bool:
    """Whether ``document`` (JSON data) is a FHIR Bundle."""
    return isinstance(document, Mapping) and document.get("resourceType") == "Bundle"


def read_bundle_case(
    bundle: Resource,
    *,
    overrides: Mapping[str, Any],
    terminology: Terminology | None = None,
) -> tuple[PatientRecord, Context]:
    """Read a bundle as a case: the record from the bundle, the context from ``overrides``.

    A Bundle says nothing of the planned treatment, so ``route``, ``jurisdiction`` and
    ``now`` must come from the caller (the command line's ``--route``, ``--jurisdiction``
    and ``--now``).

    Raises:
        InputError: the bundle cannot be read, or the context is incomplete.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    missing = [key for key in ("route", "jurisdiction", "now") if key not in given]
    if missing:
        raise InputError(
            "context",
            f"a FHIR Bundle carries no treatment context; give {', '.join(missing)} "
            "(ketacds assess --route ... --jurisdiction ... --now ...)",
        )
    return read_bundle(bundle, terminology=terminology), load_context(given)


def read_resources(
    resources: Iterable[Any],
    *,
    patient_id: str | None = None,
    mapping: FhirMapping | None = None,
    terminology: Terminology | None = None,
) -> PatientRecord:
    """Read one patient's record from FHIR R4 resources.

    Each item is a resource, a Bundle (its entries are read), or a ``(fullUrl,
    resource)`` pair. See :func:`read_bundle` for the arguments.
    """
    reader = _Reader(mapping or load_fhir_mapping(), terminology or _bundled_terminology())
    return reader.record(_pairs(resources), patient_id)


def read_draft_orders(
    draft_orders: Any,
    *,
    mapping: FhirMapping | None = None,
    terminology: Terminology | None = None,
) -> DraftOrders:
    """Find the ketamine and esketamine orders among a CDS Hooks ``draftOrders`` bundle.

    Every other drafted MedicationRequest becomes an ``intended`` medication (it may
    interact with the planned treatment); other resource types are counted as not read.
    """
    reader = _Reader(mapping or load_fhir_mapping(), terminology or _bundled_terminology())
    pairs = _pairs([draft_orders]) if isinstance(draft_orders, Mapping) else []
    if not isinstance(draft_orders, Mapping):
        reader.issue("error", "invalid-resource", "draftOrders is not a FHIR Bundle", None)
    return reader.draft_orders(pairs)


def _pairs(items: Iterable[Any]) -> list[tuple[str | None, Any]]:
    out: list[tuple[str | None, Any]] = []
    for item in items:
        if isinstance(item, tuple) and len(item) == 2:
            out.extend(_flatten(item[1], item[0]))
        else:
            out.extend(_flatten(item, None))
    return out


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


class _Reader:
    """Reads one batch of resources, collecting data-quality issues as it goes."""

    def __init__(self, mapping: FhirMapping, terminology: Terminology) -> None:
        self.mapping = mapping
        self.terminology = terminology
        self.issues: list[DataQualityIssue] = []
        self.not_read: Counter[str] = Counter()
        self.medications_by_ref: dict[str, FhirMedication] = {}

    # -- bookkeeping ---------------------------------------------------------------

    def issue(
        self,
        severity: QualitySeverity,
        code: str,
        message: str,
        resource: str | None,
        path: str | None = None,
    ) -> None:
        self.issues.append(
            DataQualityIssue(
                severity=severity,
                code=code,
                message=message,
                resource=resource,
                path=path,
            )
        )

    def _summaries(self) -> None:
        if self.not_read:
            counts = ", ".join(f"{kind} ×{n}" for kind, n in sorted(self.not_read.items()))
            self.issue("info", "not-read", f"Left out because no rule reads them: {counts}.", None)

    def _validate(self, model: type[M], raw: Resource, key: str) -> M | None:
        """The resource as a validated R4B model, or ``None`` (and an issue) when it cannot be read.

        Only the elements ketacds reads are validated (:data:`_READ_ELEMENTS`): one that
        is never read cannot change an answer, and validation is the costly part of
        reading. A modifier (``modifierExtension``, ``implicitRules``) can change the
        meaning of everything else, so a resource that has one is not read at all.
        Outcomes are cached by content, so a resource sent again (the same patient's
        next hook call) is not validated again.
        """
        modifiers = sorted(set(raw) & {"modifierExtension", "implicitRules"})
        if modifiers:
            self.issue(
                "error",
                "modifier",
                f"Not read: it carries {modifiers[0]}, which may change its meaning in unknown ways.",
                key,
                modifiers[0],
            )
            return None
        elements = _READ_ELEMENTS[model.__name__]
        projected = {name: value for name, value in raw.items() if name in elements}
        out_of_range = limits.find_problem(projected)
        if out_of_range is not None:
            where, reason = out_of_range
            self.issue("error", "out-of-range", f"Not read: {where}: {reason}.", key, where)
            return None
        parsed, problem, lenient = _VALIDATED.validate(model, projected)
        if lenient:
            self.issue(
                "warning",
                "lenient-parse",
                "The dose is written the STU3 way (dosage doseQuantity), not in R4 doseAndRate; "
                "read as if it were R4.",
                key,
                "dosageInstruction.doseQuantity",
            )
        if problem is not None:
            self.issue("error", "invalid-resource", f"Not valid FHIR R4: {problem}.", key)
        return parsed

    # -- the record ----------------------------------------------------------------

    def _index(self, pairs: Sequence[tuple[str | None, Any]]) -> list[tuple[str, str | None, Resource]]:
        """Keep well-formed resources once each; report the rest."""
        seen: dict[str, Resource] = {}
        items: list[tuple[str, str | None, Resource]] = []
        for index, (full_url, raw) in enumerate(pairs):
            kind = raw.get("resourceType") if isinstance(raw, Mapping) else None
            if not isinstance(kind, str):
                self.issue("error", "invalid-resource", f"Entry {index} is not a FHIR resource.", None)
                continue
            rid = raw.get("id")
            key = f"{kind}/{rid}" if isinstance(rid, str) and rid else f"{kind}[{index}]"
            if key in seen:
                if seen[key] != raw:
                    self.issue(
                        "warning", "duplicate", "Two different versions were given; the first is read.", key
                    )
                continue
            seen[key] = raw
            if kind == "OperationOutcome":
                self.issue(
                    "error",
                    "source-error",
                    "The source sent an error (OperationOutcome) in place of data.",
                    key,
                )
                continue
            if kind == "Medication":
                medication = self._validate(FhirMedication, raw, key)
                if medication is not None:
                    for ref in (key, full_url):
                        if ref:
                            self.medications_by_ref[ref] = medication
                continue
            if kind not in _READ_TYPES:
                self.not_read[kind] += 1
                continue
            items.append((key, full_url, raw))
        return items

    def record(self, pairs: Sequence[tuple[str | None, Any]], patient_id: str | None) -> PatientRecord:
        items = self._index(pairs)
        patients = [(key, url, raw) for key, url, raw in items if raw["resourceType"] == "Patient"]
        if patient_id is not None:
            chosen = [p for p in patients if p[2].get("id") == patient_id]
            for key, _, _ in patients:
                if all(key != c[0] for c in chosen):
                    self.issue("error", "other-patient", "Another patient's Patient resource; left out.", key)
        elif len(patients) > 1:
            raise InputError("(top level)", f"the data hold {len(patients)} patients; say which one to read")
        else:
            chosen = patients
        refs: set[str] = set()
        pid = patient_id
        if chosen:
            key, url, _ = chosen[0]
            pid = chosen[0][2].get("id") if isinstance(chosen[0][2].get("id"), str) else pid
            refs.add(key)
            if url:
                refs.add(url)
        if pid:
            refs.add(f"Patient/{pid}")
            refs.add(f"urn:uuid:{pid}")  # a transaction bundle's reference to the same resource id

        patient = self._patient(chosen[0][0], chosen[0][2]) if chosen else Patient(id=pid)
        conditions: list[Condition] = []
        medications: list[Medication] = []
        observations: list[tuple[str, Observation]] = []
        allergies: list[Allergy] = []
        pregnancy_conditions: list[str] = []
        older = self._older_readings(items)
        for key, _, raw in items:
            kind = raw["resourceType"]
            if kind == "Patient" or key in older:
                continue
            if refs and not self._belongs(raw, refs, key):
                continue
            if kind == "Condition":
                found, pregnant = self._condition(key, raw)
                conditions.extend(found)
                pregnancy_conditions.extend([key] if pregnant else [])
            elif kind in ("MedicationRequest", "MedicationStatement"):
                medications.extend(self._medication(key, raw))
            elif kind == "Observation":
                observations.extend(self._observation(key, raw))
            else:
                allergies.extend(self._allergy(key, raw))

        kept = self._keep_latest(observations)
        patient = self._fill_patient(patient, kept, pregnancy_conditions)
        self._summaries()
        coded = {code for code, concept in self.mapping.observations.items() if concept.coded}
        return PatientRecord(
            patient=patient,
            conditions=tuple(conditions),
            medications=tuple(medications),
            observations=tuple(o for _, o in kept if not (o.code and o.code.code in coded)),
            allergies=tuple(allergies),
            data_quality=tuple(self.issues),
        )

    def _belongs(self, raw: Resource, refs: set[str], key: str) -> bool:
        holder = raw.get("patient") if raw["resourceType"] == "AllergyIntolerance" else raw.get("subject")
        reference = holder.get("reference") if isinstance(holder, Mapping) else None
        if not isinstance(reference, str) or not reference:
            return True  # no subject: it came in this patient's data
        if reference in refs or any(
            reference.endswith(f"/{ref}") for ref in refs if ref.startswith("Patient/")
        ):
            return True
        self.issue("error", "other-patient", "Refers to another patient; left out.", key, "subject")
        return False

    # -- Patient -----------------------------------------------------------------

    def _patient(self, key: str, raw: Resource) -> Patient:
        model = self._validate(FhirPatient, raw, key)
        if model is None:
            return Patient(id=_text(raw.get("id")))
        birth_date: dt.date | None = None
        if isinstance(model.birthDate, dt.date):
            birth_date = model.birthDate
        elif model.birthDate is not None:
            self.issue(
                "warning",
                "partial-date",
                "The birth date gives only a year or month; age is not derived.",
                key,
                "birthDate",
            )
        deceased = True if model.deceasedBoolean or model.deceasedDateTime is not None else None
        if model.deceasedBoolean is False:
            deceased = False
        sex = model.gender if model.gender in ("female", "male", "other", "unknown") else None
        # A deceased patient is refused by the engine (NotAssessedError), never assessed.
        return Patient(id=model.id, birth_date=birth_date, sex=cast(Any, sex), deceased=deceased)

    def _fill_patient(
        self, patient: Patient, observations: Sequence[tuple[str, Observation]], pregnancy: Sequence[str]
    ) -> Patient:
        newest: dict[str, tuple[str, Observation]] = {}
        status: tuple[str, Observation] | None = None
        for key, o in observations:  # newest first within each code
            concept = self.mapping.observations.get(o.code.code if o.code else "")
            if concept is None:
                continue
            if concept.patient and o.value is not None and concept.patient not in newest:
                newest[concept.patient] = (key, o)
            if concept.coded and status is None:
                status = (key, o)
        fields: dict[str, Any] = {}
        for field, (_, o) in newest.items():
            fields[field] = Quantity(value=cast(Decimal, o.value), unit=cast(str, o.unit), time=o.time)
        pregnant: bool | None = None
        if status is not None:
            pregnant = status[1].name == "pregnant"
        if pregnancy:
            if pregnant is False:
                self.issue(
                    "warning",
                    "conflict",
                    "A pregnancy condition is active but the newest pregnancy status says not pregnant; "
                    "read as pregnant.",
                    pregnancy[0],
                )
            pregnant = True
        if pregnant is not None:
            fields["pregnant"] = pregnant
            if not pregnancy and status is not None:
                fields["pregnant_time"] = status[1].time  # so its validity window can be checked
        return attrs.evolve(patient, **fields)

    # -- Condition and AllergyIntolerance ------------------------------------------

    def _verification(self, key: str, concept: CodeableConcept | None, what: str) -> bool:
        status = _code_of(concept)
        if status in ("refuted", "entered-in-error"):
            self.issue(
                "info", "excluded", f"Left out: the {what} is marked {status}.", key, "verificationStatus"
            )
            return False
        if status in ("unconfirmed", "provisional", "differential"):
            self.issue(
                "warning",
                "unconfirmed",
                f"The {what} is {status}, not confirmed; it is counted.",
                key,
                "verificationStatus",
            )
        return True

    def _codings(
        self, key: str, concept: CodeableConcept | None, what: str
    ) -> tuple[list[Coding], str | None]:
        codings: list[Coding] = []
        for coding in (concept.coding or []) if concept else []:
            if coding.system and coding.code and _known_system(coding.system):
                item = Coding(system=coding.system, code=coding.code, display=coding.display)
                if item not in codings:
                    codings.append(item)
        name = _text(concept.text) if concept else None
        if not codings and concept is not None and concept.coding:
            self.issue(
                "warning",
                "unsupported-system",
                f"The {what} is coded only in systems ketacds does not read; matched by its name alone.",
                key,
                "code",
            )
            name = name or next((c.display for c in concept.coding if c.display), None)
        return codings, name

    def _clinical(
        self,
        key: str,
        model: FhirCondition | AllergyIntolerance,
        statuses: set[str],
        what: str,
    ) -> tuple[str, list[Coding | None], str | None] | None:
        """Verification, clinical status and codes of a Condition or AllergyIntolerance.

        Returns ``(status, one entry per code, name)``, or ``None`` when the item is not
        read (refuted, entered-in-error, or naming nothing). A missing clinical status
        is read as active.
        """
        if not self._verification(key, model.verificationStatus, what):
            return None
        status = _code_of(model.clinicalStatus)
        if status not in statuses:
            self.issue(
                "warning",
                "assumed-active",
                "No clinical status is given; read as active.",
                key,
                "clinicalStatus",
            )
            status = "active"
        codings, name = self._codings(key, model.code, what)
        if not codings and not name:
            self.issue("error", "no-code", f"The {what} has neither a code nor a name.", key, "code")
            return None
        return status, list(codings) or [None], name

    def _condition(self, key: str, raw: Resource) -> tuple[list[Condition], bool]:
        model = self._validate(FhirCondition, raw, key)
        read = self._clinical(key, model, _CONDITION_STATUS, "condition") if model else None
        if model is None or read is None:
            return [], False
        status, items, name = read
        onset = _date_of(model.onsetDateTime) or _date_of(
            model.onsetPeriod.start if model.onsetPeriod else None
        )
        conditions = [
            Condition(
                id=_item_id(key, items, index),
                code=code,
                name=name,
                clinical_status=cast(Any, status),
                onset=onset,
            )
            for index, code in enumerate(items)
        ]
        pregnant = status in ("active", "recurrence", "relapse") and any(
            (c.system, c.code) in self.mapping.pregnancy_conditions for c in items if c is not None
        )
        return conditions, pregnant

    def _allergy(self, key: str, raw: Resource) -> list[Allergy]:
        model = self._validate(AllergyIntolerance, raw, key)
        read = self._clinical(key, model, _ALLERGY_STATUS, "allergy") if model else None
        if read is None:
            return []
        status, items, name = read
        return [
            Allergy(id=_item_id(key, items, index), code=code, name=name, status=cast(Any, status))
            for index, code in enumerate(items)
        ]

    # -- Observation ---------------------------------------------------------------

    def _observation(self, key: str, raw: Resource) -> list[tuple[str, Observation]]:
        codes = _raw_loinc_codes(raw.get("code"))
        read = [c for c in codes if c in self.mapping.observations]
        if not read:
            self.not_read["Observation (other codes)"] += 1
            return []
        model = self._validate(FhirObservation, raw, key)
        if model is None:
            return []
        if model.status in _OBSERVATION_EXCLUDED:
            self.issue(
                "info", "excluded", f"Left out: the observation is marked {model.status}.", key, "status"
            )
            return []
        concept = self.mapping.observations[read[0]]
        display = next(
            (c.display for c in model.code.coding or [] if c.code == concept.code and c.display), None
        )
        code = Coding(system=_LOINC, code=concept.code, display=display)
        time = self._time(key, model)
        if concept.coded:
            answer = self._pregnancy_answer(key, model)
            if answer is None:
                return []
            # A coded reading: kept with a marker value so that newest-first ordering works.
            return [(key, Observation(id=key, code=code, name=answer, value=Decimal(1), time=time))]
        components: list[ObservationComponent] = []
        for index, component in enumerate(model.component or []):
            # component.code is required by FHIR, but the models let a null through
            c_codings = (component.code.coding or []) if component.code else []
            c_codes = [c.code for c in c_codings if c.system == _LOINC and c.code]
            c_concept = next(
                (self.mapping.observations[c] for c in c_codes if c in self.mapping.observations), None
            )
            if c_concept is None:
                continue
            value = self._quantity(key, component.valueQuantity, c_concept.dimension, f"component[{index}]")
            if value is not None:
                c_display = next(
                    (c.display for c in c_codings if c.code == c_concept.code), None
                )
                components.append(
                    ObservationComponent(
                        code=Coding(system=_LOINC, code=c_concept.code, display=c_display),
                        value=value[0],
                        unit=value[1],
                    )
                )
        value_unit = None
        if model.valueQuantity is not None or not components:
            value_unit = self._quantity(key, model.valueQuantity, concept.dimension, "value")
        if value_unit is None and not components:
            return []
        return [
            (
                key,
                Observation(
                    id=key,
                    code=code,
                    value=value_unit[0] if value_unit else None,
                    unit=value_unit[1] if value_unit else None,
                    time=time,
                    components=tuple(components),
                ),
            )
        ]

    def _time(self, key: str, model: FhirObservation) -> dt.datetime | None:
        candidates: list[Any] = [model.effectiveDateTime, model.effectiveInstant]
        if model.effectivePeriod is not None:
            candidates += [model.effectivePeriod.end, model.effectivePeriod.start]
        candidates.append(model.issued)
        for value in candidates:
            if isinstance(value, dt.datetime):
                return value if value.utcoffset() is not None else value.replace(tzinfo=dt.UTC)
            if isinstance(value, dt.date):
                self.issue(
                    "warning",
                    "date-only",
                    "Only the date of the reading is given; read as 00:00 UTC.",
                    key,
                    "effective",
                )
                return dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)
            if isinstance(value, str):
                self.issue(
                    "warning",
                    "partial-date",
                    "The time of the reading is only a year or month; untimed.",
                    key,
                    "effective",
                )
                return None
        return None

    def _quantity(
        self, key: str, quantity: FhirQuantity | None, dimension: str | None, path: str
    ) -> tuple[Decimal, str | None] | None:
        if quantity is None or quantity.value is None:
            self.issue("warning", "no-value", "The reading has no numeric value; left out.", key, path)
            return None
        unit = quantity.code if quantity.system == _UCUM and quantity.code else quantity.unit
        if unit is None:
            if dimension in ("score", "bmi", None):
                return quantity.value, None
            self.issue(
                "error",
                "missing-unit",
                f"The reading has no unit, so it cannot be read as {dimension}.",
                key,
                path,
            )
            return None
        try:
            canonical_unit(unit, dimension)
        except KetacdsError:
            self.issue(
                "error",
                "unknown-unit",
                f"The unit {unit!r} cannot be converted to a {dimension} ketacds reads.",
                key,
                path,
            )
            return None
        return quantity.value, unit

    def _pregnancy_answer(self, key: str, model: FhirObservation) -> str | None:
        concept = model.valueCodeableConcept
        for coding in (concept.coding or []) if concept else []:
            if not coding.system or not coding.code or not _known_system(coding.system):
                continue
            pair = (canonical_system(coding.system), coding.code)
            if pair in self.mapping.pregnant:
                return "pregnant"
            if pair in self.mapping.not_pregnant:
                return "not pregnant"
        self.issue(
            "warning",
            "unknown-code",
            "The pregnancy status answer is not one ketacds knows; left out.",
            key,
            "valueCodeableConcept",
        )
        return None

    def _older_readings(self, items: Sequence[tuple[str, str | None, Resource]]) -> set[str]:
        """Keys of the readings beyond the newest ``keep_latest`` of each code, found before validating.

        Validating a resource is the costly part of reading a record; a long series need
        only have its newest readings validated. Readings whose time cannot be read rank
        last, as they do after validation.
        """
        by_code: dict[str, list[tuple[tuple[int, float], str]]] = {}
        for key, _, raw in items:
            if raw["resourceType"] != "Observation":
                continue
            read = [c for c in _raw_loinc_codes(raw.get("code")) if c in self.mapping.observations]
            if read:
                by_code.setdefault(read[0], []).append((_raw_time_rank(raw), key))
        older: set[str] = set()
        for readings in by_code.values():
            readings.sort()
            older.update(key for _, key in readings[self.mapping.keep_latest :])
        if older:
            self.issue(
                "info",
                "older-readings",
                f"{len(older)} older readings left out "
                f"(the newest {self.mapping.keep_latest} of each kind are read).",
                None,
            )
        return older

    def _keep_latest(self, observations: list[tuple[str, Observation]]) -> list[tuple[str, Observation]]:
        by_code: dict[str, list[tuple[str, Observation]]] = {}
        for item in observations:
            by_code.setdefault(item[1].code.code if item[1].code else "", []).append(item)
        kept: list[tuple[str, Observation]] = []
        dropped = 0
        for code in sorted(by_code):
            ordered = sorted(by_code[code], key=_newest_first)
            kept.extend(ordered[: self.mapping.keep_latest])
            dropped += max(0, len(ordered) - self.mapping.keep_latest)
        if dropped:
            self.issue(
                "info",
                "older-readings",
                f"{dropped} older readings left out "
                f"(the newest {self.mapping.keep_latest} of each kind are read).",
                None,
            )
        return kept

    # -- MedicationRequest and MedicationStatement ---------------------------------

    def _medication(self, key: str, raw: Resource) -> list[Medication]:
        kind = raw["resourceType"]
        model: MedicationRequest | MedicationStatement | None
        if kind == "MedicationRequest":
            model = self._validate(MedicationRequest, raw, key)
            statuses, dosages = _REQUEST_STATUS, (model.dosageInstruction if model else None)
        else:
            model = self._validate(MedicationStatement, raw, key)
            statuses, dosages = _STATEMENT_STATUS, (model.dosage if model else None)
        if model is None:
            return []
        if model.status in _EXCLUDED_STATUS:
            self.issue(
                "info", "excluded", f"Left out: the medication is marked {model.status}.", key, "status"
            )
            return []
        status = statuses.get(model.status or "")
        if status is None:
            self.issue(
                "warning",
                "assumed-active",
                f"Medication status {model.status!r}; read as active.",
                key,
                "status",
            )
            status = "active"
        concept = self._medication_concept(key, model)
        if concept is None:
            return []
        dosage = _first_dosage(dosages)
        return self._ingredients(key, concept, dosage, status)

    def _medication_concept(
        self, key: str, model: MedicationRequest | MedicationStatement
    ) -> CodeableConcept | None:
        if model.medicationCodeableConcept is not None:
            return model.medicationCodeableConcept
        reference = model.medicationReference
        ref = reference.reference if reference else None
        found = None
        if ref and ref.startswith("#"):
            for contained in model.contained or []:
                if contained.get_resource_type() == "Medication" and contained.id == ref[1:]:
                    found = cast(FhirMedication, contained)
        elif ref:
            found = self.medications_by_ref.get(ref) or next(
                (m for r, m in self.medications_by_ref.items() if ref.endswith(f"/{r}")), None
            )
        if found is not None and found.code is not None:
            return found.code
        display = _text(reference.display) if reference else None
        if display:
            return CodeableConcept(text=display)
        self.issue(
            "error",
            "unresolved-reference",
            "The medication it refers to was not given.",
            key,
            "medicationReference",
        )
        return None

    def _ingredients(
        self, key: str, concept: CodeableConcept, dosage: Dosage | None, status: str
    ) -> list[Medication]:
        current = status in _CURRENT
        dose, per_day, as_needed = self._dose_and_timing(key, dosage, current)
        frequency = _decimal(per_day) if per_day is not None else None
        text = _text(concept.text)
        codings = [c for c in concept.coding or [] if c.system and c.code]
        for coding in codings:
            product = self.mapping.products.get(coding.code or "") if coding.system == _RXNORM else None
            if product is not None:
                product_code = Coding(system=_RXNORM, code=product.code, display=product.display)
                many = len(product.ingredients) > 1
                medications = []
                for ingredient in product.ingredients:
                    part = self._ingredient_dose(key, ingredient, dose, many, current)
                    medications.append(
                        Medication(
                            id=f"{key}#{ingredient.name}" if many else key,
                            code=Coding(system=_RXNORM, code=ingredient.code)
                            if ingredient.code
                            else product_code,
                            name=ingredient.name,
                            dose=part[0] if part else None,
                            unit=part[1] if part else None,
                            frequency_per_day=frequency,
                            as_needed=as_needed,
                            status=status,  # type: ignore[arg-type]
                        )
                    )
                return medications
        known = [
            Coding(system=cast(str, c.system), code=cast(str, c.code), display=c.display)
            for c in codings
            if _known_system(cast(str, c.system))
        ]
        names = [n for n in [text, *(c.display for c in codings)] if n]
        terminology = self.terminology
        tagged = [c for c in known if terminology.is_read(terminology.tag(c, None), "medication")]
        code = tagged[0] if tagged else (known[0] if known else None)
        # A name is read as its words: "Diazepam 5 MG Oral Tablet [Valium]" names diazepam.
        name = next(
            (n for n in names if terminology.is_read(terminology.tag_text(None, n), "medication")),
            names[0] if names else None,
        )
        if code is None and name is None:
            self.issue("error", "no-code", "The medication has neither a code nor a name.", key, "medication")
            return []
        if not terminology.is_read(terminology.tag_text(code, name), "medication"):
            shown = " / ".join(
                [
                    *(f"{name!r}" for _ in [0] if name),
                    *(f"RxNorm {c.code}" for c in known if c.system == _RXNORM),
                ]
            )
            self.issue(
                "error" if current else "warning",
                "unmapped-medication",
                f"The medication {shown or '(unnamed)'} is not in the product table and no value set the "
                "rules read knows it, so its ingredients (and any interaction) are unknown.",
                key,
                "medication",
            )
        amount: tuple[Decimal, str | None] | None = None
        if dose is not None and dose[1] is not None and _is_mass(dose[1]):
            amount = dose
        elif dose is not None and current:
            self.issue(
                "warning",
                "dose-not-read",
                "The dose is not in mg and the product's strength is unknown.",
                key,
                "dosage.dose",
            )
        return [
            Medication(
                id=key,
                code=code,
                name=name,
                dose=amount[0] if amount else None,
                unit=amount[1] if amount else None,
                frequency_per_day=frequency,
                as_needed=as_needed,
                status=status,  # type: ignore[arg-type]
            )
        ]

    def _ingredient_dose(
        self,
        key: str,
        ingredient: Ingredient,
        dose: tuple[Decimal, str | None] | None,
        many: bool,
        current: bool,
    ) -> tuple[Decimal, str] | None:
        if dose is None:
            return None
        value, unit = dose
        if unit is not None and _is_mass(unit) and not many:
            return value, unit
        counted = unit is None or unit.lower() in self.mapping.count_units
        if ingredient.strength is not None and ingredient.strength_unit is not None:
            if counted and not ingredient.per_ml:
                return value * ingredient.strength, ingredient.strength_unit
            if unit is not None and unit.lower() == "ml" and ingredient.per_ml:
                return value * ingredient.strength, ingredient.strength_unit
        if current:
            self.issue(
                "warning",
                "dose-not-read",
                f"The dose ({value} {unit or 'units'}) cannot be turned into mg of {ingredient.name}.",
                key,
                "dosage.dose",
            )
        return None

    def _dose_and_timing(
        self, key: str, dosage: Dosage | None, current: bool
    ) -> tuple[tuple[Decimal, str | None] | None, Fraction | None, bool]:
        if dosage is None:
            return None, None, False
        as_needed = bool(dosage.asNeededBoolean) or dosage.asNeededCodeableConcept is not None
        dose: tuple[Decimal, str | None] | None = None
        for rate in dosage.doseAndRate or []:
            quantity = rate.doseQuantity
            if quantity is None and rate.doseRange is not None and rate.doseRange.high is not None:
                quantity = rate.doseRange.high
                if current:
                    self.issue(
                        "warning",
                        "dose-range",
                        "A dose range is ordered; its upper end is read.",
                        key,
                        "doseRange",
                    )
            if quantity is not None and quantity.value is not None:
                unit = quantity.code if quantity.system == _UCUM and quantity.code else quantity.unit
                dose = (quantity.value, unit)
                break
        return dose, self._frequency(key, dosage, current), as_needed

    def _frequency(self, key: str, dosage: Dosage, current: bool) -> Fraction | None:
        """Administrations per day, exactly (twice weekly is 2/7)."""
        timing = dosage.timing
        if timing is None:
            return None
        repeat = timing.repeat
        if repeat is not None and repeat.period is not None and repeat.periodUnit in _PERIOD_DAYS:
            given = [Decimal(str(repeat.period)), Decimal(str(repeat.frequency or 1))]
            problem = next(filter(None, map(limits.number_problem, given)), None)
            days = Fraction(given[0]) * _PERIOD_DAYS[repeat.periodUnit] if problem is None else Fraction(0)
            if days > 0:
                rate = Fraction(given[1]) / days
                # a period of 1e-27 days is 10^27 a day: past the number limits, never a dose rate
                problem = limits.number_problem(Decimal(rate.numerator) / Decimal(rate.denominator))
                if problem is None:
                    return rate
            if problem is not None:
                self.issue(
                    "warning",
                    "frequency-not-read",
                    f"The timing cannot be read as a number per day: {problem}.",
                    key,
                    "dosage.timing",
                )
                return None
        codes = [c.code for c in (timing.code.coding or [] if timing.code else []) if c.code]
        code = codes[0] if codes else None
        if code is not None and code.upper() in self.mapping.timing:
            count, per_days = self.mapping.timing[code.upper()]
            return Fraction(count, per_days)
        if current and (repeat is not None or timing.code is not None):
            self.issue(
                "warning",
                "frequency-not-read",
                "The timing cannot be read as a number per day.",
                key,
                "dosage.timing",
            )
        return None

    # -- draft orders ----------------------------------------------------------------

    def draft_orders(self, pairs: Sequence[tuple[str | None, Any]]) -> DraftOrders:
        items = self._index(pairs)
        orders: list[DraftOrder] = []
        medications: list[Medication] = []
        for key, _, raw in items:
            if raw["resourceType"] != "MedicationRequest":
                self.not_read[raw["resourceType"]] += 1
                continue
            planned = self._planned_drug(raw)
            if planned is None:
                medications.extend(self._medication(key, {**raw, "status": "draft"}))
                continue
            orders.append(self._draft_order(key, raw, planned))
        self._summaries()
        return DraftOrders(orders=tuple(orders), medications=tuple(medications), issues=tuple(self.issues))

    def _planned_drug(self, raw: Resource) -> str | None:
        """The value set of the planned treatment this order is for (by code, name, or words)."""
        valuesets = {p.valueset for p in self.mapping.planned}
        concept = raw.get("medicationCodeableConcept")
        texts = _order_texts(raw)
        tags: set[str] = set()
        if isinstance(concept, Mapping):
            codings = concept.get("coding")
            # a client may send anything: a coding that is not a list reads as no codes here
            # (validating the order then reports it)
            for coding in codings if isinstance(codings, list) else []:
                if not isinstance(coding, Mapping):
                    continue
                system, code = coding.get("system"), coding.get("code")
                if isinstance(system, str) and isinstance(code, str) and _known_system(system):
                    tags |= set(self.terminology.tag(Coding(system=system, code=code), None))
                    product = self.mapping.products.get(code) if canonical_system(system) == _RXNORM else None
                    for ingredient in product.ingredients if product else ():
                        tags |= set(self.terminology.tag(None, ingredient.name))
        for text in texts:
            tags |= set(self.terminology.tag(None, text)) | set(self.terminology.tag_words(text))
        found = sorted(tags & valuesets)
        return found[0] if found else None

    def _draft_order(self, key: str, raw: Resource, valueset: str) -> DraftOrder:
        before = len(self.issues)
        model = self._validate(MedicationRequest, raw, key)
        dosage = _first_dosage(model.dosageInstruction) if model else None
        dose, per_day, _ = self._dose_and_timing(key, dosage, True) if model else (None, None, False)
        route = self._order_route(key, dosage, valueset, _order_texts(raw))
        amount = None
        if dose is not None and dose[1] is not None and _is_mass(dose[1]):
            amount = dose
        elif dose is not None:
            self.issue(
                "warning",
                "dose-not-read",
                f"The ordered dose is in {dose[1] or 'units'}, not mg.",
                key,
                "dosage.dose",
            )
        order = Order(
            id=key,
            name=valueset,
            dose=amount[0] if amount else None,
            unit=amount[1] if amount else None,
            per_week=_decimal(per_day * 7) if per_day is not None else None,
        )
        return DraftOrder(key=key, resource=raw, route=route, order=order, issues=tuple(self.issues[before:]))

    def _order_route(
        self, key: str, dosage: Dosage | None, valueset: str, texts: Sequence[str]
    ) -> str | None:
        options = [p for p in self.mapping.planned if p.valueset == valueset]
        kinds = {
            self.mapping.routes[c.code]
            for c in (dosage.route.coding or [] if dosage and dosage.route else [])
            if c.system == _SNOMED and c.code is not None and c.code in self.mapping.routes
        }
        if not kinds:
            # no route code: a route the drug's name states ("nasal spray") is read, and said so
            named = {
                kind
                for kind, words in self.mapping.route_words.items()
                for text in texts
                if any(f" {w} " in f" {_plain_words(text)} " for w in words)
            }
            match = next((p for p in options if named & set(p.kinds)), None)
            if match is not None:
                self.issue(
                    "warning",
                    "route-from-name",
                    f"The order states no route code; its name says {', '.join(sorted(named))}, "
                    f"so it is read as {match.route}.",
                    key,
                    "dosage.route",
                )
                return match.route
            kinds = named
        if not kinds:
            assumed = next((p for p in options if p.assumed), None)
            if assumed is not None:
                self.issue(
                    "warning",
                    "assumed-route",
                    f"The order states no route; {assumed.route} is assumed.",
                    key,
                    "dosage.route",
                )
                return assumed.route
            self.issue(
                "error",
                "no-route",
                f"The {valueset} order states no route ketacds reads, so it cannot be checked.",
                key,
                "dosage.route",
            )
            return None
        match = next((p for p in options if kinds & set(p.kinds)), None)
        if match is None:
            self.issue(
                "error",
                "unsupported-route",
                f"{valueset} by the {', '.join(sorted(kinds))} route is not a treatment ketacds assesses.",
                key,
                "dosage.route",
            )
            return None
        return match.route


# -- helpers ---------------------------------------------------------------------------


def _order_texts(raw: Resource) -> list[str]:
    """The drug names an order gives: its codings' displays, its text, its reference's display."""
    texts: list[str] = []
    concept = raw.get("medicationCodeableConcept")
    reference = raw.get("medicationReference")
    if isinstance(concept, Mapping):
        codings = concept.get("coding")
        for coding in codings if isinstance(codings, list) else []:
            if isinstance(coding, Mapping) and isinstance(coding.get("display"), str):
                texts.append(coding["display"])
        if isinstance(concept.get("text"), str):
            texts.append(concept["text"])
    if isinstance(reference, Mapping) and isinstance(reference.get("display"), str):
        texts.append(reference["display"])
    return texts


def _plain_words(text: str) -> str:
    """Lower-case words of letters and digits, one space apart (how route words are matched)."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _known_system(system: str) -> bool:
    try:
        canonical_system(system)
    except ValueError:
        return False
    return True


def _item_id(key: str, items: Sequence[object], index: int) -> str:
    """The id of one item read from a resource: the resource's own, or numbered when it gives several."""
    return key if len(items) == 1 else f"{key}#{index}"


def _code_of(concept: CodeableConcept | None) -> str | None:
    for coding in (concept.coding or []) if concept else []:
        if coding.code:
            return coding.code
    return None


def _date_of(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return None


def _raw_loinc_codes(concept: Any) -> list[str]:
    if not isinstance(concept, Mapping):
        return []
    codings = concept.get("coding")
    if not isinstance(codings, list):  # a client may send anything; not a list reads as no codes
        return []
    codes = []
    for coding in codings:
        if (
            isinstance(coding, Mapping)
            and coding.get("system") == _LOINC
            and isinstance(coding.get("code"), str)
        ):
            codes.append(coding["code"])
    return codes


def _raw_time_rank(raw: Resource) -> tuple[int, float]:
    """Newest first, untimed last, from the unvalidated resource (for choosing what to validate)."""
    period = raw.get("effectivePeriod")
    candidates = [raw.get("effectiveDateTime"), raw.get("effectiveInstant")]
    if isinstance(period, Mapping):
        candidates += [period.get("end"), period.get("start")]
    candidates.append(raw.get("issued"))
    for value in candidates:
        if isinstance(value, str):
            try:
                moment = dt.datetime.fromisoformat(value)
            except ValueError:
                continue
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            return (0, -moment.timestamp())
    return (1, 0.0)


def _newest_first(item: tuple[str, Observation]) -> tuple[int, float, str]:
    time = item[1].time
    return (0, -time.timestamp(), item[0]) if time is not None else (1, 0.0, item[0])


def _first_dosage(dosages: Sequence[Dosage] | None) -> Dosage | None:
    if not dosages:
        return None
    return sorted(dosages, key=lambda d: d.sequence if d.sequence is not None else 0)[0]


def _decimal(value: Fraction) -> Decimal:
    """A rate as a Decimal: exact when it has a finite decimal form, else to 4 places."""
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    if exact * value.denominator == value.numerator:
        return exact.normalize() if exact != exact.to_integral_value() else exact.quantize(Decimal(1))
    return exact.quantize(_RATE_PLACES, ROUND_HALF_EVEN)


def _is_mass(unit: str) -> bool:
    try:
        canonical_unit(unit, "mass")
    except KetacdsError:
        return False
    return True


def _summarise(error: ValidationError) -> str:
    """Where the resource is invalid, without echoing any of its values."""
    problems = []
    for item in error.errors(include_input=False, include_url=False)[:3]:
        where = ".".join(str(part) for part in item["loc"]) or "(resource)"
        problems.append(f"{where}: {item['msg']}")
    more = len(error.errors()) - len(problems)
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


def _stu3_dosage(raw: Resource) -> dict[str, Any] | None:
    """The resource with STU3 ``dosage[].doseQuantity`` moved into R4 ``doseAndRate``, if it has any."""
    field = "dosageInstruction" if raw.get("resourceType") == "MedicationRequest" else "dosage"
    dosages = raw.get(field)
    if not isinstance(dosages, list) or not any(
        isinstance(d, Mapping) and "doseQuantity" in d for d in dosages
    ):
        return None
    fixed = []
    for dosage in dosages:
        if isinstance(dosage, Mapping) and "doseQuantity" in dosage:
            rest = {k: v for k, v in dosage.items() if k not in ("doseQuantity", "rateQuantity")}
            rate: dict[str, Any] = {"doseQuantity": dosage["doseQuantity"]}
            if "rateQuantity" in dosage:
                rate["rateQuantity"] = dosage["rateQuantity"]
            fixed.append({**rest, "doseAndRate": [rate]})
        else:
            fixed.append(dosage)
    return {**raw, field: fixed}
