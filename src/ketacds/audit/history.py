"""The version record: which digest each released ruleset version has, and its changelog entry.

An Assessment names the ruleset version and digest that produced it, and an auditor
signs off a version. So a version must name exactly one content: when the rules
change, the version changes. ``rulesets/versions.yaml`` records the digest of every
version::

    ketacds-core:
      0.1.0: 89d5399813f778b618b9726eea561b102d5cf0c227665465b1fde7dc1c7cb5b6

and :func:`check` (run by the test suite) fails, saying what to do, when

* the rules' digest is not the one recorded for the manifest's version (the rules
  changed and the version did not), or the version is not recorded yet;
* a recorded version is not named in a ``### Clinical`` section of ``CHANGELOG.md``;
* the manifest's version is older than a recorded one.

Entries are only ever added: the digest recorded for a version never changes.
"""

from __future__ import annotations

import re
from pathlib import Path

from ketacds._yaml import YamlProblem, load_yaml
from ketacds.ruleset.ir import RuleSet

__all__ = ["RECORD_FILE", "check", "clinical_text", "next_version", "read_record"]

#: The record's file name, inside the ruleset directory.
RECORD_FILE = "versions.yaml"


def read_record(path: Path) -> dict[str, dict[str, str]]:
    """The record: ruleset name → version → digest (empty when the file does not exist).

    Raises:
        ValueError: the file is not a mapping of mappings of text.
    """
    if not path.is_file():
        return {}
    try:
        data, _ = load_yaml(path.read_text(encoding="utf-8"))
    except YamlProblem as problem:
        raise ValueError(f"{path}:{problem.line}: {problem.reason}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path}: expected `name: {{version: digest}}` mappings")
    return {str(name): {str(k): str(v) for k, v in versions.items()} for name, versions in data.items()}


def clinical_text(changelog: str) -> str:
    """The text of every ``### Clinical`` section of a Keep-a-Changelog file, joined."""
    sections = []
    current: list[str] | None = None
    for line in changelog.splitlines():
        if line.startswith("#"):
            current = [] if line.strip().lower() == "### clinical" else None
            if current is not None:
                sections.append(current)
            continue
        if current is not None:
            current.append(line)
    return "\n".join("\n".join(section) for section in sections)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def next_version(version: str) -> str:
    """The next patch version: ``0.1.0`` → ``0.1.1``."""
    parts = version.split(".")
    parts[-1] = str(int(parts[-1]) + 1) if parts[-1].isdigit() else parts[-1] + ".1"
    return ".".join(parts)


def _mentions(text: str, version: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(version)}(?![\w]|\.\d)", text) is not None


def check(ruleset: RuleSet, record_path: Path, changelog_path: Path) -> list[str]:
    """Every way the record and the changelog disagree with the rules, each with what to do."""
    record = read_record(record_path).get(ruleset.name, {})
    name, version, digest = ruleset.name, ruleset.version, ruleset.digest
    manifest = record_path.parent / "manifest.yaml"
    problems = []
    recorded = record.get(version)
    if recorded is None:
        problems.append(
            f"version {version} of {name} is not recorded: add the line `  {version}: {digest}` "
            f"under `{name}:` in {record_path} (see `ketacds rules digest`)"
        )
    elif recorded != digest:
        bump = next_version(version)
        problems.append(
            f"the rules of {name} changed (digest {digest[:16]}...), but version {version} is recorded "
            f"with digest {recorded[:16]}...: a version names exactly one content. Bump `version` in "
            f"{manifest} (to {bump}, say), add `  {bump}: {digest}` under `{name}:` in {record_path}, "
            f"and describe the change under `### Clinical` in {changelog_path}, naming {bump} and the "
            f"rule ids it touches. Run `make docs` and `make golden`, and review their diffs."
        )
    newest = max(record, key=_version_key, default=None)
    if newest is not None and _version_key(version) < _version_key(newest):
        problems.append(
            f"version {version} of {name} is older than the recorded {newest}: versions only go up"
        )
    clinical = clinical_text(changelog_path.read_text(encoding="utf-8")) if changelog_path.is_file() else ""
    for listed in sorted({*record, version}, key=_version_key):
        if not _mentions(clinical, listed):
            problems.append(
                f"no `### Clinical` entry of {changelog_path} names version {listed} of {name}: say what "
                f"changed for patients in it, and which rule ids"
            )
    return problems
