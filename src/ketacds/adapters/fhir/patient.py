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
            # Whatever else is wrong, a patient the resource says is deceased is not assessed.
            return Patient(id=stripped_text(raw.get("id")), deceased=_deceased(raw))
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
        if sex is None and model.gender is not None:
            self.issue(
                "warning",
                "unknown-code",
                "The gender is not a FHIR administrative gender (female, male, other, unknown); "
                "sex is read as unknown.",
                key,
                "gender",
            )
        # A deceased patient is refused by the engine (NotAssessedError), never assessed.
        return Patient(id=model.id, birth_date=birth_date, sex=cast(Any, sex), deceased=deceased)

    def _fill_patient(
        self, patient: Patient, observations: Sequence[tuple[str, Observation]], pregnancy: Sequence[str]
    ) -> Patient:
        """The patient with the newest weight and height, and whether pregnant (and since when)."""
        newest, status = self._newest_readings(observations)
        fields: dict[str, Any] = {}
        for field, o in newest.items():
            fields[field] = Quantity(value=cast(Decimal, o.value), unit=cast(str, o.unit), time=o.time)
        pregnant = self._pregnant(status, pregnancy)
        if pregnant is not None:
            fields["pregnant"] = pregnant
            if not pregnancy and status is not None:
                fields["pregnant_time"] = status.time  # so its validity window can be checked
        return attrs.evolve(patient, **fields)

    def _newest_readings(
        self, observations: Sequence[tuple[str, Observation]]
    ) -> tuple[dict[str, Observation], Observation | None]:
        """The newest reading of each patient field (weight, height) and the newest pregnancy status.

        ``observations`` are newest first within each code; a reading without a value fills nothing.
        """
        newest: dict[str, Observation] = {}
        status: Observation | None = None
        for _, o in observations:
            concept = self.mapping.observations.get(o.code.code if o.code else "")
            if concept is None:
                continue
            if concept.patient and o.value is not None and concept.patient not in newest:
                newest[concept.patient] = o
            if concept.coded and status is None:
                status = o
        return newest, status

    def _pregnant(self, status: Observation | None, pregnancy: Sequence[str]) -> bool | None:
        """Pregnant by an active pregnancy condition (which wins, with a warning), else by the status."""
        pregnant: bool | None = None
        if status is not None:
            pregnant = status.name == "pregnant"
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
        return pregnant


def _deceased(raw: Resource) -> bool | None:
    """Whether a Patient resource that could not be validated says the patient is deceased.

    ``deceasedBoolean`` true (or the text "true"), or any ``deceasedDateTime``: deceased.
    Anything else is not read (``None``).
    """
    flag = raw.get("deceasedBoolean")
    if flag is True or (isinstance(flag, str) and flag.strip().lower() == "true"):
        return True
    when = raw.get("deceasedDateTime")
    return True if when is not None and when != "" else None
