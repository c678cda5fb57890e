"""Batch input readers: NDJSON lines and directories of case files, and the plug-in registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ketacds import InputError
from ketacds.batch import readers as registry
from ketacds.batch.readers import CaseFilesReader, NdjsonReader, reader_for, register_reader
from support import EXAMPLES


class TestNdjson:
    def test_items_are_numbered_lines_and_blank_lines_are_skipped(self, tmp_path: Path):
        """Each non-blank line is one item, numbered from 0, its source naming the line."""
        path = tmp_path / "cases.ndjson"
        path.write_text('{"a": 1}\n\n   \n{"b": 2}\n', encoding="utf-8")
        reader = NdjsonReader()
        items = list(reader.items(path))

        assert [(0, "cases.ndjson:1"), (1, "cases.ndjson:4")] == [(i.index, i.source) for i in items]
        assert 2 == reader.count(path)

    def test_a_case_line_decodes_to_record_and_context(self):
        """A line in the `ketacds assess` shape gives the record and its own context data."""
        line = json.dumps({"patient": {"age_years": 40}, "context": {"route": "ketamine-iv"}}).encode()
        record, context = NdjsonReader().decode(line)

        assert (40, {"route": "ketamine-iv"}) == (record.patient.age_years, dict(context))

    @pytest.mark.parametrize(
        ("line", "reason"),
        [
            (b"{not json", "invalid JSON"),
            (b"[1, 2]", r"expected a case \(a mapping\), got list"),
            (b'{"patient": {}, "context": [1]}', "context: expected a mapping"),
            (b'{"patient": {"weight": "70 stone"}}', "patient.weight"),
        ],
    )
    def test_bad_lines_are_input_errors(self, line: bytes, reason: str):
        """Lines that are not cases raise InputError with a reason (never another error)."""
        with pytest.raises(InputError, match=reason):
            NdjsonReader().decode(line)


class TestCaseFiles:
    def test_a_directory_of_examples_reads_in_name_order(self):
        """Every YAML case in a directory is an item, in file-name order."""
        reader = CaseFilesReader()
        items = list(reader.items(EXAMPLES))
        record, context = reader.decode(items[0].payload)

        assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == [i.source for i in items]
        assert ("example-01", "esketamine-nasal") == (record.patient.id, context["route"])

    def test_json_files_and_broken_files(self, tmp_path: Path):
        """JSON case files are read; broken YAML or JSON files are input errors naming the line."""
        (tmp_path / "a.json").write_text('{"patient": {"sex": "male"}}', encoding="utf-8")
        (tmp_path / "b.json").write_text('{"patient": ', encoding="utf-8")
        (tmp_path / "c.yaml").write_text("patient: [unclosed\n", encoding="utf-8")
        (tmp_path / "d.yaml").write_bytes(b"\xff\xfe not utf-8")
        (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
        reader = CaseFilesReader()
        good, *bad = list(reader.items(tmp_path))

        assert "male" == reader.decode(good.payload)[0].patient.sex
        reasons = ("invalid JSON", "invalid YAML", r"not UTF-8 text \(byte 1\)")
        for item, reason in zip(bad, reasons, strict=True):
            with pytest.raises(InputError, match=reason):
                reader.decode(item.payload)


class TestRegistry:
    def test_the_reader_is_recognised_from_the_input(self, tmp_path: Path):
        """An .ndjson file gets the NDJSON reader, a directory of cases the case-files reader."""
        (tmp_path / "x.ndjson").write_text("{}\n", encoding="utf-8")

        assert "ndjson" == reader_for(tmp_path / "x.ndjson").name
        assert "case-files" == reader_for(EXAMPLES).name
        assert "ndjson" == reader_for(EXAMPLES, "ndjson").name

    @pytest.mark.parametrize(
        ("name", "reason"), [(None, "no reader recognises"), ("no-such-format", "unknown input")]
    )
    def test_unknown_inputs_are_input_errors(self, tmp_path: Path, name: str | None, reason: str):
        """An input no reader recognises, or an unknown format name, is an input error."""
        (tmp_path / "x.csv").write_text("a,b\n", encoding="utf-8")

        with pytest.raises(InputError, match=reason):
            reader_for(tmp_path / "x.csv", name)

    def test_a_missing_input_is_an_input_error(self, tmp_path: Path):
        """A path that does not exist is reported as such."""
        with pytest.raises(InputError, match="no such file"):
            reader_for(tmp_path / "nothing.ndjson")

    def test_registered_readers_are_tried_first(self, tmp_path: Path, monkeypatch):
        """A plug-in reader (e.g. FHIR Bulk Data) claims inputs before the built-in ones."""

        class Claims(NdjsonReader):
            name = "claims-everything"

            def detect(self, path: Path) -> bool:
                return True

        monkeypatch.setattr(registry, "_registered", [])
        register_reader(Claims())
        (tmp_path / "x.ndjson").write_text("{}\n", encoding="utf-8")

        assert "claims-everything" == reader_for(tmp_path / "x.ndjson").name

    def test_entry_points_are_loaded_once(self, monkeypatch):
        """Readers named in the ketacds.batch_readers entry-point group are registered (classes made)."""

        class Entry:
            name = "fake"

            def load(self):
                return NdjsonReader

        monkeypatch.setattr(registry, "_registered", [])
        monkeypatch.setattr(registry, "_plugins_loaded", False)
        monkeypatch.setattr(registry.metadata, "entry_points", lambda group: [Entry()])

        assert isinstance(registry.known_readers()[0], NdjsonReader)
        assert 5 == len(registry.known_readers())

    def test_something_that_is_not_a_reader_is_refused(self):
        """register_reader checks the Reader protocol."""
        with pytest.raises(TypeError, match="not a batch Reader"):
            register_reader(object())  # type: ignore[arg-type]
