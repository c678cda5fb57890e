"""The FHIR reader leaves nothing unseen: Synthea 03 with one edit each, as a tester sent them.

Each test adds or edits a resource in a real Synthea bundle and checks what the record
holds and which data-quality issue says what was not read.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

from ketacds.adapters.fhir import read_bundle
from support import synthea

PID = "8adf7251-257f-4b45-8ef5-0a6b3b9fe0ef"
SUBJECT = {"reference": f"urn:uuid:{PID}"}
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    """Synthea 03 with ``resources`` added as transaction entries."""
    data = json.loads(synthea("03").read_text())
    for resource in resources:
        data["entry"].append(
            {
                "fullUrl": f"urn:uuid:{resource['id']}",
                "resource": copy.deepcopy(resource),
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )
    return data


def component(code: str, value: Any, **quantity: Any) -> dict[str, Any]:
    return {
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "valueQuantity": {"value": value, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]", **quantity},
    }


def bp(rid: str, systolic: Any, diastolic: Any, when: str, **fields: Any) -> dict[str, Any]:
    """A blood-pressure panel (85354-9) with systolic and diastolic components."""
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
        "subject": SUBJECT,
        "effectiveDateTime": when,
        "component": [component("8480-6", systolic), component("8462-4", diastolic)],
        **fields,
    }


def issues(record, code: str) -> list[tuple[str, str | None, str | None, str]]:
    return [(i.severity, i.resource, i.path, i.message) for i in record.data_quality if i.code == code]


def panels(record) -> dict[str, tuple[Decimal, ...]]:
    return {
        o.id: tuple(c.value for c in o.components)
        for o in record.observations
        if o.code and o.code.code == "85354-9"
    }


class TestTheNewestReadingsThatAreRead:
    """The newest-5 cut counts readings that are read, not resources that are left out."""

    def test_entered_in_error_readings_do_not_push_a_real_one_out(self):
        real = bp("real", 175, 108, "2026-11-21T09:00:00+00:00")
        wrong = [
            bp(f"eie{i}", 120, 80, f"2026-11-21T09:{10 * i}:00+00:00", status="entered-in-error")
            for i in range(1, 6)
        ]
        record = read_bundle(bundle(real, *wrong))

        assert (Decimal(175), Decimal(108)) == panels(record)["Observation/real"]
        assert 5 == len(
            [i for i in issues(record, "excluded") if i[1] and i[1].startswith("Observation/eie")]
        )

    def test_other_patients_readings_do_not_push_a_real_one_out(self):
        real = bp("real", 175, 108, "2026-11-21T09:00:00+00:00")
        other = [
            bp(f"other{i}", 120, 80, f"2026-11-21T09:{10 * i}:00+00:00", subject={"reference": "Patient/x"})
            for i in range(1, 6)
        ]
        record = read_bundle(bundle(real, *other))

        assert "Observation/real" in panels(record)
        assert 5 == len(issues(record, "other-patient"))

    def test_unreadable_readings_do_not_push_a_real_one_out(self):
        real = bp("real", 175, 108, "2026-11-21T09:00:00+00:00")
        unreadable = [
            {**bp(f"bad{i}", 120, 80, f"2026-11-21T09:{10 * i}:00+00:00"), "component": []}
            for i in range(1, 6)
        ]
        record = read_bundle(bundle(real, *unreadable))

        assert "Observation/real" in panels(record)

    def test_still_only_the_newest_five_read_ones_are_kept(self):
        """Five read readings close the series: older ones are counted, not read (nor validated)."""
        newest = [bp(f"new{i}", 120, 80, f"2026-11-21T09:{10 * i}:00+00:00") for i in range(1, 6)]
        old = bp("old", 175, 108, "2026-11-21T08:00:00+00:00")
        record = read_bundle(bundle(old, *newest))

        assert {f"Observation/new{i}" for i in range(1, 6)} == set(panels(record))
        assert ["info"] == [severity for severity, *_ in issues(record, "older-readings")]
