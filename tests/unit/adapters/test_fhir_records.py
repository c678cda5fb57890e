"""Records read from JSON resources, remembered by content (ketacds.adapters.fhir.records)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ketacds import Engine, InputError
from ketacds.adapters.fhir import read_resources
from ketacds.adapters.fhir import records as records_module
from ketacds.adapters.fhir.records import read_json_resources
from support import synthea


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.fixture(autouse=True)
def _empty() -> None:
    records_module._kept.clear()


def _resources(number: str = "01") -> tuple[list[dict[str, Any]], str]:
    bundle = json.loads(synthea(number).read_text())
    kept = {"Patient", "Condition", "MedicationRequest", "Observation", "AllergyIntolerance"}
    resources = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] in kept][:80]
    (patient,) = [r for r in resources if r["resourceType"] == "Patient"]
    return resources, patient["id"]


def _read(engine: Engine, resources: list[Any], patient_id: str | None) -> Any:
    return read_json_resources(
        resources,
        patient_id=patient_id,
        mapping=engine.terminology.fhir_mapping,
        terminology=engine.terminology,
    )


def test_the_same_content_gives_the_remembered_record(engine):
    resources, pid = _resources()
    first = _read(engine, resources, pid)
    again = _read(engine, copy.deepcopy(resources), pid)

    assert again is first
    assert first == read_resources(resources, patient_id=pid, terminology=engine.terminology)


def test_any_change_is_read_afresh(engine):
    resources, pid = _resources()
    first = _read(engine, resources, pid)
    changed = copy.deepcopy(resources)
    (patient,) = [r for r in changed if r["resourceType"] == "Patient"]
    patient["birthDate"] = "1950-01-01"

    record = _read(engine, changed, pid)

    assert record is not first
    assert record == read_resources(changed, patient_id=pid, terminology=engine.terminology)
    assert record.patient != first.patient
    assert _read(engine, resources, "someone-else") is not first  # the patient id is part of the key


def test_content_json_cannot_tell_apart_is_never_remembered(engine):
    resources, pid = _resources()
    with_null = [*resources, {"resourceType": "Basic", "id": "b", "note": None}]
    with_nan = [*resources, {"resourceType": "Basic", "id": "b", "note": float("nan")}]

    assert _read(engine, with_null, pid) is not _read(engine, with_null, pid)
    assert _read(engine, with_nan, pid) is not _read(engine, with_nan, pid)
    assert not records_module._kept


def test_a_failed_reading_is_not_remembered(engine):
    resources, _ = _resources()
    other, _ = _resources("03")
    with pytest.raises(InputError, match="hold 2 patients"):
        _read(engine, [*resources, *other], None)
    assert not records_module._kept


def test_records_kept_are_bounded(engine, monkeypatch):
    monkeypatch.setattr(records_module, "KEPT", 2)
    resources, pid = _resources()
    for number in range(4):
        _read(engine, [*resources, {"resourceType": "Basic", "id": str(number)}], pid)
    assert len(records_module._kept) == 2
