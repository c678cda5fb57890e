"""Copies of the bundled rulesets under tmp_path, with one mistake each, for loader and lint tests."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from support import ROOT

RULES = ROOT / "rulesets"

#: A rule that loads and lints clean; each fixture changes one thing in it.
#: (It says something of its own, so it neither duplicates nor shadows KCDS-INT-002.)
GOOD_RULE = """
  - id: KCDS-TEST-001
    title: A test rule
    category: interaction
    severity: caution
    routes: [ketamine-iv]
    jurisdictions: [any]
    when:
      - medication: {in: benzodiazepines, active: true}
    then:
      finding: {message: A test finding.}
    rationale: Only for the loader and lint tests.
    evidence: [{source: KETAMAX, section: Interactions}]
    confidence: R
"""


def copy_rules(tmp_path: Path) -> Path:
    """A fresh copy of the source tree's rulesets."""
    target = tmp_path / "rulesets"
    shutil.copytree(RULES, target)
    return target


def add_rule(rules_dir: Path, text: str, file: str = "interactions.yaml") -> None:
    """Append rule text to a rule file."""
    path = rules_dir / file
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def replace(rules_dir: Path, file: str, old: str, new: str) -> None:
    """Replace text in a ruleset file; the text must be there."""
    path = rules_dir / file
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {file}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def set_version(rules_dir: Path, version: str) -> str:
    """Set the manifest's version; return the version it had."""
    path = rules_dir / "manifest.yaml"
    text = path.read_text(encoding="utf-8")
    found = re.search(r"^version: (\S+)$", text, re.M)
    assert found is not None
    path.write_text(text.replace(found.group(0), f"version: {version}", 1), encoding="utf-8")
    return found.group(1)


def line_of(rules_dir: Path, needle: str, file: str = "interactions.yaml") -> int:
    """The last line of ``file`` containing ``needle``."""
    lines = (rules_dir / file).read_text(encoding="utf-8").splitlines()
    return max(i for i, line in enumerate(lines, 1) if needle in line)
