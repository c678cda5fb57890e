"""Shared fixtures and Hypothesis profiles.

Profiles: ``dev`` (default, fast), ``ci`` (derandomised; what ``make test`` uses),
``nightly`` (many more examples). Choose with ``--hypothesis-profile``.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile

import pytest
from hypothesis import HealthCheck, settings

from ketacds import Engine

# pytester runs pytest inside pytest: the tests of the scenario plugin need it.
pytest_plugins = ["pytester"]

settings.register_profile("dev", max_examples=40, deadline=None)
settings.register_profile(
    "ci",
    max_examples=150,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("nightly", max_examples=3000, deadline=None, print_blob=True)
settings.load_profile("dev")

# Loaded rulesets are kept on disk between processes (ketacds.ruleset.diskcache). The tests
# keep theirs in a directory of their own, not the user's cache, shared by the xdist
# workers and the ketacds processes the tests start (they inherit the environment). A
# directory given by the caller (KETACDS_CACHE_DIR, "off" included) is kept.
os.environ.setdefault("KETACDS_CACHE_DIR", os.path.join(tempfile.gettempdir(), "ketacds-test-cache"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", help="rewrite tests/golden/ from the current rules"
    )


@pytest.fixture(scope="session")
def engine() -> Engine:
    """One engine for the whole session, as an integrator would keep one."""
    return Engine()


@pytest.fixture(scope="session")
def bundled_engine() -> Engine:
    """The bundled rules, for modules whose `engine` is the frozen slice."""
    return Engine()


@pytest.fixture(scope="session")
def slice_engine() -> Engine:
    """An engine on the frozen 0.1.0 rules, for tests that assert exact rule content."""
    from support import SLICE_RULES

    return Engine(SLICE_RULES)


@pytest.fixture
def now() -> dt.datetime:
    return dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)
