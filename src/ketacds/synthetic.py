"""A deterministic synthetic population, for benchmarks, batch runs and tests.

Nothing clinical is written here. Every code and name comes from the ruleset's value
sets, chosen in proportion to how many rules read each value set (and a share of items
no value set knows); numbers are spread around the thresholds the rules compare them
with, so that every kind of finding occurs; the vocabularies (statuses, responses,
routes, jurisdictions) come from the input models and the ruleset. The patients are
synthetic and mean nothing clinically.

The same arguments give the same cases on every machine (``random.Random`` seeded
with an integer). Each case is plain JSON data in the shape ``ketacds assess`` reads::

    python -m ketacds.synthetic --patients 10000 --out population.ndjson

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, get_args

import attrs

from ketacds.models.inputs import ConditionStatus, MedicationStatus, SubstanceStatus, TrialResponse
from ketacds.ruleset import scope
from ketacds.ruleset.ir import Ref, RuleSet, ValueSet, patterns
from ketacds.ruleset.load import load_ruleset
from ketacds.vocabulary import CANDIDACY, ROUTES

__all__ = ["NOW", "Population", "synthetic_cases"]

#: The default assessment time of synthetic cases.
NOW = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)

_NUMERIC_OPS = ("gt", "gte", "lt", "lte", "eq", "ne")
# Items per case, before `extra_items`: (fewest, most). Conditions come on top of the
# one indication most cases have.
_COUNTS = {
    "conditions": (0, 2),
    "medications": (0, 5),
    "trials": (0, 4),
    "observations": (0, 4),
    "allergies": (0, 1),
    "substance_use": (0, 1),
}
# The share of items of each list that no value set knows.
_UNKNOWN_SHARE = {
    "conditions": 0.5,
    "medications": 0.3,
    "trials": 0.0,
    "observations": 0.0,
    "allergies": 0.9,
    "substance_use": 0.6,
}
# The fact type whose value sets an input list draws from (trials: medicines' names).
_FACT_OF = {
    "conditions": "condition",
    "medications": "medication",
    "trials": "medication",
    "observations": "observation",
    "allergies": "allergy",
    "substance_use": "substance",
}


@attrs.frozen
class Population:
    """What the generator draws from, read off a ruleset once.

    ``valuesets`` lists, per fact type, the value sets rules test it against and how
    many rules do; ``indications`` the value sets candidacy rules read conditions
    with (most synthetic patients have one, as a treated population would);
    ``thresholds`` the numbers rules compare a field with, per fact type and value set
    (``None``: any item of that type); ``words`` the text values rules compare a
    field with.
    """

    valuesets: dict[str, tuple[tuple[ValueSet, int], ...]]
    indications: tuple[tuple[ValueSet, int], ...]
    thresholds: dict[tuple[str, str | None, str], tuple[float, ...]]
    words: dict[tuple[str, str], tuple[str, ...]]
    #: For each route, the jurisdictions where the rules assess it (refused programs are left out).
    jurisdictions: dict[str, tuple[str, ...]]

    @classmethod
    def of(cls, ruleset: RuleSet) -> Population:
        """Read the value sets, thresholds and words the rules of ``ruleset`` use."""
        by_id = {vs.id: vs for vs in ruleset.valuesets}
        uses: dict[str, dict[str, int]] = {}
        indications: dict[str, int] = {}
        numbers: dict[tuple[str, str | None, str], set[float]] = {}
        words: dict[tuple[str, str], set[str]] = {}
        for rule in ruleset.rules:
            for pattern in patterns(rule.when):
                members = [str(v) for t in pattern.tests if t.op == "member" for v in t.value]  # type: ignore[union-attr]
                for vs in members:
                    counts = uses.setdefault(pattern.fact, {})
                    counts[vs] = counts.get(vs, 0) + 1
                    if rule.category == CANDIDACY and pattern.fact == "condition":
                        indications[vs] = indications.get(vs, 0) + 1
                for test in pattern.tests:
                    values = test.value if isinstance(test.value, tuple) else (test.value,)
                    if isinstance(test.value, Ref) or test.op == "member":
                        continue
                    if test.op in _NUMERIC_OPS and all(_is_number(v) for v in values):
                        keys: list[str | None] = [*members] or [None]
                        for vs_or_any in keys:
                            key = (pattern.fact, vs_or_any, test.field)
                            numbers.setdefault(key, set()).update(float(v) for v in values)  # type: ignore[arg-type]
                    elif all(isinstance(v, str) for v in values) and test.op in ("eq", "ne", "in", "not_in"):
                        words.setdefault((pattern.fact, test.field), set()).update(map(str, values))
        return cls(
            valuesets={
                fact: tuple((by_id[vs], count) for vs, count in sorted(counts.items()))
                for fact, counts in sorted(uses.items())
            },
            indications=tuple((by_id[vs], count) for vs, count in sorted(indications.items())),
            thresholds={key: tuple(sorted(values)) for key, values in sorted(numbers.items(), key=str)},
            words={key: tuple(sorted(values)) for key, values in sorted(words.items())},
            jurisdictions={
                route: tuple(
                    sorted(
                        j.id
                        for j in ruleset.jurisdictions
                        if scope.coverage(ruleset, route, j.id).state == "covered"
                    )
                )
                for route in ROUTES
            },
        )


def _is_number(value: object) -> bool:
    return not isinstance(value, bool | str | Ref)


def synthetic_cases(
    count: int,
    *,
    seed: int = 20261121,
    ruleset: RuleSet | None = None,
    now: dt.datetime = NOW,
    extra_items: int = 0,
) -> Iterator[dict[str, Any]]:
    """Yield ``count`` synthetic cases (plain JSON data, the ``ketacds assess`` shape).

    Args:
        count: how many cases.
        seed: the same seed gives the same cases.
        ruleset: where codes, names and thresholds come from (default: the bundled rules).
        now: the assessment time written into each case's context.
        extra_items: items added to every case beyond the usual mix (older readings,
            stopped medications, resolved conditions), to make large records.
    """
    population = Population.of(ruleset if ruleset is not None else load_ruleset())
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    for number in range(count):
        yield _Case(population, rng, now).build(number, extra_items)


class _Case:
    """Draws one case; every random choice goes through ``rng``, in a fixed order."""

    def __init__(self, population: Population, rng: random.Random, now: dt.datetime) -> None:
        self.population = population
        self.rng = rng
        self.now = now

    def build(self, number: int, extra_items: int) -> dict[str, Any]:
        rng = self.rng
        case: dict[str, Any] = {"patient": self.patient(number)}
        if rng.random() < 0.9:
            indication = rng.choices(*zip(*self.population.indications, strict=True))[0]
            case["conditions"] = [{**self.identity(indication, "conditions"), "clinical_status": "active"}]
        for key, (low, high) in _COUNTS.items():
            items = [self.item(key, old=False) for _ in range(rng.randint(low, high))]
            if items:
                case.setdefault(key, []).extend(items)
        kinds = ("conditions", "medications", "observations")
        for index in range(extra_items):
            kind = kinds[index % len(kinds)]
            case.setdefault(kind, []).append(self.item(kind, old=True))
        case["context"] = self.context()
        return case

    # ---------------------------------------------------------------- pieces

    def patient(self, number: int) -> dict[str, Any]:
        rng = self.rng
        age = rng.randint(14, 92) if rng.random() < 0.97 else rng.randint(5, 17)
        birth = self.now.date() - dt.timedelta(days=int(age * 365.25) + rng.randint(0, 364))
        patient: dict[str, Any] = {"id": f"synthetic-{number:07d}", "birth_date": birth.isoformat()}
        sex = rng.choice(("female", "male", "female", "male", "unknown", None))
        if sex is not None:
            patient["sex"] = sex
        if rng.random() < 0.93:
            kg = round(rng.gauss(80, 18), 1)
            kg = min(max(kg, 38.0), 190.0)
            patient["weight"] = f"{kg} kg" if rng.random() < 0.8 else f"{round(kg / 0.45359237)} lb"
        if rng.random() < 0.9:
            patient["height"] = f"{rng.randint(148, 198)} cm"
        if sex == "female" and rng.random() < 0.7:
            patient["pregnant"] = rng.random() < 0.04
            patient["lactating"] = rng.random() < 0.03
        if rng.random() < 0.05:
            patient["hepatic_class"] = rng.choice(("A", "B", "C"))
        return patient

    def context(self) -> dict[str, Any]:
        rng = self.rng
        # only routes the rules assess somewhere: a route refused everywhere (ketamine-intranasal)
        # has no program to draw
        route = rng.choice([r for r in ROUTES if self.population.jurisdictions[r]])
        context: dict[str, Any] = {
            "route": route,
            "jurisdiction": rng.choice(self.population.jurisdictions[route]),
            "now": self.now.isoformat(),
        }
        settings = self.population.words.get(("patient", "setting"), ())
        if settings and rng.random() < 0.3:
            context["setting"] = rng.choice(settings)
        if rng.random() < 0.4:
            plan: dict[str, Any] = {}
            if rng.random() < 0.5:
                plan["dose"] = f"{self.number('plan', None, 'dose_mg_per_kg', 0.5, places=2)} mg/kg"
            else:
                plan["dose"] = f"{self.number('plan', None, 'dose_mg', 56, places=0)} mg"
            if rng.random() < 0.6:
                plan["sessions_per_week"] = self.number("plan", None, "sessions_per_week", 2, places=0)
            if rng.random() < 0.6:
                plan["treatment_week"] = max(1, int(self.number("plan", None, "treatment_week", 4, places=0)))
            if rng.random() < 0.3:
                # Rules test session 1 (day 1); session 1 lies in week 1 (the loader refuses others).
                plan["session_number"] = rng.choice((1, 1, 2, 3, 8, 20))
                if plan["session_number"] == 1 and "treatment_week" in plan:
                    plan["treatment_week"] = 1
            if rng.random() < 0.3:
                plan["missed_sessions"] = rng.choice((0, 1, 2, 5))
                if rng.random() < 0.7:
                    plan["symptoms_worsened"] = rng.choice((True, False, "unknown"))
            context["plan"] = plan
        return context

    def item(self, key: str, *, old: bool) -> dict[str, Any]:
        rng = self.rng
        fact = _FACT_OF[key]
        valueset = self.valueset(fact, _UNKNOWN_SHARE[key])
        item = self.identity(valueset, key)
        if key == "conditions":
            statuses = get_args(ConditionStatus)
            item["clinical_status"] = rng.choice(statuses[3:]) if old else rng.choice(("active", *statuses))
            if rng.random() < 0.3:
                item["onset"] = self.days_ago(valueset, "condition", "onset_days_ago").isoformat()
        elif key == "medications":
            item["dose"] = self.number("medication", _id(valueset), "dose_mg", 50, places=0)
            item["unit"] = "mg"
            if rng.random() < 0.15:
                item["as_needed"] = True
            else:
                item["frequency_per_day"] = rng.choice((1, 1, 2, 3))
            statuses = get_args(MedicationStatus)
            item["status"] = rng.choice(statuses[3:]) if old else rng.choice(("active", "active", *statuses))
        elif key == "trials":
            item.pop("code", None)
            item.setdefault("name", f"synthetic medicine {rng.randint(1, 40)}")
            item["dose"] = self.number("trial", None, "dose_mg", 100, places=0)
            item["unit"] = "mg"
            if rng.random() < 0.9:
                item["weeks"] = self.number("trial", None, "weeks", 6, places=0)
            item["response"] = self.word("trial", "response", get_args(TrialResponse))
            item["episode"] = self.word("trial", "episode", ("current", "previous"))
            if rng.random() < 0.85:
                item["adequate_dose"] = rng.random() < 0.8
        elif key == "observations":
            item["value"] = self.number("observation", _id(valueset), "value", 50, places=0)
            if rng.random() < 0.9:
                recent = self.number("observation", _id(valueset), "hours_ago", 12)
                hours = rng.uniform(24, 24 * 365) if old else recent
                item["time"] = (self.now - dt.timedelta(minutes=round(float(hours) * 60))).isoformat()
        elif key == "allergies":
            item["status"] = rng.choice(("active", "active", "resolved"))
        else:
            item["status"] = rng.choice(get_args(SubstanceStatus))
        return item

    def valueset(self, fact: str, unknown: float) -> ValueSet | None:
        choices = self.population.valuesets.get(fact, ())
        if not choices or self.rng.random() < unknown:
            return None
        return self.rng.choices([vs for vs, _ in choices], weights=[n for _, n in choices])[0]

    def identity(self, valueset: ValueSet | None, key: str) -> dict[str, Any]:
        rng = self.rng
        if valueset is None:
            return {"name": f"synthetic {key.rstrip('s').replace('_', ' ')} {rng.randint(1, 60)}"}
        codes = [*valueset.codes, *valueset.prefixes]
        if codes and (not valueset.names or rng.random() < 0.6):
            code = rng.choice(codes)
            return {"code": {"system": code.system, "code": code.code}}
        return {"name": rng.choice(valueset.names)}

    def number(self, fact: str, valueset: str | None, field: str, default: float, places: int = 1) -> Any:
        """A value on either side of the thresholds rules compare ``field`` with, as often."""
        thresholds = self.population.thresholds.get((fact, valueset, field)) or (default,)
        low, high = min(thresholds), max(thresholds)
        if self.rng.random() < 0.5:
            value = round(self.rng.uniform(low * 0.7, low), places)
        else:
            value = round(self.rng.uniform(low, high * 1.15), places)
        return int(value) if places == 0 else value

    def word(self, fact: str, field: str, vocabulary: Sequence[str]) -> str:
        """Mostly a word rules compare ``field`` with, else any word of the vocabulary."""
        words = self.population.words.get((fact, field), ())
        return self.rng.choice(words if words and self.rng.random() < 0.7 else vocabulary)

    def days_ago(self, valueset: ValueSet | None, fact: str, field: str) -> dt.date:
        days = self.number(fact, _id(valueset), field, 365, places=0)
        return self.now.date() - dt.timedelta(days=max(0, int(days)))


def _id(valueset: ValueSet | None) -> str | None:
    return valueset.id if valueset is not None else None


def main(argv: Sequence[str] | None = None) -> int:
    """Write synthetic cases as NDJSON (one case per line)."""
    parser = argparse.ArgumentParser(prog="python -m ketacds.synthetic", description=main.__doc__)
    parser.add_argument("--patients", type=int, default=1000, help="how many cases (default 1000)")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--extra-items", type=int, default=0, help="items added to every case")
    parser.add_argument("--out", default="-", help="the NDJSON file to write ('-': standard output)")
    args = parser.parse_args(argv)
    cases = synthetic_cases(args.patients, seed=args.seed, extra_items=args.extra_items)
    lines = (json.dumps(case, sort_keys=True, ensure_ascii=False) + "\n" for case in cases)
    if args.out == "-":
        sys.stdout.writelines(lines)
    else:
        try:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "w", encoding="utf-8") as handle:
                handle.writelines(lines)
        except OSError as error:
            print(f"error: {args.out}: cannot write: {error.strerror}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
