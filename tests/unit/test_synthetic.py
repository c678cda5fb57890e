"""The synthetic population: deterministic, loadable, and varied enough to exercise the rules."""

from __future__ import annotations

import json
from collections import Counter

from ketacds import load_case
from ketacds.synthetic import main, synthetic_cases


def test_same_seed_same_cases(engine):
    """Two runs with one seed give identical cases; another seed gives others."""
    first = list(synthetic_cases(30, seed=7, ruleset=engine.ruleset))

    assert first == list(synthetic_cases(30, seed=7, ruleset=engine.ruleset))
    assert first != list(synthetic_cases(30, seed=8, ruleset=engine.ruleset))


def test_every_case_loads_and_the_statuses_vary(engine):
    """Every case is valid input, and a few hundred patients reach most statuses."""
    statuses = Counter()
    for case in synthetic_cases(300, ruleset=engine.ruleset):
        record, context = load_case(case)
        statuses[engine.assess(record, context).status] += 1

    assert 5 <= len(statuses)


def test_extra_items_make_large_records(engine):
    """extra_items adds that many items to every case."""
    small, large = (next(synthetic_cases(1, ruleset=engine.ruleset, extra_items=n)) for n in (0, 60))
    count = lambda case: sum(len(v) for k, v in case.items() if isinstance(v, list))  # noqa: E731

    assert 60 == count(large) - count(small)


def test_command_line_writes_ndjson(tmp_path):
    """python -m ketacds.synthetic writes one JSON case per line."""
    out = tmp_path / "cases.ndjson"

    assert 0 == main(["--patients", "3", "--out", str(out)])
    lines = out.read_text(encoding="utf-8").splitlines()
    assert ["synthetic-0000000", "synthetic-0000001", "synthetic-0000002"] == [
        json.loads(line)["patient"]["id"] for line in lines
    ]
