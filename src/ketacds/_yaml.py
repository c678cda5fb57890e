"""YAML reading shared by rulesets, patient files and scenarios.

ruamel.yaml is used because it refuses duplicate keys (PyYAML silently keeps the
second of two thresholds) and knows the line of every node. Numbers with a
fraction become :class:`~decimal.Decimal` from their source text, and timestamps
stay strings, so nothing is rounded or given a timezone behind the reader's back.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

__all__ = ["Path", "YamlProblem", "load_yaml"]

#: A location inside a document: keys and list indexes from the root.
Path = tuple[str | int, ...]


class YamlProblem(Exception):
    """The text is not valid YAML (or has duplicate keys); ``line`` is 1-based."""

    def __init__(self, reason: str, line: int | None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(reason)


class _Constructor(RoundTripConstructor):
    """Round-trip constructor with exact numbers and timestamps kept as text."""


def _construct_decimal(constructor: RoundTripConstructor, node: Any) -> Decimal:
    text = str(constructor.construct_scalar(node)).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation as error:
        raise YAMLError(f"line {node.start_mark.line + 1}: not a number: {text!r}") from error
    if not value.is_finite():
        raise YAMLError(f"line {node.start_mark.line + 1}: numbers must be finite, not {text!r}")
    return value


def _construct_text(constructor: RoundTripConstructor, node: Any) -> str:
    return str(constructor.construct_scalar(node))


_Constructor.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)


def _plain(node: Any, path: Path, lines: dict[Path, int]) -> Any:
    """Turn ruamel's commented containers into dicts and lists, recording lines."""
    if isinstance(node, CommentedMap):
        lines.setdefault(path, node.lc.line + 1)
        out: dict[str, Any] = {}
        for key, value in node.items():
            child = (*path, str(key))
            try:
                lines[child] = node.lc.key(key)[0] + 1
            except (KeyError, TypeError):  # pragma: no cover - ruamel always records keys
                lines[child] = lines[path]
            out[str(key)] = _plain(value, child, lines)
        return out
    if isinstance(node, CommentedSeq):
        lines.setdefault(path, node.lc.line + 1)
        items = []
        for index, value in enumerate(node):
            child = (*path, index)
            try:
                lines[child] = node.lc.item(index)[0] + 1
            except (KeyError, TypeError):  # pragma: no cover
                lines[child] = lines[path]
            items.append(_plain(value, child, lines))
        return items
    if isinstance(node, bool | int | str | Decimal) or node is None:
        return int(node) if isinstance(node, int) and not isinstance(node, bool) else node
    return str(node)  # pragma: no cover - every other scalar tag is text above


def load_yaml(text: str) -> tuple[Any, dict[Path, int]]:
    """Parse ``text`` into plain Python data and a map from path to 1-based line.

    Raises:
        YamlProblem: the text is not YAML, has a duplicate key, or a non-finite number.
    """
    yaml = YAML(typ="rt", pure=True)
    yaml.Constructor = _Constructor
    yaml.allow_duplicate_keys = False
    try:
        document = yaml.load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = " ".join(str(part) for part in (error.context, error.problem) if part)
        raise YamlProblem(reason or "invalid YAML", line) from error
    except YAMLError as error:
        raise YamlProblem(str(error).splitlines()[0], None) from error
    lines: dict[Path, int] = {}
    return _plain(document, (), lines), lines
