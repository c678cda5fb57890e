"""durable_rules' capacity limits: measured against the engine, and counted alike by engine and linter."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ketacds.engine.durable_backend import DurableProgram
from ketacds.errors import EvaluationError
from ketacds.ruleset import scope
from ketacds.ruleset.capacity import MAX_FACT_PROPERTIES, RESERVED_PROPERTIES, fact_properties, program_load
from ketacds.ruleset.load import load_ruleset
from ketacds.ruleset.plan import stratify
from rulesets_fixtures import RULES


@pytest.fixture(scope="module")
def program():
    ruleset = load_ruleset(RULES)
    rules = scope.rules_for(ruleset, "esketamine-nasal", "US")
    compiled = DurableProgram("capacity_probe", rules, stratify(ruleset.rules))
    yield compiled
    compiled.close()


def _patient(extra: int) -> dict[str, object]:
    fact: dict[str, object] = {"t": "patient", "id": "p"}
    fact.update({f"p{n}": n for n in range(extra)})
    return fact


def test_the_widest_fact_allowed_is_accepted(program):
    """A fact of MAX_FACT_PROPERTIES properties (t, id and sid included) is asserted."""
    extra = MAX_FACT_PROPERTIES - len(RESERVED_PROPERTIES)

    program.run([_patient(extra)])


def test_one_property_more_is_refused_before_durable_rules_sees_it(program):
    """A wider fact is an EvaluationError from our driver (durable would reject it, then crash)."""
    with pytest.raises(EvaluationError, match="durable_rules accepts at most 254"):
        program.run([_patient(MAX_FACT_PROPERTIES - len(RESERVED_PROPERTIES) + 1)])

    program.run([_patient(1)])  # the program is still usable


_PROBE = """
import json, durable_rules_engine as d
handle = d.create_ruleset("probe", json.dumps({"r": {"all": [{"a": {"t": "x"}}]}}))
for total in (%d, %d):
    fact = {"t": "x", "id": str(total), "sid": "1"}
    fact.update({"p%%d" %% n: n for n in range(total - 3)})
    try:
        print(total, d.assert_fact(handle, json.dumps(fact))[0])
    except Exception as error:
        print(total, "refused", error)
"""


def test_the_limit_is_durable_rules_own():
    """durable_rules itself accepts a fact of 254 properties and refuses one of 255 (error 302)."""
    code = _PROBE % (MAX_FACT_PROPERTIES, MAX_FACT_PROPERTIES + 1)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)

    lines = result.stdout.splitlines()
    assert f"{MAX_FACT_PROPERTIES} 0" == lines[0]
    assert lines[1].startswith(f"{MAX_FACT_PROPERTIES + 1} refused")
    assert "302" in lines[1]


@pytest.mark.parametrize(("route", "jurisdiction"), [("esketamine-nasal", "US"), ("ketamine-iv", "CA")])
def test_the_linter_counts_the_durable_rules_the_engine_compiles(route, jurisdiction):
    """program_load counts exactly the durable rules of the compiled program."""
    ruleset = load_ruleset(RULES)
    rules = scope.rules_for(ruleset, route, jurisdiction)
    compiled = DurableProgram(f"count_{route}_{jurisdiction}", rules, stratify(ruleset.rules))
    try:
        assert len(compiled.definition) == program_load(rules).durable_rules
    finally:
        compiled.close()


def test_the_vocabulary_fits_in_a_durable_fact():
    """Every fact type of the vocabulary fits durable_rules' limit on properties."""
    assert all(count <= MAX_FACT_PROPERTIES for count in fact_properties().values())
