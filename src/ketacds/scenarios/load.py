"""Read ``*.scenario.yaml`` files, checking them against the shipped JSON Schema.

Every problem is a :class:`~ketacds.errors.ScenarioError` naming the file and line
(and a did-you-mean where a key or value is close to a known one), so that a
pharmacist can fix the file without reading Python. The case part of a scenario is
read by the same loader as ``ketacds assess`` (:func:`ketacds.models.load.load_case`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from ketacds._yaml import YamlProblem, copy_plain, load_yaml
from ketacds.errors import InputError, ScenarioError
from ketacds.models.load import load_case
from ketacds.scenarios.model import (
    DoseExpectation,
    Expectations,
    FindingExpectation,
    NamedExpectation,
    Scenario,
    ScenarioFile,
    StatusExpectation,
    TextExpectation,
)
from ketacds.yamldoc import DocPath, Document, Schema, bundled_schema, friendly_problem, suggest

__all__ = [
    "SCENARIO_SUFFIX",
    "display_path",
    "find_scenario_files",
    "input_path",
    "load_scenario_file",
    "parse_scenarios",
    "scenario_schema",
]

#: Scenario files are found by this suffix when a directory is given.
SCENARIO_SUFFIX = ".scenario.yaml"

# The keys of a scenario about the scenario itself; every other key is the case, read by
# the same loader as `ketacds assess` (the schema has already refused unknown keys).
_SCENARIO_KEYS = {"title", "description", "author", "source", "expect"}


def scenario_schema() -> dict[str, Any]:
    """Return the JSON Schema of scenario files (``ketacds/scenarios/schemas/scenario.schema.json``)."""
    return dict(copy_plain(_schema().document))


def _schema() -> Schema:
    return bundled_schema("ketacds.scenarios", "scenario")


def display_path(path: Path) -> str:
    """The path relative to the working directory when it lies below it, else as given."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def find_scenario_files(paths: Iterable[Path | str]) -> list[Path]:
    """Expand files and directories (recursively, ``*.scenario.yaml``) into a sorted list.

    A file named explicitly is taken whatever its name.

    Raises:
        ScenarioError: a path does not exist.
    """
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found.extend(sorted(p for p in item.rglob(f"*{SCENARIO_SUFFIX}") if p.is_file()))
        elif item.is_file():
            found.append(item)
        else:
            raise ScenarioError("no such file or directory", file=item.as_posix())
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def load_scenario_file(path: Path | str) -> ScenarioFile:
    """Read one scenario file.

    Raises:
        ScenarioError: with the file and line of the first problem.
    """
    path = Path(path)
    name = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError(f"cannot read: {error.strerror}", file=name) from None
    except UnicodeDecodeError:
        raise ScenarioError("not a UTF-8 text file", file=name) from None
    key = (name, hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
    loaded = _LOADED.get(key)
    if loaded is not None:
        return loaded
    try:
        data, lines = load_yaml(text)
    except YamlProblem as problem:
        duplicate = _DUPLICATE.search(problem.reason)
        reason = f"the key {duplicate.group(1)!r} appears twice" if duplicate else problem.reason
        raise ScenarioError(f"not valid YAML: {reason}", file=name, line=problem.line) from None
    loaded = parse_scenarios(data, lines, file=name)
    if len(_LOADED) >= 128:
        _LOADED.pop(next(iter(_LOADED)))
    _LOADED[key] = loaded
    return loaded


#: Scenario files read, by shown name and the SHA-256 of their text: the project suite is
#: read by the pytest plugin, the runner, coverage and mutation alike; a changed file
#: (other bytes) is always read afresh. The results are frozen and never changed.
_LOADED: dict[tuple[str, bytes], ScenarioFile] = {}

_DUPLICATE = re.compile(r'found duplicate key "([^"]*)"')


class _Doc(Document[ScenarioError]):
    """The data of one scenario file with its line map; an error names the path it is at."""

    def __init__(self, data: Any, lines: Mapping[DocPath, int], file: str) -> None:
        # Not cached by content: the whole file's result is (load_scenario_file).
        super().__init__(file, data, lines, None, ScenarioError)
        self.file = file

    def error(
        self, path: DocPath, reason: str, suggestion: str | None = None, **fields: Any
    ) -> ScenarioError:
        """A :class:`ScenarioError` at the line of ``path``, the reason prefixed by the path."""
        where = _dotted(path)
        return super().error(path, f"{where}: {reason}" if where else reason, suggestion, **fields)


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validate(doc: _Doc) -> None:
    errors = doc.schema_errors(_schema())
    if not errors:
        return
    # The first problem in the file, by line; the most specific one on that line.
    best = min(
        errors,
        key=lambda e: (
            doc.line(tuple(e.absolute_path)) or 0,
            -len(e.absolute_path),
            e.validator != "required",
        ),
    )
    problem = friendly_problem(best, pattern="a rule id like KCDS-CI-001")
    raise doc.error(problem.path, problem.reason, problem.suggestion)


_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def input_path(text: str) -> DocPath:
    """``medications[2].unit`` → ``("medications", 2, "unit")``."""
    if text.startswith("("):
        return ()
    return tuple(name if name else int(index) for name, index in _SEGMENT.findall(text))


def parse_scenarios(data: Any, lines: Mapping[DocPath, int], *, file: str) -> ScenarioFile:
    """Build a :class:`ScenarioFile` from parsed YAML data and its line map.

    Raises:
        ScenarioError: with the file and line of the first problem.
    """
    doc = _Doc(data, lines, file)
    if not isinstance(data, dict):
        raise ScenarioError(
            "a scenario file is a mapping: one scenario (with 'expect') or 'scenarios:' and a list",
            file=file,
            line=1,
        )
    if "scenarios" not in data and "expect" not in data:
        for key in data:
            close = suggest(key, ("expect", "scenarios"))
            if close is not None:
                raise doc.error((key,), f"unknown key {key!r}", close)
        raise ScenarioError(
            "a scenario file needs 'expect' (one scenario) or 'scenarios' (a list of scenarios)",
            file=file,
            line=doc.line(()),
        )
    _validate(doc)
    if "scenarios" in data:
        places: list[DocPath] = [("scenarios", index) for index in range(len(data["scenarios"]))]
        defaults = {key: data.get(key) for key in ("author", "source")}
    else:
        places = [()]
        defaults = {}
    scenarios: list[Scenario] = []
    seen: dict[str, int | None] = {}
    for at in places:
        scenario = _scenario(doc, at, defaults)
        if scenario.title in seen:
            raise doc.error(
                (*at, "title"),
                f"two scenarios have the title {scenario.title!r} "
                f"(the first at line {seen[scenario.title]}); "
                "titles name the tests, so they must differ",
            )
        seen[scenario.title] = scenario.line
        scenarios.append(scenario)
    return ScenarioFile(
        path=file,
        scenarios=tuple(scenarios),
        title=data.get("title") if "scenarios" in data else None,
        description=data.get("description") if "scenarios" in data else None,
    )


def _case_keys(path: DocPath) -> set[str]:
    """The keys the schema lists for the case object at ``path`` (for a did-you-mean)."""
    defs = _schema().document["$defs"]

    def resolve(node: Any) -> Any:
        while "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[-1]]
        return node.get("else", node)  # a quantity: text, or a mapping

    node: Any = defs["scenario"]
    try:
        for part in path:
            node = resolve(node)["items" if isinstance(part, int) else "properties"]
            node = node if isinstance(part, int) else node[part]
        return set(resolve(node).get("properties", {}))
    except KeyError:  # pragma: no cover - the loader only reports paths it knows
        return set()


def _get(data: Any, path: DocPath) -> Any:
    for part in path:
        data = data[part]
    return data


def _scenario(doc: _Doc, at: DocPath, defaults: Mapping[str, Any]) -> Scenario:
    d = _get(doc.data, at)
    case = {key: value for key, value in d.items() if key not in _SCENARIO_KEYS}
    try:
        record, context = load_case(case)
    except InputError as error:
        where = input_path(error.path)
        suggestion = None
        if error.reason == "unknown field" and where:
            suggestion = suggest(str(where[-1]), _case_keys(where[:-1]))
        raise doc.error((*at, *where), error.reason, suggestion) from None
    title = " ".join(str(d["title"]).split())
    return Scenario(
        title=title,
        record=record,
        context=context,
        expect=_expectations(doc, (*at, "expect")),
        file=doc.file,
        line=doc.line((*at, "title")) or 1,
        description=" ".join(d["description"].split()) if d.get("description") else None,
        author=d.get("author", defaults.get("author")),
        source=d.get("source", defaults.get("source")),
        data=case,
        lines={path[len(at) :]: line for path, line in doc.lines.items() if path[: len(at)] == at},
    )


def _number(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(value)


def _expectations(doc: _Doc, at: DocPath) -> Expectations:
    e = _get(doc.data, at) or {}

    def line(*parts: str | int) -> int | None:
        return doc.line((*at, *parts))

    def finding(key: str, index: int, item: Any) -> FindingExpectation:
        if isinstance(item, str):
            return FindingExpectation(rule_id=item, line=line(key, index))
        return FindingExpectation(
            rule_id=item.get("rule"),
            category=item.get("category"),
            title=" ".join(item["title"].split()) if item.get("title") else None,
            severity=item.get("severity"),
            line=line(key, index),
        )

    dose = None
    if "dose" in e:
        raw = e["dose"]
        if raw == "none":
            dose = DoseExpectation(none=True, line=line("dose"))
        else:
            dose = DoseExpectation(
                label=raw.get("label"),
                mg=_number(raw["mg"]) if "mg" in raw else None,
                mg_per_kg=_number(raw["mg_per_kg"]) if "mg_per_kg" in raw else None,
                dosing_weight_kg=_number(raw["dosing_weight_kg"]) if "dosing_weight_kg" in raw else None,
                infusion_minutes=int(raw["infusion_minutes"]) if "infusion_minutes" in raw else None,
                tolerance=_number(raw.get("tolerance", 0)),
                line=line("dose"),
            )
    return Expectations(
        status=StatusExpectation(status=e["status"], line=line("status")) if "status" in e else None,
        findings=tuple(finding("findings", i, item) for i, item in enumerate(e.get("findings", []))),
        absent=tuple(finding("absent", i, item) for i, item in enumerate(e.get("absent", []))),
        dose=dose,
        monitoring=tuple(
            NamedExpectation(name=name, line=line("monitoring", i))
            for i, name in enumerate(e.get("monitoring", []))
        ),
        data_gaps=tuple(
            NamedExpectation(name=" ".join(str(name).split()), line=line("data_gaps", i))
            for i, name in enumerate(e.get("data_gaps", []))
        ),
        no_data_gaps=bool(e.get("no_data_gaps", False)),
        no_data_gaps_line=line("no_data_gaps") if "no_data_gaps" in e else None,
        text=tuple(
            TextExpectation(text=" ".join(str(words).split()), present=key == "text", line=line(key, i))
            for key in ("text", "not_text")
            for i, words in enumerate(e.get(key, []))
        ),
        refused=bool(e.get("refused", False)),
        refused_line=line("refused") if "refused" in e else None,
        line=line(),
    )
