"""Load a ruleset directory (YAML + JSON Schema) into the intermediate form.

A ruleset directory holds ``manifest.yaml`` (name, version, routes, jurisdictions,
sources register, status table, and the list of rule files), the rule files, and
``valuesets/*.yaml``. Every problem is a :class:`~ketacds.errors.RulesetError`
that names the file and line, with a did-you-mean suggestion where a name is close,
and the stable code of the check that failed (``ruleset/checks.py``).

:func:`load_ruleset` stops at the first problem; :func:`load_checked` runs the same
checks but goes on past each problem it can, for the linter (``ruleset/lint.py``).

The loader is split by what it reads; this module is the entry point and runs them:

* :mod:`ketacds.ruleset.load_doc` — reading a file of the directory (:class:`RulesDoc`),
  the bundled JSON Schemas, the file names;
* :mod:`ketacds.ruleset.load_manifest` — ``manifest.yaml`` and what rules are checked against;
* :mod:`ketacds.ruleset.load_data` — value sets, tables, ``validity.yaml``, ``reference-facts.yaml``;
* :mod:`ketacds.ruleset.load_rules` — the rules and their conditions.

Each file's parse and schema check are cached by content (:mod:`ketacds.yamldoc`), so
loading a copy of a directory with one file changed parses and validates that file only;
:func:`load_ruleset` also keeps whole rulesets by the bytes of all their files, in the
process and on disk (:mod:`ketacds.ruleset.diskcache`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import attrs

from ketacds import yamldoc
from ketacds.errors import RulesetError
from ketacds.ruleset import checks, diskcache, plan
from ketacds.ruleset.ir import Fact, Rule, RuleSet, Table, Validity, ValueSet
from ketacds.ruleset.load_data import load_facts, load_tables, load_validity, load_valueset
from ketacds.ruleset.load_doc import (
    ANY_JURISDICTION,
    FACTS_FILE,
    VALIDITY_FILE,
    RulesDoc,
    bundled_rules_dir,
    read_doc,
    schema,
)
from ketacds.ruleset.load_manifest import Manifest, fact_vocabulary
from ketacds.ruleset.load_rules import CONTEXT_FIELDS, flag_problems, load_rule
from ketacds.yamldoc import suggest

__all__ = [
    "ANY_JURISDICTION",
    "CONTEXT_FIELDS",
    "FACTS_FILE",
    "VALIDITY_FILE",
    "Checked",
    "RuleFile",
    "bundled_rules_dir",
    "clear_caches",
    "fact_vocabulary",
    "load_checked",
    "load_ruleset",
    "schema",
]

_CACHE: dict[str, RuleSet] = {}
_CACHE_SIZE = 8


def clear_caches() -> None:
    """Forget every loaded ruleset and every parsed and validated file (for tests)."""
    _CACHE.clear()
    yamldoc.clear_caches()


def _content_key(root: Path) -> str:
    """A digest of every YAML file under ``root``, by relative path and bytes."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.yaml")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def load_ruleset(directory: Path | str | None = None) -> RuleSet:
    """Load, validate and return the ruleset in ``directory`` (default: the bundled one).

    Parsing YAML is slow, so rulesets are cached by the exact bytes of their files: a
    changed file is always loaded afresh, and an unchanged one is not parsed twice: not
    in this process, nor in the next one (:mod:`ketacds.ruleset.diskcache`).

    Raises:
        RulesetError: with the file and line of the first problem found.
    """
    root = Path(directory) if directory is not None else bundled_rules_dir()
    key = _content_key(root) if root.is_dir() else ""
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    ruleset = diskcache.read(key)  # what an earlier process loaded from the same bytes
    if ruleset is None:
        ruleset = _load(root, _Problems(collect=False)).ruleset
        assert ruleset is not None  # a problem would have raised
        diskcache.write(key, ruleset)
    if key:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = ruleset
    return ruleset


@attrs.frozen
class RuleFile:
    """A rule file of a ruleset, as the manifest lists it: its name and description."""

    name: str
    description: str | None


@attrs.frozen
class Checked:
    """What :func:`load_checked` found: the rules that loaded, and every problem met.

    ``ruleset`` holds every rule and value set that loaded without a problem; it is
    ``None`` when the manifest itself could not be read. ``files`` lists the rule
    files in the manifest's order.
    """

    root: Path
    ruleset: RuleSet | None
    files: tuple[RuleFile, ...]
    problems: tuple[RulesetError, ...]


def load_checked(directory: Path | str | None = None) -> Checked:
    """Load a ruleset as :func:`load_ruleset` does, but collect problems instead of stopping.

    Each value set and each rule is checked on its own, so one mistake hides no other;
    what depends on a broken part (the rules of a file that is not YAML, everything
    when the manifest is broken) is left out rather than guessed.
    """
    root = Path(directory) if directory is not None else bundled_rules_dir()
    return _load(root, _Problems(collect=True))


class _Problems:
    """Where problems go: raised at once (:func:`load_ruleset`) or collected (:func:`load_checked`)."""

    def __init__(self, *, collect: bool) -> None:
        self.collect = collect
        self.found: list[RulesetError] = []

    def report(self, error: RulesetError) -> None:
        if not self.collect:
            raise error
        self.found.append(error)


def _load(root: Path, problems: _Problems) -> Checked:
    try:
        manifest = Manifest(root)
    except RulesetError as error:
        problems.report(error)
        return Checked(root=root, ruleset=None, files=(), problems=tuple(problems.found))

    valuesets: list[ValueSet] = []
    folder = root / "valuesets"
    paths = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    for path in paths:
        try:
            valuesets.append(load_valueset(read_doc(path, root), path))
        except RulesetError as error:
            problems.report(error)
    tables: tuple[Table, ...] = ()
    try:
        tables = load_tables(root, {path.stem for path in paths})
    except RulesetError as error:
        problems.report(error)
    facts: tuple[Fact, ...] = ()
    notes: tuple[str, ...] = ()
    try:
        facts, notes = load_facts(root, manifest)
    except RulesetError as error:
        problems.report(error)
    # A value set that failed is still known by name, so that rules citing it add no noise.
    context = manifest.context({path.stem for path in paths}, tables, facts)
    for index, route in enumerate(manifest.data["routes"]):
        if "drug" in route and route["drug"] not in context.valuesets:
            problems.report(
                manifest.doc.error(
                    ("routes", index, "drug"),
                    f"unknown value set {route['drug']!r}",
                    suggest(route["drug"], context.valuesets),
                    code=checks.MANIFEST,
                )
            )

    rules: list[Rule] = []
    files: list[RuleFile] = []
    seen: dict[str, Rule] = {}
    for index, file_name in enumerate(manifest.data["files"]):
        path = root / file_name
        if not path.is_file():
            problems.report(
                manifest.doc.error(
                    ("files", index), f"rule file {file_name} does not exist", code=checks.MANIFEST
                )
            )
            continue
        try:
            doc = read_doc(path, root)
            if not problems.collect:
                doc.validate("rules")
        except RulesetError as error:
            problems.report(error)
            continue
        description = doc.data.get("description") if isinstance(doc.data, dict) else None
        files.append(
            RuleFile(name=doc.name, description=" ".join(description.split()) if description else None)
        )
        for position, data in _valid_rules(doc, problems):
            try:
                rule = load_rule(doc, ("rules", position), data, context)
            except RulesetError as error:
                problems.report(error)
                continue
            if rule.id in seen:
                first = seen[rule.id]
                problems.report(
                    doc.error(
                        ("rules", position, "id"),
                        f"duplicate rule id {rule.id} (first defined at {first.file}:{first.line})",
                        code=checks.DUPLICATE_ID,
                    )
                )
                continue
            seen[rule.id] = rule
            rules.append(rule)
    validity: Validity | None = None
    try:
        validity = load_validity(root, {path.stem for path in paths}, {s.id for s in manifest.sources})
    except RulesetError as error:
        problems.report(error)
    ruleset = manifest.ruleset(rules, valuesets, tables, validity, facts, notes)
    for problem in flag_problems(ruleset):
        problems.report(problem)
    try:
        plan.stratify(ruleset.rules)
    except RulesetError as error:
        problems.report(error)
    return Checked(root=root, ruleset=ruleset, files=tuple(files), problems=tuple(problems.found))


def _valid_rules(doc: RulesDoc, problems: _Problems) -> list[tuple[int, Any]]:
    """The rules of a file that pass the schema (all of them when loading strictly: it was validated)."""
    if not problems.collect:
        return list(enumerate(doc.data["rules"]))
    broken: set[int] = set()
    whole_file = False
    for at, error in doc.schema_problems("rules"):
        problems.report(error)
        if len(at) >= 2 and at[0] == "rules" and isinstance(at[1], int):
            broken.add(at[1])
        elif at[:1] in ((), ("rules",)):
            whole_file = True
    if whole_file or not isinstance(doc.data, dict) or not isinstance(doc.data.get("rules"), list):
        return []
    return [(position, data) for position, data in enumerate(doc.data["rules"]) if position not in broken]
