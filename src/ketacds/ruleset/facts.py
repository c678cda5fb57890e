"""Which rules encode each fact of the clinical reference, in every program (route × jurisdiction).

The register ``rulesets/reference-facts.yaml`` lists every fact id of the clinical
reference with the routes it applies to, its confidence, and why it is encoded only in
part (``partial``) or not at all (``not_encoded``); rules name the facts they encode in
``concepts``. For each fact and program, :func:`cell` says what the rules in scope (the
same scope an Engine compiles, :mod:`ketacds.ruleset.scope`) make of it:

* ``full``: rules in scope name it, and the register records nothing missing;
* ``partial``: rules in scope name it, and the register says what of it is not encoded;
* ``extended``: rules name it on a route the reference does not give it;
* ``not encoded``: it applies here and no rule in scope names it, with the register's why;
* ``n/a``: the reference does not give it for this route, or it is another label's fact;
* ``refused``: the engine refuses the program;
* ``GAP``: it applies here, no rule names it, and the register gives no reason.

:func:`problems` lists where the register and the rules disagree (lint KL052), and
:func:`coverage_page` renders ``docs/clinical-coverage.md`` (``ketacds rules coverage``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import attrs

from ketacds.markup import (
    Block,
    Bullets,
    Heading,
    Inline,
    Item,
    Page,
    Paragraph,
    Span,
    Table,
    Target,
    code,
    join,
    link,
    strong,
    to_markdown,
)
from ketacds.ruleset.ir import Fact, RuleSet
from ketacds.ruleset.load import ANY_JURISDICTION, FACTS_FILE
from ketacds.ruleset.scope import coverage, programs, refusal_for, rules_for
from ketacds.vocabulary import ESKETAMINE_NASAL, KETAMINE_INTRANASAL, KETAMINE_IV, KETAMINE_OTHER, UNCONFIRMED

__all__ = ["CHAPTERS", "Cell", "cell", "coverage_page", "problems", "render_coverage"]

State = Literal["full", "partial", "extended", "not encoded", "n/a", "refused", "GAP"]

#: The reference's chapters that have fact ids.
CHAPTERS = {
    1: "Candidacy and indications",
    2: "Contraindications, relative contraindications and precautions",
    3: "Drug interactions",
    4: "Dosing and dose adjustment",
    5: "Monitoring and REMS",
    6: "Adverse effects to monitor",
}

#: One letter per state in the compact matrix.
_LETTER: dict[State, str] = {
    "full": "F",
    "partial": "P",
    "extended": "E",
    "not encoded": "N",
    "n/a": "·",
    "refused": "R",
    "GAP": "GAP",
}

_ROUTE_SHORT: dict[str, str] = {
    ESKETAMINE_NASAL: "ESK",
    KETAMINE_IV: "IV",
    KETAMINE_OTHER: "OTH",
    KETAMINE_INTRANASAL: "INKET",
}


@attrs.frozen
class Cell:
    """What the rules in one program make of one fact: a state, the rules, and why."""

    state: State
    rules: tuple[str, ...] = ()
    why: str | None = None


def _meets(places: Iterable[str], scope: set[str]) -> bool:
    places = tuple(places)
    return not places or ANY_JURISDICTION in places or bool(scope & set(places))


def cell(ruleset: RuleSet, fact: Fact, route: str, jurisdiction: str) -> Cell:
    """What the program for ``route`` in ``jurisdiction`` makes of ``fact``."""
    scope = set(ruleset.program_scope(route, jurisdiction))
    if not _meets(fact.jurisdictions, scope):
        return Cell("n/a", why=f"a fact of the {', '.join(fact.jurisdictions)} label")
    rules = tuple(rule.id for rule in rules_for(ruleset, route, jurisdiction) if fact.id in rule.concepts)
    applies = route in fact.routes
    refusal = refusal_for(ruleset, route, jurisdiction)
    if refusal is not None:
        return Cell("refused", why=refusal.reason) if applies or rules else Cell("n/a")
    if rules:
        if not applies:
            return Cell("extended", rules)
        return Cell("partial", rules, fact.partial) if fact.partial else Cell("full", rules)
    if not applies:
        return Cell("n/a")
    if fact.not_encoded:
        return Cell("not encoded", why=fact.not_encoded)
    for gap in fact.gaps:
        if (not gap.routes or route in gap.routes) and _meets(gap.jurisdictions, scope):
            return Cell("not encoded", why=gap.why)
    return Cell("GAP")


def problems(ruleset: RuleSet) -> list[tuple[Fact, str]]:
    """Where the register and the rules disagree, one message per fact (empty without a register)."""
    found: list[tuple[Fact, str]] = []
    places = programs(ruleset)
    for fact in ruleset.facts:
        naming = sorted(rule.id for rule in ruleset.rules if fact.id in rule.concepts)
        if fact.not_encoded and naming:
            found.append(
                (fact, f"{fact.id} is marked not_encoded, but {', '.join(naming)} name it: update its entry")
            )
            continue
        if not fact.not_encoded and not naming and fact.routes:
            found.append(
                (fact, f"no rule names {fact.id}: name it in a rule's concepts, or say why in not_encoded")
            )
            continue
        stale = [
            f"{route} in {j}"
            for gap in fact.gaps
            for route, j in places
            if (not gap.routes or route in gap.routes)
            and _meets(gap.jurisdictions, set(ruleset.program_scope(route, j)))
            and any(fact.id in rule.concepts for rule in rules_for(ruleset, route, j))
        ]
        if stale:
            found.append(
                (
                    fact,
                    f"{fact.id} gives a reason for no rule in {', '.join(stale)}, but rules there "
                    f"name it: remove the stale gap",
                )
            )
            continue
        gaps = [f"{r} in {j}" for r, j in places if cell(ruleset, fact, r, j).state == "GAP"]
        if gaps:
            found.append(
                (
                    fact,
                    f"{fact.id} applies to {', '.join(gaps)}, but no rule in scope names it there: "
                    f"add a rule, or say why in its gaps",
                )
            )
    return found


class _Page:
    def __init__(self, ruleset: RuleSet, rules_dir: str) -> None:
        self.ruleset = ruleset
        self.rules_dir = rules_dir
        # A route the engine refuses everywhere is listed under Programs, not given columns.
        self.all_programs = programs(ruleset)
        refused = {
            route
            for route in ruleset.routes
            if all(refusal_for(ruleset, r, j) is not None for r, j in self.all_programs if r == route)
        }
        self.programs = [(route, j) for route, j in self.all_programs if route not in refused]
        self.cells = {
            (fact.id, route, j): cell(ruleset, fact, route, j)
            for fact in ruleset.facts
            for route, j in self.programs
        }

    def _rule(self, rule_id: str) -> Inline:
        rule = self.ruleset.rule(rule_id)
        page = (rule.file or "").rsplit("/", 1)[-1].removesuffix(".yaml")
        target = Target(f"{self.rules_dir}/{page}.md", rule_id.lower()) if page else None
        linked = link(target, code(rule_id))
        # An unconfirmed rule is advisory only: say so wherever it is counted as encoding a fact.
        return Span("group", (linked, " (M, advisory)")) if rule.confidence == UNCONFIRMED else linked

    def _program_header(self, route: str, jurisdiction: str) -> str:
        found = coverage(self.ruleset, route, jurisdiction)
        mark = "" if found.follows is None else f"→{found.follows.label}"
        return f"{_ROUTE_SHORT.get(route, route)} {jurisdiction}{mark}"

    def page(self) -> Page:
        rs = self.ruleset
        blocks: list[Block] = [
            Heading(1, ("Clinical coverage: the reference, fact by fact",), "clinical-coverage"),
            Paragraph(
                (
                    "Each fact of the clinical reference (",
                    code("clinical-reference.md"),
                    " §1–§6, kept outside the repository; the repository's copy of its ids is ",
                    code(f"rulesets/{FACTS_FILE}"),
                    f") against the rules of {rs.name} {rs.version}, in every program (route × "
                    "jurisdiction) the engine may run. Generated by ",
                    code("ketacds rules coverage"),
                    " (",
                    code("make docs"),
                    "); ",
                    code("tests/unit/ruleset/test_clinical_coverage.py"),
                    " fails when this page is stale or when the register and the rules disagree.",
                )
            ),
            Paragraph(
                (
                    "A fact encoded for one jurisdiction is not encoded for the others: each cell is "
                    "what the rules in scope of that program do. ",
                    strong("F"),
                    " full (rules in scope name the fact); ",
                    strong("P"),
                    " partial (they do, and the register says what is missing, and why); ",
                    strong("E"),
                    " extended (rules apply the fact to a route the reference does not give it); ",
                    strong("N"),
                    " not encoded here (with why); · does not apply (another route, or another "
                    "label's fact); ",
                    strong("R"),
                    " the engine refuses the program; ",
                    strong("GAP"),
                    " applies, no rule, no reason (the test fails). A column ",
                    code("ESK CH→EU"),
                    " is a program that follows the EU label: the EU rules count there. Which safety "
                    "concepts every program must assess is the stricter matrix in ",
                    link(Target(f"{self.rules_dir}/concepts.md"), "concepts.md"),
                    " (lint fails on a gap there).",
                )
            ),
            Heading(2, ("Programs",)),
            Table(
                ("route", "jurisdiction", "state", "why"),
                tuple(self._program_row(route, j) for route, j in self.all_programs),
            ),
        ]
        for chapter, title in CHAPTERS.items():
            facts = [f for f in rs.facts if f.chapter == chapter]
            if facts:
                blocks += self._chapter(chapter, title, facts)
        others = [f for f in rs.facts if f.chapter not in CHAPTERS]
        if others:
            blocks += self._chapter(0, "Other facts", others)
        if rs.fact_notes:
            blocks += [
                Heading(2, ("Outside the fact tables",)),
                Bullets(tuple(Item((note,)) for note in rs.fact_notes)),
            ]
        blocks += self._summary()
        return Page("clinical-coverage.md", "Clinical coverage", tuple(blocks))

    def _program_row(self, route: str, jurisdiction: str) -> tuple[tuple[Inline, ...], ...]:
        found = coverage(self.ruleset, route, jurisdiction)
        if found.refusal is not None:
            state, why = "refused", found.refusal.reason
        elif found.follows is not None:
            state, why = f"follows the {found.follows.label} label", found.follows.basis
        elif found.missing:
            state, why = "GAP", f"no rule for {', '.join(found.missing)}"
        else:
            state, why = "assessed", "—"
        return ((code(route),), (code(jurisdiction),), (state,), (why,))

    def _chapter(self, chapter: int, title: str, facts: list[Fact]) -> list[Block]:
        header = ("fact", "conf.", *(self._program_header(r, j) for r, j in self.programs))
        rows: list[tuple[tuple[Inline, ...], ...]] = []
        for fact in facts:
            letters: list[tuple[Inline, ...]] = [
                (_LETTER[self.cells[fact.id, r, j].state],) for r, j in self.programs
            ]
            rows.append(((code(fact.id),), (fact.confidence,), *letters))
        details = [self._detail(fact) for fact in facts]
        heading = f"§{chapter}. {title}" if chapter else title
        return [Heading(2, (heading,)), Table(header, tuple(rows)), Bullets(tuple(details))]

    def _detail(self, fact: Fact) -> Item:
        content: list[Inline] = [strong(code(fact.id)), f" {fact.title} ({fact.confidence}"]
        routes = ", ".join(fact.routes) or "no route"
        limited = (
            "" if fact.jurisdictions == (ANY_JURISDICTION,) else f"; {', '.join(fact.jurisdictions)} only"
        )
        content.append(f"; {routes}{limited}).")
        children: list[Item] = []
        by_state: dict[tuple[State, tuple[str, ...]], list[str]] = {}
        for route, j in self.programs:
            found = self.cells[fact.id, route, j]
            if found.rules:
                by_state.setdefault((found.state, found.rules), []).append(
                    f"{_ROUTE_SHORT.get(route, route)} {j}"
                )
        for (state, rules), where in by_state.items():
            children.append(
                Item((strong(state), f" in {', '.join(where)}: ", *join([self._rule(r)] for r in rules)))
            )
        if fact.partial:
            children.append(Item((strong("partial"), ": ", fact.partial)))
        if fact.not_encoded:
            children.append(Item((strong("not encoded"), ": ", fact.not_encoded)))
        for gap in fact.gaps:
            scope = " ".join(
                part
                for part in (", ".join(gap.routes) if gap.routes else "", ", ".join(gap.jurisdictions))
                if part
            )
            children.append(Item((strong("not encoded"), f" ({scope or 'everywhere'}): ", gap.why)))
        gaps = [
            f"{_ROUTE_SHORT.get(r, r)} {j}"
            for r, j in self.programs
            if self.cells[fact.id, r, j].state == "GAP"
        ]
        if gaps:
            children.append(Item((strong("GAP"), f" in {', '.join(gaps)}: no rule and no reason.")))
        return Item(tuple(content), tuple(children))

    def _summary(self) -> list[Block]:
        facts = self.ruleset.facts
        missing = [f for f in facts if f.not_encoded]
        partial = [f for f in facts if f.partial]
        somewhere = [f for f in facts if f.gaps and not f.partial and not f.not_encoded]
        full = len(facts) - len(missing) - len(partial) - len(somewhere)

        def listed(label: str, chosen: list[Fact]) -> Item:
            ids = join([code(f.id)] for f in chosen) if chosen else ["none"]
            return Item((label, *ids, "."))

        return [
            Heading(2, ("Summary",)),
            Paragraph(
                (
                    f"{len(facts)} facts: {full} encoded in full wherever they apply, {len(partial)} in "
                    f"part, {len(somewhere)} in full but not in every program they apply to, "
                    f"{len(missing)} not encoded.",
                )
            ),
            Bullets(
                (
                    listed("Not encoded: ", missing),
                    listed("Partial: ", partial),
                    listed("Not encoded in some programs: ", somewhere),
                )
            ),
        ]


def coverage_page(ruleset: RuleSet, rules_dir: str = "rules") -> Page:
    """The coverage page; rule ids link to their cards under ``rules_dir`` (relative to the page)."""
    return _Page(ruleset, rules_dir).page()


#: The generated page carries this comment at its top.
MARKER = "<!-- Generated by `ketacds rules coverage`"


def render_coverage(ruleset: RuleSet, rules_dir: str = "rules") -> str:
    """``docs/clinical-coverage.md`` as Markdown (a function of the ruleset alone: no dates)."""
    comment = f"{MARKER} from rulesets/{FACTS_FILE} and the rules. Do not edit: run `make docs`. -->"
    return to_markdown(coverage_page(ruleset, rules_dir), preamble=comment)
