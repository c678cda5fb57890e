"""What an engine returns before it is turned into an Assessment.

Both engines (durable_rules and the reference evaluator) produce a :class:`RawResult`;
``engine/assemble.py`` turns it into an Assessment. Comparing two RawResults is the
differential test between the engines.
"""

from __future__ import annotations

from typing import NamedTuple

import attrs

__all__ = ["RawFiring", "RawResult", "flag_fact", "flag_id"]

_FLAG_PREFIX = "flag:"


def flag_id(name: str) -> str:
    """The fact id of a derived flag."""
    return f"{_FLAG_PREFIX}{name}"


def flag_fact(name: str) -> dict[str, str]:
    """The fact that stands for a derived flag."""
    return {"t": "flag", "id": flag_id(name), "name": name}


class RawFiring(NamedTuple):
    """A rule fired on these facts (input fact ids and ``flag:NAME`` ids, sorted).

    A named tuple (an engine makes many per assessment): equal, hashed and ordered as
    the pair ``(rule_id, facts)``, and built from such a pair with ``RawFiring._make``.
    """

    rule_id: str
    facts: tuple[str, ...]


@attrs.frozen
class RawResult:
    """The distinct firings of one evaluation, sorted."""

    firings: tuple[RawFiring, ...]

    @classmethod
    def of(cls, firings: set[RawFiring]) -> RawResult:
        """Build from an unordered set of firings (sorted by rule id, then fact ids)."""
        return cls(tuple(sorted(firings)))
