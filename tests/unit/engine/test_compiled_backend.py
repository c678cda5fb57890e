"""The compiled backend (``engine/backends/compiled.py``): the durable backend's Assessments,
but for the engine its provenance names."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from ketacds import Engine, KetacdsError
from ketacds.engine.backend import backend_named
from ketacds.engine.backends.compiled import COMPILED_ENGINE_NAME, CompiledBackend, CompiledProgram
from ketacds.engine.backends.durable import ENGINE_NAME as DURABLE_ENGINE_NAME
from ketacds.engine.raw import RawFiring
from ketacds.models.results import Assessment
from ketacds.ruleset import ir
from ketacds.ruleset.ir import All, Not, Pattern, Rule
from ketacds.scenarios.load import find_scenario_files, load_scenario_file

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="module")
def engines():
    durable, compiled = Engine(), Engine(backend="compiled")
    yield durable, compiled
    durable.close()
    compiled.close()


def _outcome(engine: Engine, record, context) -> Assessment | str:
    try:
        return engine.assess(record, context)
    except KetacdsError as error:
        return f"{type(error).__name__}: {error}"


def test_every_scenario_gives_the_durable_assessment(engines):
    """Every scenario of tests/scenarios: the same Assessment or refusal, the engine name apart."""
    durable, compiled = engines
    count = 0
    for path in find_scenario_files([SCENARIOS]):
        for scenario in load_scenario_file(path).scenarios:
            expected = _outcome(durable, scenario.record, scenario.context)
            got = _outcome(compiled, scenario.record, scenario.context)
            if isinstance(got, Assessment):
                assert got.provenance.engine == COMPILED_ENGINE_NAME
                assert isinstance(expected, Assessment)
                assert expected.provenance.engine == DURABLE_ENGINE_NAME
                got = attrs.evolve(got, provenance=attrs.evolve(got.provenance, engine=DURABLE_ENGINE_NAME))
                assert got.to_json() == expected.to_json(), f"{path.name}:{scenario.line}"
            else:
                assert got == expected, f"{path.name}:{scenario.line}"
            count += 1
    assert count > 100


def test_compiled_is_a_registered_backend():
    backend = backend_named("compiled")

    assert isinstance(backend, CompiledBackend)
    assert (backend.name, backend.engine_name) == ("compiled", COMPILED_ENGINE_NAME)
    assert backend.capacity((), "ketamine-iv", "US") == ()


def _rule(rule_id: str, when, flags: tuple[str, ...] = ()) -> Rule:
    return Rule(
        id=rule_id,
        title=rule_id,
        category="interaction",
        severity="info",
        routes=("ketamine-iv",),
        jurisdictions=("any",),
        when=when,
        confidence="R",
        evidence=(),
        rationale="test",
        flags=flags,
    )


def test_strata_negation_and_distinct_bindings():
    """A flag derived in stratum 1 is complete before a rule in stratum 2 reads its absence."""
    rules = (
        _rule("A", Pattern("medication", (ir.Test("drug", "eq", "x"),), alias="m"), flags=("fx",)),
        _rule("B", Not(Pattern("flag", (ir.Test("name", "eq", "fx"),)))),
        _rule("C", All((Pattern("medication", alias="m1"), Pattern("medication", alias="m2")))),
    )
    program = CompiledProgram("t", rules, {"A": 1, "B": 2, "C": 1})
    facts = [{"t": "medication", "id": "m:1", "drug": "x"}, {"t": "medication", "id": "m:2", "drug": "y"}]

    fired = program.run(facts).firings

    assert RawFiring("A", ("m:1",)) in fired
    assert not any(f.rule_id == "B" for f in fired)
    assert RawFiring("C", ("m:1", "m:2")) in fired
    assert not any(f.rule_id == "C" and len(f.facts) == 1 for f in fired)
    assert program.run(facts[1:]).firings[0] == RawFiring("B", ())


def test_the_generated_source_holds_no_input_and_no_builtins_beyond_its_needs():
    """The source is made from the rules alone; record text is data, never code."""
    rules = (_rule("A", Pattern("medication", (ir.Test("drug", "eq", "x"),))),)
    program = CompiledProgram("t", rules, {"A": 1})
    evil = {"t": "medication", "id": "__import__('os').system('false')", "drug": "x"}

    assert program.run([evil]).firings == (RawFiring("A", (evil["id"],)),)
    assert "__import__" not in program.source
    assert program.usable


def test_a_failure_is_an_evaluation_error():
    from ketacds.errors import EvaluationError

    program = CompiledProgram("t", (_rule("A", Pattern("medication")),), {"A": 1})
    with pytest.raises(EvaluationError, match="the compiled backend failed"):
        program.run([{"t": "medication"}])  # no id
