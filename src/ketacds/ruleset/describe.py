"""Rules in plain English, for auditors: conditions, consequences, scopes.

``{condition: {in: aneurysmal-vascular-disease, active: true}}`` reads as "an active
condition in the value set *Aneurysmal vascular disease* (7 codes, 2 code prefixes,
7 names)". Only the wording of the fact vocabulary lives here (what ``age_years`` is
called); every clinical word comes from the ruleset itself: value-set titles, rule
titles, messages.

Descriptions are built as :mod:`ketacds.markup` content, so the same sentence appears
in the Markdown pages, the HTML file, the diff report and the terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

from ketacds.markup import Inline, Item, Target, code, em, join, link, strong, to_text
from ketacds.models.facts import FACT_WORDS, FIELDS, field_label
from ketacds.ruleset.ir import (
    All,
    AnyOf,
    Condition,
    DoseSpec,
    Not,
    Pattern,
    Ref,
    Rule,
    RuleSet,
    Scalar,
    Test,
    to_data,
)
from ketacds.ruleset.load import ANY_JURISDICTION
from ketacds.ruleset.plan import SINGLE_FACT_TYPES, flag_name, flags_read
from ketacds.vocabulary import PRIMARY, SECONDARY, UNCONFIRMED

__all__ = ["CONFIDENCE", "FIELD_LABELS", "Describer"]

#: What each confidence code means (docs/safety-model.md).
CONFIDENCE: dict[str, str] = {
    PRIMARY: "read in the primary source",
    SECONDARY: "from a secondary source or summary",
    UNCONFIRMED: "unconfirmed: advisory only",
}

#: How each field of the fact vocabulary is named, and its unit: the words of
#: :data:`ketacds.models.facts.FIELDS` (their rule-documentation form), by fact type and field.
FIELD_LABELS: dict[tuple[str, str], tuple[str, str | None]] = {
    (fact, name): field_label(fact, name)
    for fact, fields in FIELDS.items()
    for name, f in fields.items()
    if f.label is not None
}

_COMPARE = {
    "gt": "above",
    "gte": "at least",
    "lt": "below",
    "lte": "at most",
    "eq": "equal to",
    "ne": "other than",
}

#: Where a value set and a rule are shown, for links; ``None`` means "do not link".
Links = Callable[[str, str], Target | None]


def _noun(fact: str) -> str:
    words = FACT_WORDS.get(fact)
    return words.noun if words is not None and words.noun is not None else fact


def _adjective(fact: str, name: str) -> str | None:
    field = FIELDS.get(fact, {}).get(name)
    return field.adjective if field is not None else None


def _no_links(_kind: str, _id: str) -> Target | None:
    return None


def _scalar(value: Scalar) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _or(words: Iterable[str]) -> str:
    listed = list(words)
    return ", ".join(listed[:-1]) + " or " + listed[-1] if len(listed) > 1 else "".join(listed)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


class Describer:
    """Describes the rules of one ruleset.

    ``links(kind, id)`` says where the page of a ``valueset`` or a ``rule`` is.
    """

    def __init__(self, ruleset: RuleSet, links: Links = _no_links) -> None:
        self.ruleset = ruleset
        self.links = links
        self.valuesets = {vs.id: vs for vs in ruleset.valuesets}
        self.producers: dict[str, list[str]] = {}
        for rule in ruleset.rules:
            for flag in rule.flags:
                self.producers.setdefault(flag, []).append(rule.id)

    # ------------------------------------------------------------- pieces

    def rule_ref(self, rule_id: str) -> Inline:
        """A rule id, linked to its card."""
        return link(self.links("rule", rule_id), code(rule_id))

    def rule_list(self, rule_ids: Iterable[str]) -> list[Inline]:
        """Rule ids, linked, separated by commas."""
        return join([self.rule_ref(rule_id)] for rule_id in rule_ids)

    def valueset_ref(self, vs_id: str) -> list[Inline]:
        """A value set's title (linked) and its size: *Benzodiazepines* (12 codes, 30 names)."""
        vs = self.valuesets.get(vs_id)
        if vs is None:
            return [code(vs_id)]
        sizes = [
            (len(vs.codes), "code"),
            (len(vs.prefixes), "code prefix"),
            (len(vs.ranges), "code range"),
            (len(vs.names), "name"),
        ]
        counted = ", ".join(
            f"{n} {word}{'es' if word.endswith('x') else 's'}" if n != 1 else f"1 {word}"
            for n, word in sizes
            if n
        )
        return [link(self.links("valueset", vs_id), em(vs.title)), f" ({counted or 'empty'})"]

    def jurisdictions(self, rule: Rule) -> str:
        """Where a rule applies: ``US, EU`` or ``any jurisdiction``."""
        return "any jurisdiction" if ANY_JURISDICTION in rule.jurisdictions else ", ".join(rule.jurisdictions)

    def status_of(self, rule: Rule) -> str | None:
        """The status a rule's severity leads to, or ``None`` when it adds nothing to the status."""
        return self.ruleset.status.status_of(rule.severity)

    # ---------------------------------------------------------- conditions

    def condition(self, condition: Condition) -> Item:
        """The condition as a sentence, with sub-items for ``all``, ``any`` and ``none``."""
        if isinstance(condition, All):
            return Item(("all of:",), tuple(self.condition(c) for c in condition.items))
        if isinstance(condition, AnyOf):
            return Item(("any of:",), tuple(self.condition(c) for c in condition.items))
        if isinstance(condition, Not):
            inner = condition.item
            if isinstance(inner, Pattern):
                return Item(tuple(self.pattern(inner, negated=True)))
            if isinstance(inner, Not):
                return self.condition(inner.item)
            nested = self.condition(inner)
            if isinstance(inner, AnyOf):
                return Item(("none of:",), nested.children)
            return Item(("not: ", *nested.content), nested.children)
        return Item(tuple(self.pattern(condition)))

    def sentence(self, condition: Condition) -> str:
        """The condition as one line of plain text (for a terminal): ``any of: (a; b)``."""
        return _flat(self.condition(condition))

    def pattern(self, pattern: Pattern, *, negated: bool = False) -> list[Inline]:
        """One fact pattern: "the latest observation in the value set *X* (...), with value above 140"."""
        flag = flag_name(pattern)
        if flag is not None:
            return self._flag(flag, negated=negated)
        adjectives: list[str] = []
        clauses: list[list[Inline]] = []
        member: list[Inline] = []
        for test in pattern.tests:
            if test.op == "member":
                member = self._member(test)
            elif (
                (adjective := _adjective(pattern.fact, test.field)) and test.op == "eq" and test.value is True
            ):
                adjectives.append(adjective)
            else:
                clauses.append(self._test(pattern.fact, test))
        noun = _noun(pattern.fact)
        words = " ".join([*adjectives, noun])
        if negated:
            lead = f"no {words}"
        elif pattern.fact in SINGLE_FACT_TYPES or "latest" in adjectives:
            lead = f"the {words}"
        else:
            lead = f"{_article(words)} {words}"
        out: list[Inline] = [lead, *member]
        if pattern.alias:
            out += [" (call it ", em(pattern.alias), ")"]
        if clauses:
            out += [", with ", *join(clauses, "; ")]
        elif pattern.fact in SINGLE_FACT_TYPES and not member and not negated:
            out.append(" (true in every assessment)")
        return out

    def _member(self, test: Test) -> list[Inline]:
        assert isinstance(test.value, tuple)
        ids = [str(v) for v in test.value]
        lead = " in the value set " if len(ids) == 1 else " in one of the value sets "
        return [lead, *join(self.valueset_ref(vs_id) for vs_id in ids)]

    def _test(self, fact: str, test: Test) -> list[Inline]:
        label, unit = field_label(fact, test.field)
        suffix = f" {unit}" if unit else ""
        if test.op == "present":
            return [f"{label} {'recorded' if test.value else 'not recorded'}"]
        if isinstance(test.value, Ref) and test.op in _COMPARE:
            other, _ = field_label(fact, test.value.field)
            word = {"eq": "the same as", "ne": "different from"}.get(test.op, _COMPARE[test.op])
            return [f"{label} {word} the {other} of ", em(test.value.alias)]
        if test.op == "in" and isinstance(test.value, tuple):
            return [f"{label}: {_or(_scalar(v) for v in test.value)}{suffix}"]
        if test.op in ("eq", "ne") and isinstance(test.value, bool):
            yes = (test.op == "eq") == test.value
            return [f"{label}: {'yes' if yes else 'no'}"]
        if test.op in _COMPARE and isinstance(test.value, int | Decimal):
            return [f"{label} {_COMPARE[test.op]} {_scalar(test.value)}{suffix}"]
        if test.op in ("eq", "ne") and isinstance(test.value, str):
            return [f"{label}: {test.value}" if test.op == "eq" else f"{label} other than {test.value}"]
        # An operator this module does not know yet: say it literally rather than guess its meaning.
        return [f"{label} ", code(f"{test.op} {to_data(test.value)}")]

    def _flag(self, flag: str, *, negated: bool) -> list[Inline]:
        producers = self.producers.get(flag, [])
        out: list[Inline] = [
            "the flag ",
            strong(flag),
            " has not been derived" if negated else " has been derived",
        ]
        if producers:
            out += [" (derived by ", *self.rule_list(producers), ")"]
        else:
            out.append(" (no rule derives it)")
        return out

    # --------------------------------------------------------- consequences

    def consequence(self, rule: Rule) -> list[Item]:
        """What the rule does when it fires: the finding, the flags it derives, the dose it computes."""
        items: list[Item] = []
        status = self.status_of(rule)
        if rule.finding is not None:
            effect: list[Inline] = (
                [" (leads to status ", em(status), ")"] if status else [" (no effect on status)"]
            )
            items.append(
                Item(
                    (
                        "reports a finding of severity ",
                        strong(rule.severity),
                        *effect,
                        ": ",
                        rule.finding.message,
                    )
                )
            )
            if rule.finding.management:
                items.append(Item(("management: ", rule.finding.management)))
            if rule.finding.missing:
                items.append(Item(("missing datum: ", em(rule.finding.missing))))
            if rule.finding.timing:
                items.append(Item(("timing: ", rule.finding.timing)))
        for flag in rule.flags:
            readers = [r.id for r in self.ruleset.rules if flag in set().union(*flags_read(r))]
            read: list[Inline] = (
                [" (read by ", *self.rule_list(readers), ")"] if readers else [" (read by no rule)"]
            )
            items.append(Item(("derives the flag ", strong(flag), *read)))
        if rule.dose is not None:
            items.append(Item(tuple(self.dose(rule.dose))))
        return items

    def dose(self, dose: DoseSpec) -> list[Inline]:
        """A dose spec: the function, its label and parameters."""
        params = ", ".join(f"{key} {_scalar(value)}" for key, value in dose.params)
        return [
            "computes the dose ",
            em(dose.label),
            " with ",
            code(dose.function),
            f" ({params})" if params else "",
        ]


def _flat(item: Item) -> str:
    inner = "; ".join(_flat(child) for child in item.children)
    return to_text(item.content) + (f" ({inner})" if inner else "")
