"""What every resource reader shares: the tables, the issues found so far, validation.

:class:`ReaderBase` holds one read's state (the FHIR tables, the value sets, the
data-quality issues in the order found, the resource types left out) and the steps
every resource goes through: :meth:`ReaderBase.index` keeps each well-formed resource
once, :meth:`ReaderBase.validate` turns it into an R4B model or an issue. The readers
of each resource type (``patient.py``, ``conditions.py``, ...) build on it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import attrs
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.medication import Medication as FhirMedication
from pydantic import BaseModel

from ketacds.adapters.fhir.tables import READ_ELEMENTS, READ_TYPES, Resource
from ketacds.adapters.fhir.validation import VALIDATION_CACHE_SIZE, M, checked
from ketacds.models.inputs import canonical_system
from ketacds.models.quality import DataQualityIssue, QualitySeverity
from ketacds.terminology.mapping import FhirMapping
from ketacds.terminology.valuesets import Terminology

T = TypeVar("T")


def stripped_text(value: Any) -> str | None:
    """A text with its edges trimmed, or ``None`` for anything else or nothing left."""
    return value.strip() or None if isinstance(value, str) else None


def known_system(system: str) -> bool:
    """Whether ``system`` is a code system ketacds reads (see :func:`canonical_system`)."""
    try:
        canonical_system(system)
    except ValueError:
        return False
    return True


def item_id(key: str, items: Sequence[object], index: int) -> str:
    """The id of one item read from a resource: the resource's own, or numbered when it gives several."""
    return key if len(items) == 1 else f"{key}#{index}"


def code_of(concept: CodeableConcept | None) -> str | None:
    """The first code of a concept (a status), or ``None``."""
    for coding in (concept.coding or []) if concept else []:
        if coding.code:
            return coding.code
    return None


def date_of(value: Any) -> dt.date | None:
    """The date of a date or date-time; ``None`` for a partial date (a year or month) or nothing."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return None


@attrs.frozen
class RequestEntry:
    """A Bundle entry that is only a request (``request.method`` and ``url``), with no resource."""

    method: str
    url: str | None


@attrs.frozen
class EntriesNotAList:
    """A Bundle whose ``entry`` is there but is not a list (an object, a number, ...): none of it is read."""

    bundle: str | None


@attrs.frozen
class PartialBundle:
    """A Bundle that holds only part of a search: a ``next`` page, or a ``total`` above its matches."""

    bundle: str | None
    next_page: bool
    total: int | None
    matches: int


#: Resource types read from a record: one contained in another resource is not read on its own.
CLINICAL_TYPES = frozenset(
    {"Condition", "AllergyIntolerance", "MedicationRequest", "MedicationStatement", "Observation"}
)


class ReaderBase:
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
        """Record a data-quality issue (issues keep the order they are found in)."""
        self.issues.append(
            DataQualityIssue(
                severity=severity,
                code=code,
                message=message,
                resource=resource,
                path=path,
            )
        )

    def summaries(self) -> None:
        """Close the read: one issue counting the resource types no rule reads."""
        if self.not_read:
            counts = ", ".join(f"{kind} ×{n}" for kind, n in sorted(self.not_read.items()))
            self.issue("info", "not-read", f"Left out because no rule reads them: {counts}.", None)

    def validate(self, model: type[M], raw: Resource, key: str) -> M | None:
        """The resource as a validated R4B model, or ``None`` (and an issue) when it cannot be read.

        Only the elements ketacds reads are validated (:data:`READ_ELEMENTS`): one that
        is never read cannot change an answer, and validation is the costly part of
        reading. A modifier (``modifierExtension``, ``implicitRules``) can change the
        meaning of everything else, so a resource that has one is not read at all.
        Outcomes (and the limits check) are cached by content, so a resource sent again
        (the same patient's next hook call) is not checked or validated again.
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
        elements = READ_ELEMENTS[model.__name__]
        projected = {name: value for name, value in raw.items() if name in elements}
        out_of_range, (parsed, problem, lenient) = checked(model, projected)
        if out_of_range is not None:
            where, reason = out_of_range
            self.issue("error", "out-of-range", f"Not read: {where}: {reason}.", key, where)
            return None
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

    def remembered(
        self, reader: str, key: str, model: BaseModel, read: Callable[[], T], also: tuple[object, ...] = ()
    ) -> T:
        """What ``read()`` makes of a validated resource, remembered for the next time it is read.

        ``read`` must depend only on ``key``, the validated ``model``, this reader's
        mapping and the objects in ``also`` (compared by identity: the terminology, a
        referenced Medication's validated model ...), and change nothing but the issues
        it records: the result and those issues are kept (by ``reader``, ``key``, the
        model, the mapping and ``also``), and a later read of the same resource (the
        validation cache gives the same model object for the same content) returns the
        same result and records the same issues again.
        """
        owners = (model, self.mapping, *also)
        return _READS.read(self, (reader, key, *map(id, owners)), owners, read)

    def index(self, pairs: Sequence[tuple[str | None, Any]]) -> list[tuple[str, str | None, Resource]]:
        """Keep well-formed resources once each; report the rest."""
        seen: dict[str, Resource] = {}
        items: list[tuple[str, str | None, Resource]] = []
        for index, (full_url, raw) in enumerate(pairs):
            if isinstance(raw, RequestEntry):
                self._request_entry(index, raw)
                continue
            if isinstance(raw, PartialBundle):
                self._partial_bundle(raw)
                continue
            if isinstance(raw, EntriesNotAList):
                self.issue(
                    "error",
                    "invalid-resource",
                    f"A Bundle{f' ({raw.bundle})' if raw.bundle else ''} gives its entry as something other "
                    "than a list: nothing in it is read, and what it holds could change the answer.",
                    None,
                    "entry",
                )
                continue
            kind = raw.get("resourceType") if isinstance(raw, Mapping) else None
            if not isinstance(kind, str):
                self.issue("error", "invalid-resource", f"Entry {index} is not a FHIR resource.", None)
                continue
            rid = raw.get("id")
            key = f"{kind}/{rid}" if isinstance(rid, str) and rid else f"{kind}[{index}]"
            if key in seen:
                if seen[key] != raw:
                    # either version could be the current one, and either could change the answer
                    self.issue(
                        "error",
                        "duplicate",
                        "Two different versions were given; the first is read, and the other could "
                        "change the answer.",
                        key,
                    )
                continue
            seen[key] = raw
            contained = raw.get("contained")
            if contained:
                self._contained(key, contained)
            if kind == "OperationOutcome":
                self.issue(
                    "error",
                    "source-error",
                    "The source sent an error (OperationOutcome) in place of data.",
                    key,
                )
                continue
            if kind == "Medication":
                medication = self.validate(FhirMedication, raw, key)
                if medication is not None:
                    for ref in (key, full_url):
                        if ref:
                            self.medications_by_ref[ref] = medication
                continue
            if kind not in READ_TYPES:
                self.not_read[kind] += 1
                continue
            items.append((key, full_url, raw))
        return items

    def _contained(self, key: str, contained: Any) -> None:
        """Report the clinical resources contained in a resource: none is read on its own.

        A Condition in a List or an Encounter, an Observation in a DiagnosticReport, ... is
        the patient's data as much as a bundled one, but where it belongs (and whose it
        is) is the container's to say, and ketacds reads no container.
        """
        kinds = Counter(
            item.get("resourceType")
            for item in (contained if isinstance(contained, list) else ())
            if isinstance(item, Mapping) and item.get("resourceType") in CLINICAL_TYPES
        )
        if kinds:
            named = ", ".join(f"{kind} ×{n}" for kind, n in sorted(kinds.items()))
            self.issue(
                "error",
                "contained-not-read",
                f"It contains {named}, which ketacds does not read inside another resource; "
                "what it says could change the answer.",
                key,
                "contained",
            )

    def _partial_bundle(self, partial: PartialBundle) -> None:
        """Report a Bundle that is one part of a search: what the rest holds is not read."""
        if partial.next_page:
            message = (
                "The Bundle is one page of a search (it has a next link); the pages not given "
                "are not read, and what they hold could change the answer."
            )
        else:
            message = (
                f"The Bundle says its search matched {partial.total} resources but gives "
                f"{partial.matches}; the rest are not read, and could change the answer."
            )
        self.issue(
            "error",
            "incomplete-bundle",
            message,
            partial.bundle,
            "link" if partial.next_page else "total",
        )

    def _request_entry(self, index: int, entry: RequestEntry) -> None:
        """Report an entry that is a request, not a resource: what it asks for is not read."""
        target = f" for {entry.url}" if entry.url else ""
        if entry.method.upper() == "DELETE":
            meaning = "ketacds reads resources, not transactions, so what it deletes may still be read"
        else:
            meaning = "it carries no resource, so nothing of it is read"
        self.issue(
            "error",
            "request-entry",
            f"Entry {index} is a {entry.method} request{target}, not a resource: {meaning}.",
            entry.url,
            "request",
        )


class _Reads:
    """What readers made of validated resources (least recently used out first), shared by one process.

    An entry holds the model and the mapping it was read with, so neither can be
    collected and its ``id`` reused by another object while the entry is kept.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[
            tuple[str | int, ...], tuple[tuple[object, ...], Any, tuple[DataQualityIssue, ...]]
        ]
        self.entries = OrderedDict()
        self.lock = threading.Lock()

    def read(
        self,
        reader: ReaderBase,
        key: tuple[str | int, ...],
        owners: tuple[object, ...],
        read: Callable[[], T],
    ) -> T:
        with self.lock:
            found = self.entries.get(key)
            if found is not None and all(a is b for a, b in zip(found[0], owners, strict=True)):
                self.entries.move_to_end(key)
                reader.issues.extend(found[2])
                return cast(T, found[1])
        before = len(reader.issues)
        result = read()
        with self.lock:
            self.entries[key] = (owners, result, tuple(reader.issues[before:]))
            if len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return result


_READS = _Reads(VALIDATION_CACHE_SIZE)
