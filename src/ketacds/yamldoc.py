"""One reader for YAML files checked against a JSON Schema: rules, terminology, scenarios.

Each of those loaders reads a file, parses it with exact decimals and a line map
(:func:`ketacds._yaml.load_yaml`), checks it against a JSON Schema, and reports a
problem at the file and line where it is, with a did-you-mean where a name is close.
This module owns those steps so that they are written once:

* :class:`Document` — one parsed file: its shown name, its data (the caller's own
  copy), the line of every path, and the SHA-256 of its bytes; :meth:`Document.line`
  and :meth:`Document.error` place a problem;
* :class:`Schema` — a JSON Schema with its validator and identity;
  :meth:`Document.schema_errors` validates, cached by (content, schema identity);
* :func:`schema_problem` and :func:`friendly_problem` — the two ways a schema error is
  put in words: ``path: message`` for rule authors, plain words for pharmacists;
* :func:`suggest` — the did-you-mean.

Parsing and validating are cached process-wide by content (see ``_yaml._PARSED`` and
``_VALIDATED``), so a copied rules directory with one changed file parses and validates
that one file again. Cached data is never handed out: each document gets its own copy.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

import attrs
import jsonschema

from ketacds._yaml import Path as DocPath
from ketacds._yaml import YamlProblem, copy_plain, load_yaml

__all__ = [
    "DocPath",
    "Document",
    "Problem",
    "Schema",
    "bundled_schema",
    "clear_caches",
    "close_matches",
    "friendly_problem",
    "schema_problem",
    "suggest",
    "where",
]


def suggest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name`` (a did-you-mean), or ``None`` when none is close."""
    matches = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return matches[0] if matches else None


def close_matches(name: str, known: Iterable[str], count: int) -> tuple[str, ...]:
    """Up to ``count`` known names close to ``name``, nearest (fewest edits) first.

    Close means what :func:`suggest` means; the order is by edit distance, since ids such
    as ``KCDS-CI-001`` and ``KCDS-CI-100`` are equally "similar" to ``KCDS-CI-00l``.
    """
    candidates = difflib.get_close_matches(name, sorted(set(known)), n=1 << 30, cutoff=0.6)
    return tuple(sorted(candidates, key=lambda other: (_edits(name, other), other))[:count])


def _edits(a: str, b: str) -> int:
    """The Levenshtein distance: insertions, deletions and substitutions turning ``a`` into ``b``."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


#: The error a document raises (``RulesetError``, ``ScenarioError``): it is called with the
#: reason and the keywords ``file``, ``line``, ``suggestion`` and any others given.
E = TypeVar("E", bound=Exception)


class Schema:
    """A JSON Schema (draft 2020-12) with its validator.

    ``identity`` is the SHA-256 of the schema's canonical JSON: the validation cache is
    keyed by it, so two schemas never share results however they were loaded.
    """

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.validator = jsonschema.Draft202012Validator(document)
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
        self.identity = hashlib.sha256(canonical.encode("utf-8")).digest()


@cache
def bundled_schema(package: str, name: str) -> Schema:
    """The JSON Schema ``schemas/<name>.schema.json`` shipped in ``package``, read once."""
    text = resources.files(package).joinpath(f"schemas/{name}.schema.json").read_text()
    return Schema(json.loads(text))


#: Schema errors by (content digest, schema identity), in the validator's order. Each list
#: was found on a private copy of the data, so no caller's document is referenced.
_VALIDATED: dict[tuple[bytes, bytes], tuple[jsonschema.ValidationError, ...]] = {}
_VALIDATED_SIZE = 512


def clear_caches() -> None:
    """Forget every parsed and validated document (for tests measuring an uncached load)."""
    from ketacds import _yaml

    _yaml.clear_cache()
    _VALIDATED.clear()


class Document(Generic[E]):
    """One YAML file with its line map, to check it and raise errors at the right line.

    ``data`` is this document's own copy (changing it changes no cached parse);
    ``key`` is the SHA-256 of the file's bytes (``None``: schema errors are not cached).
    """

    def __init__(
        self,
        name: str,
        data: Any,
        lines: Mapping[DocPath, int],
        key: bytes | None,
        error_type: Callable[..., E],
    ) -> None:
        self.name = name
        self.data = data
        self.lines = lines
        self.key = key
        self.error_type = error_type

    @classmethod
    def from_bytes(cls, raw: bytes, name: str, error_type: Callable[..., E], **fields: Any) -> Self:
        """Parse ``raw`` (UTF-8 YAML); a problem is an ``error_type`` at the file and line.

        ``fields`` are passed to ``error_type`` (the ruleset's check ``code``).
        """
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            line = raw[: error.start].count(b"\n") + 1
            raise error_type(
                f"not UTF-8 text (byte {error.start + 1})", file=name, line=line, suggestion=None, **fields
            ) from None
        try:
            data, lines = load_yaml(text)
        except YamlProblem as problem:
            raise error_type(
                problem.reason, file=name, line=problem.line, suggestion=None, **fields
            ) from None
        return cls(name, data, lines, hashlib.sha256(raw).digest(), error_type)

    @classmethod
    def read(cls, path: Path, name: str, error_type: Callable[..., E], **fields: Any) -> Self:
        """Read and parse the file at ``path``, shown as ``name`` in errors."""
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise error_type(
                f"cannot read: {error.strerror}", file=name, line=None, suggestion=None, **fields
            ) from None
        return cls.from_bytes(raw, name, error_type, **fields)

    def line(self, path: DocPath) -> int | None:
        """The line of ``path``, or of the nearest enclosing path that has one."""
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path)

    def error(self, path: DocPath, reason: str, suggestion: str | None = None, **fields: Any) -> E:
        """An ``error_type`` for ``reason`` at the line of ``path``."""
        return self.error_type(reason, file=self.name, line=self.line(path), suggestion=suggestion, **fields)

    def schema_errors(self, schema: Schema) -> tuple[jsonschema.ValidationError, ...]:
        """Every error of the data against ``schema``, in the validator's order (cached).

        The errors are shared between documents of the same content: read them, never
        change them.
        """
        if self.key is None:
            return tuple(schema.validator.iter_errors(self.data))
        found = _VALIDATED.get((self.key, schema.identity))
        if found is None:
            found = tuple(schema.validator.iter_errors(copy_plain(self.data)))
            if len(_VALIDATED) >= _VALIDATED_SIZE:
                _VALIDATED.pop(next(iter(_VALIDATED)))
            _VALIDATED[self.key, schema.identity] = found
        return found


@attrs.frozen
class Problem:
    """A schema error in words: where (the path in the document), what, and a did-you-mean."""

    path: DocPath
    reason: str
    suggestion: str | None = None
    #: The key a mapping has that its schema does not list, when that is the problem.
    unknown_key: str | None = None


def where(path: DocPath) -> str:
    """A path as ``rules.0.when`` (``(top level)`` for the root), as schema problems show it."""
    return ".".join(map(str, path)) or "(top level)"


def schema_problem(error: jsonschema.ValidationError, *, unknown_keys: bool = True) -> Problem:
    """A schema error as ``path: message`` (for rule authors).

    With ``unknown_keys``, a mapping with a key the schema does not list is reported as
    ``path: unknown key 'x'`` at that key, with the closest listed key as did-you-mean.
    """
    at: DocPath = tuple(error.absolute_path)
    instance = error.instance
    if unknown_keys and error.validator == "additionalProperties" and isinstance(instance, dict):
        schema: Any = error.schema
        known = set(schema.get("properties", {}))
        unknown = sorted(set(instance) - known)
        if unknown:
            key = unknown[0]
            return Problem((*at, key), f"{where(at)}: unknown key {key!r}", suggest(key, known), key)
    return Problem(at, f"{where(at)}: {error.message}")


_KINDS = {
    "array": "a list",
    "object": "a mapping",
    "string": "text",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "null": "nothing",
}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | Decimal):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "nothing"


def friendly_problem(error: jsonschema.ValidationError, *, pattern: str) -> Problem:
    """A schema error in plain words a pharmacist can act on (the path is not in ``reason``).

    ``pattern`` names what a ``pattern`` keyword asks for (``a rule id like KCDS-CI-001``).
    The words are those of the scenario schema's shapes (a ``const`` is the word that
    may stand for a mapping, as ``dose: none``).
    """
    path: DocPath = tuple(error.absolute_path)
    validator = error.validator
    value: Any = error.validator_value
    instance: Any = error.instance
    schema: Any = error.schema
    if validator == "additionalProperties" and isinstance(instance, dict):
        known = set(schema.get("properties", {}))
        extra = sorted(set(instance) - known)[0]
        return Problem((*path, extra), f"unknown key {extra!r}", suggest(extra, known), extra)
    if validator == "required" and isinstance(instance, dict):
        missing = next(key for key in value if key not in instance)
        return Problem(path, f"{missing!r} is required")
    if validator == "anyOf" and all(set(branch) == {"required"} for branch in value):
        names = " or ".join(repr(branch["required"][0]) for branch in value)
        return Problem(path, f"needs {names}")
    if validator == "enum":
        allowed = ", ".join(map(str, value))
        return Problem(
            path, f"expected one of {allowed}; got {instance!r}", suggest(str(instance), map(str, value))
        )
    if validator == "const":
        return Problem(path, f"expected {value!r} or a mapping; got {instance!r}")
    if validator == "type":
        wanted = " or ".join(_KINDS[t] for t in ([value] if isinstance(value, str) else value))
        return Problem(path, f"expected {wanted}, got {_kind(instance)}")
    if validator == "pattern":
        return Problem(path, f"{instance!r} is not {pattern}")
    if validator == "minLength" and instance:
        return Problem(path, f"is too short ({value} characters at least)")
    if validator in ("minLength", "minItems", "minProperties"):
        return Problem(path, "must not be empty")
    if validator == "minimum":
        return Problem(path, f"must not be negative, got {instance}")
    return Problem(path, error.message)  # pragma: no cover - every validator the schemas use is above
