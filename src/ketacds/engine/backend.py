"""The engine boundary: what a rule engine must do for :class:`~ketacds.engine.api.Engine`.

:class:`~ketacds.engine.api.Engine` loads the rules, builds the facts and assembles the
Assessment; a **backend** only decides which rules fire on which facts. A backend

* **checks capacity** (:meth:`Backend.capacity`): can it run these rules at all? The
  linter (``ketacds rules lint``) asks this for every (route, jurisdiction) program
  before anything is compiled, and reports each :class:`CapacityProblem` under its code;
* **compiles** (:meth:`Backend.compile`) the rules in scope for one route in one
  jurisdiction into a :class:`Program`, once per Engine;
* **runs** a program (:meth:`Program.run`) on one assessment's facts and returns the raw
  firings (:class:`~ketacds.engine.raw.RawResult`): every distinct (rule, facts) match,
  derived flags included;
* **closes** a program (:meth:`Program.close`) when the Engine is closed.

Three backends exist, registered by name (:func:`backend_named`):

* ``"durable"``: durable_rules, the production path and the engine of record
  (``engine/backends/durable/``);
* ``"reference"``: the reference evaluator, a direct interpreter of the rules and the
  oracle the other backends are tested against (``engine/backends/reference.py``);
* ``"compiled"``: each program's rules generated as one Python function, the
  reference's semantics without interpreting (``engine/backends/compiled.py``).

Any object with these methods is a backend (a :class:`typing.Protocol`, no base class to
inherit): ``Engine(backend=MyBackend())`` runs it, and ``verify_sample`` checks it
against the reference evaluator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from ketacds.engine.raw import RawResult
from ketacds.errors import UnknownBackendError
from ketacds.ruleset.ir import Rule

__all__ = [
    "BACKENDS",
    "Backend",
    "CapacityProblem",
    "Program",
    "backend_named",
    "register_backend",
]


@attrs.frozen
class CapacityProblem:
    """One limit of the backend that a program would exceed: a lint code and what to do."""

    code: str
    message: str


@runtime_checkable
class Program(Protocol):
    """The rules for one route in one jurisdiction, compiled by a backend.

    An Engine shares one program between threads: a program serialises its calls (or
    needs no serialising).
    """

    def run(
        self, facts: Sequence[Mapping[str, Any]], *, action_hook: Callable[[str], None] | None = None
    ) -> RawResult:
        """Fire every rule on ``facts`` (dicts with ``t`` and a unique ``id``) and return the firings.

        ``action_hook`` (tests only) is called with the rule id at every firing. Raises
        :class:`~ketacds.errors.EvaluationError` when the engine fails; no partial result.
        """
        ...

    @property
    def usable(self) -> bool:
        """False once a failure has left the program unable to run (it then refuses work)."""
        ...

    def close(self) -> None:
        """Free what the program holds; it is not used afterwards."""
        ...


@runtime_checkable
class Backend(Protocol):
    """A rule engine behind :class:`~ketacds.engine.api.Engine` (see the module notes).

    Attributes:
        name: the name it is registered and chosen by (``"durable"``).
        engine_name: the engine named on every Assessment's provenance.
    """

    name: str
    engine_name: str

    def capacity(self, rules: Sequence[Rule], route: str, jurisdiction: str) -> Sequence[CapacityProblem]:
        """The limits the program of ``rules`` (``route`` in ``jurisdiction``) would exceed; empty if none."""
        ...

    def compile(self, name: str, rules: Sequence[Rule], strata: Mapping[str, int]) -> Program:
        """Compile ``rules`` into a program called ``name``.

        ``strata`` gives each rule its stratum (``ruleset.plan.stratify``): a rule that
        reads a flag under ``not`` may fire only once every producer of the flag has.

        Raises:
            EngineCapacityError: the rules exceed a limit of this backend.
        """
        ...


def _durable() -> Backend:
    from ketacds.engine.backends.durable import DurableBackend  # imported on first use: no cycle

    return DurableBackend()


def _reference() -> Backend:
    from ketacds.engine.backends.reference import ReferenceBackend  # imported on first use: no cycle

    return ReferenceBackend()


def _compiled() -> Backend:
    from ketacds.engine.backends.compiled import CompiledBackend  # imported on first use: no cycle

    return CompiledBackend()


#: The backends known by name, each with the function that makes one.
BACKENDS: dict[str, Callable[[], Backend]] = {
    "durable": _durable,
    "reference": _reference,
    "compiled": _compiled,
}


def register_backend(name: str, factory: Callable[[], Backend]) -> None:
    """Make ``factory()`` the backend that ``Engine(backend=name)`` and ``backend_named(name)`` use."""
    BACKENDS[name] = factory


def backend_named(name: str) -> Backend:
    """A new backend of the registered ``name``.

    Raises:
        UnknownBackendError: no backend is registered under ``name`` (the message lists those that are).
    """
    factory = BACKENDS.get(name)
    if factory is None:
        raise UnknownBackendError(
            f"unknown engine backend {name!r}; the known backends are {', '.join(sorted(BACKENDS))}"
        )
    return factory()
