"""Condition and AllergyIntolerance: codes, clinical and verification status, onset."""

from __future__ import annotations

from typing import Any, cast

from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.condition import Condition as FhirCondition

from ketacds.adapters.fhir.reading import (
    ReaderBase,
    code_of,
    date_of,
    item_id,
    known_system,
    stripped_text,
)
from ketacds.adapters.fhir.tables import ALLERGY_STATUS, CONDITION_STATUS, Resource
from ketacds.models.inputs import Allergy, Coding, Condition


class ClinicalReading(ReaderBase):
    """Reads conditions and allergies (both have a code, a clinical and a verification status)."""

    def _verification(self, key: str, concept: CodeableConcept | None, what: str) -> bool:
        status = code_of(concept)
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
            if coding.system and coding.code and known_system(coding.system):
                item = Coding(system=coding.system, code=coding.code, display=coding.display)
                if item not in codings:
                    codings.append(item)
        name = stripped_text(concept.text) if concept else None
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
        status = code_of(model.clinicalStatus)
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
        model = self.validate(FhirCondition, raw, key)
        if model is None:
            return [], False
        conditions, pregnant = self.remembered(
            "Condition", key, model, lambda: self._read_condition(key, model)
        )
        return list(conditions), pregnant

    def _read_condition(self, key: str, model: FhirCondition) -> tuple[tuple[Condition, ...], bool]:
        """The conditions of a validated Condition, and whether it means the patient is pregnant."""
        read = self._clinical(key, model, CONDITION_STATUS, "condition")
        if read is None:
            return (), False
        status, items, name = read
        onset = date_of(model.onsetDateTime) or date_of(
            model.onsetPeriod.start if model.onsetPeriod else None
        )
        conditions = tuple(
            Condition(
                id=item_id(key, items, index),
                code=code,
                name=name,
                clinical_status=cast(Any, status),
                onset=onset,
            )
            for index, code in enumerate(items)
        )
        pregnant = status in ("active", "recurrence", "relapse") and any(
            (c.system, c.code) in self.mapping.pregnancy_conditions for c in items if c is not None
        )
        return conditions, pregnant

    def _allergy(self, key: str, raw: Resource) -> list[Allergy]:
        model = self.validate(AllergyIntolerance, raw, key)
        read = self._clinical(key, model, ALLERGY_STATUS, "allergy") if model else None
        if read is None:
            return []
        status, items, name = read
        return [
            Allergy(id=item_id(key, items, index), code=code, name=name, status=cast(Any, status))
            for index, code in enumerate(items)
        ]
