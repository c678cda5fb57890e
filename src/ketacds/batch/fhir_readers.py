"""Batch readers for FHIR R4 input: a directory of Bundles, or a Bulk Data export.

``fhir-bundles``
    a directory of ``*.json`` FHIR Bundles, one patient per Bundle (a Synthea export,
    for example), taken in file-name order.
``fhir-bulk``
    a FHIR Bulk Data export: a directory of ``*.ndjson`` files, one resource per line
    (``Patient.ndjson``, ``Condition.ndjson``, ``MedicationRequest.ndjson``,
    ``Observation.ndjson``, ...; any file names, several files per type allowed). Each
    Patient resource is one record, in the order the files (by name) and lines list
    them; every other resource joins the patient its ``subject`` or ``patient``
    reference names (``Patient/ID``), and a Medication resource joins every patient
    whose MedicationRequest names it (``medicationReference``). Resources of no one
    patient (Organization, Practitioner, ...) are not read.

Neither carries the planned treatment, so a run needs ``--route``, ``--jurisdiction``
and ``--now`` (:attr:`context_required`). Records are read with the FHIR adapter
(:mod:`ketacds.adapters.fhir`) and the engine's own value sets, so what cannot be read
becomes a data-quality entry on the Assessment, as for ``ketacds assess``; what makes a
record unreadable (an invalid line, a Patient without an id or with a repeated one,
resources whose patient is in no Patient file) goes to ``errors.ndjson`` as an error
record of its own, and the run goes on.

The Bulk reader indexes the export once (one pass over every line: the patient each
line belongs to, and where it is), then reads each patient's lines as its item is
reached, so memory holds byte offsets, not the export.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ketacds.cases import CaseData, Item, files_in, read_json
from ketacds.errors import InputError

if TYPE_CHECKING:
    from ketacds.engine.api import Engine

__all__ = ["FhirBulkReader", "FhirBundlesReader"]

#: What a FHIR record cannot say, and a batch run must therefore give.
CONTEXT_REQUIRED = ("route", "jurisdiction", "now")


def _read_record(resources: list[Any], patient_id: str | None, engine: Engine | None) -> CaseData:
    from ketacds.adapters.fhir import read_resources  # imported only when FHIR is read

    terminology = engine.terminology if engine is not None else None
    return read_resources(resources, patient_id=patient_id, terminology=terminology), {}


def _json(text: str | bytes, where: str) -> Any:
    return read_json(text, where)


class FhirBundlesReader:
    """A directory of FHIR R4 Bundles (``*.json``), one patient each, in file-name order."""

    name = "fhir-bundles"
    context_required = CONTEXT_REQUIRED

    @staticmethod
    def _files(path: Path) -> list[Path]:
        return files_in(path, (".json",))

    def detect(self, path: Path) -> bool:
        """Directories whose first ``*.json`` file is a FHIR Bundle."""
        if not path.is_dir():
            return False
        files = self._files(path)
        if not files:
            return False
        try:
            document = json.loads(files[0].read_bytes())
        except (OSError, ValueError):
            return False
        return isinstance(document, Mapping) and document.get("resourceType") == "Bundle"

    def count(self, path: Path) -> int | None:
        """The number of ``*.json`` files."""
        return len(self._files(path))

    def items(self, path: Path) -> Iterator[Item]:
        """Each file's text (read here, so that workers need no shared disk)."""
        for index, file in enumerate(self._files(path)):
            try:
                payload: tuple[str | None, str | None] = (file.read_text(encoding="utf-8"), None)
            except (OSError, UnicodeDecodeError) as error:
                payload = (None, f"cannot read file: {error}")
            yield Item(index, file.name, payload)

    def decode(self, payload: Any) -> CaseData:
        """Read the Bundle with the bundled value sets."""
        return self.decode_with_engine(payload, None)

    def decode_with_engine(self, payload: Any, engine: Engine | None) -> CaseData:
        """Read the Bundle with ``engine``'s value sets (the batch worker's engine)."""
        text, problem = payload
        if text is None:
            raise InputError("(file)", problem)
        document = _json(text, "(file)")
        if not isinstance(document, Mapping) or document.get("resourceType") != "Bundle":
            raise InputError("(file)", "expected a FHIR Bundle (resourceType 'Bundle')")
        from ketacds.adapters.fhir import bundle_resources

        return _read_record(bundle_resources(document), None, engine)


@attrs.frozen
class _Line:
    file: int  #: position of the file in the export's sorted file list
    offset: int  #: byte offset of the line
    number: int  #: line number, from 1


@attrs.frozen
class _Index:
    files: tuple[Path, ...]
    patients: tuple[tuple[str, _Line], ...]  #: each Patient's id and line, in export order
    lines: Mapping[str, tuple[_Line, ...]]  #: the other lines of each patient
    problems: tuple[tuple[str, str], ...]  #: (where, reason) of lines no patient can take


def _patient_of(resource: Mapping[str, Any]) -> str | None:
    """The patient id a resource refers to (``subject`` or ``patient``: ``Patient/ID``)."""
    for key in ("subject", "patient"):
        ref = resource.get(key)
        reference = ref.get("reference") if isinstance(ref, Mapping) else None
        if isinstance(reference, str) and reference.startswith("Patient/"):
            return reference.removeprefix("Patient/")
    return None


class FhirBulkReader:
    """A FHIR Bulk Data export: ``*.ndjson`` files of resources, grouped by patient."""

    name = "fhir-bulk"
    context_required = CONTEXT_REQUIRED

    @staticmethod
    def _files(path: Path) -> list[Path]:
        return files_in(path, (".ndjson",))

    def detect(self, path: Path) -> bool:
        """Directories of ``*.ndjson`` files, one of which starts with a Patient resource."""
        if not path.is_dir():
            return False
        for file in self._files(path):
            try:
                with file.open("rb") as handle:
                    first = json.loads(handle.readline())
            except (OSError, ValueError):
                continue
            if isinstance(first, Mapping) and first.get("resourceType") == "Patient":
                return True
        return False

    def _index(self, path: Path) -> _Index:
        files = tuple(self._files(path))
        patients: list[tuple[str, _Line]] = []
        seen: set[str] = set()
        lines: dict[str, list[_Line]] = {}
        problems: list[tuple[str, str]] = []
        shared: dict[str, _Line] = {}  # resources of no one patient, by Type/id
        wanted: dict[str, set[str]] = {}  # the Medication resources each patient's requests name
        for position, file in enumerate(files):
            with file.open("rb") as handle:
                offset = 0
                for number, raw in enumerate(handle, start=1):
                    line = _Line(position, offset, number)
                    offset += len(raw)
                    if not raw.strip():
                        continue
                    where = f"{file.name}:{number}"
                    try:
                        resource = read_json(raw, where)
                    except InputError as error:
                        problems.append((where, error.reason if error.path == where else str(error)))
                        continue
                    if not isinstance(resource, Mapping):
                        problems.append((where, "expected a FHIR resource (a JSON object)"))
                    elif resource.get("resourceType") == "Patient":
                        patient = resource.get("id")
                        if not isinstance(patient, str) or patient in seen:
                            problems.append((where, f"a Patient with no id, or a repeated id ({patient!r})"))
                        else:
                            seen.add(patient)
                            patients.append((patient, line))
                    else:
                        patient = _patient_of(resource)
                        if patient is None:  # shared: a Medication, an Organization, ...
                            shared[f"{resource.get('resourceType')}/{resource.get('id')}"] = line
                        else:
                            lines.setdefault(patient, []).append(line)
                            medication = resource.get("medicationReference")
                            ref = medication.get("reference") if isinstance(medication, Mapping) else None
                            if isinstance(ref, str) and ref.startswith("Medication/"):
                                wanted.setdefault(patient, set()).add(ref)
        for patient, owned in sorted(lines.items()):
            if patient not in seen:
                first = owned[0]
                problems.append(
                    (
                        f"{files[first.file].name}:{first.number}",
                        f"{len(owned)} resources for Patient/{patient}, who is in no Patient file",
                    )
                )
        for patient, refs in wanted.items():  # unresolved ones become data-quality entries
            lines[patient].extend(shared[ref] for ref in sorted(refs) if ref in shared)
        return _Index(files, tuple(patients), {k: tuple(v) for k, v in lines.items()}, tuple(problems))

    def count(self, path: Path) -> int | None:
        """Patients, plus lines that belong to none (each becomes an error record)."""
        index = self._index(path)
        return len(index.patients) + len(index.problems)

    def items(self, path: Path) -> Iterator[Item]:
        """One item per patient (its Patient line and every line referring to it).

        Then one item per line no patient can take (decoded as an error record).
        """
        index = self._index(path)
        handles = [file.open("rb") for file in index.files]
        try:
            number = 0
            for patient, line in index.patients:
                texts = [self._read(handles, line)]
                texts += [self._read(handles, other) for other in index.lines.get(patient, ())]
                source = f"{index.files[line.file].name}:{line.number} (Patient/{patient})"
                yield Item(number, source, ("patient", patient, tuple(texts)))
                number += 1
            for where, reason in index.problems:
                yield Item(number, where, ("problem", where, reason))
                number += 1
        finally:
            for handle in handles:
                handle.close()

    @staticmethod
    def _read(handles: list[Any], line: _Line) -> bytes:
        handle = handles[line.file]
        handle.seek(line.offset)
        data: bytes = handle.readline()
        return data

    def decode(self, payload: Any) -> CaseData:
        """Read one patient's resources with the bundled value sets."""
        return self.decode_with_engine(payload, None)

    def decode_with_engine(self, payload: Any, engine: Engine | None) -> CaseData:
        """Read one patient's resources with ``engine``'s value sets (the batch worker's engine)."""
        kind, key, data = payload
        if kind == "problem":
            raise InputError(key, data)
        resources = [_json(text, f"Patient/{key}") for text in data]
        return _read_record(resources, key, engine)
