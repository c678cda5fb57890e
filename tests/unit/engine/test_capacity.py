"""durable_rules' capacity limits: measured against the engine, and counted alike by engine and linter."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ketacds.engine.backends.durable import DurableProgram
from ketacds.engine.backends.durable.capacity import MAX_FACT_PROPERTIES, RESERVED_PROPERTIES, program_load
from ketacds.ruleset import scope
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


def test_a_wide_input_fact_never_reaches_durable_rules(program):
    """Only the fields some durable test reads are asserted, so extra fields cost nothing."""
    wide = _patient(2 * MAX_FACT_PROPERTIES)

    assert program.run([wide]) == program.run([_patient(0)])
    assert len(program.encode("0", wide, "1") or {}) <= program_load(program_rules()).widths["patient"]


@pytest.mark.parametrize(("route", "jurisdiction"), [("esketamine-nasal", "US"), ("ketamine-iv", "CA")])
def test_program_load_counts_the_widest_fact_the_engine_asserts(route, jurisdiction):
    """A fact that passes every constant test and value set a program reads is encoded as wide as counted."""
    ruleset = load_ruleset(RULES)
    rules = scope.rules_for(ruleset, route, jurisdiction)
    compiled = DurableProgram(f"width_{route}_{jurisdiction}", rules, stratify(ruleset.rules))
    try:
        widths = program_load(rules).widths
        encoder = compiled._encoder
        for kind in list(encoder._plain):
            # Every test outcome true (no real fact passes them all: each is one property).
            names = compiled.test_checks(kind)
            encoder._plain[kind] = (("t", tuple((name, lambda _fact: True) for name in names), ()),)
            fact: dict[str, object] = {"t": kind, "id": "x"}
            for codes in encoder._codes_of[kind]:
                prefix = f"{codes}:"
                members = encoder._members_of[kind]
                fact[codes] = [m.removeprefix(prefix) for m in members if m.startswith(prefix)]
            assert len(compiled.encode("0", fact, "1") or {}) == widths[kind], kind
        absent = {"id": "absent", "sid": "1", "t": "absent"} | dict.fromkeys(compiled.absent_patterns, True)
        assert len(absent) == widths.get("absent", len(RESERVED_PROPERTIES))
    finally:
        compiled.close()


def program_rules():
    return scope.rules_for(load_ruleset(RULES), "esketamine-nasal", "US")


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


@pytest.mark.parametrize(("route", "jurisdiction"), [("esketamine-nasal", "US"), ("ketamine-iv", "CA")])
def test_the_bundled_programs_fit_in_a_durable_fact(route, jurisdiction):
    """Every fact the bundled programs assert fits durable_rules' limit on properties."""
    rules = scope.rules_for(load_ruleset(RULES), route, jurisdiction)

    assert all(width <= MAX_FACT_PROPERTIES for width in program_load(rules).widths.values())
