"""ketacds.yamldoc: one reader for YAML files checked against a JSON Schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from ketacds.errors import RulesetError, ScenarioError
from ketacds.yamldoc import Document, Schema, friendly_problem, schema_problem, suggest

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "size": {"type": "integer", "minimum": 0}},
    "required": ["name"],
    "additionalProperties": False,
}


def test_suggest_names_the_closest_known_name_or_none():
    assert "severity" == suggest("severty", ["routes", "severity", "title"])
    assert suggest("zzz", ["routes", "severity"]) is None


def test_a_document_places_an_error_at_the_line_of_the_nearest_known_path():
    doc = Document.from_bytes(b"name: x\nsize:\n  - 1\n", "f.yaml", RulesetError, code="KL001")

    error = doc.error(("size", 0, "deeper"), "bad", "good", code="KL002")

    assert "f.yaml:3: bad (did you mean 'good'?)" == str(error)
    assert "KL002" == error.code


def test_reading_problems_are_the_documents_error_type(tmp_path: Path):
    with pytest.raises(ScenarioError, match=r"^f.yaml:2: "):
        Document.from_bytes(b"a: 1\na: 2\n", "f.yaml", ScenarioError)
    with pytest.raises(RulesetError, match=r"^f.yaml:2: not UTF-8 text \(byte 6\)$"):
        Document.from_bytes(b"a: 1\n\xff\n", "f.yaml", RulesetError)
    with pytest.raises(RulesetError, match=r"^missing.yaml: cannot read: "):
        Document.read(tmp_path / "missing.yaml", "missing.yaml", RulesetError)


def test_schema_problems_in_both_wordings():
    doc = Document.from_bytes(b"name: x\nsiez: 1\n", "f.yaml", RulesetError)
    (error,) = doc.schema_errors(Schema(SCHEMA))

    author = schema_problem(error)
    assert (("siez",), "(top level): unknown key 'siez'", "size", "siez") == (
        author.path,
        author.reason,
        author.suggestion,
        author.unknown_key,
    )
    assert schema_problem(error, unknown_keys=False).reason.startswith("(top level): Additional properties")
    pharmacist = friendly_problem(error, pattern="a name")
    assert (("siez",), "unknown key 'siez'", "size") == (
        pharmacist.path,
        pharmacist.reason,
        pharmacist.suggestion,
    )


def test_schema_errors_are_cached_by_content_and_schema_identity():
    text = b"name: 1\n"
    first = Document.from_bytes(text, "a.yaml", RulesetError)
    second = Document.from_bytes(text, "b.yaml", RulesetError)
    strict, loose = Schema(SCHEMA), Schema({"type": "object"})

    assert first.schema_errors(strict) is second.schema_errors(Schema(SCHEMA))
    assert () == second.schema_errors(loose)
    second.data["name"] = "now text"  # the caller's copy: the cached errors do not see it
    assert "1 is not of type 'string'" == first.schema_errors(strict)[0].message
