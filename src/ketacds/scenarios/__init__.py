"""Scenario files for pharmacists: load, run, explain, measure rule coverage, mutate, what-if.

A scenario is a patient, a planned treatment, and what the engine should say
(``docs/scenario-format.md``). This package reads scenario files, runs them with a
clinical diff for every failure, explains why a rule fired or not, measures which
rules the scenarios exercise, mutation-tests the rules against them, and re-assesses
edited cases ("what if"). ``ketacds scenarios`` and ``ketacds explain`` are its
command line; the ``ketacds_pytest`` plugin runs scenario files under pytest.
"""

from ketacds.scenarios.check import Mismatch, compare, validate
from ketacds.scenarios.coverage import CoverageReport, RuleCoverage, measure_coverage
from ketacds.scenarios.explain import CaseAnalysis, Check, Explanation, Match, explain
from ketacds.scenarios.load import find_scenario_files, load_scenario_file, scenario_schema
from ketacds.scenarios.model import (
    DoseExpectation,
    Expectations,
    FindingExpectation,
    NamedExpectation,
    Scenario,
    ScenarioFile,
    StatusExpectation,
)
from ketacds.scenarios.mutate import OPERATORS, Mutant, MutantResult, MutationReport, mutants, run_mutation
from ketacds.scenarios.run import (
    ScenarioResult,
    SuiteResult,
    load_suite,
    run_scenario,
    run_suite,
    write_junit,
)
from ketacds.scenarios.whatif import Changes, Edit, apply_edits, compare_assessments, parse_edit

__all__ = [
    "OPERATORS",
    "CaseAnalysis",
    "Changes",
    "Check",
    "CoverageReport",
    "DoseExpectation",
    "Edit",
    "Expectations",
    "Explanation",
    "FindingExpectation",
    "Match",
    "Mismatch",
    "Mutant",
    "MutantResult",
    "MutationReport",
    "NamedExpectation",
    "RuleCoverage",
    "Scenario",
    "ScenarioFile",
    "ScenarioResult",
    "StatusExpectation",
    "SuiteResult",
    "apply_edits",
    "compare",
    "compare_assessments",
    "explain",
    "find_scenario_files",
    "load_scenario_file",
    "load_suite",
    "measure_coverage",
    "mutants",
    "parse_edit",
    "run_mutation",
    "run_scenario",
    "run_suite",
    "scenario_schema",
    "validate",
    "write_junit",
]
