"""Draft orders: the ketamine or esketamine orders of a CDS Hooks ``draftOrders`` bundle.

Each is read as the planned treatment it orders (its route, from a SNOMED CT route
code, the drug's name, or an assumed route the tables allow) and its dose and
frequency; every other drafted medication is read as ``intended``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.dosage import Dosage
from fhir.resources.R4B.medication import Medication as FhirMedication
from fhir.resources.R4B.medicationrequest import MedicationRequest

from ketacds.adapters.fhir.dosage import is_mass, rate_decimal
from ketacds.adapters.fhir.medications import MedicationReading
from ketacds.adapters.fhir.reading import known_system
from ketacds.adapters.fhir.tables import RXNORM, SNOMED, Resource
from ketacds.models.inputs import Coding, Medication, Order, canonical_system
from ketacds.models.quality import DataQualityIssue
from ketacds.terminology.mapping import PlannedRoute


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
        unrecognised: the drafted medication requests whose drug has no name and no code
            ketacds knows (by key): each could be a ketamine or esketamine order.
        unreadable: why entries of the bundle could not be read at all (an entry that is
            not a resource, an ``entry`` that is not a list): each could be one too.
    """

    orders: tuple[DraftOrder, ...]
    medications: tuple[Medication, ...]
    issues: tuple[DataQualityIssue, ...]
    unrecognised: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()


class OrderReading(MedicationReading):
    """Reads a ``draftOrders`` bundle."""

    def draft_orders(self, pairs: Sequence[tuple[str | None, Any]]) -> DraftOrders:
        """The planned-treatment orders and the other drafted medications of ``pairs``."""
        before = len(self.issues)
        items = self.index(pairs)
        unreadable = tuple(
            i.message
            for i in self.issues[before:]
            if i.code == "invalid-resource" and i.resource is None and i.severity == "error"
        )
        orders: list[DraftOrder] = []
        medications: list[Medication] = []
        unrecognised: list[str] = []
        for key, _, raw in items:
            if raw["resourceType"] != "MedicationRequest":
                self.not_read[raw["resourceType"]] += 1
                continue
            drug = _DrugNames.of(raw, self.medications_by_ref)
            planned = self._planned_drug(drug)
            if planned is None:
                medication, unknown = self._drafted_medication(key, raw, drug)
                medications.extend(medication)
                unrecognised += [key] if unknown else []
                continue
            orders.append(self._draft_order(key, raw, planned, drug))
        if len(orders) > 1:
            self._signed_together(orders)
        self.summaries()
        return DraftOrders(
            orders=tuple(orders),
            medications=tuple(medications),
            issues=tuple(self.issues),
            unrecognised=tuple(unrecognised),
            unreadable=unreadable,
        )

    def _signed_together(self, orders: list[DraftOrder]) -> None:
        """Say, on each, that several planned-treatment orders are drafted together."""
        keys = ", ".join(o.key for o in orders)
        for i, order in enumerate(orders):
            self.issue(
                "error",
                "several-orders",
                f"{len(orders)} ketamine or esketamine orders are drafted together ({keys}): each is "
                "checked alone, and their combined dose is not.",
                order.key,
                "medication",
            )
            orders[i] = attrs.evolve(order, issues=(*order.issues, self.issues[-1]))

    def _drafted_medication(self, key: str, raw: Resource, drug: _DrugNames) -> tuple[list[Medication], bool]:
        """Another drafted medication, read as ``intended``, and whether it could be the planned treatment.

        At order-sign a drafted order is the thing being signed: one whose drug is not
        recognised and has no name to tell what it is (a code ketacds does not know, a
        Medication that cannot be found) could be a ketamine or esketamine order, so it
        is an error; one with a name no value set knows is a warning (an error when
        reading it already said so).
        """
        before = len(self.issues)
        medications = self._medication(key, {**raw, "status": "draft"})
        read = any(
            self.terminology.is_read(self.terminology.tag_text(m.code, m.name), "medication")
            for m in medications
        )
        if read:
            return medications, False
        told = any(i.severity == "error" for i in self.issues[before:])
        named = bool(drug.texts)
        if not told:
            self.issue(
                "warning" if named else "error",
                "unrecognised-order",
                f"A drafted order's drug ({drug.shown()}) is not recognised: if it is ketamine or "
                "esketamine, it is not checked.",
                key,
                "medication",
            )
        return medications, not named

    def _planned_drug(self, drug: _DrugNames) -> str | None:
        """The value set of the planned treatment this order is for (by code, name, or words).

        An order known only as "ketamine or esketamine" (a code listed for both, such as
        an RxNorm code of a value set that covers both) is read as ``AMBIGUOUS``.
        """
        valuesets = {p.valueset for p in self.mapping.planned}
        tags: set[str] = set()
        for system, code in drug.codings:
            if known_system(system):
                tags |= set(self.terminology.tag(Coding(system=system, code=code), None))
                product = self.mapping.products.get(code) if canonical_system(system) == RXNORM else None
                for ingredient in product.ingredients if product else ():
                    tags |= set(self.terminology.tag(None, ingredient.name))
        for text in drug.texts:
            tags |= set(self.terminology.tag(None, text)) | set(self.terminology.tag_words(text))
        found = sorted(tags & valuesets)
        if found:
            return found[0]
        # a value set that lists the planned drugs' own names (ketamine and esketamine both)
        covering = set().union(*(self.terminology.tag(None, v) for v in valuesets)) - valuesets
        return AMBIGUOUS if tags & covering else None

    def _draft_order(self, key: str, raw: Resource, valueset: str, drug: _DrugNames) -> DraftOrder:
        before = len(self.issues)
        model = self.validate(MedicationRequest, raw, key)
        dosages = model.dosageInstruction if model else None
        dose, per_day, _ = (
            self._dose_and_timing(key, dosages, True, order=True) if model else (None, None, False)
        )
        if valueset == AMBIGUOUS:
            self.issue(
                "error",
                "ambiguous-order",
                f"The order's drug ({drug.shown()}) is known only as ketamine or esketamine, not which, "
                "so it cannot be checked.",
                key,
                "medication",
            )
            route = None
        else:
            route = self._order_route(key, dosages or [], valueset, drug.texts)
        amount = None
        if dose is not None and dose[1] is not None and is_mass(dose[1]):
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
            per_week=rate_decimal(per_day * 7) if per_day is not None else None,
        )
        return DraftOrder(key=key, resource=raw, route=route, order=order, issues=tuple(self.issues[before:]))

    def _order_route(
        self, key: str, dosages: Sequence[Dosage], valueset: str, texts: Sequence[str]
    ) -> str | None:
        """The planned route of an order, or ``None`` (and an error) when none can be told.

        Read from its route codes (SNOMED CT), else from the route its name states, else
        the route assumed for its drug. A route stated in a way ketacds cannot read (a
        text, a local code, a SNOMED CT code it does not know) and route codes that
        disagree (oral and nasal) are errors: never read as another route.
        """
        options = [p for p in self.mapping.planned if p.valueset == valueset]
        routes = [d.route for d in dosages if d.route is not None]
        kinds, unread = self._coded_route_kinds(routes)
        named = self._named_route_kinds(texts)
        if unread:
            self.issue(
                "error",
                "route-not-read",
                f"The order states a route ketacds cannot read ({', '.join(unread)}): only SNOMED CT "
                "route codes are read, so it cannot be checked.",
                key,
                "dosage.route",
            )
            return None
        if len(kinds) > 1:
            self.issue(
                "error",
                "route-conflict",
                f"The order's route codes disagree ({', '.join(sorted(kinds))}), so it cannot be checked.",
                key,
                "dosage.route",
            )
            return None
        if kinds and named and not kinds & named:
            self.issue(
                "warning",
                "route-name-conflict",
                f"The order's route code says {', '.join(sorted(kinds))}, but its drug's name says "
                f"{', '.join(sorted(named))}; the route code is read.",
                key,
                "dosage.route",
            )
        if not kinds:
            # no route code: a route the drug's name states ("nasal spray") is read, and said so
            kinds = named
            match = next((p for p in options if kinds & set(p.kinds)), None)
            if match is not None:
                self.issue(
                    "warning",
                    "route-from-name",
                    f"The order states no route code; its name says {', '.join(sorted(kinds))}, "
                    f"so it is read as {match.route}.",
                    key,
                    "dosage.route",
                )
                return match.route
        if not kinds:
            return self._assumed_route(key, valueset, options)
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

    def _coded_route_kinds(self, routes: Sequence[CodeableConcept]) -> tuple[set[str], list[str]]:
        """The route kinds (intravenous, nasal, ...) of the routes' SNOMED CT codes, and the routes not read.

        A route is not read when it has no SNOMED CT code the tables know (a text, a
        local code, another SNOMED CT code): it is shown by its text or codes.
        """
        kinds: set[str] = set()
        unread: list[str] = []
        for route in routes:
            found = {
                self.mapping.routes[c.code]
                for c in route.coding or []
                if c.system == SNOMED and c.code is not None and c.code in self.mapping.routes
            }
            if found:
                kinds |= found
            elif route.text or route.coding:
                shown = [route.text] if route.text else []
                shown += [c.display or c.code or "?" for c in route.coding or []]
                unread.append(" / ".join(repr(s) for s in shown))
        return kinds, unread

    def _named_route_kinds(self, texts: Sequence[str]) -> set[str]:
        """The route kinds the drug's names state in whole words ("nasal spray": nasal)."""
        return {
            kind
            for kind, words in self.mapping.route_words.items()
            for text in texts
            if any(f" {w} " in f" {_plain_words(text)} " for w in words)
        }

    def _assumed_route(self, key: str, valueset: str, options: Sequence[PlannedRoute]) -> str | None:
        """The route assumed for an order that states none, if its drug has one (said so)."""
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


#: The planned drug of an order known only as "ketamine or esketamine" (not which).
AMBIGUOUS = "ketamine or esketamine"


@attrs.frozen
class _DrugNames:
    """The codes and names an order gives its drug: its own, or the Medication it refers to."""

    codings: tuple[tuple[str, str], ...]
    texts: list[str]

    @classmethod
    def of(cls, raw: Resource, bundled: Mapping[str, FhirMedication]) -> _DrugNames:
        """The drug's codes and names: its concept, or the Medication referred to (contained or bundled)."""
        codings: list[tuple[str, str]] = []
        texts: list[str] = []
        concept = raw.get("medicationCodeableConcept")
        reference = raw.get("medicationReference")
        if not isinstance(concept, Mapping) and isinstance(reference, Mapping):
            concept = _referred_code(raw, reference.get("reference"), bundled)
            if isinstance(reference.get("display"), str):
                texts.append(reference["display"])
        if isinstance(concept, Mapping):
            found = concept.get("coding")
            # a client may send anything: a coding that is not a list reads as no codes here
            # (validating the order then reports it)
            for coding in found if isinstance(found, list) else []:
                if not isinstance(coding, Mapping):
                    continue
                system, code = coding.get("system"), coding.get("code")
                if isinstance(system, str) and isinstance(code, str):
                    codings.append((system, code))
                if isinstance(coding.get("display"), str):
                    texts.append(coding["display"])
            if isinstance(concept.get("text"), str):
                texts.append(concept["text"])
        texts = [t for t in texts if t.strip()]
        return cls(codings=tuple(codings), texts=texts)

    def shown(self) -> str:
        """The drug as the order gives it, to name it in a message."""
        return " / ".join([*(repr(t) for t in self.texts), *(f"{s}|{c}" for s, c in self.codings)]) or "?"


def _referred_code(raw: Resource, ref: Any, bundled: Mapping[str, FhirMedication]) -> Any:
    """The ``code`` of the Medication ``ref`` names: contained (``#id``), or among the bundle's."""
    if not isinstance(ref, str) or not ref:
        return None
    if ref.startswith("#"):
        contained = raw.get("contained")
        for item in contained if isinstance(contained, list) else []:
            if (
                isinstance(item, Mapping)
                and item.get("resourceType") == "Medication"
                and item.get("id") == ref[1:]
            ):
                return item.get("code")
        return None
    found = bundled.get(ref) or next((m for r, m in bundled.items() if ref.endswith(f"/{r}")), None)
    if found is None or found.code is None:
        return None
    return found.code.model_dump(mode="json", exclude_none=True)


def _plain_words(text: str) -> str:
    """Lower-case words of letters and digits, one space apart (how route words are matched)."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))
