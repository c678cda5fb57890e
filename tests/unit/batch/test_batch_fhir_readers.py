"""Batch readers for FHIR: a directory of Synthea Bundles, and the same data as a Bulk Data export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ketacds import Engine, InputError
from ketacds.adapters.fhir import read_bundle
from ketacds.batch import BatchOptions, reader_for, run_batch
from ketacds.batch.fhir_readers import FhirBulkReader, FhirBundlesReader
from ketacds.batch.readers import decode_case
from support import synthea

NUMBERS = ("01", "03", "04")
CONTEXT = (("route", "esketamine-nasal"), ("jurisdiction", "US"), ("now", "2026-11-21T09:00:00+00:00"))


def _bundle(number: str) -> dict[str, Any]:
    return json.loads(synthea(number).read_text(encoding="utf-8"))


def _patient_id(bundle: dict[str, Any]) -> str:
    return next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")


def _bulk_export(bundles: list[dict[str, Any]], out: Path) -> Path:
    """Write the bundles as a Bulk Data export: one NDJSON file per type, ``Patient/ID`` references."""
    out.mkdir()
    by_type: dict[str, list[str]] = {}
    for bundle in bundles:
        patient = _patient_id(bundle)
        for entry in bundle["entry"]:
            resource = json.loads(json.dumps(entry["resource"]))
            for key in ("subject", "patient"):
                if isinstance(resource.get(key), dict) and "reference" in resource[key]:
                    resource[key]["reference"] = f"Patient/{patient}"
            by_type.setdefault(resource["resourceType"], []).append(json.dumps(resource))
    for kind, lines in by_type.items():
        (out / f"{kind}.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def engine():
    with Engine() as built:
        yield built


@pytest.fixture(scope="module")
def bundles_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("bundles")
    for number in NUMBERS:
        shutil.copy(synthea(number), directory)
    return directory


@pytest.fixture(scope="module")
def bulk_dir(tmp_path_factory) -> Path:
    return _bulk_export([_bundle(n) for n in NUMBERS], tmp_path_factory.mktemp("bulk") / "export")


class TestBundles:
    def test_a_directory_of_bundles_is_recognised_before_case_files(self, bundles_dir: Path):
        """A directory whose JSON files are Bundles gets the fhir-bundles reader."""
        assert "fhir-bundles" == reader_for(bundles_dir).name

    def test_each_bundle_reads_as_the_fhir_adapter_reads_it(self, bundles_dir: Path, engine: Engine):
        """One item per file, in name order, decoded to the record `read_bundle` gives."""
        reader = FhirBundlesReader()
        items = list(reader.items(bundles_dir))

        assert len(NUMBERS) == reader.count(bundles_dir) == len(items)
        for item, number in zip(items, NUMBERS, strict=True):
            record, context = decode_case(reader, item.payload, engine)
            assert item.source == synthea(number).name
            assert read_bundle(_bundle(number), terminology=engine.terminology) == record
            assert {} == context

    @pytest.mark.parametrize(
        ("text", "reason"),
        [("{not json", "invalid JSON"), ('{"resourceType": "Patient"}', "expected a FHIR Bundle")],
    )
    def test_a_file_that_is_not_a_bundle_is_an_input_error(self, text: str, reason: str):
        """A broken or non-Bundle file is an InputError (an error record in a run)."""
        with pytest.raises(InputError, match=reason):
            FhirBundlesReader().decode((text, None))


class TestBulk:
    def test_an_export_directory_is_recognised(self, bulk_dir: Path):
        """A directory of NDJSON files holding Patient resources gets the fhir-bulk reader."""
        assert "fhir-bulk" == reader_for(bulk_dir).name
        assert not FhirBulkReader().detect(bulk_dir / "Patient.ndjson")

    def test_each_patient_reads_as_from_their_bundle(self, bulk_dir: Path, engine: Engine):
        """Grouped by patient, each record equals the one read from that patient's Bundle."""
        reader = FhirBulkReader()
        items = list(reader.items(bulk_dir))

        assert len(NUMBERS) == reader.count(bulk_dir) == len(items)
        for item, number in zip(items, NUMBERS, strict=True):
            bundle = _bundle(number)
            record, _ = decode_case(reader, item.payload, engine)
            expected = read_bundle(bundle, terminology=engine.terminology)
            assert f"Patient/{_patient_id(bundle)}" in item.source
            assert (expected.patient, expected.conditions, expected.medications) == (
                record.patient,
                record.conditions,
                record.medications,
            )
            assert expected.observations == record.observations

    def test_a_shared_medication_joins_the_patients_who_name_it(self, tmp_path: Path, engine: Engine):
        """A Medication resource (no patient of its own) is given to each request naming it."""
        export = tmp_path / "export"
        export.mkdir()
        patients = [{"resourceType": "Patient", "id": p, "birthDate": "1980-01-01"} for p in ("a", "b")]
        medication = {
            "resourceType": "Medication",
            "id": "m1",
            "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "6470"}]},
        }
        request = {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/a"},
            "medicationReference": {"reference": "Medication/m1"},
        }
        (export / "Patient.ndjson").write_text("\n".join(map(json.dumps, patients)) + "\n")
        (export / "Medication.ndjson").write_text(json.dumps(medication) + "\n")
        (export / "MedicationRequest.ndjson").write_text(json.dumps(request) + "\n")
        reader = FhirBulkReader()

        first, second = (decode_case(reader, item.payload, engine)[0] for item in reader.items(export))

        assert ["6470"] == [m.code.code for m in first.medications if m.code is not None]
        assert () == second.medications
        assert not any(issue.code == "unresolved-reference" for issue in first.data_quality)

    def test_lines_no_patient_can_take_become_error_records(self, tmp_path: Path):
        """Bad lines, id-less or repeated Patients and orphaned resources are items that fail to decode."""
        export = tmp_path / "export"
        export.mkdir()
        (export / "Patient.ndjson").write_text(
            '{"resourceType": "Patient", "id": "a"}\n{not json\n{"resourceType": "Patient"}\n'
            '{"resourceType": "Patient", "id": "a"}\n'
        )
        orphan = {"resourceType": "Condition", "subject": {"reference": "Patient/z"}}
        (export / "Condition.ndjson").write_text(json.dumps(orphan) + "\n")
        reader = FhirBulkReader()
        items = list(reader.items(export))
        failures = []
        for item in items[1:]:
            with pytest.raises(InputError) as raised:
                reader.decode(item.payload)
            failures.append((item.source, raised.value.reason))

        assert 5 == reader.count(export) == len(items)
        assert "Patient.ndjson:1 (Patient/a)" == items[0].source
        assert [s for s, _ in failures] == [
            "Patient.ndjson:2",
            "Patient.ndjson:3",
            "Patient.ndjson:4",
            "Condition.ndjson:1",
        ]
        assert "invalid JSON" in failures[0][1]
        assert "repeated id" in failures[2][1]
        assert "Patient/z, who is in no Patient file" in failures[3][1]


class TestRuns:
    def test_bundles_and_their_bulk_export_give_the_same_assessments(
        self, bundles_dir: Path, bulk_dir: Path, tmp_path: Path
    ):
        """Both inputs give one assessment per living patient, with the same status and findings;
        the deceased one (Synthea 01) is not assessed, an error line in both."""
        results = {}
        deceased = _patient_id(_bundle("01"))
        for source in (bundles_dir, bulk_dir):
            out = tmp_path / source.name
            options = BatchOptions(input=source, out=out, reader=reader_for(source), context=CONTEXT)
            result = run_batch(options)
            lines = [json.loads(line) for line in (out / "assessments.ndjson").read_text().splitlines()]
            errors = [json.loads(line) for line in (out / "errors.ndjson").read_text().splitlines()]
            assert len(NUMBERS) == result.records == len(lines) + len(errors)
            assert [(deceased, "NotAssessedError")] == [(e["patient"], e["error"]) for e in errors]
            results[source.name] = {
                line["patient"]: (
                    line["assessment"]["status"],
                    [finding["rule_id"] for finding in line["assessment"]["findings"]],
                )
                for line in lines
            }

        assert set(results[bundles_dir.name]) == {_patient_id(_bundle(n)) for n in NUMBERS} - {deceased}
        assert results[bundles_dir.name] == results[bulk_dir.name]

    def test_a_run_without_treatment_context_is_refused_before_it_starts(
        self, bulk_dir: Path, tmp_path: Path
    ):
        """FHIR input carries no route, jurisdiction or time: a run must give them."""
        options = BatchOptions(
            input=bulk_dir, out=tmp_path / "out", reader=FhirBulkReader(), context=CONTEXT[:1]
        )

        with pytest.raises(InputError, match="give --jurisdiction, --now"):
            run_batch(options)
        assert not (tmp_path / "out").exists()
