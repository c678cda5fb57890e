"""The files of a ruleset directory as documents: where they are, their schemas, their errors.

Shared by the parts of the loader (:mod:`ketacds.ruleset.load` and the ``load_*``
modules beside it): every file is read as a :class:`RulesDoc`, a
:class:`ketacds.yamldoc.Document` whose problems are :class:`~ketacds.errors.RulesetError`
with the stable code of the check that failed (``ruleset/checks.py``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from ketacds._yaml import copy_plain
from ketacds.errors import RulesetError
from ketacds.ruleset import checks
from ketacds.yamldoc import DocPath, Document, Schema, bundled_schema, schema_problem

__all__ = [
    "ANY_JURISDICTION",
    "FACTS_FILE",
    "VALIDITY_FILE",
    "RulesDoc",
    "bundled_rules_dir",
    "read_doc",
    "schema",
]

#: Written in a rule's ``jurisdictions`` to mean "wherever the engine is used".
ANY_JURISDICTION = "any"
#: The register of clinical-reference facts, beside the manifest.
FACTS_FILE = "reference-facts.yaml"
#: The file of plausible ranges and validity windows, beside the manifest.
VALIDITY_FILE = "validity.yaml"


def bundled_rules_dir() -> Path:
    """Return the rulesets shipped with ketacds (inside the wheel, or the source tree)."""
    packaged = Path(str(resources.files("ketacds"))) / "rulesets"
    if (packaged / "manifest.yaml").is_file():
        return packaged
    return Path(__file__).resolve().parents[3] / "rulesets"


def schema(name: str) -> dict[str, Any]:
    """Return one of the bundled JSON Schemas: ``rules``, ``valueset`` or ``manifest``."""
    return dict(copy_plain(_schema(name).document))


def _schema(name: str) -> Schema:
    return bundled_schema("ketacds.ruleset", name)


def read_doc(path: Path, root: Path) -> RulesDoc:
    """Read and parse one file of the ruleset at ``root`` (named relative to it in errors).

    Raises:
        RulesetError: the file cannot be read, is not UTF-8 or not YAML (code ``checks.YAML``).
    """
    name = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    return RulesDoc.read(path, name, RulesetError, code=checks.YAML)


class RulesDoc(Document[RulesetError]):
    """One YAML file of a ruleset with its line map, to raise errors at the right line."""

    def error(  # type: ignore[override]  # the check's code is required here
        self, path: DocPath, reason: str, suggestion: str | None = None, *, code: str
    ) -> RulesetError:
        """A :class:`RulesetError` for ``reason`` at the line of ``path``, with the check's ``code``."""
        return super().error(path, reason, suggestion, code=code)

    def _sorted_errors(self, schema_name: str) -> list[jsonschema.ValidationError]:
        errors = self.schema_errors(_schema(schema_name))
        return sorted(errors, key=lambda e: (len(e.path), list(map(str, e.path))))

    def validate(self, schema_name: str) -> None:
        """Raise the most relevant schema error, if any."""
        errors = self._sorted_errors(schema_name)
        if errors:
            raise self._schema_error(jsonschema.exceptions.best_match(errors))

    def schema_problems(self, schema_name: str) -> list[tuple[DocPath, RulesetError]]:
        """Every schema error (the most relevant reading of each), with where it is."""
        found = []
        for error in self._sorted_errors(schema_name):
            best = jsonschema.exceptions.best_match([error])
            found.append((tuple(error.absolute_path), self._schema_error(best)))
        return found

    def _schema_error(self, error: jsonschema.ValidationError) -> RulesetError:
        problem = schema_problem(error)
        if problem.unknown_key is not None:
            return self.error(problem.path, problem.reason, problem.suggestion, code=checks.UNKNOWN_KEY)
        at: DocPath = tuple(error.absolute_path)
        no_evidence = (error.validator == "required" and "evidence" in error.message) or (
            at[-1:] == ("evidence",) and error.validator == "minItems"
        )
        code = checks.NO_EVIDENCE if no_evidence else checks.SCHEMA
        return self.error(problem.path, problem.reason, code=code)
