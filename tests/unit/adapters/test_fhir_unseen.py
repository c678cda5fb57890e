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
from support import synthea, synthea_with

PID = "8adf7251-257f-4b45-8ef5-0a6b3b9fe0ef"
SUBJECT = {"reference": f"urn:uuid:{PID}"}
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    """Synthea 03 with ``resources`` added as transaction entries."""
    return synthea_with("03", *resources)


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


def pregnancy(
    rid: str, when: str, coding: list[dict[str, str]] | None, text: str | None = None
) -> dict[str, Any]:
    answer: dict[str, Any] = {"coding": coding} if coding else {}
    if text:
        answer["text"] = text
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "82810-3"}]},
        "subject": SUBJECT,
        "effectiveDateTime": when,
        **({"valueCodeableConcept": answer} if answer else {}),
    }


NOT_PREGNANT = [{"system": SNOMED, "code": "60001007"}]


class TestValuesThatCannotBeRead:
    """A reading of a kind the rules read whose value cannot be read is an error, not a silent gap."""

    def test_a_bound_is_not_an_exact_value(self):
        """Systolic "> 140" is not 140: the component is not read, and the error names its path."""
        panel = bp("bound", 140, 90, "2026-11-21T09:00:00+00:00")
        panel["component"][0]["valueQuantity"]["comparator"] = ">"
        record = read_bundle(bundle(panel))

        assert (Decimal(90),) == panels(record)["Observation/bound"]
        ((severity, resource, path, message),) = issues(record, "comparator")
        assert ("error", "Observation/bound", "component[0]") == (severity, resource, path)
        assert "140" not in message

    def test_a_bound_on_a_value(self):
        weight = {
            "resourceType": "Observation",
            "id": "w",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
            "subject": SUBJECT,
            "effectiveDateTime": "2026-11-21T09:00:00+00:00",
            "valueQuantity": {"value": 40, "comparator": "<", "system": UCUM, "code": "kg"},
        }
        record = read_bundle(bundle(weight))

        assert ("error", "value") == tuple(issues(record, "comparator")[0][0:3:2])
        assert "Observation/w" not in {o.id for o in record.observations}

    def test_an_unknown_pregnancy_answer_newer_than_not_pregnant_is_an_error(self):
        """The older "not pregnant" must not stand silently for a newer answer that cannot be read."""
        old = pregnancy("old", "2026-11-20T09:00:00+00:00", NOT_PREGNANT)
        for answer in (
            pregnancy("new", "2026-11-21T09:00:00+00:00", None, text="schwanger"),
            pregnancy("new", "2026-11-21T09:00:00+00:00", [{"system": "http://example.org/x", "code": "P"}]),
        ):
            record = read_bundle(bundle(old, answer))

            assert [("error", "Observation/new")] == [(s, r) for s, r, *_ in issues(record, "unknown-code")]

    def test_no_answer_at_all_is_a_warning(self):
        """A reading that states nothing (no value, e.g. a data-absent reason) hides nothing."""
        record = read_bundle(bundle(pregnancy("none", "2026-11-21T09:00:00+00:00", None)))

        assert [("warning", "Observation/none")] == [(s, r) for s, r, *_ in issues(record, "no-value")]

    def test_a_value_of_another_type_is_an_error(self):
        """A blood pressure given as text ("180/110") is there but not read: an error naming where."""
        panel = bp("text", 120, 80, "2026-11-21T09:00:00+00:00", valueString="180/110")
        record = read_bundle(bundle(panel))

        ((severity, resource, path, message),) = issues(record, "unreadable-value")
        assert ("error", "Observation/text", "valueString") == (severity, resource, path)
        assert "180" not in message

    def test_entered_in_error_stays_info(self):
        wrong = pregnancy(
            "eie", "2026-11-21T09:00:00+00:00", [{"system": "http://example.org/x", "code": "P"}]
        )
        record = read_bundle(bundle({**wrong, "status": "entered-in-error", "valueString": "x"}))

        assert [("info", "Observation/eie")] == [(s, r) for s, r, *_ in issues(record, "excluded")]
        assert [] == issues(record, "unknown-code") + issues(record, "unreadable-value")


class TestUnreadComponents:
    """A panel the tables read whose components are of codes no table reads is reported, by code."""

    @staticmethod
    def sitting(rid: str, **fields: Any) -> dict[str, Any]:
        panel = bp(rid, 175, 108, "2026-11-21T09:00:00+00:00", **fields)
        # codes no table reads (not the sitting 8459-0/8453-3, which the tables may come to read)
        panel["component"][0]["code"]["coding"][0]["code"] = "99999-1"
        panel["component"][1]["code"]["coding"][0]["code"] = "99999-2"
        return panel

    def test_a_panel_of_unread_components_is_an_error(self):
        record = read_bundle(bundle(self.sitting("sit")))

        assert "Observation/sit" not in panels(record)
        ((severity, resource, path, message),) = issues(record, "unread-component")
        assert ("error", "Observation/sit", "component") == (severity, resource, path)
        assert "99999-1" in message
        assert "99999-2" in message
        assert [] == [i for i in issues(record, "no-value") if i[1] == "Observation/sit"]

    def test_an_unread_component_beside_read_ones_is_a_warning(self):
        panel = bp("mixed", 175, 108, "2026-11-21T09:00:00+00:00")
        panel["component"].append(component("99999-1", 160))
        record = read_bundle(bundle(panel))

        assert (Decimal(175), Decimal(108)) == panels(record)["Observation/mixed"]
        ((severity, _, _, message),) = issues(record, "unread-component")
        assert "warning" == severity
        assert "99999-1" in message


class TestEntriesThatAreNotOneResource:
    def test_two_versions_of_one_resource_is_an_error(self):
        """A stopped and an active version of one MedicationRequest: either could be the truth."""
        data = json.loads(synthea("03").read_text())
        entry = next(e for e in data["entry"] if e["resource"]["resourceType"] == "MedicationRequest")
        other = copy.deepcopy(entry)
        other["resource"]["status"] = "stopped" if entry["resource"]["status"] == "active" else "active"
        data["entry"].append(other)
        record = read_bundle(data)

        key = f"MedicationRequest/{entry['resource']['id']}"
        assert [("error", key)] == [(s, r) for s, r, *_ in issues(record, "duplicate")]

    def test_the_same_resource_twice_is_not_reported(self):
        data = json.loads(synthea("03").read_text())
        data["entry"].append(copy.deepcopy(data["entry"][-1]))

        assert [] == issues(read_bundle(data), "duplicate")

    def test_a_delete_request_says_what_it_is(self):
        data = json.loads(synthea("03").read_text())
        rid = next(e for e in data["entry"] if e["resource"]["resourceType"] == "MedicationRequest")[
            "resource"
        ]["id"]
        data["entry"].append({"request": {"method": "DELETE", "url": f"MedicationRequest/{rid}"}})
        record = read_bundle(data)

        ((severity, resource, path, message),) = issues(record, "request-entry")
        assert ("error", f"MedicationRequest/{rid}", "request") == (severity, resource, path)
        assert f"DELETE request for MedicationRequest/{rid}" in message
        assert "may still be read" in message
        assert [] == issues(record, "invalid-resource")

    def test_a_get_request_says_what_it_is(self):
        data = json.loads(synthea("03").read_text())
        data["entry"].append({"request": {"method": "GET", "url": "Observation?code=85354-9"}})
        record = read_bundle(data)

        ((severity, _, _, message),) = issues(record, "request-entry")
        assert "error" == severity
        assert "GET request for Observation?code=85354-9" in message


def medication_request(rid: str, status: str = "active", **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "subject": SUBJECT,
        **fields,
    }


#: A Medication with ingredients and no code.
INGREDIENT_ONLY: dict[str, Any] = {
    "resourceType": "Medication",
    "id": "med-ing",
    "ingredient": [
        {
            "itemCodeableConcept": {
                "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "8123"}]
            }
        }
    ],
}


class TestMedicationsReferredTo:
    def test_a_medication_given_without_a_code_is_not_called_missing(self):
        """The Medication was given: the issue says its code is missing and its ingredients are not read."""
        for status, severity in (("active", "error"), ("stopped", "warning")):
            request = medication_request(
                "rx", status, medicationReference={"reference": "Medication/med-ing"}
            )
            record = read_bundle(bundle(INGREDIENT_ONLY, request))

            assert [] == issues(record, "unresolved-reference")
            ((found, resource, _, message),) = issues(record, "no-code")
            assert (severity, "MedicationRequest/rx") == (found, resource)
            assert "no code" in message
            assert "ingredients are not read" in message

    def test_a_text_only_medication_is_read_by_its_name(self):
        """A text-only concept gives a medication named by its text; recognition decides if it is known."""
        request = medication_request("rx", medicationCodeableConcept={"text": "Nardil 15 mg tablet"})
        record = read_bundle(bundle(request))

        assert ["Nardil 15 mg tablet"] == [
            m.name for m in record.medications if m.id == "MedicationRequest/rx"
        ]
        assert [] == issues(record, "unmapped-medication")


def test_a_nested_bundle_whose_entry_is_an_object_is_an_error_not_an_empty_bundle():
    """Synthea 03 with a searchset whose ``entry`` is one object (a Condition): reported, not empty."""
    aneurysm = {
        "resourceType": "Condition",
        "id": "aneurysm-1",
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I71.40"}]},
        "subject": SUBJECT,
    }
    nested = {
        "resourceType": "Bundle",
        "id": "conditions",
        "type": "searchset",
        "entry": {"resource": aneurysm},
    }

    record = read_bundle(bundle(nested))

    (issue,) = [i for i in record.data_quality if i.path == "entry"]
    assert ("error", "invalid-resource") == (issue.severity, issue.code)
    assert "Bundle (Bundle/conditions) gives its entry as something other than a list" in issue.message
    assert all(c.id != "aneurysm-1" for c in record.conditions)
