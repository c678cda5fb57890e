"""What an engine returns before it is turned into an Assessment.

Both engines (durable_rules and the reference evaluator) produce a :class:`RawResult`;
``engine/assemble.py`` turns it into an Assessment. Comparing two RawResults is the
differential test between the engines.
"""

from __future__ import annotations

import attrs

__all__ = ["RawFiring", "RawResult", "flag_fact", "flag_id"]

_FLAG_PREFIX = "flag:"


def flag_id(name: str) -> str:
    """The fact id of a derived flag."""
    return f"{_FLAG_PREFIX}{name}"


def flag_fact(name: str) -> dict[str, str]:
    """The fact that stands for a derived flag."""
    return {"t": "flag", "id": flag_id(name), "name": name}


@attrs.frozen(order=True)
class RawFiring:
    """A rule fired on these facts (input fact ids and ``flag:NAME`` ids, sorted)."""

    rule_id: str
    facts: tuple[str, ...]


@attrs.frozen
class RawResult:
    """The distinct firings of one evaluation, sorted."""

    firings: tuple[RawFiring, ...]

    @classmethod
    def of(cls, firings: set[RawFiring]) -> RawResult:
        """Build from an unordered set of firings."""
        # Sorting by an explicit key is the same order as attrs' generated comparison
        # (rule_id, then facts), without building a tuple per comparison.
        return cls(tuple(sorted(firings, key=_firing_key)))


def _firing_key(firing: RawFiring) -> tuple[str, tuple[str, ...]]:
    return firing.rule_id, firing.facts
