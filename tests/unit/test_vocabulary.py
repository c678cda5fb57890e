"""One vocabulary: ketacds.vocabulary says what the manifest and the JSON Schemas say."""

from __future__ import annotations

import json
from typing import Any

from ketacds import vocabulary
from ketacds.adapters.cds_hooks import INDICATORS, ROUTE_LABELS
from ketacds.ruleset.load import load_ruleset, schema
from ketacds.vocabulary import CATEGORIES, CONFIDENCES, ROUTES, SEVERITIES, STATUSES
from support import ROOT

SRC = ROOT / "src" / "ketacds"


def _json(relative: str) -> Any:
    return json.loads((SRC / relative).read_text(encoding="utf-8"))


def test_the_bundled_manifest_declares_the_routes_statuses_and_severities():
    """Routes, status levels (in order) and severities are the bundled manifest's."""
    ruleset = load_ruleset()

    assert ruleset.routes == ROUTES
    assert tuple(level.name for level in ruleset.status.levels) == STATUSES
    assert sorted(name for name, _ in ruleset.status.severities) == sorted(SEVERITIES)


def test_the_rule_schema_enums_are_the_categories_and_confidences():
    """The rule schema may keep its enums, but they are the vocabulary's."""
    rule = schema("rules")["$defs"]["rule"]["properties"]

    assert tuple(rule["category"]["enum"]) == CATEGORIES
    assert tuple(rule["confidence"]["enum"]) == CONFIDENCES


def test_the_fhir_and_scenario_schemas_name_the_routes():
    """The FHIR mapping schema's route enum and the scenario schema's description list the routes."""
    fhir = _json("terminology/schemas/fhir-r4.schema.json")
    planned = fhir["properties"]["planned"]["items"]["properties"]["route"]
    scenario = _json("scenarios/schemas/scenario.schema.json")
    descriptions = [
        value["description"]
        for value in _walk(scenario)
        if isinstance(value, dict)
        and isinstance(value.get("description"), str)
        and value["description"].startswith("one of: ketamine")
    ]

    assert tuple(planned["enum"]) == ROUTES
    assert descriptions == ["one of: " + ", ".join(ROUTES)]


def test_every_status_and_route_has_a_card_word():
    """Each status level has an indicator and each route a card label."""
    assert tuple(INDICATORS) == STATUSES
    assert set(ROUTE_LABELS) == set(ROUTES)
    assert set(vocabulary.INDICATOR_RANK) == set(INDICATORS.values()) | {"warning"}


def test_the_constants_are_the_words():
    """Each constant is its word, and every exported name exists."""
    assert (vocabulary.KETAMINE_IV, vocabulary.ESKETAMINE_NASAL) == ("ketamine-iv", "esketamine-nasal")
    assert vocabulary.NO_CONCERNS_FOUND == STATUSES[-1] == "no-concerns-found"
    assert (vocabulary.DATA_GAP, vocabulary.UNCONFIRMED) == ("data-gap", "M")
    assert all(hasattr(vocabulary, name) for name in vocabulary.__all__)


def _walk(node: Any) -> list[Any]:
    found = [node]
    if isinstance(node, dict):
        for value in node.values():
            found += _walk(value)
    elif isinstance(node, list):
        for value in node:
            found += _walk(value)
    return found
