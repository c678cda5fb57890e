"""MedicationRequest and MedicationStatement: products → ingredients, status, dose.

An RxNorm product of ``rxnorm-products.yaml`` is read as its ingredients, each with
its dose (from the product's strength); any other medication is read by its codes and
name against the value sets the rules read, and one that none knows is reported.
"""

from __future__ import annotations

from decimal import Decimal
from typing import cast

import attrs
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding as FhirCoding
from fhir.resources.R4B.dosage import Dosage
from fhir.resources.R4B.medication import Medication as FhirMedication
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement

from ketacds.adapters.fhir.dosage import DosageReading, is_mass, rate_decimal
from ketacds.adapters.fhir.reading import known_system, stripped_text
from ketacds.adapters.fhir.tables import (
    CURRENT,
    EXCLUDED_STATUS,
    REQUEST_STATUS,
    RXNORM,
    STATEMENT_STATUS,
    Resource,
)
from ketacds.models.inputs import Coding, Medication
from ketacds.terminology.mapping import Ingredient, Product


@attrs.frozen
class _Dosing:
    """What a medication's dosage lines say, shared by every ingredient read from it."""

    dose: tuple[Decimal, str | None] | None
    frequency: Decimal | None
    as_needed: bool
    status: str
    current: bool  #: active, on hold or intended: what cannot be read about it is a warning


class MedicationReading(DosageReading):
    """Reads medication requests and statements."""

    def _medication(self, key: str, raw: Resource) -> list[Medication]:
        kind = raw["resourceType"]
        model: MedicationRequest | MedicationStatement | None
        if kind == "MedicationRequest":
            model = self.validate(MedicationRequest, raw, key)
        else:
            model = self.validate(MedicationStatement, raw, key)
        if model is None:
            return []
        # What is read depends on the resource, the mapping, the terminology and the
        # Medication it refers to among the bundle's (a contained one is part of the model).
        reference = model.medicationReference if model.medicationCodeableConcept is None else None
        ref = reference.reference if reference is not None else None
        referred = self._referred_medication(model, ref) if ref and not ref.startswith("#") else None
        medications = self.remembered(
            "Medication",
            key,
            model,
            lambda: tuple(self._read_medication(key, model)),
            also=(self.terminology, referred),
        )
        return list(medications)

    def _read_medication(self, key: str, model: MedicationRequest | MedicationStatement) -> list[Medication]:
        """The medications a validated request or statement gives (none when it is left out)."""
        if isinstance(model, MedicationRequest):
            statuses, dosages = REQUEST_STATUS, model.dosageInstruction
        else:
            statuses, dosages = STATEMENT_STATUS, model.dosage
        if model.status in EXCLUDED_STATUS:
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
        concept = self._medication_concept(key, model, status in CURRENT)
        if concept is None:
            return []
        return self._ingredients(key, concept, dosages, status)

    def _medication_concept(
        self, key: str, model: MedicationRequest | MedicationStatement, current: bool
    ) -> CodeableConcept | None:
        """The medication's codes and name: its own, the Medication it refers to, or the reference's text."""
        if model.medicationCodeableConcept is not None:
            return model.medicationCodeableConcept
        reference = model.medicationReference
        found = self._referred_medication(model, reference.reference if reference else None)
        if found is not None and found.code is not None:
            return found.code
        display = stripped_text(reference.display) if reference else None
        if display:
            return CodeableConcept(text=display)
        if found is not None:
            # Given, but without a code: its ingredients (Medication.ingredient) are not read.
            self.issue(
                "error" if current else "warning",
                "no-code",
                "The Medication it refers to has no code, and its ingredients are not read, "
                "so what it is (and any interaction) is unknown.",
                key,
                "medicationReference",
            )
            return None
        self.issue(
            "error",
            "unresolved-reference",
            "The medication it refers to was not given.",
            key,
            "medicationReference",
        )
        return None

    def _referred_medication(
        self, model: MedicationRequest | MedicationStatement, ref: str | None
    ) -> FhirMedication | None:
        """The Medication ``ref`` names: contained (``#id``), or among the bundle's (by key or full URL)."""
        if not ref:
            return None
        if ref.startswith("#"):
            found = None
            for contained in model.contained or []:
                if contained.get_resource_type() == "Medication" and contained.id == ref[1:]:
                    found = cast(FhirMedication, contained)
            return found
        return self.medications_by_ref.get(ref) or next(
            (m for r, m in self.medications_by_ref.items() if ref.endswith(f"/{r}")), None
        )

    def _ingredients(
        self, key: str, concept: CodeableConcept, dosages: list[Dosage] | None, status: str
    ) -> list[Medication]:
        """The medications one resource gives: a known product's ingredients, or the medication by name."""
        current = status in CURRENT
        dose, per_day, as_needed = self._dose_and_timing(key, dosages, current)
        dosing = _Dosing(
            dose=dose,
            frequency=rate_decimal(per_day) if per_day is not None else None,
            as_needed=as_needed,
            status=status,
            current=current,
        )
        codings = [c for c in concept.coding or [] if c.system and c.code]
        product = self._product(codings)
        if product is not None:
            return self._product_ingredients(key, product, dosing)
        return self._named_medication(key, codings, stripped_text(concept.text), dosing)

    def _product(self, codings: list[FhirCoding]) -> Product | None:
        """The first RxNorm product of the product table among ``codings``."""
        for coding in codings:
            product = self.mapping.products.get(coding.code or "") if coding.system == RXNORM else None
            if product is not None:
                return product
        return None

    def _product_ingredients(self, key: str, product: Product, dosing: _Dosing) -> list[Medication]:
        """One medication per ingredient of a product, each with its share of the dose."""
        product_code = Coding(system=RXNORM, code=product.code, display=product.display)
        many = len(product.ingredients) > 1
        medications = []
        for ingredient in product.ingredients:
            part = self._ingredient_dose(key, ingredient, dosing.dose, many, dosing.current)
            medications.append(
                Medication(
                    id=f"{key}#{ingredient.name}" if many else key,
                    code=Coding(system=RXNORM, code=ingredient.code) if ingredient.code else product_code,
                    name=ingredient.name,
                    dose=part[0] if part else None,
                    unit=part[1] if part else None,
                    frequency_per_day=dosing.frequency,
                    as_needed=dosing.as_needed,
                    status=dosing.status,  # type: ignore[arg-type]
                )
            )
        return medications

    def _named_medication(
        self, key: str, codings: list[FhirCoding], text: str | None, dosing: _Dosing
    ) -> list[Medication]:
        """A medication not in the product table: read by the code and name the value sets know."""
        known = [
            Coding(system=cast(str, c.system), code=cast(str, c.code), display=c.display)
            for c in codings
            if known_system(cast(str, c.system))
        ]
        names = [n for n in [text, *(c.display for c in codings)] if n]
        code, name = self._code_and_name(known, names)
        if code is None and name is None:
            self.issue("error", "no-code", "The medication has neither a code nor a name.", key, "medication")
            return []
        if not self.terminology.is_read(self.terminology.tag_text(code, name), "medication"):
            self._unmapped(key, name, known, dosing.current)
        amount = self._mass_dose(key, dosing)
        return [
            Medication(
                id=key,
                code=code,
                name=name,
                dose=amount[0] if amount else None,
                unit=amount[1] if amount else None,
                frequency_per_day=dosing.frequency,
                as_needed=dosing.as_needed,
                status=dosing.status,  # type: ignore[arg-type]
            )
        ]

    def _code_and_name(self, known: list[Coding], names: list[str]) -> tuple[Coding | None, str | None]:
        """The code and the name to read: the first a value set the rules read knows, else the first."""
        terminology = self.terminology
        tagged = [c for c in known if terminology.is_read(terminology.tag(c, None), "medication")]
        code = tagged[0] if tagged else (known[0] if known else None)
        # A name is read as its words: "Diazepam 5 MG Oral Tablet [Valium]" names diazepam.
        name = next(
            (n for n in names if terminology.is_read(terminology.tag_text(None, n), "medication")),
            names[0] if names else None,
        )
        return code, name

    def _unmapped(self, key: str, name: str | None, known: list[Coding], current: bool) -> None:
        """Report a medication whose ingredients are unknown (an error while it is taken)."""
        shown = " / ".join(
            [
                *(f"{name!r}" for _ in [0] if name),
                *(f"RxNorm {c.code}" for c in known if c.system == RXNORM),
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

    def _mass_dose(self, key: str, dosing: _Dosing) -> tuple[Decimal, str | None] | None:
        """The dose when it is a mass; otherwise ``None`` (said so while the medication is taken)."""
        dose = dosing.dose
        if dose is not None and dose[1] is not None and is_mass(dose[1]):
            return dose
        if dose is not None and dosing.current:
            self.issue(
                "warning",
                "dose-not-read",
                "The dose is not in mg and the product's strength is unknown.",
                key,
                "dosage.dose",
            )
        return None

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
        if unit is not None and is_mass(unit) and not many:
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
