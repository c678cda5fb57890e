"""Engine-neutral analysis of a ruleset: strata and disjunctive normal form.

The durable_rules backend (``engine/backends/durable/``), the linter and the
explanations use this. The reference evaluator deliberately does not: it interprets
the condition tree directly, so that the two engines are two independent readings
of the same rules.

Each alternative separates what a backend without a sound negation needs apart
(durable_rules' ``none()`` is order-dependent, so it is never used):

* ``not`` over *input* facts (:attr:`Alternative.absent`) can be decided before
  assertion: the durable backend evaluates the negated pattern against the input
  and asserts an ``absent`` marker when nothing matches (its encoding, ``absence_key``,
  lives in ``engine/backends/durable/capacity.py``);
* ``not`` over a *derived flag* (:attr:`Alternative.missing_flags`) is a guard checked
  when the rule fires; it is sound because every producer of that flag sits in a
  lower stratum (:func:`stratify`) and durable's agenda runs lower ``pri`` first.
"""

from __future__ import annotations

import itertools

import attrs

from ketacds.errors import RulesetError
from ketacds.models.facts import FLAG
from ketacds.ruleset import checks
from ketacds.ruleset.ir import All, AnyOf, Condition, Not, Pattern, Rule

__all__ = [
    "MAX_ALTERNATIVES",
    "SINGLE_FACT_TYPES",
    "Alternative",
    "alternatives",
    "flag_name",
    "flags_read",
    "stratify",
    "valuesets_read",
]

#: A rule whose condition expands to more alternatives than this is refused.
MAX_ALTERNATIVES = 16

#: Fact types of which every assessment has exactly one fact (the builder always asserts it).
SINGLE_FACT_TYPES = frozenset({"patient", "plan"})


@attrs.frozen
class Alternative:
    """One conjunction of a rule's condition in disjunctive normal form."""

    positive: tuple[Pattern, ...]
    absent: tuple[Pattern, ...] = ()
    missing_flags: tuple[str, ...] = ()


def flag_name(pattern: Pattern) -> str | None:
    """Return the flag a pattern matches, or ``None`` if it matches input facts."""
    if pattern.fact != FLAG:
        return None
    return next(str(t.value) for t in pattern.tests if t.field == "name")


def _dnf(condition: Condition) -> list[tuple[tuple[Pattern, ...], tuple[Pattern, ...]]]:
    """Expand to a list of (positive patterns, negated patterns)."""
    if isinstance(condition, Pattern):
        return [((condition,), ())]
    if isinstance(condition, All):
        combos: list[tuple[tuple[Pattern, ...], tuple[Pattern, ...]]] = [((), ())]
        for item in condition.items:
            combos = [
                (pos + item_pos, neg + item_neg)
                for (pos, neg), (item_pos, item_neg) in itertools.product(combos, _dnf(item))
            ]
        return combos
    if isinstance(condition, AnyOf):
        return [alt for item in condition.items for alt in _dnf(item)]
    inner = condition.item
    if isinstance(inner, Pattern):
        return [((), (inner,))]
    if isinstance(inner, Not):
        return _dnf(inner.item)
    if isinstance(inner, All) and len(inner.items) == 1:
        return _dnf(Not(inner.items[0]))
    if isinstance(inner, AnyOf):  # not (a or b) = not a and not b
        return _dnf(All(tuple(Not(item) for item in inner.items)))
    # not (a and b ...): only uncorrelated single patterns can be decided before assertion.
    raise RulesetError(
        "'not' may only contain one fact pattern, 'not', or 'any' of them", code=checks.UNSUPPORTED_CONDITION
    )


def alternatives(rule: Rule) -> tuple[Alternative, ...]:
    """Return the rule's condition in disjunctive normal form.

    Raises:
        RulesetError: the condition has more than :data:`MAX_ALTERNATIVES` alternatives,
            an alternative has no positive pattern, or ``not`` wraps an ``all``.
    """
    try:
        expanded = _dnf(rule.when)
    except RulesetError as error:
        raise RulesetError(error.reason, file=rule.file, line=rule.line, code=error.code) from None
    if len(expanded) > MAX_ALTERNATIVES:
        raise RulesetError(
            f"rule {rule.id} expands to {len(expanded)} alternatives (at most "
            f"{MAX_ALTERNATIVES}); split it into several rules",
            file=rule.file,
            line=rule.line,
            code=checks.UNSUPPORTED_CONDITION,
        )
    result = []
    for positive, negated in expanded:
        singles = [p.fact for p in positive if p.fact in SINGLE_FACT_TYPES]
        repeated = sorted({fact for fact in singles if singles.count(fact) > 1})
        if repeated:
            raise RulesetError(
                f"rule {rule.id} has two patterns on {repeated[0]!r}, of which there is only one fact; "
                "patterns of one condition match different facts, so merge their tests into one pattern",
                file=rule.file,
                line=rule.line,
            )
        absent = tuple(p for p in negated if flag_name(p) is None)
        missing = tuple(sorted({str(flag_name(p)) for p in negated if flag_name(p) is not None}))
        result.append(Alternative(positive=positive, absent=absent, missing_flags=missing))
    return tuple(result)


def flags_read(rule: Rule) -> tuple[set[str], set[str]]:
    """Return the flags a rule reads positively and under negation."""
    positive: set[str] = set()
    negative: set[str] = set()
    for alternative in alternatives(rule):
        positive.update(n for p in alternative.positive if (n := flag_name(p)) is not None)
        negative.update(alternative.missing_flags)
    return positive, negative


def valuesets_read(rule: Rule) -> set[str]:
    """The value sets a rule tests membership in, under ``not`` or not."""
    return {
        str(vs)
        for alternative in alternatives(rule)
        for pattern in (*alternative.positive, *alternative.absent)
        for test in pattern.tests
        if test.op == "member" and isinstance(test.value, tuple)
        for vs in test.value
    }


def stratify(rules: tuple[Rule, ...]) -> dict[str, int]:
    """Assign each rule a stratum (1, 2, ...) so that negated flags are complete first.

    A rule sits at or above the strata of the producers of every flag it reads, and
    strictly above the producers of every flag it reads under ``not``.

    Raises:
        RulesetError: a flag depends on its own absence (a cycle through ``not``).
    """
    producers: dict[str, list[str]] = {}
    for rule in rules:
        for flag in rule.flags:
            producers.setdefault(flag, []).append(rule.id)
    reads = {rule.id: flags_read(rule) for rule in rules}
    by_id = {rule.id: rule for rule in rules}
    stratum = dict.fromkeys(by_id, 1)
    for _ in range(len(rules) + 1):
        changed = False
        for rule_id, (positive, negative) in reads.items():
            needed = 1
            for flag in positive:
                needed = max([needed, *(stratum[p] for p in producers.get(flag, ()))])
            for flag in negative:
                needed = max([needed, *(stratum[p] + 1 for p in producers.get(flag, ()))])
            if needed > stratum[rule_id]:
                stratum[rule_id] = needed
                changed = True
        if not changed:
            return stratum
    culprit = max(stratum, key=lambda rule_id: (stratum[rule_id], rule_id))
    rule = by_id[culprit]
    raise RulesetError(
        f"rule {culprit} takes part in a cycle through 'not': a flag depends on its own absence",
        file=rule.file,
        line=rule.line,
        code=checks.NEGATION_CYCLE,
    )
