"""Recognition on real-shaped records: what the terminology reads in the shared Synthea bundles.

For each FHIR bundle, counts the ACTIVE medications no value set a rule reads (or an
explicit "known, no rule needs it" list) recognises, and the ACTIVE conditions likewise,
and prints the Assessment's status for esketamine in the US. Run it against any checkout
(it uses only the public reading API, the Engine's facts and the ruleset's rules)::

    .venv/bin/python benchmarks/recognition.py [DIR]          # default: tests/data/fhir

Issue 14 item 2: the target is no unread active item whose ingredient or concept is in its
display text.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import attrs

from ketacds.adapters.fhir import read_bundle
from ketacds.engine.api import Engine
from ketacds.models.inputs import Context
from ketacds.ruleset.plan import valuesets_read

_DEFAULT_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "fhir"
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def read_valuesets(engine: Engine) -> set[str]:
    """The value sets some rule or table reads, plus the ruleset's "known, no rule needs it" lists."""
    ruleset = engine.ruleset
    read = set().union(*(valuesets_read(rule) for rule in ruleset.rules))
    read |= {entry.valueset for table in ruleset.tables for entry in table.entries}
    read |= {vs.id for vs in ruleset.valuesets if getattr(vs, "known", False)}
    return read


def main(argv: list[str]) -> int:
    folder = Path(argv[1]) if len(argv) > 1 else _DEFAULT_DIR
    engine = Engine()
    read = read_valuesets(engine)
    context = Context(route="esketamine-nasal", jurisdiction="US", now=NOW)
    terminology = engine.terminology

    def seen(fact: dict[str, object]) -> bool:
        # Per fact type where the terminology knows it (after issue 14); else any rule-read value set.
        if hasattr(terminology, "is_read"):
            return bool(terminology.is_read(fact["vs"], fact["t"]))
        return bool(set(fact["vs"]) & read)  # type: ignore[call-overload]

    print(f"bundles: {folder}")
    print(f"{'bundle':<28} {'unread active meds':>18} {'unread active conds':>19} {'reported':>8}  status")
    totals = [0, 0, 0]
    for path in sorted(folder.glob("*.json")):
        record = read_bundle(json.loads(path.read_text()))
        deceased = bool(record.patient.deceased)
        # What the terminology reads does not depend on whether the patient is alive: the
        # deceased are counted too (their Assessment is refused, so the status says so).
        alive = attrs.evolve(record, patient=attrs.evolve(record.patient, deceased=None))
        facts = engine.facts(alive, context)
        meds = [
            facts.labels[f["id"]]
            for f in facts.facts
            if f["t"] == "medication" and f["active"] and not seen(f)
        ]
        conds = [
            facts.labels[f["id"]]
            for f in facts.facts
            if f["t"] == "condition" and f["active"] and not seen(f)
        ]
        result = engine.assess(alive, context)
        # Unread items the Assessment names in data quality (any severity but info).
        reported = [
            i
            for i in result.data_quality
            if i.severity != "info"
            and i.code in ("unmapped-medication", "unrecognised-medication", "unrecognised-condition")
        ]
        status = f"not assessed (deceased; alive it would be {result.status})" if deceased else result.status
        totals[0] += len(meds)
        totals[1] += len(conds)
        totals[2] += len(reported)
        print(f"{path.name[:28]:<28} {len(meds):>18} {len(conds):>19} {len(reported):>8}  {status}")
        for label in meds:
            print(f"    med : {label}")
        for label in conds:
            print(f"    cond: {label}")
    print(f"{'total':<28} {totals[0]:>18} {totals[1]:>19} {totals[2]:>8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
