"""Patient: birth date, sex, deceased; then the newest weight, height and pregnancy status."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, cast

import attrs
from fhir.resources.R4B.patient import Patient as FhirPatient

from ketacds.adapters.fhir.reading import ReaderBase, stripped_text
from ketacds.adapters.fhir.tables import Resource
from ketacds.models.inputs import Observation, Patient, Quantity


class PatientReading(ReaderBase):
    """Reads the Patient resource and fills it from the newest readings."""

    def _patient(self, key: str, raw: Resource) -> Patient:
        model = self.validate(FhirPatient, raw, key)
        if model is None:
            return Patient(id=stripped_text(raw.get("id")))
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
