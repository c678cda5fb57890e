"""Say a rule's conditions, and the facts they were tested on, in plain words.

Pharmacists read these sentences in "why / why not" explanations, scenario diffs
and mutation reports. Its words for fact types and fields are the explanation forms of
the one table of them, :data:`ketacds.models.facts.FIELDS`. It knows no clinical
threshold: every number it prints comes from a rule or a fact.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ketacds.engine.numbers import DISPLAY_QUANTA, LONG_QUANTUM, shown
from ketacds.models.facts import FACT_WORDS, short_field, yes_no
from ketacds.ruleset.ir import Pattern, Ref, RuleSet, Scalar, Test
from ketacds.ruleset.plan import flag_name

__all__ = ["Vocabulary", "fact_noun", "format_number"]

_COMPARE = {"gt": "above {v}", "gte": "{v} or more", "lt": "below {v}", "lte": "{v} or less"}


def fact_noun(fact_type: str) -> str:
    """``trial`` → ``an antidepressant trial``."""
    words = FACT_WORDS.get(fact_type)
    return words.phrase if words is not None and words.phrase is not None else f"a {fact_type}"


def format_number(value: Any) -> str:
    """A number as written: ``140``, ``0.5``; a Decimal keeps its digits (``30.0``)."""
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)


def _places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) else 0


def _with_unit(value: Any, unit: str) -> str:
    text = format_number(value)
    return f"{text} {unit}" if unit else text


class Vocabulary:
    """Words for one ruleset: value-set titles, and who derives each flag."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.valueset_titles = {vs.id: vs.title for vs in ruleset.valuesets}
        self.producers: dict[str, list[str]] = {}
        for rule in ruleset.rules:
            for flag in rule.flags:
                self.producers.setdefault(flag, []).append(rule.id)

    def field(self, name: str) -> tuple[str, str]:
        """The label and unit of a fact field."""
        return short_field(name)

    def valuesets(self, ids: Any) -> str:
        """``(a, b)`` → ``“Title A” or “Title B”``."""
        return " or ".join(f"“{self.valueset_titles.get(i, i)}”" for i in ids)

    def _operand(self, value: Scalar | tuple[Scalar, ...] | Ref, unit: str) -> str:
        if isinstance(value, Ref):
            label, _ = self.field(value.field)
            return f"the {label} of ‘{value.alias}’"
        if isinstance(value, tuple):
            return " or ".join(_with_unit(v, unit) for v in value)
        if isinstance(value, bool):
            return "yes" if value else "no"
        return _with_unit(value, unit)

    def test(self, test: Test) -> str:
        """One test, as a requirement: ``value above 140``, ``is active``, ``weight recorded``."""
        if test.op == "member":
            return f"in value set {self.valuesets(test.value)}"
        label, unit = self.field(test.field)
        if test.op == "present":
            return f"{label} recorded" if test.value else f"{label} not recorded"
        said = yes_no(test.field)
        if said is not None and isinstance(test.value, bool) and test.op in ("eq", "ne"):
            yes, no = said
            return yes if (test.value is True) == (test.op == "eq") else no
        operand = self._operand(test.value, unit)
        if test.op in _COMPARE:
            return f"{label} {_COMPARE[test.op].format(v=operand)}"
        if test.op == "ne":
            return (
                f"{label} is not {operand}"
                if not isinstance(test.value, Ref)
                else f"{label} differs from {operand}"
            )
        if test.op in ("eq", "in"):
            return f"{label} is {operand}"
        return f"{label} {test.op.replace('_', ' ')} {operand}"  # an operator added since: still readable

    def flag(self, name: str) -> str:
        """``the flag “indicated” (derived by KCDS-CAND-002, KCDS-CAND-003)``."""
        by = ", ".join(self.producers.get(name, [])) or "no rule"
        return f"the flag “{name}” (derived by {by})"

    def pattern(self, pattern: Pattern) -> str:
        """One pattern as a noun phrase with its requirements."""
        name = flag_name(pattern)
        if name is not None:
            return self.flag(name)
        noun = fact_noun(pattern.fact)
        if not pattern.tests:
            return f"{noun} is recorded" if pattern.fact != "patient" else "any patient"
        tests = "; ".join(self.test(t) for t in pattern.tests)
        alias = f" (call it ‘{pattern.alias}’)" if pattern.alias else ""
        return f"{noun}{alias}: {tests}"

    def absent(self, pattern: Pattern) -> str:
        """A negated input pattern: ``no antidepressant trial is recorded``."""
        noun = fact_noun(pattern.fact).split(" ", 1)[1]
        if not pattern.tests:
            return f"no {noun} is recorded"
        return f"no {noun} with: " + "; ".join(self.test(t) for t in pattern.tests)

    def actual(self, fact: Mapping[str, Any], field: str) -> str:
        """What a fact says about one field: ``138 mmHg``, ``not recorded``, ``is active``."""
        if field == "vs":
            ids = fact.get("vs") or []
            return f"in {self.valuesets(ids)}" if ids else "in no value set the rules know"
        if field not in fact:
            return f"{self.field(field)[0]} not recorded"
        value = fact[field]
        said = yes_no(field)
        if said is not None and isinstance(value, bool):
            return said[0 if value else 1]
        label, unit = self.field(field)
        if field == "value" and fact.get("unit"):
            unit = str(fact["unit"])
        if isinstance(value, bool):
            return f"{label} {'yes' if value else 'no'}"
        quantum = DISPLAY_QUANTA.get(field)
        if quantum is None and isinstance(value, Decimal) and abs(value) >= 1 and _places(value) > 6:
            quantum = LONG_QUANTUM
        if isinstance(value, Decimal) and quantum is not None:
            text = shown(value, quantum)  # a derived quantity: exact in the fact, rounded to read
            return f"{label} is {text} {unit}" if unit else f"{label} is {text}"
        return f"{label} is {_with_unit(value, unit)}"
