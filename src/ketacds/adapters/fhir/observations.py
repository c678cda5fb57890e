"""Observation: the LOINC codes of ``fhir-r4.yaml``, newest ``keep_latest`` per code.

Panels are read by component, units must be UCUM units of the right dimension, and
the pregnancy status is a coded answer. A series is read newest first until its newest
readings that are read are found; the older rest are left out
before validating (validation is the costly part of reading).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.observation import Observation as FhirObservation
from fhir.resources.R4B.quantity import Quantity as FhirQuantity

from ketacds.adapters.fhir.reading import ReaderBase, known_system
from ketacds.adapters.fhir.tables import LOINC, OBSERVATION_EXCLUDED, UCUM, Resource
from ketacds.dosing.units import canonical_unit
from ketacds.errors import KetacdsError
from ketacds.models.inputs import Coding, Observation, ObservationComponent, canonical_system
from ketacds.terminology.mapping import ObservationCode


class ObservationReading(ReaderBase):
    """Reads observations and keeps the newest of each code."""

    def _observation(self, key: str, raw: Resource) -> list[tuple[str, Observation]]:
        """The reading of one Observation of a code the tables read, as ``[(key, reading)]`` or ``[]``."""
        codes = _raw_loinc_codes(raw.get("code"))
        read = [c for c in codes if c in self.mapping.observations]
        if not read:
            unread = [c for c in codes if c in self.mapping.unread_observations]
            if unread and raw.get("status") not in OBSERVATION_EXCLUDED:
                self.issue(
                    "error",
                    "unread-kind",
                    f"{self.mapping.unread_observations[unread[0]]} is recorded (LOINC {unread[0]}), but "
                    "ketacds does not read it from FHIR: the rules see it as not recorded.",
                    key,
                    "code",
                )
            else:
                self.not_read["Observation (other codes)"] += 1
            return []
        model = self.validate(FhirObservation, raw, key)
        if model is None:
            return []
        self._unread_value(key, raw, self.mapping.observations[read[0]])
        reading = self.remembered(
            f"Observation {read[0]}", key, model, lambda: self._read_observation(key, model, read)
        )
        return list(reading)

    def _unread_value(self, key: str, raw: Resource, concept: ObservationCode) -> None:
        """An error for a value given in a form this kind is not read from (``valueString`` ...).

        Only ``valueQuantity`` (a measurement) or ``valueCodeableConcept`` (a coded
        answer) is read; a value given otherwise is there but unseen, and could change
        the answer.
        """
        if raw.get("status") in OBSERVATION_EXCLUDED:
            return  # left out by its status (info), whatever its value
        expected = "valueCodeableConcept" if concept.coded else "valueQuantity"
        for name in raw:
            if name.startswith("value") and name != expected:
                self.issue(
                    "error",
                    "unreadable-value",
                    f"The value is given as {name}; this kind is read from {expected} only, "
                    "so it is not read.",
                    key,
                    name,
                )

    def _read_observation(
        self, key: str, model: FhirObservation, read: list[str]
    ) -> tuple[tuple[str, Observation], ...]:
        """The reading of a validated Observation whose codes ``read`` the tables read."""
        if model.status in OBSERVATION_EXCLUDED:
            self.issue(
                "info", "excluded", f"Left out: the observation is marked {model.status}.", key, "status"
            )
            return ()
        concept = self.mapping.observations[read[0]]
        display = next(
            (c.display for c in model.code.coding or [] if c.code == concept.code and c.display), None
        )
        code = Coding(system=LOINC, code=concept.code, display=display)
        time = self._time(key, model)
        if concept.coded:
            return tuple(self._coded_reading(key, model, code, time))
        return tuple(self._measured_reading(key, model, concept, code, time))

    def _coded_reading(
        self, key: str, model: FhirObservation, code: Coding, time: dt.datetime | None
    ) -> list[tuple[str, Observation]]:
        """A coded reading (pregnancy status), kept with a marker value so newest-first ordering works."""
        answer = self._pregnancy_answer(key, model)
        if answer is None:
            return []
        return [(key, Observation(id=key, code=code, name=answer, value=Decimal(1), time=time))]

    def _measured_reading(
        self,
        key: str,
        model: FhirObservation,
        concept: ObservationCode,
        code: Coding,
        time: dt.datetime | None,
    ) -> list[tuple[str, Observation]]:
        """A reading with a value, its components (a panel's), or both; ``[]`` when neither is read."""
        components = self._components(key, model)
        value_unit = None
        if model.valueQuantity is not None or not model.component:
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

    def _components(self, key: str, model: FhirObservation) -> list[ObservationComponent]:
        """The components of codes the tables read (a blood-pressure panel's systolic and diastolic)."""
        components: list[ObservationComponent] = []
        unread: list[str] = []
        for index, component in enumerate(model.component or []):
            # component.code is required by FHIR, but the models let a null through
            c_codings = (component.code.coding or []) if component.code else []
            c_codes = [c.code for c in c_codings if c.system == LOINC and c.code]
            c_concept = next(
                (self.mapping.observations[c] for c in c_codes if c in self.mapping.observations), None
            )
            if c_concept is None:
                unread.append("/".join(c.code for c in c_codings if c.code) or "no code")
                continue
            path = f"component[{index}]"
            if component.valueQuantity is None and _other_value(component):
                self.issue(
                    "error",
                    "unreadable-value",
                    "The component's value is not a quantity, so it is not read.",
                    key,
                    path,
                )
                continue
            value = self._quantity(key, component.valueQuantity, c_concept.dimension, path)
            if value is not None:
                c_display = next((c.display for c in c_codings if c.code == c_concept.code), None)
                components.append(
                    ObservationComponent(
                        code=Coding(system=LOINC, code=c_concept.code, display=c_display),
                        value=value[0],
                        unit=value[1],
                    )
                )
        if unread:
            # A panel none of whose components is read may hold a reading that could
            # change the answer (a blood pressure under a code no table reads): an error.
            nothing = not components and model.valueQuantity is None
            self.issue(
                "error" if nothing else "warning",
                "unread-component",
                f"Components of codes no table reads are not read: {', '.join(unread)}"
                + ("; nothing of this reading is read." if nothing else "."),
                key,
                "component",
            )
        return components

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
        if quantity.comparator is not None:
            self.issue(
                "error",
                "comparator",
                f"The value is given with the comparator {quantity.comparator!r}: a bound, not an exact "
                "value, so it is not read.",
                key,
                path,
            )
            return None
        unit = quantity.code if quantity.system == UCUM and quantity.code else quantity.unit
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
        if concept is None:
            self.issue("warning", "no-value", "The reading has no answer; left out.", key, "value")
            return None
        for coding in (concept.coding or []) if concept else []:
            if not coding.system or not coding.code or not known_system(coding.system):
                continue
            pair = (canonical_system(coding.system), coding.code)
            if pair in self.mapping.pregnant:
                return "pregnant"
            if pair in self.mapping.not_pregnant:
                return "not pregnant"
        self.issue(
            "error",
            "unknown-code",
            "The pregnancy status answer is not one ketacds knows, so it is not read; "
            "an older answer may not be the current one.",
            key,
            "valueCodeableConcept",
        )
        return None

    def _series(
        self, items: Sequence[tuple[str, str | None, Resource]]
    ) -> dict[str, list[tuple[str, Resource]]]:
        """The Observations of each code the tables read, newest first, found before validating.

        Readings whose time cannot be read rank last, as they do after validation.
        """
        by_code: dict[str, list[tuple[tuple[int, float], str, Resource]]] = {}
        for key, _, raw in items:
            if raw["resourceType"] != "Observation":
                continue
            read = [c for c in _raw_loinc_codes(raw.get("code")) if c in self.mapping.observations]
            if read:
                by_code.setdefault(read[0], []).append((_raw_time_rank(raw), key, raw))
        return {
            code: [(key, raw) for _, key, raw in sorted(readings, key=lambda r: (r[0], r[1]))]
            for code, readings in by_code.items()
        }

    def _read_series(
        self, series: Sequence[tuple[str, Resource]], belongs: Callable[[str, Resource], bool]
    ) -> tuple[list[tuple[str, Observation]], int]:
        """The newest ``keep_latest`` readings of one code that are read, and how many older are left out.

        Validating a resource is the costly part of reading a record, so a long series
        is read newest first until ``keep_latest`` readings have been read. A reading
        left out (entered in error, another patient's, not valid, no readable value ...)
        does not count: it must not push a real reading out of the cut.
        """
        observations: list[tuple[str, Observation]] = []
        read = 0
        for index, (key, raw) in enumerate(series):
            if read >= self.mapping.keep_latest:
                return observations, len(series) - index
            if not belongs(key, raw):
                continue
            reading = self._observation(key, raw)
            observations.extend(reading)
            read += bool(reading)
        return observations, 0

    def _older_readings(self, older: int) -> None:
        """Count the readings left out beyond the newest ``keep_latest`` of each code."""
        if older:
            self.issue(
                "info",
                "older-readings",
                f"{older} older readings left out "
                f"(the newest {self.mapping.keep_latest} of each kind are read).",
                None,
            )

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


#: The value[x] elements of an Observation component other than valueQuantity.
_OTHER_VALUES = (
    "valueCodeableConcept",
    "valueString",
    "valueBoolean",
    "valueInteger",
    "valueRange",
    "valueRatio",
    "valueSampledData",
    "valueTime",
    "valueDateTime",
    "valuePeriod",
)


def _other_value(component: Any) -> bool:
    """Whether a component gives its value other than as a quantity."""
    return any(getattr(component, name, None) is not None for name in _OTHER_VALUES)


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
            and coding.get("system") == LOINC
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
