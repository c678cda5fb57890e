"""A corpus of patient cases, read from files of several formats, to measure a ruleset change on.

Each format is a :class:`Reader`: it says which files it claims and turns one file
into :class:`Case` objects. A case knows where it came from (file, and line or index),
how to name the patient (``patient.id`` and ``title``), and how to load itself into a
record and a context; reading is cheap and loading is deferred, so a case that cannot
be read is reported with the others instead of stopping the run.

Formats read here:

* ``*.scenario.yaml`` / ``*.scenario.yml``: scenario files (``docs/scenario-format.md``),
  one scenario or a ``scenarios:`` list; the case is the scenario without its
  ``expect``, ``author`` and ``source``;
* ``*.ndjson`` / ``*.jsonl``: one case per line;
* ``*.json``: one case, or a list of cases;
* ``*.yaml`` / ``*.yml``: one case (the ``ketacds assess`` shape, ``docs/input-format.md``).

A new format (FHIR bundles, say) plugs in with :func:`register`: a reader placed first
may claim ``*.json`` files whose content it recognises, and every other file falls
through to the readers here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs

from ketacds.errors import InputError
from ketacds.models.inputs import Context, PatientRecord
from ketacds.models.load import decode_text, load_case, parse_document, read_document

__all__ = ["Case", "Reader", "read_corpus", "readers", "register"]

Loader = Callable[[], tuple[PatientRecord, Context]]


@attrs.frozen
class Case:
    """One patient case of a corpus.

    Attributes:
        source: where it was read: ``cases/a.yaml``, ``batch.ndjson:12``, ``x.scenario.yaml#3``.
        label: how to name the patient: its id and title, as far as they are known.
        load: reads the record and context (raises :class:`~ketacds.errors.InputError`).
    """

    source: str
    label: str
    load: Loader = attrs.field(eq=False, repr=False)


class Reader(Protocol):
    """A corpus format."""

    name: str

    def claims(self, path: Path) -> bool:
        """Whether this reader reads ``path``."""

    def read(self, path: Path, shown: str) -> Iterator[Case]:
        """The cases in ``path``; ``shown`` is how to name the file in reports."""


def _label(data: object, fallback: str) -> str:
    if not isinstance(data, Mapping):
        return fallback
    patient = data.get("patient")
    ident = patient.get("id") if isinstance(patient, Mapping) else None
    title = data.get("title")
    parts = [str(p) for p in (ident, title) if p]
    return " — ".join(parts) or fallback


def _case(source: str, data: object, fallback: str) -> Case:
    def load() -> tuple[PatientRecord, Context]:
        if not isinstance(data, Mapping):
            raise InputError("(top level)", f"expected a mapping, got {type(data).__name__}")
        return load_case(data)

    return Case(source=source, label=_label(data, fallback), load=load)


def _broken(source: str, error: InputError) -> Case:
    def load() -> tuple[PatientRecord, Context]:
        raise error

    return Case(source=source, label="(unreadable)", load=load)


def _document(path: Path, shown: str) -> tuple[Any, Case | None]:
    try:
        return read_document(path), None
    except InputError as error:
        return None, _broken(shown, error)


def _suffix(path: Path) -> str:
    return path.name.lower()


class ScenarioReader:
    """``*.scenario.yaml``: the case keys of each scenario (``expect`` and authorship left out)."""

    name = "scenario"
    _NOT_CASE = ("expect", "author", "source")

    def claims(self, path: Path) -> bool:
        """Scenario files, by name."""
        return _suffix(path).endswith((".scenario.yaml", ".scenario.yml"))

    def read(self, path: Path, shown: str) -> Iterator[Case]:
        """One case per scenario."""
        document, broken = _document(path, shown)
        if broken is not None:
            yield broken
            return
        several = isinstance(document, Mapping) and isinstance(document.get("scenarios"), list)
        scenarios = document["scenarios"] if several else [document]
        for number, scenario in enumerate(scenarios, 1):
            data = (
                {k: v for k, v in scenario.items() if k not in self._NOT_CASE}
                if isinstance(scenario, Mapping)
                else scenario
            )
            where = f"{shown}#{number}" if several else shown
            yield _case(where, data, f"scenario {number}")


class NdjsonReader:
    """``*.ndjson`` / ``*.jsonl``: one case per non-empty line."""

    name = "ndjson"

    def claims(self, path: Path) -> bool:
        """Newline-delimited JSON, by extension."""
        return _suffix(path).endswith((".ndjson", ".jsonl"))

    def read(self, path: Path, shown: str) -> Iterator[Case]:
        """One case per line."""
        try:
            text = decode_text(path.read_bytes(), shown)
        except OSError as error:
            yield _broken(shown, InputError(shown, f"cannot read file: {error.strerror}"))
            return
        except InputError as error:
            yield _broken(shown, error)
            return
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{shown}:{number}"
            try:  # as the JSON of case files is read: duplicate keys and numbers past the limits refused
                data = parse_document(line, ".json", where)
            except InputError as error:
                yield _broken(where, error)
                continue
            yield _case(where, data, f"line {number}")


class JsonReader:
    """``*.json``: one case, or a list of cases."""

    name = "json"

    def claims(self, path: Path) -> bool:
        """JSON files, by extension."""
        return _suffix(path).endswith(".json")

    def read(self, path: Path, shown: str) -> Iterator[Case]:
        """The case, or each case of the list."""
        document, broken = _document(path, shown)
        if broken is not None:
            yield broken
        elif isinstance(document, list):
            for index, data in enumerate(document):
                yield _case(f"{shown}[{index}]", data, f"case {index}")
        else:
            yield _case(shown, document, path.stem)


class YamlReader:
    """``*.yaml`` / ``*.yml``: one case."""

    name = "yaml"

    def claims(self, path: Path) -> bool:
        """YAML files, by extension."""
        return _suffix(path).endswith((".yaml", ".yml"))

    def read(self, path: Path, shown: str) -> Iterator[Case]:
        """The one case."""
        document, broken = _document(path, shown)
        yield broken if broken is not None else _case(shown, document, path.stem)


_READERS: list[Reader] = [ScenarioReader(), NdjsonReader(), JsonReader(), YamlReader()]


def readers() -> tuple[Reader, ...]:
    """The registered readers, in the order they are asked."""
    return tuple(_READERS)


def register(reader: Reader) -> None:
    """Ask ``reader`` first from now on (a more specific format before the generic ones)."""
    _READERS.insert(0, reader)


def _reader_for(path: Path) -> Reader | None:
    return next((r for r in _READERS if r.claims(path)), None)


def _shown(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _passed_over(path: Path) -> bool:
    """Whether ``path``, found in a directory, is a FHIR resource the built-in JSON reader would take.

    A plug-in reader for FHIR (registered first) still gets it.
    """
    if not isinstance(_reader_for(path), JsonReader):
        return False
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False  # the reader reports it
    return isinstance(document, Mapping) and "resourceType" in document


def read_corpus(paths: Iterable[Path]) -> list[Case]:
    """Every case under ``paths`` (files, or directories searched recursively), in a stable order.

    Files in a directory that no reader claims are passed over, and so are FHIR
    resources the built-in JSON reader would take (JSON with a ``resourceType``: a
    Bundle carries no treatment context, so it is no case); a file named directly must
    be claimed.

    Raises:
        InputError: a path does not exist, or a file named directly is of no known format.
    """
    cases: list[Case] = []
    for path in paths:
        if path.is_dir():
            files: Sequence[Path] = sorted(
                p for p in path.rglob("*") if p.is_file() and _reader_for(p) and not _passed_over(p)
            )
        elif path.is_file():
            if _reader_for(path) is None:
                known = ", ".join(r.name for r in _READERS)
                raise InputError(str(path), f"not a corpus file of a known format ({known})")
            files = [path]
        else:
            raise InputError(str(path), "no such file or directory")
        for file in files:
            reader = _reader_for(file)
            assert reader is not None
            cases += reader.read(file, _shown(file))
    return cases
