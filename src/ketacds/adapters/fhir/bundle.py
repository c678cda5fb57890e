"""Reading a Bundle or a list of resources: the entry points, and one patient's record.

:func:`read_bundle` and :func:`read_resources` read a record, :func:`read_draft_orders`
a CDS Hooks ``draftOrders`` bundle, :func:`read_bundle_case` a bundle given on the
command line. ``_Reader`` walks the entries: it keeps each resource once, chooses the
patient, leaves out other patients' data, and hands each resource to its reader
(``patient.py``, ``conditions.py``, ``observations.py``, ``medications.py``,
``orders.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cache
from typing import Any

import attrs

from ketacds.adapters.fhir.conditions import ClinicalReading
from ketacds.adapters.fhir.observations import ObservationReading
from ketacds.adapters.fhir.orders import DraftOrders, OrderReading
from ketacds.adapters.fhir.patient import PatientReading
from ketacds.adapters.fhir.reading import EntriesNotAList, PartialBundle, RequestEntry
from ketacds.adapters.fhir.tables import Resource
from ketacds.errors import InputError
from ketacds.models.inputs import (
    Allergy,
    Condition,
    Context,
    Medication,
    Observation,
    Patient,
    PatientRecord,
)
from ketacds.models.load import decode_text, load_context, parse_document
from ketacds.ruleset.load import load_ruleset
from ketacds.terminology.mapping import FhirMapping
from ketacds.terminology.valuesets import Terminology, terminology_for

__all__ = [
    "bundle_resources",
    "is_bundle",
    "read_bundle",
    "read_bundle_case",
    "read_draft_orders",
    "read_resources",
]


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
        matches = 0
        if entries is not None and not isinstance(entries, list):
            # (an object holding one resource, ...): never read as an empty Bundle
            rid = item.get("id")
            yield full_url, EntriesNotAList(f"Bundle/{rid}" if isinstance(rid, str) and rid else None)
            entries = ()
        for entry in entries or ():
            if isinstance(entry, Mapping):
                url = entry.get("fullUrl")
                url = url if isinstance(url, str) else None
                request = entry.get("request")
                search = entry.get("search")
                if not (isinstance(search, Mapping) and search.get("mode") in ("include", "outcome")):
                    matches += 1
                if entry.get("resource") is None and isinstance(request, Mapping):
                    method, target = request.get("method"), request.get("url")
                    if isinstance(method, str) and method:
                        yield url, RequestEntry(method, target if isinstance(target, str) else None)
                        continue
                yield from _flatten(entry.get("resource"), url)
            else:
                yield None, entry
        partial = _partial(item, matches)
        if partial is not None:
            yield full_url, partial
    else:
        yield full_url, item


def _partial(bundle: Resource, matches: int) -> PartialBundle | None:
    """What a Bundle says is missing from it: a ``next`` page, or more matches (``total``) than it gives."""
    links = bundle.get("link")
    next_page = any(
        isinstance(link, Mapping) and link.get("relation") == "next"
        for link in (links if isinstance(links, list) else ())
    )
    total = bundle.get("total")
    total = total if isinstance(total, int) and not isinstance(total, bool) else None
    if not next_page and (total is None or total <= matches):
        return None
    rid = bundle.get("id")
    return PartialBundle(f"Bundle/{rid}" if isinstance(rid, str) and rid else None, next_page, total, matches)


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
        mapping: the FHIR reading tables (default: those of ``terminology``'s ruleset
            directory, :attr:`~ketacds.terminology.valuesets.Terminology.fhir_mapping`).
        terminology: the value sets (default: the bundled rulesets'); an engine's
            (``engine.terminology``) reads with the tables of the rules it assesses with.

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
    terminology = terminology or _bundled_terminology()
    reader = _Reader(mapping or terminology.fhir_mapping, terminology)
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
    terminology = terminology or _bundled_terminology()
    reader = _Reader(mapping or terminology.fhir_mapping, terminology)
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


#: ``(key, fullUrl, resource)`` of one resource kept by :meth:`ReaderBase.index`.
_Item = tuple[str, str | None, Resource]


@attrs.define
class _Found:
    """What has been read of the patient's resources so far, in the order read."""

    conditions: list[Condition] = attrs.Factory(list)
    medications: list[Medication] = attrs.Factory(list)
    observations: list[tuple[str, Observation]] = attrs.Factory(list)
    allergies: list[Allergy] = attrs.Factory(list)
    #: keys of the active conditions that mean the patient is pregnant
    pregnancy_conditions: list[str] = attrs.Factory(list)


#: A relative reference to a Patient (``Patient/p1``), its version part (``/_history/2``) cut off.
_PATIENT = re.compile(r"Patient/[A-Za-z0-9\-.]{1,64}")
#: A relative reference to any resource (an entry's fullUrl less its server's base).
_RELATIVE = re.compile(r"[A-Za-z]+/[A-Za-z0-9\-.]{1,64}(/_history/[^/]+)?")


@attrs.frozen
class _Identity:
    """What names the patient: the relative reference, full URLs, identifiers."""

    #: ``Patient/<id>``
    relative: str | None
    #: the Patient's entry ``fullUrl`` and ``urn:uuid:<id>`` (a transaction bundle's reference)
    urls: frozenset[str]
    #: the Patient's ``identifier`` (system, value) pairs
    identifiers: frozenset[tuple[str, str]]


def _identity(chosen: _Item | None, patient_id: str | None) -> tuple[_Identity, str | None]:
    """What names the patient (the chosen Patient resource, or the id given), and the patient's id."""
    urls: set[str] = set()
    identifiers: set[tuple[str, str]] = set()
    pid = patient_id
    if chosen:
        _, url, raw = chosen
        pid = raw.get("id") if isinstance(raw.get("id"), str) else pid
        if url:
            urls.add(url.split("/_history/", 1)[0])
        given = raw.get("identifier")
        for identifier in given if isinstance(given, list) else ():
            if isinstance(identifier, Mapping):
                system, value = identifier.get("system"), identifier.get("value")
                if isinstance(system, str) and system and isinstance(value, str) and value:
                    identifiers.add((system, value))
    if pid:
        urls.add(f"urn:uuid:{pid}")
    relative = f"Patient/{pid}" if pid else None
    return _Identity(relative, frozenset(urls), frozenset(identifiers)), pid


def _holder(raw: Resource) -> tuple[Any, str]:
    """The element that names a resource's patient, and its name."""
    if raw["resourceType"] == "AllergyIntolerance":
        return raw.get("patient"), "patient"
    return raw.get("subject"), "subject"


def _patient_named(reference: str, full_url: str | None) -> str:
    """The patient a reference names: ``Patient/<id>`` when it is relative or on the entry's own server.

    A version (``/_history/2``) is cut off. An absolute reference is relative when its
    base is the base of the referring entry's ``fullUrl`` (FHIR's rule for references in
    a Bundle); any other is returned as it is (a full URL names a patient of its server).
    """
    reference = reference.split("/_history/", 1)[0]
    if _PATIENT.fullmatch(reference):
        return reference
    cut = reference.rfind("/Patient/")
    if cut > 0 and "://" in reference and full_url:
        base, tail = reference[: cut + 1], reference[cut + 1 :]
        if (
            full_url.startswith(base)
            and _RELATIVE.fullmatch(full_url[len(base) :])
            and _PATIENT.fullmatch(tail)
        ):
            return tail
    return reference


def _named_patients(items: Sequence[_Item]) -> set[str]:
    """The different patients the resources name (by reference or identifier), with no Patient given."""
    named: set[str] = set()
    for _, url, raw in items:
        holder, _ = _holder(raw)
        if not isinstance(holder, Mapping):
            continue
        reference = holder.get("reference")
        identifier = holder.get("identifier")
        if isinstance(reference, str) and reference:
            named.add(_patient_named(reference, url))
        elif isinstance(identifier, Mapping):
            named.add(f"identifier {identifier.get('system')}|{identifier.get('value')}")
    return named


class _Reader(PatientReading, ClinicalReading, ObservationReading, OrderReading):
    """Reads one patient's record (or a draftOrders bundle) from resources."""

    def record(self, pairs: Sequence[tuple[str | None, Any]], patient_id: str | None) -> PatientRecord:
        """Read one patient's record: choose the patient, read what is theirs, fill the patient in."""
        items = self.index(pairs)
        chosen = self._choose_patient(items, patient_id)
        identity, pid = _identity(chosen, patient_id)
        if chosen:
            patient = self._patient(chosen[0], chosen[2])
        else:
            patient = Patient(id=pid)
            self.issue(
                "warning",
                "no-patient",
                "No Patient resource was given: birth date, sex and whether the patient is alive "
                "are unknown.",
                None,
            )
        known = chosen is not None or pid is not None
        if not known:
            named = _named_patients(items)
            if len(named) > 1:
                raise InputError(
                    "(top level)",
                    f"the data hold {len(named)} patients (no Patient resource; the resources name "
                    f"{len(named)} different ones); say which one to read",
                )
        urls = {key: url for key, url, _ in items} if known else {}
        series = self._series(items)
        in_series = {key for readings in series.values() for key, _ in readings}
        found = _Found()
        for key, url, raw in items:
            if raw["resourceType"] == "Patient" or key in in_series:
                continue
            if known and not self._belongs(raw, identity, key, url):
                continue
            self._read_into(found, key, raw)

        def belongs(key: str, raw: Resource) -> bool:
            return not known or self._belongs(raw, identity, key, urls.get(key))

        older = 0
        for readings in series.values():
            observations, left_out = self._read_series(readings, belongs)
            found.observations.extend(observations)
            older += left_out
        self._older_readings(older)
        kept = self._keep_latest(found.observations)
        patient = self._fill_patient(patient, kept, found.pregnancy_conditions)
        self.summaries()
        coded = {code for code, concept in self.mapping.observations.items() if concept.coded}
        return PatientRecord(
            patient=patient,
            conditions=tuple(found.conditions),
            medications=tuple(found.medications),
            observations=tuple(o for _, o in kept if not (o.code and o.code.code in coded)),
            allergies=tuple(found.allergies),
            data_quality=tuple(self.issues),
        )

    def _choose_patient(self, items: Sequence[_Item], patient_id: str | None) -> _Item | None:
        """The Patient resource to read: the one ``patient_id`` names, or the only one.

        Raises:
            InputError: several patients and no ``patient_id``.
        """
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
        return chosen[0] if chosen else None

    def _read_into(self, found: _Found, key: str, raw: Resource) -> None:
        """Read one of the patient's resources (not the Patient) by its type."""
        kind = raw["resourceType"]
        if kind == "Condition":
            conditions, pregnant = self._condition(key, raw)
            found.conditions.extend(conditions)
            found.pregnancy_conditions.extend([key] if pregnant else [])
        elif kind in ("MedicationRequest", "MedicationStatement"):
            found.medications.extend(self._medication(key, raw))
        elif kind == "Observation":
            found.observations.extend(self._observation(key, raw))
        else:
            found.allergies.extend(self._allergy(key, raw))

    def _belongs(self, raw: Resource, identity: _Identity, key: str, full_url: str | None) -> bool:
        """Whether a resource is certainly this patient's; if not, it is left out with an error.

        No subject at all: it came in this patient's data. A reference names the patient
        when it is ``Patient/<id>`` (relative, or on the entry's own server; a version is
        cut off), the Patient's ``fullUrl`` or ``urn:uuid:<id>``; an identifier alone when
        it is one of the Patient's (system and value).
        """
        holder, path = _holder(raw)
        if not isinstance(holder, Mapping):
            return True  # no subject: it came in this patient's data
        reference = holder.get("reference")
        identifier = holder.get("identifier")
        if isinstance(reference, str) and reference:
            named = _patient_named(reference, full_url)
            if named == identity.relative or named in identity.urls:
                return True
            if _PATIENT.fullmatch(named):
                why = "Refers to another patient"
            elif "://" in named:
                why = (
                    "Refers to a patient by a full URL that is not this patient's (another server's "
                    "patient may be another person)"
                )
            else:
                why = "Refers to something that is not certainly this patient"
        elif isinstance(identifier, Mapping):
            system, value = identifier.get("system"), identifier.get("value")
            if isinstance(system, str) and isinstance(value, str) and (system, value) in identity.identifiers:
                return True
            why = "Names its patient only by an identifier that is not one of this patient's"
            path = f"{path}.identifier"
        else:
            why = "Names its patient by no reference or identifier, so it is not certainly this patient's"
        self.issue("error", "other-patient", f"{why}; left out.", key, path)
        return False
