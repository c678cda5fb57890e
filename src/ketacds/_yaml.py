"""YAML reading shared by rulesets, patient files and scenarios.

ruamel.yaml is used because it refuses duplicate keys (PyYAML silently keeps the
second of two thresholds) and knows the line of every node. Numbers with a
fraction become :class:`~decimal.Decimal` from their source text, and timestamps
stay strings, so nothing is rounded or given a timezone behind the reader's back.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from decimal import Decimal, InvalidOperation
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, ReusedAnchorWarning, YAMLError

from ketacds import limits

__all__ = ["Path", "YamlProblem", "clear_cache", "copy_plain", "load_yaml"]

#: A location inside a document: keys and list indexes from the root.
Path = tuple[str | int, ...]


# An anchor defined twice is valid YAML (the later one is used); ruamel says so with a
# warning printed to stderr, which broke the CLI's one line on bad input. Found by the
# cli fuzz target.
warnings.filterwarnings("ignore", category=ReusedAnchorWarning)


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
    return value  # its size is checked (with its path) by _plain


def _construct_int(constructor: RoundTripConstructor, node: Any) -> Any:
    text = str(constructor.construct_scalar(node)).replace("_", "")
    if len(text) > limits.MAX_NUMBER_CHARS:
        # int() refuses over 4,300 digits (ValueError); a Decimal is refused by _plain, with its path.
        try:
            return Decimal(text)
        except InvalidOperation:
            raise YAMLError(f"line {node.start_mark.line + 1}: number too long") from None
    return RoundTripConstructor.construct_yaml_int(constructor, node)


def _construct_text(constructor: RoundTripConstructor, node: Any) -> str:
    return str(constructor.construct_scalar(node))


_Constructor.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)
_Constructor.add_constructor("tag:yaml.org,2002:int", _construct_int)


class _Walk:
    """Turns ruamel's containers into dicts and lists, recording lines, within the limits.

    The limits (:mod:`ketacds.limits`) are depth, values after alias expansion, numbers.
    """

    def __init__(self, lines: dict[Path, int]) -> None:
        self.lines = lines
        self.nodes = 0

    def fail(self, path: Path, reason: str) -> YamlProblem:
        where = _path_text(path)
        line = None
        probe = path
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe)
        return YamlProblem(f"{where}: {reason}" if where else reason, line)

    def plain(self, node: Any, path: Path) -> Any:
        self.nodes += 1
        if self.nodes > limits.MAX_NODES:
            raise self.fail(path, f"more than {limits.MAX_NODES:,} values (after expanding aliases)")
        lines = self.lines
        if isinstance(node, CommentedMap | CommentedSeq) and len(path) >= limits.MAX_DEPTH:
            raise self.fail(path, f"nested more than {limits.MAX_DEPTH} levels deep")
        if isinstance(node, CommentedMap):
            lines.setdefault(path, node.lc.line + 1)
            out: dict[str, Any] = {}
            for key, value in node.items():
                child = (*path, str(key))
                try:
                    lines[child] = node.lc.key(key)[0] + 1
                except (KeyError, TypeError):  # pragma: no cover - ruamel always records keys
                    lines[child] = lines[path]
                out[str(key)] = self.plain(value, child)
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
                items.append(self.plain(value, child))
            return items
        if isinstance(node, bool) or node is None or isinstance(node, str):
            return node
        if isinstance(node, int | Decimal):
            value = int(node) if isinstance(node, int) else node
            reason = limits.number_problem(value)
            if reason is not None:
                raise self.fail(path, reason)
            return value
        return str(node)  # pragma: no cover - every other scalar tag is text above


def _path_text(path: Path) -> str:
    text = ""
    for key in path:
        text = limits.join_path(text, key)
    return text


_BRACKETS = re.compile(r"[\[\]{}]")


def _deep_flow_line(text: str) -> int | None:
    """The line where ``[``/``{`` nesting passes the depth limit, or ``None``.

    ruamel's scanner takes time quadratic in flow nesting (1,000 levels: seconds), so
    this is counted on the text first. Brackets inside quoted text count too: a string
    holding more than the limit of unclosed brackets is refused with them.
    """
    depth = 0
    for match in _BRACKETS.finditer(text):
        if match.group() in "[{":
            depth += 1
            if depth > limits.MAX_DEPTH:
                return text.count("\n", 0, match.start()) + 1
        elif depth:
            depth -= 1
    return None


#: Parsed documents by the SHA-256 of their UTF-8 text (ruamel's pure-Python parser is slow:
#: the project's rules and scenario files take seconds, and tests and tools read them again
#: and again). One cache for the whole process: a ruleset directory copied with one file
#: changed parses that one file again. The cached data is never handed out, only copies.
_PARSED: dict[bytes, tuple[Any, dict[Path, int]]] = {}
_PARSED_SIZE = 512  # documents; each at most _CACHED_TEXT characters
_CACHED_TEXT = 1 << 20  # characters: larger texts are not kept


def load_yaml(text: str) -> tuple[Any, dict[Path, int]]:
    """Parse ``text`` into plain Python data and a map from path to 1-based line.

    A text parsed before (in this process) is not parsed again: the caller gets its own
    copy of the data and of the line map.

    Raises:
        YamlProblem: the text is not YAML, has a duplicate key, or is past a limit of
            :mod:`ketacds.limits` (size, depth, values after alias expansion, numbers).
    """
    if len(text) > _CACHED_TEXT:  # a big document (a batch of cases) is read once: not kept
        return _parse(text)
    key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    hit = _PARSED.get(key)
    if hit is None:
        hit = _parse(text)
        if len(_PARSED) >= _PARSED_SIZE:
            _PARSED.pop(next(iter(_PARSED)))
        _PARSED[key] = hit
    return copy_plain(hit[0]), dict(hit[1])


def clear_cache() -> None:
    """Forget every parsed document (tests use it to measure an uncached load)."""
    _PARSED.clear()


def copy_plain(value: Any) -> Any:
    """A copy of parsed YAML data: new dicts and lists, the same (immutable) scalars.

    Much faster than :func:`copy.deepcopy` for the only shapes :func:`load_yaml` returns
    (dict, list, str, int, Decimal, bool, None); the depth is bounded by ``MAX_DEPTH``.
    """
    if isinstance(value, dict):
        return {key: copy_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_plain(item) for item in value]
    return value


def _parse(text: str) -> tuple[Any, dict[Path, int]]:
    yaml = YAML(typ="rt", pure=True)
    yaml.Constructor = _Constructor
    yaml.allow_duplicate_keys = False
    if len(text) > limits.MAX_DOCUMENT_BYTES:
        raise YamlProblem(f"larger than {limits.MAX_DOCUMENT_BYTES // 2**20} MiB", None)
    deep = _deep_flow_line(text)
    if deep is not None:
        raise YamlProblem(f"nested more than {limits.MAX_DEPTH} levels deep", deep)
    try:
        document = yaml.load(text)
    except RecursionError:  # block nesting of a few hundred levels: ruamel's composer recurses
        raise YamlProblem(f"nested more than {limits.MAX_DEPTH} levels deep", None) from None
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = " ".join(str(part) for part in (error.context, error.problem) if part)
        raise YamlProblem(reason or "invalid YAML", line) from error
    except YAMLError as error:
        raise YamlProblem(str(error).splitlines()[0], None) from error
    memo: dict[int, int] = {}
    if _expanded_size(document, memo) > limits.MAX_NODES:
        # Found before expanding anything: name the top-level entry that holds the most.
        at: Path = ()
        if isinstance(document, CommentedMap) and document:
            at = (str(max(document, key=lambda k: _expanded_size(document[k], memo))),)
        where = f"{at[0]}: " if at else ""
        line = document.lc.key(at[0])[0] + 1 if at else None
        raise YamlProblem(f"{where}more than {limits.MAX_NODES:,} values after expanding aliases", line)
    gained = _expanded_size(document, memo) - _distinct_size(document)
    if gained > limits.MAX_ALIAS_VALUES:
        at = ()
        if isinstance(document, CommentedMap) and document:
            at = (str(max(document, key=lambda k: _expanded_size(document[k], memo))),)
        where = f"{at[0]}: " if at else ""
        line = document.lc.key(at[0])[0] + 1 if at else None
        raise YamlProblem(f"{where}more than {limits.MAX_ALIAS_VALUES:,} values through aliases", line)
    lines: dict[Path, int] = {}
    return _Walk(lines).plain(document, ()), lines


def _distinct_size(document: Any) -> int:
    """How many values ``document`` has when each node is counted once (aliases not expanded)."""
    if not isinstance(document, CommentedMap | CommentedSeq):
        return 1
    seen: dict[int, Any] = {}
    stack = [document]
    total = 0
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        children = list(node.values() if isinstance(node, CommentedMap) else node)
        total += 1 + sum(1 for child in children if not isinstance(child, CommentedMap | CommentedSeq))
        stack.extend(child for child in children if isinstance(child, CommentedMap | CommentedSeq))
    return total


def _expanded_size(node: Any, memo: dict[int, int]) -> int:
    """How many values ``node`` becomes once aliases are expanded; each distinct node is counted once."""
    if not isinstance(node, CommentedMap | CommentedSeq):
        return 1
    known = memo.get(id(node))
    if known is None:
        children = node.values() if isinstance(node, CommentedMap) else node
        memo[id(node)] = known = 1 + sum(_expanded_size(child, memo) for child in children)
    return known
