"""The fuzz harness (``fuzz/``, ``make fuzz``) in the suite: a short run must find nothing,
and the harness must count a crash rather than die of it."""

from __future__ import annotations

import pytest
from fuzz.run import run
from fuzz.seeds import case, seeds


@pytest.mark.slow
def test_300_mutated_cases_no_disagreement_crash_or_undocumented_exception():
    """durable_rules and the reference evaluator agree on 300 mutated cases; nothing crashes."""
    report = run(300, seed=14, workers=2)

    assert 300 == report.cases
    assert 0 == report.kinds["disagreement"], report.text()
    assert 0 == report.kinds["crash"], report.text()
    assert 0 == report.kinds["undocumented"], report.text()
    assert report.kinds["assessed"] > 50, report.text()
    assert not report.failed


def test_a_segfault_is_counted_not_fatal():
    """A worker killed by SIGSEGV counts a crash for its case and is replaced; the run goes on."""
    report = run(24, seed=3, workers=2, target="selftest")

    assert 24 == report.cases
    assert report.kinds["crash"] > 0
    assert report.kinds["undocumented"] > 0  # a ZeroDivisionError is not a documented error
    assert report.kinds["assessed"] > 0
    assert report.failed
    assert "crashes" in report.text()


def test_cases_are_rebuilt_from_the_seed():
    """Case i of a run is the same document every time (a failure can be replayed alone)."""
    assert case(7, 123) == case(7, 123)
    assert case(7, 123) != case(8, 123)
    assert len(seeds()) > 300  # the examples and every scenario
