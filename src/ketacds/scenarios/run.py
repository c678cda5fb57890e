"""Run scenarios against an Engine and report each as passed, failed or in error.

A scenario *fails* when the engine's answer differs from what it expects (the
report is the clinical diff of :mod:`ketacds.scenarios.diff`). It is in *error*
when it cannot be run: it names a rule, status or label the rules do not have, its
case is rejected by the engine (``bad_scenario``), or the engine itself failed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import attrs

from ketacds.engine.api import BackendName, Engine
from ketacds.errors import EvaluationError, InputError, ProgramRefusedError, ScenarioError
from ketacds.models.results import Assessment
from ketacds.scenarios.check import Mismatch, compare, validate
from ketacds.scenarios.diff import render_error, render_failure
from ketacds.scenarios.explain import CaseAnalysis
from ketacds.scenarios.load import find_scenario_files, input_path, load_scenario_file
from ketacds.scenarios.model import Scenario

__all__ = ["ScenarioResult", "SuiteResult", "load_suite", "run_scenario", "run_suite", "write_junit"]

Outcome = Literal["pass", "fail", "error"]

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_BAD_SCENARIO = 2
EXIT_ENGINE = 3


@attrs.frozen(kw_only=True)
class ScenarioResult:
    """The outcome of one scenario.

    Attributes:
        outcome: ``pass``, ``fail`` or ``error``.
        mismatches: the expectations that did not hold (for ``fail``).
        report: the clinical diff (``fail``) or the error (``error``); empty on ``pass``.
        bad_scenario: for ``error``, whether the scenario is to blame (else the engine).
    """

    scenario: Scenario
    outcome: Outcome
    mismatches: tuple[Mismatch, ...] = ()
    assessment: Assessment | None = None
    report: str = ""
    bad_scenario: bool = False
    seconds: float = 0.0


@attrs.frozen(kw_only=True)
class SuiteResult:
    """The outcome of a set of scenario files."""

    results: tuple[ScenarioResult, ...]
    file_errors: tuple[ScenarioError, ...] = ()
    seconds: float = 0.0

    def count(self, outcome: Outcome) -> int:
        """How many scenarios had this outcome."""
        return sum(r.outcome == outcome for r in self.results)

    @property
    def exit_code(self) -> int:
        """0 all passed, 1 some failed, 2 a scenario file is bad, 3 the engine failed."""
        if any(r.outcome == "error" and not r.bad_scenario for r in self.results):
            return EXIT_ENGINE
        if self.file_errors or any(r.bad_scenario for r in self.results):
            return EXIT_BAD_SCENARIO
        return EXIT_FAILED if self.count("fail") else EXIT_PASSED


def run_scenario(engine: Engine, scenario: Scenario, *, backend: BackendName = "durable") -> ScenarioResult:
    """Assess one scenario's case and compare the Assessment with its expectations."""
    started = time.perf_counter()

    def error(message: str, *, bad: bool) -> ScenarioResult:
        return ScenarioResult(
            scenario=scenario,
            outcome="error",
            report=render_error(scenario, message),
            bad_scenario=bad,
            seconds=time.perf_counter() - started,
        )

    try:
        validate(scenario, engine.ruleset)
        assessment = engine.assess(scenario.record, scenario.context, backend=backend)
    except ScenarioError as problem:
        return error(str(problem), bad=True)
    except ProgramRefusedError as problem:
        if scenario.expect.refused and problem.declared:
            return ScenarioResult(scenario=scenario, outcome="pass", seconds=time.perf_counter() - started)
        line = scenario.line_of(input_path(problem.path))
        return error(f"{scenario.file}:{line}: {problem}", bad=True)
    except InputError as problem:
        line = scenario.line_of(input_path(problem.path))
        return error(f"{scenario.file}:{line}: {problem}", bad=True)
    except EvaluationError as problem:
        return error(f"the engine failed, no result: {problem}", bad=False)
    mismatches = tuple(compare(scenario, assessment, engine.ruleset))
    if not mismatches:
        return ScenarioResult(
            scenario=scenario, outcome="pass", assessment=assessment, seconds=time.perf_counter() - started
        )
    analysis = CaseAnalysis(engine, scenario.record, scenario.context)
    return ScenarioResult(
        scenario=scenario,
        outcome="fail",
        mismatches=mismatches,
        assessment=assessment,
        report=render_failure(scenario, mismatches, assessment, analysis),
        seconds=time.perf_counter() - started,
    )


def load_suite(paths: Iterable[Path | str]) -> tuple[list[Scenario], list[ScenarioError]]:
    """Load every scenario under ``paths``; a bad file is reported, not fatal to the others."""
    scenarios: list[Scenario] = []
    errors: list[ScenarioError] = []
    try:
        files = find_scenario_files(paths)
    except ScenarioError as problem:
        return [], [problem]
    for path in files:
        try:
            scenarios.extend(load_scenario_file(path).scenarios)
        except ScenarioError as problem:
            errors.append(problem)
    return scenarios, errors


def run_suite(
    engine: Engine,
    scenarios: Sequence[Scenario],
    *,
    backend: BackendName = "durable",
    file_errors: Sequence[ScenarioError] = (),
) -> SuiteResult:
    """Run every scenario, in order."""
    started = time.perf_counter()
    results = tuple(run_scenario(engine, scenario, backend=backend) for scenario in scenarios)
    return SuiteResult(results=results, file_errors=tuple(file_errors), seconds=time.perf_counter() - started)


def write_junit(suite: SuiteResult, path: Path | str) -> None:
    """Write the results as JUnit XML (one testcase per scenario) for CI systems."""
    # Only writes XML, never parses it: the XML-attack warnings about this module do not apply.
    from xml.etree import ElementTree as ET

    root = ET.Element("testsuites")
    suite_element = ET.SubElement(
        root,
        "testsuite",
        name="ketacds scenarios",
        tests=str(len(suite.results) + len(suite.file_errors)),
        failures=str(suite.count("fail")),
        errors=str(suite.count("error") + len(suite.file_errors)),
        time=f"{suite.seconds:.3f}",
    )
    for problem in suite.file_errors:
        case = ET.SubElement(
            suite_element, "testcase", classname=problem.file or "", name="(scenario file)", time="0"
        )
        ET.SubElement(case, "error", message=problem.reason).text = str(problem)
    for result in suite.results:
        s = result.scenario
        case = ET.SubElement(
            suite_element,
            "testcase",
            classname=s.file,
            name=s.title,
            file=s.file,
            line=str(s.line),
            time=f"{result.seconds:.3f}",
        )
        if result.outcome == "fail":
            message = f"{len(result.mismatches)} expectation(s) did not hold"
            ET.SubElement(case, "failure", message=message).text = result.report
        elif result.outcome == "error":
            ET.SubElement(case, "error", message=result.report.splitlines()[-1].strip()).text = result.report
    ET.indent(root)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
