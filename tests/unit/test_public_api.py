"""The public namespace and the package metadata."""

from __future__ import annotations

import importlib.metadata
import tomllib

import ketacds
from support import ROOT


def test_all_is_sorted_and_complete():
    """__all__ is sorted and lists exactly the public names of the package."""
    # pytest assertion-rewrites every module of a distribution with a pytest11 plugin (ours:
    # ketacds_pytest), which adds "@py_builtins" and "@pytest_ar": never importable names.
    public = sorted(
        name
        for name in vars(ketacds)
        if (not name.startswith("_") or name == "__version__") and not name.startswith("@")
    )
    modules = {
        "adapters",
        "cli",
        "dosing",
        "engine",
        "errors",
        "models",
        "reporting",
        "ruleset",
        "scenarios",
        "server",
        "terminology",
        "sys",
    }
    modules |= {"audit", "markup"}  # subpackages, present once imported
    modules |= {"batch", "synthetic"}  # submodules, imported by other tests
    modules |= {"limits", "vocabulary", "yamldoc"}  # imported by the readers and the models
    modules |= {"cases", "jsoncodec"}  # submodules: the case readers, the JSON serialiser

    assert sorted(ketacds.__all__) == ketacds.__all__
    assert sorted(set(public) - modules) == ketacds.__all__


def test_version_matches_pyproject():
    """The package version is the one pyproject.toml declares."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

    assert declared == ketacds.__version__ == importlib.metadata.version("ketacds")


def test_errors_share_one_root_and_builtins():
    """Every error is a KetacdsError and also the matching builtin."""
    assert issubclass(ketacds.InputError, ketacds.KetacdsError)
    assert issubclass(ketacds.InputError, ValueError)
    assert issubclass(ketacds.RulesetError, ValueError)
    assert issubclass(ketacds.TerminologyError, LookupError)
    assert issubclass(ketacds.EvaluationError, RuntimeError)
    assert issubclass(ketacds.DigestMismatchError, ketacds.RulesetError)
    assert issubclass(ketacds.ScenarioError, ValueError)


def test_rulesets_are_shipped_inside_the_package():
    """The installed package carries its rulesets (not only the source tree)."""
    from importlib import resources
    from pathlib import Path

    import pytest

    packaged = Path(str(resources.files("ketacds"))) / "rulesets"
    if packaged.parent.resolve() == (ROOT / "src" / "ketacds").resolve():
        pytest.skip("ketacds is imported from the source tree (PYTHONPATH=src), not an installed copy")

    assert (packaged / "manifest.yaml").is_file()
    assert sorted(p.name for p in (ROOT / "rulesets").rglob("*.yaml")) == sorted(
        p.name for p in packaged.rglob("*.yaml")
    )
