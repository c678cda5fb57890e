"""Reporting the items of a record that no value set a rule reads recognises.

:class:`_Recognition` collects one data-quality issue per unrecognised condition,
medication (or unread ingredient of a combination product), substance use, allergy,
trial, order or kind of observation, at a severity that follows what the unseen item
could hide. The text of each message names the item as the record gives it
(:func:`_code_text`).

Names with a leading underscore are shared only among the fact-building modules
(``facts``, ``fact_builders``, ``readings``, ``recognition``, ``identity``, ``numbers``);
they are not API.
"""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Callable

import attrs

from ketacds.engine.readings import _new_issue
from ketacds.models.inputs import Coding
from ketacds.models.quality import DataQualityIssue
from ketacds.terminology.valuesets import Terminology


def _code_text(code: Coding | None, name: str | None) -> str:
    """The item as the record gives it: its name and/or its code, for a data-quality message."""
    parts = []
    if name:
        parts.append(repr(name))
    if code is not None:
        system = _SYSTEM_NAMES.get(code.system, code.system)
        shown = f" {code.display!r}" if code.display and code.display != name else ""
        parts.append(f"{system} {code.code}{shown}")
    return " / ".join(parts) or "(no code or name)"


# Separators between the ingredients of a combination product's name, or between the
# drugs of a list written as one name: ``/``, ``+``, ``&``, ``and``, ``with``, ``,``, ``;``,
# parentheses, a line break, and a dash with space on both sides (``A - B``; a hyphen
# inside a word, as in ``co-amoxiclav``, is no separator). Brackets are none either: in an
# RxNorm branded drug's name they hold the product's own brand (``... Oral Tablet [Zoloft]``).
_COMBINATION = re.compile(
    r"\s*[/+&,;()\n\r]\s*|\s+(?:and|with)\s+|\s+[-\u2013\u2014]+\s+",
    re.IGNORECASE,
)
# A strength written as a ratio of units ("0.1 mg/mL", "20 MG/ML", "5 mcg/actuation",
# "10 mg/24 hr"): its slash is not a separator between ingredients.
_UNIT_RATIO = re.compile(
    r"(?<=\d)(\s*(?:mg|mcg|µg|ug|g|mmol|meq|units?|unt|iu|%)\s*)/(?=\s*(?:\d[\d.,]*\s*)?"
    r"(?:ml|l|actuat(?:ion)?|sprays?|doses?|hr|h|hours?|kg|days?|m2|puffs?)\b)",
    re.IGNORECASE,
)

_INGREDIENT_WORD = re.compile(r"[A-Za-z]{4,}")

#: Words of four letters or more that name no ingredient: the dose forms, routes, release
#: and packaging words of RxNorm clinical and branded drug names (``24 HR Venlafaxine 75
#: MG Extended Release Oral Capsule``, ``{56 (esketamine 28 MG) Nasal Spray} Pack``),
#: salts and insulin qualifiers (``sertraline (as hydrochloride)``, ``insulin human,
#: isophane``), and the common words of a dosing instruction (``Xalatan 0.005%
#: ophthalmic solution, 1 drop each eye at night``). Sodium, potassium, calcium and
#: magnesium are not among them: each is a medicine of its own (``sertraline, potassium
#: chloride`` names two drugs). A part of a combination name
#: made only of these, numbers and units is no ingredient; any other word makes it one,
#: and then the part must be read on its own.
_NOT_INGREDIENT_WORDS = """
    oral orally tablet tablets capsule capsules caplet caplets solution suspension syrup elixir
    liquid drops drop injection injectable infusion intravenous intramuscular subcutaneous
    prefilled syringe syringes vial vials ampule ampoule cartridge auto injector device system
    intrauterine vaginal rectal suppository nasal spray sprays metered dose doses dosed actuation
    actuations inhalation inhaler inhalant powder granules chewable disintegrating dispersible
    effervescent sublingual buccal lozenge film films coated enteric delayed extended release
    released sustained controlled modified prolonged immediate topical transdermal patch patches
    cream ointment lotion foam shampoo ophthalmic otic emulsion concentrate implant kit pack packs
    blister unit units hour hours daily weekly monthly twice three four times once night nightly
    morning evening bedtime needed meals food water milk juice each every both left right side
    eyes nostril nostrils mouth skin affected area apply take taken puff puffs days week weeks
    month months before after until then
    salt hydrochloride dihydrochloride hydrobromide bromide chloride maleate mesylate besylate
    tartrate bitartrate citrate sulfate sulphate phosphate
    fumarate succinate acetate lactate gluconate oxalate propionate dipropionate valerate furoate
    pamoate napsylate tosylate monohydrate dihydrate trihydrate hemihydrate anhydrous base free
    human isophane regular
"""
_NOT_INGREDIENT = frozenset(_NOT_INGREDIENT_WORDS.split())


@functools.lru_cache(maxsize=4096)
def _combination_parts(name: str) -> tuple[str, ...]:
    """The parts of a combination name that may be ingredients (``()`` when it is not one).

    A part whose words of four letters or more are all dose form, route, release, salt
    or packaging words (:data:`_NOT_INGREDIENT`), or that has none (a unit such as
    ``ML``), is not an ingredient. Remembered per name (bounded, shared by every thread:
    a pure function).
    """
    parts = [p.strip() for p in _COMBINATION.split(_UNIT_RATIO.sub(r"\1 per ", name))]
    if len(parts) < 2:
        return ()
    return tuple(
        p for p in parts if any(w.lower() not in _NOT_INGREDIENT for w in _INGREDIENT_WORD.findall(p))
    )


# The resource type named in a data-quality entry, per fact type.
_RESOURCE_KINDS = {
    "condition": "Condition",
    "medication": "Medication",
    "trial": "AntidepressantTrial",
    "allergy": "Allergy",
    "substance": "SubstanceUse",
    "order": "Order",
}

_SYSTEM_NAMES = {
    "http://snomed.info/sct": "SNOMED CT",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://www.whocc.no/atc": "ATC",
    "http://loinc.org": "LOINC",
}


def _coding_key(code: Coding | None) -> tuple[str | None, str | None, str | None]:
    """A code's fields, as part of a memo key (a Coding's own hash is slower to compute)."""
    return (code.system, code.code, code.display) if code is not None else (None, None, None)


#: Per terminology (the value sets decide what is read), what reporting an item of a
#: given kind, code, name and activity adds: ``None`` (it is read) or its (severity,
#: code, message). A population repeats its codes and names, so each is worked out
#: once; each terminology's memo is emptied at ``_SAID_SIZE`` entries (bounded), and
#: goes with its terminology. Values are immutable.
_SAID: weakref.WeakKeyDictionary[Terminology, dict[tuple[object, ...], tuple[str, str, str] | None]] = (
    weakref.WeakKeyDictionary()
)
_SAID_SIZE = 20_000
#: The terminology :class:`_Recognition` met last (a weak reference: it goes when it is
#: no longer used, as in ``_SAID``) and its ``_SAID`` memo; one tuple, replaced whole, so
#: a thread reads a pair that belongs together.
_LAST_SAID: tuple[Callable[[], Terminology | None], dict[tuple[object, ...], tuple[str, str, str] | None]] = (
    lambda: None,
    {},
)


def _remember_last(
    terminology: Terminology, memo: dict[tuple[object, ...], tuple[str, str, str] | None]
) -> None:
    global _LAST_SAID  # one pair, replaced whole
    _LAST_SAID = (weakref.ref(terminology), memo)


#: What ``_Recognition._said`` answers for an item not met yet (compared by identity).
_NEW: tuple[str, str, str] = ("(not met yet)", "", "")


@attrs.define
class _Recognition:
    """Reports every item no value set a rule reads (nor a ``known`` list) recognises.

    Severity follows what an unseen item could hide: an active medication, current
    substance use, or an active condition whose text names a concept a rule reads is an
    ``error`` (the ruleset's KCDS-GAP-013 then keeps the status from being reassuring),
    and so are an active allergy whose text names a concept an allergy rule reads and a
    reading whose text (or its observation's) names a concept a rule reads on
    observations; another active condition or allergy a ``warning``; anything inactive,
    another observation or a trial named in free text that is not an antidepressant
    ``info``; a coded trial no value set reads, and an unread ingredient of a combination
    trial that is counted, a ``warning``.
    """

    terminology: Terminology
    issues: list[DataQualityIssue]
    reported: set[tuple[str, str | None]]
    # Unread readings by kind (what, who names, the concepts named): their count.
    _observations: dict[tuple[str, str, tuple[str, ...]], int] = attrs.field(factory=dict)
    # What an item reports, by its kind, code, name (and activity): the same for every
    # record assessed with this terminology (see ``_SAID``).
    _memo: dict[tuple[object, ...], tuple[str, str, str] | None] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        last = _LAST_SAID  # the terminology met last and its memo: one identity test per record
        if last[0]() is self.terminology:
            self._memo = last[1]
            return
        memo = _SAID.get(self.terminology)
        if memo is None:
            memo = _SAID.setdefault(self.terminology, {})
        self._memo = memo
        _remember_last(self.terminology, memo)

    def _add(self, severity: str, code: str, message: str, where: tuple[str, str] | str) -> None:
        """Report one issue; ``where`` is (fact id, input list), or an input list alone.

        The item is named by its id, never by its position, so that permuting an input list
        never changes the Assessment.
        """
        resource = None
        if where.__class__ is tuple:
            fact_id, where = where
            kind, own = fact_id.split(":", 1)
            resource = own if "/" in own else f"{_RESOURCE_KINDS[kind]}/{own}"
        # _new_issue(severity, code, message, resource, path), in its field order
        self.issues.append(_new_issue(severity, code, message, resource, where))

    def _named(self, code: Coding | None, name: str | None) -> tuple[str, ...]:
        text = " ".join(t for t in (name, code.display if code else None) if t)
        return self.terminology.concepts_named(text) if text else ()

    def _described(self, code: Coding | None, name: str | None) -> tuple[str, ...]:
        """The condition value sets rules read whose code displays the name or display names."""
        texts = [t for t in (name, code.display if code else None) if t]
        seen = self.terminology.seen_on("condition")
        return tuple(sorted({i for t in texts for i in self.terminology.concepts_described(t) if i in seen}))

    def _concepts(self, ids: tuple[str, ...]) -> str:
        return ", ".join(self.terminology.titles.get(i, i) for i in ids)

    def _said(self, key: tuple[object, ...]) -> tuple[str, str, str] | None:
        """What an item with this key reported before (``_NEW``: none was met yet)."""
        return self._memo.get(key, _NEW)

    def _report(
        self,
        key: tuple[object, ...],
        decide: Callable[[], tuple[str, str, str] | None],
        where: tuple[str, str],
    ) -> None:
        """Report what an item with this key reports: remembered, or decided now and remembered."""
        said = self._said(key)
        if said is _NEW:
            self._say(key, decide(), where)
        elif said is not None:
            self._add(*said, where)

    def _say(
        self, key: tuple[object, ...], said: tuple[str, str, str] | None, where: tuple[str, str]
    ) -> None:
        """Remember what an item with this key reports (bounded), and report it here."""
        if len(self._memo) >= _SAID_SIZE:
            self._memo.clear()
        self._memo[key] = said
        if said is not None:
            self._add(*said, where)

    def condition(
        self, code: Coding | None, name: str | None, tags: list[str], active: bool, where: tuple[str, str]
    ) -> None:
        key = ("condition", *_coding_key(code), name, active)
        self._report(key, lambda: self._condition(code, name, tags, active), where)

    def _condition(
        self, code: Coding | None, name: str | None, tags: list[str], active: bool
    ) -> tuple[str, str, str] | None:
        if self.terminology.is_read(tags, "condition"):
            return None
        what = f"Condition {_code_text(code, name)} is in no value set the rules read"
        named = self._named(code, name)
        if active and not named:
            named = self._described(code, name)
        if active and named:
            return (
                "error",
                "unrecognised-condition",
                f"{what}, but its text names {self._concepts(named)}: it may be a contraindication the rules "
                "cannot see.",
            )
        if active:
            return ("warning", "unrecognised-condition", f"{what}; no rule assessed it.")
        return ("info", "unrecognised-condition", f"{what} (not active).")

    def medication(
        self,
        code: Coding | None,
        name: str | None,
        item_id: str | None,
        tags: list[str],
        active: bool,
        where: tuple[str, str],
    ) -> None:
        if ("unmapped-medication", item_id) in self.reported:
            return
        key = ("medication", *_coding_key(code), name, active)
        self._report(key, lambda: self._medication(code, name, tags, active), where)

    def _medication(
        self, code: Coding | None, name: str | None, tags: list[str], active: bool
    ) -> tuple[str, str, str] | None:
        read = self.terminology.is_read(tags, "medication")
        unread = self._unread_parts(name) if read else [name] if name else []
        if read and not unread:
            return None
        what = f"Medication {_code_text(code, name)} is in no value set the rules read"
        if unread and unread != [name]:
            parts = ", ".join(map(repr, unread))
            what = f"Medication {_code_text(code, name)}: {parts} is in no value set the rules read"
        if active:
            return ("error", "unrecognised-medication", f"{what}, so its interactions are unknown.")
        return ("info", "unrecognised-medication", f"{what} (not active).")

    def _unread_parts(self, name: str | None, fact: str = "medication") -> list[str]:
        """The ingredients of a combination name, or drugs of a list, that nothing reads.

        Parts are separated as by :data:`_COMBINATION` (``A / B``, ``A and B``, ``A + B``,
        ``A, B``, ``A; B``, ``A with B``, ``A - B``, ``A (B)``, one per line). A known or
        read ingredient never vouches for the others: in ``"Acetaminophen / Newdrug 5 MG"``
        or ``"sertraline, newdrug"`` the unknown part is still unseen. A part of strength,
        dose form, route, salt or packaging words only is not an ingredient.
        """
        return [
            p
            for p in _combination_parts(name or "")
            if not self.terminology.is_read(self.terminology.tag_text(None, p), fact)
        ]

    def substance(
        self, code: Coding | None, name: str | None, tags: list[str], status: str, where: tuple[str, str]
    ) -> None:
        if self.terminology.is_read(tags, "substance"):
            return
        what = f"Substance use {_code_text(code, name)} ({status}) is in no value set the rules read"
        severity = {"current": "error", "former": "warning"}.get(status, "info")
        self._add(severity, "unrecognised-substance", f"{what}; no rule assessed it.", where)

    def allergy(
        self, code: Coding | None, name: str | None, tags: list[str], active: bool, where: tuple[str, str]
    ) -> None:
        if self.terminology.is_read(tags, "allergy"):
            return
        what = f"Allergy {_code_text(code, name)} is in no value set the rules read"
        named = active and tuple(
            i for i in self._named(code, name) if i in self.terminology.seen_on("allergy")
        )
        if named:
            message = (
                f"{what}, but its text names {self._concepts(named)}: it may be a contraindication the rules "
                "cannot see."
            )
            self._add("error", "unrecognised-allergy", message, where)
            return
        self._add(
            "warning" if active else "info", "unrecognised-allergy", f"{what}; no rule assessed it.", where
        )

    def trial(self, code: Coding | None, name: str | None, tags: list[str], where: tuple[str, str]) -> None:
        key = ("trial", *_coding_key(code), name)
        self._report(key, lambda: self._trial(code, name, tags), where)

    def _trial(self, code: Coding | None, name: str | None, tags: list[str]) -> tuple[str, str, str] | None:
        """An unrecognised trial, or the unread ingredients of a combination trial that is read.

        A trial named in free text that no antidepressant value set knows (``CBT``,
        ``lithium``) is ``info``. A *coded* one is a ``warning``: the code may be an
        antidepressant the rules cannot read (an RxNorm ingredient code), and a trial the
        rules cannot judge could change the indication. An unread part of a combination
        that is counted (``escitalopram + foozapine``) is a ``warning`` too: the trial is
        counted as its other ingredients alone, so an antidepressant the rules do not know
        may be left out of the comparison of drugs. A trial given by a code alone that a
        value set reads only by prefix (ATC ``N06AA09``), with no ingredient, is a
        ``warning``: it is its own drug, and may be another trial's drug named otherwise.
        """
        if self.terminology.is_read(tags, "trial"):
            if name is None and code is not None and not self.terminology.ingredients(code, None):
                return (
                    "warning",
                    "unrecognised-trial",
                    f"Treatment trial {_code_text(code, name)} is counted as an antidepressant, but no "
                    "value set ties its code to an ingredient: it may be the same drug as another "
                    "trial, named or coded otherwise.",
                )
            unread = self._unread_parts(name, "trial")
            if not unread:
                return None
            parts = ", ".join(map(repr, unread))
            return (
                "warning",
                "unrecognised-trial",
                f"Treatment trial {_code_text(code, name)}: {parts} is not an antidepressant the rules "
                "know; the trial is counted as its other ingredients alone.",
            )
        what = f"Treatment trial {_code_text(code, name)} is not an antidepressant the rules know"
        if code is not None:
            return (
                "warning",
                "unrecognised-trial",
                f"{what}; it is not counted, though its code may be an antidepressant the rules cannot "
                "read: a trial the rules cannot judge could change the indication.",
            )
        return ("info", "unrecognised-trial", f"{what}; it is not counted.")

    def order(self, code: Coding | None, name: str | None, tags: list[str], where: tuple[str, str]) -> None:
        if self.terminology.is_read(tags, "order"):
            return
        self._add(
            "error",
            "unrecognised-order",
            f"The ordered drug {_code_text(code, name)} is in no value set the order rules read, "
            "so its dose is not checked.",
            where,
        )

    def observation(
        self,
        code: Coding | None,
        name: str | None,
        tags: list[str],
        of_code: Coding | None = None,
        of_name: str | None = None,
    ) -> None:
        """Remembered per kind (code or name): one entry per kind, with its count, at :meth:`finish`.

        ``of_code``, ``of_name``: the observation a component belongs to. An unread reading
        whose text, or whose observation's text, names a concept a rule reads on observations
        (``blood pressure`` with a value alone, or with components ``sys`` and ``dia``) is an
        ``error``: a reading the rules compare may be unseen. Any other is ``info``.
        """
        if self.terminology.is_read(tags, "observation"):
            return
        what = _code_text(code, name)
        named = self._observation_named(code, name)
        names = "names"
        if of_code is not None or of_name is not None:
            observation = _code_text(of_code, of_name)
            if not named and (named := self._observation_named(of_code, of_name)):
                names = f"{observation} names"
            what = f"{what} (a component of {observation})"
        key = (what, names, named)
        self._observations[key] = self._observations.get(key, 0) + 1

    def _observation_named(self, code: Coding | None, name: str | None) -> tuple[str, ...]:
        """The concepts rules read on observations that an observation's name or display names."""
        text = " ".join(t for t in (name, code.display if code else None) if t)
        if not text:
            return ()
        return self.terminology.concepts_meant(text, self.terminology.seen_on("observation"))

    def finish(self) -> None:
        """Report the unread observations, one entry per kind."""
        for (what, names, named), count in sorted(self._observations.items()):
            times = f" ({count} readings)" if count > 1 else ""
            if named:
                self._add(
                    "error",
                    "unrecognised-observation",
                    f"Observation {what}{times} is in no value set the rules read, but {names} "
                    f"{self._concepts(named)}: a reading the rules compare may be unseen.",
                    "observations",
                )
            else:
                self._add(
                    "info",
                    "unrecognised-observation",
                    f"Observation {what}{times} is in no value set the rules read.",
                    "observations",
                )
