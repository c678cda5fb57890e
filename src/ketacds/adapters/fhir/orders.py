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
from fhir.resources.R4B.dosage import Dosage
from fhir.resources.R4B.medicationrequest import MedicationRequest

from ketacds.adapters.fhir.dosage import first_dosage, is_mass, rate_decimal
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
    """

    orders: tuple[DraftOrder, ...]
    medications: tuple[Medication, ...]
    issues: tuple[DataQualityIssue, ...]


class OrderReading(MedicationReading):
    """Reads a ``draftOrders`` bundle."""

    def draft_orders(self, pairs: Sequence[tuple[str | None, Any]]) -> DraftOrders:
        """The planned-treatment orders and the other drafted medications of ``pairs``."""
        items = self.index(pairs)
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
        self.summaries()
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
                if isinstance(system, str) and isinstance(code, str) and known_system(system):
                    tags |= set(self.terminology.tag(Coding(system=system, code=code), None))
                    product = self.mapping.products.get(code) if canonical_system(system) == RXNORM else None
                    for ingredient in product.ingredients if product else ():
                        tags |= set(self.terminology.tag(None, ingredient.name))
        for text in texts:
            tags |= set(self.terminology.tag(None, text)) | set(self.terminology.tag_words(text))
        found = sorted(tags & valuesets)
        return found[0] if found else None

    def _draft_order(self, key: str, raw: Resource, valueset: str) -> DraftOrder:
        before = len(self.issues)
        model = self.validate(MedicationRequest, raw, key)
        dosage = first_dosage(model.dosageInstruction) if model else None
        dose, per_day, _ = self._dose_and_timing(key, dosage, True) if model else (None, None, False)
        route = self._order_route(key, dosage, valueset, _order_texts(raw))
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
        self, key: str, dosage: Dosage | None, valueset: str, texts: Sequence[str]
    ) -> str | None:
        """The planned route of an order, or ``None`` (and an error) when none can be told.

        Read from its route code, else from the route its name states, else the route
        assumed for its drug.
        """
        options = [p for p in self.mapping.planned if p.valueset == valueset]
        kinds = self._coded_route_kinds(dosage)
        if not kinds:
            # no route code: a route the drug's name states ("nasal spray") is read, and said so
            kinds = self._named_route_kinds(texts)
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

    def _coded_route_kinds(self, dosage: Dosage | None) -> set[str]:
        """The route kinds (intravenous, nasal, ...) of the dosage's SNOMED CT route codes."""
        codings = dosage.route.coding or [] if dosage and dosage.route else []
        return {
            self.mapping.routes[c.code]
            for c in codings
            if c.system == SNOMED and c.code is not None and c.code in self.mapping.routes
        }

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
