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


# ------------------------------------------------------------- loader, cli and service


def _failures_but_time(report) -> int:
    """Failures other than a case over 2 s (the suite shares its cores: see _slowest)."""
    from fuzz.report import FAILING_RAW

    return sum(report.kinds[kind] for kind in (*FAILING_RAW, "hang-killed"))


def _slowest(report) -> float:
    """The slowest case. ``make fuzz`` fails on any over 2 s; the suite, run on busy cores
    beside other tests, fails on any over 10 s (a real hang is minutes)."""
    return max((seconds for seconds, _ in report.slowest), default=0.0)


@pytest.mark.slow
def test_loader_target_150_mutated_files_nothing_undocumented_or_slow():
    """Case files and FHIR bundles mutated as bytes: accepted or refused with InputError, in < 2 s."""
    report = run(150, seed=21, workers=2, target="loader")

    assert 150 == report.cases
    assert 0 == _failures_but_time(report), report.text()
    assert _slowest(report) < 10, report.text()
    assert report.kinds["refused"] > 0, report.text()
    assert report.kinds["assessed"] > 0, report.text()


@pytest.mark.slow
def test_cli_target_runs_ketacds_assess_on_mutated_files():
    """``ketacds assess`` as a subprocess on a few mutated files: exit 0, 2 or 3, no traceback."""
    report = run(4, seed=22, workers=1, target="cli")

    assert 4 == report.cases
    assert 0 == _failures_but_time(report), report.text()
    assert _slowest(report) < 10, report.text()
    assert report.kinds["assessed"] + report.kinds["refused"] + report.kinds["engine-error"] == 4
    assert "beyond start-up" in report.text()


@pytest.mark.slow
def test_service_target_posts_mutated_requests_to_one_loopback_service():
    """Mutated CDS Hooks requests to a real service on 127.0.0.1: never a 5xx, a drop or 2 s."""
    report = run(80, seed=23, workers=2, target="service")

    assert 80 == report.cases
    assert 0 == _failures_but_time(report), report.text()
    assert _slowest(report) < 10, report.text()
    assert report.kinds["assessed"] > 0, report.text()


def test_raw_cases_are_rebuilt_from_the_seed_and_cover_every_byte_mutator():
    """Raw case i is the same bytes every time; the byte mutators all change something."""
    import random

    from fuzz.raw import BYTE_MUTATORS, raw_case, raw_seeds, request_case

    assert raw_case(7, 5) == raw_case(7, 5)
    assert request_case(7, 5) == request_case(7, 5)
    kinds = {seed[1][0] for seed in raw_seeds()}
    assert kinds == {"case", "bundle"}
    text = b'patient:\n  weight: 70\n  height: {value: 165, unit: cm}\n"coding": [1]\n'
    for name, mutator in BYTE_MUTATORS.items():
        changed = any(mutator(text, random.Random(n)) != text for n in range(5))
        assert changed, name


def test_a_slow_case_fails_the_loader_cli_and_service_targets_but_not_the_engine_report():
    """Over 2 s is a failure for the new targets; the engine target's report is as it was."""
    from fuzz.report import Report

    for target in ("loader", "cli", "service"):
        report = Report(seed=1, target=target)
        report.add(0, "assessed", "", 2.5)
        report.add(1, "refused", "", 0.1)
        assert report.failed, target
        assert 1 == report.failures
        assert "over 2 s" in report.text()
    engine = Report(seed=1, target="engine")
    engine.add(0, "assessed", "", 2.5)
    assert not engine.failed
    assert "assessed (both engines agree)" in engine.text()


@pytest.mark.parametrize("kind", ["traceback", "exit-code", "http-5xx", "connection", "undocumented"])
def test_each_failure_kind_fails_a_raw_target(kind):
    from fuzz.report import Report

    report = Report(seed=1, target="service")
    report.add(0, kind, "detail", 0.1)
    assert report.failed
    assert "detail" in report.text()
