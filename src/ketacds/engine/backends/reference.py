"""The reference evaluator (:mod:`ketacds.engine.reference`) as a :class:`~ketacds.engine.backend.Backend`.

Nothing is compiled: a program keeps its rules and strata and interprets the condition
trees at every run. It has no capacity limits. ``Engine(backend="reference")`` runs it
alone; ``Engine(verify_sample=...)`` runs it beside another backend as the oracle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ketacds.engine.backend import CapacityProblem
from ketacds.engine.raw import RawResult
from ketacds.engine.reference import evaluate
from ketacds.errors import EvaluationError, InputError
from ketacds.ruleset.ir import Rule

__all__ = ["REFERENCE_ENGINE_NAME", "ReferenceBackend", "ReferenceProgram"]

#: The engine named on an Assessment the reference evaluator produced.
REFERENCE_ENGINE_NAME = "ketacds reference evaluator"


class ReferenceProgram:
    """The rules of one program and their strata, evaluated afresh at every run (no state)."""

    def __init__(self, name: str, rules: Sequence[Rule], strata: Mapping[str, int]) -> None:
        self.name = name
        self.rules = tuple(rules)
        self.strata = strata

    def run(
        self, facts: Sequence[Mapping[str, Any]], *, action_hook: Callable[[str], None] | None = None
    ) -> RawResult:
        """Every distinct firing of the rules on ``facts``.

        ``action_hook`` is not called (the evaluator has no actions). Any failure is an
        :class:`~ketacds.errors.EvaluationError` ("the reference evaluator failed: ...").
        """
        try:
            return evaluate(self.rules, self.strata, facts)
        except (InputError, EvaluationError):
            raise
        except Exception as error:
            raise EvaluationError(
                f"the reference evaluator failed: {type(error).__name__}: {error}"
            ) from error

    @property
    def usable(self) -> bool:
        """Always true: nothing is kept between runs that a failure could spoil."""
        return True

    def close(self) -> None:
        """Nothing to free."""


class ReferenceBackend:
    """The reference evaluator, a direct interpreter of the rules: slow, simple, the oracle."""

    name = "reference"
    engine_name = REFERENCE_ENGINE_NAME

    def capacity(self, rules: Sequence[Rule], route: str, jurisdiction: str) -> tuple[CapacityProblem, ...]:
        """The reference evaluator has no limits: always empty."""
        return ()

    def compile(self, name: str, rules: Sequence[Rule], strata: Mapping[str, int]) -> ReferenceProgram:
        """Keep ``rules`` and ``strata`` for :meth:`ReferenceProgram.run`."""
        return ReferenceProgram(name, rules, strata)

    def __repr__(self) -> str:
        return f"<ReferenceBackend {self.engine_name}>"
