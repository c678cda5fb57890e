"""The pages about the ruleset's items, for :mod:`ketacds.ruleset.render`.

:class:`ItemPages` draws one page per rule file (each rule as a card: id, title,
category, severity and the status it leads to, routes, jurisdictions, confidence, the
condition in plain English, the consequence, the rationale and the evidence), one page
per value set (codes, prefixes, ranges, names, ingredients, synonyms, with the rules
that use it) and the validity page (plausible ranges and validity windows). It also
holds what every page links with: the page paths and anchors, the rules per file and
the citations. ``render.py`` adds the overview pages (index, safety concepts) on top and
writes the whole site.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from decimal import Decimal

from ketacds.markup import (
    Block,
    Bullets,
    Card,
    Heading,
    Inline,
    Item,
    Page,
    Paragraph,
    Table,
    Target,
    code,
    em,
    join,
    link,
    strong,
)
from ketacds.models.inputs import CODE_SYSTEMS
from ketacds.ruleset.describe import CONFIDENCE, Describer
from ketacds.ruleset.ir import Evidence, Rule, RuleSet, Validity, ValueSet
from ketacds.ruleset.load import RuleFile
from ketacds.ruleset.plan import alternatives, valuesets_read

__all__ = ["CONCEPTS_PAGE", "INDEX_PAGE", "ItemPages", "rule_file_page"]

INDEX_PAGE = "index.md"
CONCEPTS_PAGE = "concepts.md"


def _rule_anchor(rule_id: str) -> str:
    return rule_id.lower()


def _vs_page(vs_id: str) -> str:
    return f"valuesets/{vs_id}.md"


def _vs_anchor(vs_id: str) -> str:
    return f"vs-{vs_id}"


_NO_FILE = "(no file)"


def rule_file_page(file: str | None) -> str:
    """The page of a rule file (``contraindications.yaml`` → ``contraindications.md``)."""
    if not file or file == _NO_FILE:
        return "other-rules.md"
    return f"{posixpath.splitext(posixpath.basename(file))[0]}.md"


def _system(uri: str) -> str:
    names = CODE_SYSTEMS.get(uri)
    return names[0] if names else uri


class ItemPages:
    """The rule-file, value-set and validity pages of one ruleset, and the links between pages."""

    def __init__(self, ruleset: RuleSet, files: Iterable[RuleFile]) -> None:
        self.ruleset = ruleset
        self.files = list(files)
        known = {f.name for f in self.files}
        for rule in ruleset.rules:  # rules built in code, or from a file the manifest does not list
            name = rule.file or _NO_FILE
            if name not in known:
                self.files.append(RuleFile(name=name, description=None))
                known.add(name)
        self.pages_of = {rule.id: rule_file_page(rule.file) for rule in ruleset.rules}
        self.describe = Describer(ruleset, self._link)
        self.sources = {s.id: s for s in ruleset.sources}
        self.used_by: dict[str, list[str]] = {}
        for rule in ruleset.rules:
            for vs in sorted(valuesets_read(rule)):
                self.used_by.setdefault(vs, []).append(rule.id)

    def _link(self, kind: str, ident: str) -> Target | None:
        if kind == "rule" and ident in self.pages_of:
            return Target(self.pages_of[ident], _rule_anchor(ident))
        if kind == "valueset" and any(vs.id == ident for vs in self.ruleset.valuesets):
            return Target(_vs_page(ident), _vs_anchor(ident))
        return None

    def _rules_in(self, file: RuleFile) -> list[Rule]:
        rules = [r for r in self.ruleset.rules if (r.file or _NO_FILE) == file.name]
        return sorted(rules, key=lambda r: (r.line or 0, r.id))

    def _rule_refs(self, rule_ids: Iterable[str]) -> list[Inline]:
        return self.describe.rule_list(rule_ids) or ["—"]

    def validity_page(self, validity: Validity) -> Page:
        """``validity.md``: the plausible ranges and validity windows, with rationale and evidence."""

        def cites(evidence: Iterable[Evidence]) -> tuple[Inline, ...]:
            out: list[Inline] = []
            for index, e in enumerate(evidence):
                out += (["; "] if index else []) + self._evidence(e.source, e.section)
            return tuple(out)

        def window(hours: Decimal | None) -> str:
            return "—" if hours is None else f"{hours} h"

        observations = [r for r in validity.ranges if r.fact == "observation"]
        fields = [r for r in validity.ranges if r.fact != "observation"]
        blocks: list[Block] = [
            Heading(1, ("Plausible ranges and validity windows",), "validity"),
            Paragraph(
                (
                    "A value outside its plausible range is a data-quality error and is not used; a reading "
                    "is current only when timed, believed, not after the assessment time and inside its "
                    "validity window. Part of ",
                    link(Target(INDEX_PAGE), self.ruleset.name),
                    " and its digest.",
                )
            ),
            Paragraph(
                (
                    strong("Readings after the assessment time"),
                    f": more than {validity.future_minutes} minutes later is an error. ",
                    validity.future_rationale,
                    " ",
                    *cites(validity.future_evidence),
                )
            ),
            Heading(2, ("Readings, by value set",)),
            Table(
                ("value set", "plausible", "current within", "rationale", "evidence"),
                tuple(
                    (
                        (link(Target(_vs_page(r.key), _vs_anchor(r.key)), code(r.key)),),
                        (r.bounds(),),
                        (window(r.current_hours),),
                        (r.rationale,),
                        cites(r.evidence),
                    )
                    for r in observations
                ),
            ),
        ]
        if validity.pairs:
            blocks += [
                Heading(2, ("Components of one reading",)),
                Table(
                    ("below", "above", "rationale", "evidence"),
                    tuple(
                        ((code(p.lower),), (code(p.upper),), (p.rationale,), cites(p.evidence))
                        for p in validity.pairs
                    ),
                ),
            ]
        blocks += [
            Heading(2, ("Fields",)),
            Table(
                ("field", "plausible", "current within", "rationale", "evidence"),
                tuple(
                    (
                        (code(f"{r.fact}.{r.key}"),),
                        (r.bounds() or "—",),
                        (window(r.current_hours),),
                        (r.rationale,),
                        cites(r.evidence),
                    )
                    for r in fields
                ),
            ),
        ]
        return Page("validity.md", "Plausible ranges and validity windows", tuple(blocks))

    def file_page(self, file: RuleFile) -> Page:
        """The page of one rule file: a card per rule, in the order of the file."""
        path = rule_file_page(file.name)
        blocks: list[Block] = [
            Heading(1, (code(file.name),), path.removesuffix(".md")),
            Paragraph(
                (
                    *((file.description, " ") if file.description else ()),
                    "Part of ",
                    link(Target(INDEX_PAGE), self.ruleset.name),
                    ".",
                )
            ),
        ]
        blocks += [self.card(rule) for rule in self._rules_in(file)]
        return Page(path, file.name, tuple(blocks))

    def card(self, rule: Rule) -> Card:
        """One rule as a card: what it is, when it fires, what follows, why, and the evidence."""
        status = self.describe.status_of(rule)
        where = f"{rule.file}:{rule.line}" if rule.file and rule.line else rule.file or "—"
        when = self.describe.condition(rule.when)
        blocks: list[Block] = [
            Heading(3, (code(rule.id), f" {rule.title}")),
            Table(
                ("category", "severity", "routes", "jurisdictions", "confidence", "defined at"),
                (
                    (
                        (rule.category,),
                        (strong(rule.severity), *((" → ", em(status)) if status else ())),
                        (", ".join(rule.routes),),
                        (self.describe.jurisdictions(rule),),
                        (strong(rule.confidence), f" ({CONFIDENCE[rule.confidence]})"),
                        (code(where),),
                    ),
                ),
            ),
            Paragraph((strong("When"), " ", *when.content)),
        ]
        if rule.concepts:
            blocks.insert(
                2,
                Paragraph(
                    (
                        strong("Assesses"),
                        " ",
                        *join([code(c)] for c in rule.concepts),
                        " (",
                        link(Target(CONCEPTS_PAGE), "safety concepts"),
                        ")",
                    )
                ),
            )
        if when.children:
            blocks.append(Bullets(when.children))
        if len(alternatives(rule)) > 1:
            blocks.append(
                Paragraph((em(f"({len(alternatives(rule))} alternatives in the compiled program.)"),))
            )
        if rule.group:
            group = next((g for g in self.ruleset.groups if g.id == rule.group), None)
            blocks.append(
                Paragraph(
                    (
                        strong("Shown in group"),
                        " ",
                        code(rule.group),
                        f" ({group.title})" if group else "",
                        ": one item with the other routine findings every patient on the route gets.",
                    )
                )
            )
        blocks += [
            Paragraph((strong("Then"),)),
            Bullets(tuple(self.describe.consequence(rule))),
            Paragraph((strong("Rationale"), " ", rule.rationale)),
            Paragraph((strong("Evidence"),)),
            Bullets(tuple(Item(tuple(self._evidence(e.source, e.section))) for e in rule.evidence)),
        ]
        return Card(_rule_anchor(rule.id), tuple(blocks))

    def _evidence(self, source_id: str, section: str | None) -> list[Inline]:
        source = self.sources.get(source_id)
        out: list[Inline] = [link(Target(INDEX_PAGE, "sources"), code(source_id))]
        if source is not None:
            out += [" ", em(source.title)]
        out.append(f", {section}" if section else ", no section given")
        return out

    def valueset_page(self, vs: ValueSet) -> Page:
        """``valuesets/<id>.md``: the value set's codes, prefixes, ranges and names, and its users."""
        path = _vs_page(vs.id)
        blocks: list[Block] = [
            Heading(1, (vs.title,), _vs_anchor(vs.id)),
            Paragraph(
                (
                    "Value set ",
                    code(vs.id),
                    f" ({vs.file})" if vs.file else "",
                    " of ",
                    link(Target(INDEX_PAGE), self.ruleset.name),
                    ". Used by: ",
                    *self._rule_refs(self.used_by.get(vs.id, [])),
                    ".",
                )
            ),
        ]
        if vs.description:
            blocks.append(Paragraph((vs.description,)))
        blocks.append(Paragraph((strong("Source"), " ", vs.source)))
        if vs.codes:
            blocks += [
                Heading(2, (f"Codes ({len(vs.codes)})",)),
                Table(
                    ("system", "code", "display", "provenance"),
                    tuple(
                        ((_system(c.system),), (code(c.code),), (c.display or "—",), (c.source or "—",))
                        for c in vs.codes
                    ),
                ),
            ]
        if vs.prefixes:
            blocks += [
                Heading(2, (f"Code prefixes ({len(vs.prefixes)})",)),
                Paragraph(
                    ("Every code of the system that starts with the prefix belongs to the value set.",)
                ),
                Table(
                    ("system", "prefix", "display"),
                    tuple(((_system(c.system),), (code(c.code),), (c.display or "—",)) for c in vs.prefixes),
                ),
            ]
        if vs.ranges:
            blocks += [
                Heading(2, (f"Code ranges ({len(vs.ranges)})",)),
                Paragraph(
                    (
                        "Every code whose leading characters (dots and case folded) lie between the ends, "
                        "both included, belongs to the value set.",
                    )
                ),
                Table(
                    ("system", "from", "to", "display", "provenance"),
                    tuple(
                        (
                            (_system(r.system),),
                            (code(r.start),),
                            (code(r.end),),
                            (r.display or "—",),
                            (r.source or "—",),
                        )
                        for r in vs.ranges
                    ),
                ),
            ]
        if vs.names:
            blocks += [
                Heading(2, (f"Names ({len(vs.names)})",)),
                Paragraph(
                    (
                        "Matched exactly, after folding case and white space (and, for medications, "
                        "substances, allergies and orders, as whole words inside the text): ",
                        *join([code(n)] for n in vs.names),
                        ".",
                    )
                ),
            ]
        if vs.ingredients:
            blocks += [
                Heading(2, (f"Ingredients ({len(vs.ingredients)})",)),
                Paragraph(("Names of one ingredient count as one drug.",)),
                Table(
                    ("ingredient", "also named"),
                    tuple(((code(i.name),), (", ".join(i.also) or "—",)) for i in vs.ingredients),
                ),
            ]
        if vs.synonyms:
            blocks += [
                Heading(2, (f"Synonyms ({len(vs.synonyms)})",)),
                Paragraph(
                    (
                        "Words that name the concept in free text: an item no value set reads whose text "
                        "holds one is reported as naming this concept: ",
                        *join([code(n)] for n in vs.synonyms),
                        ".",
                    )
                ),
            ]
        if vs.known:
            blocks.append(
                Paragraph(
                    (
                        strong("Known, no rule needs it"),
                        f": {vs.known} items in this list are recognised and never reported as unseen.",
                    )
                )
            )
        return Page(path, vs.title, tuple(blocks))
