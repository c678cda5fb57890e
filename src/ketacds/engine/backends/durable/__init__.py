"""The durable_rules backend: everything that knows durable_rules is in this package.

* ``program.py``: :class:`DurableProgram`, the compiled rules of one program and the
  driver of durable_rules' C engine (the only importer of durable_rules);
* ``capacity.py``: durable_rules' hard limits, how much of them a set of rules uses
  (for the compiler and the linter alike), and the names of the encoded properties;
* ``encoding.py``: facts encoded for one program, as the JSON text durable_rules reads;
* ``activation.py``: the compiled alternatives, and reading an activation's text.

:class:`DurableBackend` is what ``Engine(backend="durable")`` (the default) uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ketacds.engine.backend import CapacityProblem
from ketacds.engine.backends.durable.capacity import lint_problems
from ketacds.engine.backends.durable.program import ENGINE_NAME, DurableProgram
from ketacds.ruleset.ir import Rule

__all__ = ["ENGINE_NAME", "DurableBackend", "DurableProgram"]


class DurableBackend:
    """The durable_rules backend (a :class:`~ketacds.engine.backend.Backend`): ketacds' own driver of 2.0.28.

    :meth:`compile` returns a :class:`DurableProgram`; its ``definition`` is the durable
    ruleset as compiled (what ``tests/golden/`` shows), for tests and tools that inspect it
    (``engine.program(route, jurisdiction).definition``).
    """

    name = "durable"
    engine_name = ENGINE_NAME

    def capacity(self, rules: Sequence[Rule], route: str, jurisdiction: str) -> tuple[CapacityProblem, ...]:
        """durable_rules' limits that the program would exceed (lint codes KL040-KL042)."""
        return lint_problems(rules, route, jurisdiction)

    def compile(self, name: str, rules: Sequence[Rule], strata: Mapping[str, int]) -> DurableProgram:
        """Compile ``rules`` into one durable ruleset (raises EngineCapacityError beyond a limit)."""
        return DurableProgram(name, rules, strata)

    def __repr__(self) -> str:
        return f"<DurableBackend {self.engine_name}>"
