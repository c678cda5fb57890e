"""The patient and the record's shape: Synthea 03 with one edit each, as a tester sent them.

Every resource given is read as this patient's only when it is certainly this patient's;
otherwise it is left out with an error. Nothing is silently read, nothing silently dropped.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from ketacds import Context, Engine
from ketacds.adapters.fhir import read_bundle, read_resources
from ketacds.errors import InputError, NotAssessedError
from support import synthea, synthea_with

PID = "8adf7251-257f-4b45-8ef5-0a6b3b9fe0ef"
MRN = ("http://hospital.smarthealthit.org", "e78d0ed2-1b54-4c30-90ae-f7405af1e402")
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"


def synthea03() -> dict[str, Any]:
    return json.loads(synthea("03").read_text())


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    """Synthea 03 with ``resources`` added as transaction entries."""
    return synthea_with("03", *resources)


def hemorrhage(subject: Any = None, rid: str = "ich") -> dict[str, Any]:
    """An intracerebral hemorrhage (I61.9), resolved: a history the rules read."""
    condition: dict[str, Any] = {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": {"coding": [{"code": "resolved"}]},
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "code": {"coding": [{"system": ICD10, "code": "I61.9"}]},
        "subject": {"reference": f"urn:uuid:{PID}"} if subject is None else subject,
    }
    return condition


def issues(record, code: str) -> list[tuple[str, str | None, str | None]]:
    return [(i.severity, i.resource, i.path) for i in record.data_quality if i.code == code]


def hemorrhages(record) -> int:
    return sum(1 for c in record.conditions if c.code and c.code.code == "I61.9")


class TestWhoseResourceItIs:
    @pytest.mark.parametrize(
        "subject",
        [
            {"reference": f"Patient/{PID}"},
            {"reference": f"Patient/{PID}/_history/2"},
            {"reference": f"urn:uuid:{PID}"},
            {"identifier": {"system": MRN[0], "value": MRN[1]}},
        ],
    )
    def test_a_subject_that_certainly_names_the_patient_is_read(self, subject):
        record = read_bundle(bundle(hemorrhage(subject)))

        assert 1 == hemorrhages(record)
        assert [] == issues(record, "other-patient")

    @pytest.mark.parametrize(
        "subject",
        [
            {"reference": f"http://other-ehr.example/fhir/Patient/{PID}"},  # the same id on another server
            {"identifier": {"system": MRN[0], "value": "222"}},  # another MRN
            {"identifier": {"value": MRN[1]}},  # no system: not certainly this patient's
            {"identifier": {"system": [MRN[0]], "value": MRN[1]}},  # not FHIR at all
            {"display": "Milan Beatty"},
            {"reference": "Group/g1"},
            {"reference": "Patient/p2"},
        ],
    )
    def test_a_subject_not_certainly_the_patients_is_left_out_with_an_error(self, subject):
        record = read_bundle(bundle(hemorrhage(subject)))

        assert 0 == hemorrhages(record)
        assert [("error", "Condition/ich")] == [i[:2] for i in issues(record, "other-patient")]

    def test_an_absolute_reference_on_the_entrys_own_server_is_relative(self):
        """``https://ehr/fhir/Patient/id`` in the entry ``https://ehr/fhir/Condition/x``: ``Patient/id``."""
        data = bundle(hemorrhage({"reference": f"https://ehr.example/fhir/Patient/{PID}"}))
        data["entry"][-1]["fullUrl"] = "https://ehr.example/fhir/Condition/ich"

        assert 1 == hemorrhages(read_bundle(data))

    def test_without_a_patient_resource_two_patients_are_not_merged(self):
        """No Patient resource: resources naming two different patients are an input error."""
        data = synthea03()
        data["entry"] = data["entry"][1:]
        other = bundle(hemorrhage({"reference": "Patient/someone-else"}))["entry"][-1]
        with pytest.raises(InputError, match="the data hold 2 patients"):
            read_bundle({**data, "entry": [*data["entry"], other]})

        record = read_resources([data], patient_id=PID)  # one patient named: read, and said
        assert [("warning", None, None)] == issues(record, "no-patient")
        assert len(record.conditions) > 0


class TestWhatIsNotReadIsSaid:
    def test_a_condition_contained_in_a_list_is_an_error(self):
        listed = {
            "resourceType": "List",
            "id": "l1",
            "status": "current",
            "mode": "snapshot",
            "subject": {"reference": f"urn:uuid:{PID}"},
            "contained": [hemorrhage(rid="c9")],
            "entry": [{"item": {"reference": "#c9"}}],
        }
        record = read_bundle(bundle(listed))

        assert 0 == hemorrhages(record)
        assert [("error", "List/l1", "contained")] == issues(record, "contained-not-read")

    def test_a_search_page_with_a_next_link_is_an_error(self):
        data = synthea03() | {"type": "searchset"}
        data["link"] = [{"relation": "next", "url": "https://ehr.example/fhir/Condition?page=2"}]

        assert [("error", None, "link")] == issues(read_bundle(data), "incomplete-bundle")

    def test_a_total_above_the_matches_given_is_an_error(self):
        data = synthea03() | {"type": "searchset"}
        data["total"] = len(data["entry"]) + 1

        assert [("error", None, "total")] == issues(read_bundle(data), "incomplete-bundle")
        data["total"] = len(data["entry"])
        assert [] == issues(read_bundle(data), "incomplete-bundle")

    def test_a_gender_fhir_does_not_know_is_a_warning(self):
        data = synthea03()
        data["entry"][0]["resource"]["gender"] = "F"
        record = read_bundle(data)

        assert record.patient.sex is None
        assert [("warning", f"Patient/{PID}", "gender")] == issues(record, "unknown-code")


class TestDeceased:
    @pytest.mark.parametrize(
        "edit",
        [
            {"deceasedBoolean": True, "birthDate": "1973-02-30"},
            {"deceasedBoolean": True, "deceasedDateTime": "2025-01-01"},
        ],
    )
    def test_a_deceased_patient_whose_resource_is_invalid_is_not_assessed(self, edit):
        data = synthea03()
        data["entry"][0]["resource"].update(edit)
        engine = Engine()
        record = read_bundle(data, terminology=engine.terminology)
        context = Context(
            route="esketamine-nasal", jurisdiction="US", now=dt.datetime(2026, 11, 21, 14, tzinfo=dt.UTC)
        )

        assert [("error", f"Patient/{PID}", None)] == issues(record, "invalid-resource")
        assert record.patient.deceased is True
        with pytest.raises(NotAssessedError):
            engine.assess(record, context)
