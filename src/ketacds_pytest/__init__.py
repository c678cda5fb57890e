"""pytest plugin: every ``*.scenario.yaml`` file becomes test items, one per scenario.

Registered as the ``ketacds`` ``pytest11`` entry point, so installing ketacds is
enough: ``pytest tests/scenarios`` runs the scenarios, and a failure shows the same
clinical diff as ``ketacds scenarios run``, located at the scenario's line in the
YAML file. ``-p no:ketacds`` turns the plugin off; ``-m scenario`` selects only
scenarios.

This module is deliberately outside the ``ketacds`` package: importing ``ketacds``
loads the rule engine (durable_rules, a C extension), and pytest imports every
installed plugin in every session. Here the engine is imported only when a scenario
file is collected, and one Engine is built per session, when the first scenario runs.
Only pytest's public collection API is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ketacds.engine.api import Engine
    from ketacds.scenarios.model import Scenario
    from ketacds.scenarios.run import ScenarioResult

__all__ = ["ScenarioFailed", "ScenarioFile", "ScenarioItem"]

SUFFIX = ".scenario.yaml"
_ENGINE = pytest.StashKey["Engine"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options: which rules and which engine the scenarios run against."""
    group = parser.getgroup("ketacds", "ketacds scenario files (*.scenario.yaml)")
    group.addoption(
        "--ketacds-rules",
        metavar="DIR",
        default=None,
        help="run scenario files against the ruleset in DIR (default: the bundled rules)",
    )
    group.addoption(
        "--ketacds-backend",
        choices=("durable", "reference"),
        default="durable",
        help="run scenario files on durable_rules (default) or on the reference evaluator",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``scenario`` marker (every scenario item carries it)."""
    config.addinivalue_line("markers", "scenario: a ketacds scenario from a *.scenario.yaml file")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Free the session's Engine, if one was built."""
    engine = config.stash.get(_ENGINE, None)
    if engine is not None:
        engine.close()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> ScenarioFile | None:
    """Collect ``*.scenario.yaml`` files."""
    if file_path.name.endswith(SUFFIX):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def _engine(config: pytest.Config) -> Engine:
    engine = config.stash.get(_ENGINE, None)
    if engine is None:
        from ketacds.engine.api import Engine

        engine = Engine(config.getoption("ketacds_rules"))
        config.stash[_ENGINE] = engine
    return engine


class ScenarioFailed(Exception):
    """A scenario did not hold (or could not run); carries its result and clinical diff."""

    def __init__(self, result: ScenarioResult) -> None:
        super().__init__(result.report)
        self.result = result


class ScenarioFile(pytest.File):
    """A scenario file: one item per scenario, in the order written."""

    def collect(self) -> Iterator[ScenarioItem]:
        """Read the file (a bad file is a collection error naming its line)."""
        from ketacds.scenarios.load import load_scenario_file

        for scenario in load_scenario_file(self.path).scenarios:
            yield ScenarioItem.from_parent(self, name=scenario.title, scenario=scenario)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        """A bad scenario file is reported as ``file:line: what is wrong``, without a traceback."""
        from ketacds.errors import ScenarioError

        if isinstance(excinfo.value, ScenarioError):
            return f"bad scenario file: {excinfo.value}"
        return super().repr_failure(excinfo)  # pragma: no cover - pytest's own report


class ScenarioItem(pytest.Item):
    """One scenario: it passes when every expectation holds."""

    def __init__(self, *, scenario: Scenario, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.add_marker("scenario")

    def runtest(self) -> None:
        """Assess the case and compare it with the expectations."""
        from ketacds.scenarios.run import run_scenario

        backend = self.config.getoption("ketacds_backend")
        result = run_scenario(_engine(self.config), self.scenario, backend=backend)
        if result.outcome != "pass":
            raise ScenarioFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        """The clinical diff, as ``ketacds scenarios run`` prints it."""
        if isinstance(excinfo.value, ScenarioFailed):
            return excinfo.value.result.report
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int, str]:
        """Where the scenario is: its file and (0-based) line, and its title."""
        return self.path, self.scenario.line - 1, f"scenario: {self.scenario.title}"
