"""The engine boundary (``engine/backend.py``): any Backend object runs behind an Engine."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import pytest

from ketacds import Engine, VerificationError, load_case_file
from ketacds.engine.backend import (
    BACKENDS,
    Backend,
    CapacityProblem,
    Program,
    backend_named,
    register_backend,
)
from ketacds.engine.backends.durable import DurableBackend, DurableProgram
from ketacds.engine.backends.reference import REFERENCE_ENGINE_NAME, ReferenceBackend, ReferenceProgram
from ketacds.engine.raw import RawResult
from ketacds.errors import KetacdsError, UnknownBackendError
from ketacds.ruleset import checks
from ketacds.ruleset.ir import Rule
from ketacds.ruleset.lint import lint_checked
from ketacds.ruleset.load import load_checked
from support import EXAMPLES


class TinyProgram:
    """Runs the reference evaluator, and can be told to forget every firing."""

    def __init__(self, inner: ReferenceProgram, *, forget: bool) -> None:
        self.inner = inner
        self.forget = forget
        self.runs = 0
        self.closed = False

    def run(
        self, facts: Sequence[Mapping[str, Any]], *, action_hook: Callable[[str], None] | None = None
    ) -> RawResult:
        self.runs += 1
        return RawResult(()) if self.forget else self.inner.run(facts)

    @property
    def usable(self) -> bool:
        return not self.closed

    def close(self) -> None:
        self.closed = True


class TinyBackend:
    """The smallest backend an integrator could write: no base class, four members."""

    name = "tiny"
    engine_name = "tiny engine 1.0"

    def __init__(self, *, forget: bool = False, problems: Sequence[CapacityProblem] = ()) -> None:
        self.forget = forget
        self.problems = tuple(problems)
        self.compiled: list[TinyProgram] = []

    def capacity(self, rules: Sequence[Rule], route: str, jurisdiction: str) -> Sequence[CapacityProblem]:
        return self.problems

    def compile(self, name: str, rules: Sequence[Rule], strata: Mapping[str, int]) -> TinyProgram:
        program = TinyProgram(ReferenceProgram(name, rules, strata), forget=self.forget)
        self.compiled.append(program)
        return program


@pytest.fixture
def case():
    return load_case_file(EXAMPLES / "02-trd-iv-ketamine-obese.yaml")


def test_both_backends_and_a_custom_one_meet_the_protocol():
    assert isinstance(DurableBackend(), Backend)
    assert isinstance(ReferenceBackend(), Backend)
    assert isinstance(TinyBackend(), Backend)
    assert isinstance(ReferenceBackend().compile("p", (), {}), Program)


def test_a_custom_backend_object_runs_behind_an_engine(engine, case):
    tiny = TinyBackend()
    with Engine.from_ruleset(engine.ruleset, backend=tiny) as custom:
        assessment = custom.assess(*case)
        expected = engine.assess(*case, backend="reference")

        assert "tiny engine 1.0" == assessment.provenance.engine
        assert attrs.evolve(expected.provenance, engine="tiny engine 1.0") == assessment.provenance
        assert expected.findings == assessment.findings
        assert expected.status == assessment.status
        assert [1] == [program.runs for program in tiny.compiled]
    assert all(program.closed for program in tiny.compiled)


def test_the_default_backend_is_durable_and_the_reference_can_be_chosen(engine, case):
    assert "durable" == engine.backend.name
    with Engine.from_ruleset(engine.ruleset, backend="reference") as reference:
        assert REFERENCE_ENGINE_NAME == reference.assess(*case).provenance.engine
        assert engine.evaluate(*case)[1] == reference.evaluate(*case)[1]


def test_an_unknown_backend_name_is_refused_naming_the_known_ones(engine):
    with pytest.raises(UnknownBackendError, match=r"unknown engine backend 'drools'.*durable, reference"):
        Engine.from_ruleset(engine.ruleset, backend="drools")
    with pytest.raises(KetacdsError):
        backend_named("drools")


def test_a_registered_backend_is_chosen_by_name(engine, case, monkeypatch):
    monkeypatch.setattr("ketacds.engine.backend.BACKENDS", dict(BACKENDS))  # the registration is undone
    register_backend("tiny", TinyBackend)

    with Engine.from_ruleset(engine.ruleset, backend="tiny") as custom:
        assert "tiny engine 1.0" == custom.assess(*case).provenance.engine


def test_warm_compiles_once_and_returns_the_program(engine):
    program = engine.warm("ketamine-iv", "US")

    assert isinstance(program, DurableProgram)
    assert program is engine.warm("ketamine-iv", "US")
    assert program.definition  # the compiled durable ruleset, for the golden files


def test_warm_compiles_with_the_engines_backend(engine):
    tiny = TinyBackend()
    with Engine.from_ruleset(engine.ruleset, backend=tiny) as custom:
        program = custom.warm("ketamine-iv", "US")
        assert [program] == tiny.compiled
        assert custom.usable
    assert program.closed  # closed with the engine


def test_the_shadow_check_compares_a_custom_backend_with_the_reference(engine, case):
    forgetful = Engine.from_ruleset(engine.ruleset, backend=TinyBackend(forget=True), verify_sample=1.0)

    with pytest.raises(VerificationError, match=r"tiny only: none; reference only: KCDS-"):
        forgetful.assess(*case)


def test_the_linter_reports_the_backends_capacity_problems():
    capacity_codes = {checks.PROGRAM_TOO_LARGE, checks.FACT_TYPE_OVERLOADED, checks.FACT_TOO_WIDE}
    problem = CapacityProblem(checks.PROGRAM_TOO_LARGE, "too big for tiny")
    checked = load_checked()
    report = lint_checked(checked, backend=TinyBackend(problems=[problem]))

    found = [f for f in report.findings if f.code in capacity_codes]
    assert found
    assert {(checks.PROGRAM_TOO_LARGE, "manifest.yaml", "too big for tiny")} == {
        (f.code, f.file, f.message) for f in found
    }
    assert not [f for f in lint_checked(checked, backend="reference").findings if f.code in capacity_codes]
