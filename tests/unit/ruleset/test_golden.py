"""Golden files: the compiled forms an auditor diffs next to the YAML.

``tests/golden/`` holds the canonical form of the bundled ruleset and the durable_rules
JSON of two programs. A change to clinical logic shows up here as a reviewable diff;
rewrite them with ``make golden`` (``pytest --update-golden``).
"""

from __future__ import annotations

import json

import pytest

from ketacds.ruleset.ir import canonical
from support import GOLDEN

PROGRAMS = [("esketamine-nasal", "US"), ("ketamine-iv", "US")]


def _check(request: pytest.FixtureRequest, name: str, data: object) -> None:
    path = GOLDEN / name
    text = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if request.config.getoption("--update-golden"):
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text, f"{name} is stale: run `make golden` and review the diff"


def test_canonical_form(engine, request):
    """The canonical form of the bundled ruleset equals the committed golden file."""
    _check(request, "ruleset.canonical.json", {"digest": engine.digest, "ruleset": canonical(engine.ruleset)})


@pytest.mark.parametrize(("route", "jurisdiction"), PROGRAMS)
def test_durable_program(engine, request, route, jurisdiction):
    """The durable_rules JSON of a program equals the committed golden file."""
    definition = engine.warm(route, jurisdiction).definition
    _check(request, f"durable.{route}.{jurisdiction}.json", definition)


def test_rule_counts_page(engine, request):
    """docs/rule-counts.md equals the counts of the bundled rules."""
    from ketacds.ruleset.stats import rule_counts_markdown
    from support import ROOT

    path = ROOT / "docs" / "rule-counts.md"
    text = rule_counts_markdown(engine.ruleset)
    if request.config.getoption("--update-golden"):
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text, "docs/rule-counts.md is stale: run `make golden`"
