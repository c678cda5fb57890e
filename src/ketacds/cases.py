"""Patient cases from files: the one reader protocol, the readers, and what a case is.

Two features read many cases: a population run (``ketacds batch``,
:mod:`ketacds.batch`) and the impact of a ruleset change on a corpus (``ketacds rules
diff --corpus``, :mod:`ketacds.audit.corpus`). Both read through the :class:`Reader`
protocol here, with the readers here.

A reader splits its input into :class:`Item` s, in a fixed order, cheaply and in the
main process (an NDJSON line, the text of a file), and turns one item into
:data:`CaseData` (the record and the case's own context data) with
:meth:`Reader.decode`; a batch run decodes in worker processes, where parsing costs
are shared out. A reader and its payloads must pickle (a module-level class; payloads
of plain data), because items travel to worker processes and to Dask workers, which
may be other machines: read files in :meth:`Reader.items`, not in :meth:`Reader.decode`.

A reader may also have ``read_data(item, where)``: the item's case as plain data and
a name for it when it carries none (``line 3``), read in the main process. A corpus
reads through it, to name each patient before loading it, and loads the case lazily
as a :class:`Case`: a case that cannot be read is reported with the others instead of
stopping the run. A reader without it is read through ``decode``.

The readers:

``ndjson`` (:class:`NdjsonReader`)
    one case per line, in the shape ``ketacds assess`` reads (patient record keys
    plus an optional ``context``); blank lines are skipped. Batch and corpus.
``case-files`` (:class:`CaseFilesReader`)
    a directory of case files (``*.yaml``, ``*.yml``, ``*.json``), one case per file,
    taken in file-name order. Batch.
``scenario``, ``json``, ``yaml`` (:class:`ScenarioReader`, :class:`JsonReader`, :class:`YamlReader`)
    one file: the scenarios of a scenario file (``docs/scenario-format.md``) without
    their ``expect``, ``author`` and ``source``; one case or a list of cases; one case.
    Corpus (a corpus is searched file by file).
``fhir-bundles`` and ``fhir-bulk``
    a directory of FHIR R4 Bundles, or a FHIR Bulk Data export: see
    :mod:`ketacds.batch.fhir_readers`. Batch.

Which readers a batch run tries, and plug-ins, are :mod:`ketacds.batch.readers`;
which a corpus tries, :mod:`ketacds.audit.corpus`.

Two optional attributes a batch reader may have: ``context_required``, the context fields
its input never carries (a run without defaults for them is refused before it starts),
and ``decode_with_engine(payload, engine)``, used instead of ``decode`` when the
reader needs the worker's Engine (the FHIR readers read codes with its value sets).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs

from ketacds import limits
from ketacds.errors import InputError
from ketacds.models.inputs import Context, PatientRecord
from ketacds.models.load import decode_text, load_record, parse_document, read_document

__all__ = [
    "Case",
    "CaseData",
    "CaseFilesReader",
    "Item",
    "JsonReader",
    "NdjsonReader",
    "Reader",
    "ScenarioReader",
    "YamlReader",
    "files_in",
    "read_json",
]

#: What a reader makes of one item: the patient record, and the case's own context
#: data (possibly empty; the batch's defaults fill it in).
CaseData = tuple[PatientRecord, Mapping[str, Any]]

Loader = Callable[[], tuple[PatientRecord, Context]]


@attrs.frozen
class Case:
    """One patient case, named and loaded on demand (a corpus's case).

    Attributes:
        source: where it was read: ``cases/a.yaml``, ``batch.ndjson:12``, ``x.scenario.yaml#3``.
        label: how to name the patient: its id and title, as far as they are known.
        load: reads the record and context (raises :class:`~ketacds.errors.InputError`).
    """

    source: str
    label: str
    load: Loader = attrs.field(eq=False, repr=False)


@attrs.frozen
class Item:
    """One unit of input: what becomes one line of output.

    Attributes:
        index: its position in the input, from 0 (the order of the output).
        source: where it came from, for people: ``cases.ndjson:18``, ``p1.yaml``; for a
            reader of one file, the file's name and what follows it in the file.
        payload: plain, picklable data that :meth:`Reader.decode` turns into a case.
    """

    index: int
    source: str
    payload: Any


@runtime_checkable
class Reader(Protocol):
    """Reads one kind of case input. See the module documentation."""

    #: A short name, for ``--input-format`` and the run manifest.
    name: str

    def detect(self, path: Path) -> bool:
        """Whether this reader can read ``path`` (used when no format is given)."""

    def count(self, path: Path) -> int | None:
        """How many items :meth:`items` will yield, if cheap to know (for the progress bar)."""

    def items(self, path: Path) -> Iterator[Item]:
        """The items of ``path``, numbered from 0, always in the same order."""

    def decode(self, payload: Any) -> CaseData:
        """Turn one item's payload into a case.

        Raises:
            InputError: the item is not a valid case (the batch records it and goes on).
        """


def _case_from_data(data: Any, where: str) -> CaseData:
    if not isinstance(data, Mapping):
        raise InputError(where, f"expected a case (a mapping), got {type(data).__name__}")
    context = data.get("context") or {}
    if not isinstance(context, Mapping):
        raise InputError("context", f"expected a mapping, got {type(context).__name__}")
    return load_record(data), context


class NdjsonReader:
    """Cases as NDJSON: one JSON object per line (blank lines are skipped)."""

    name = "ndjson"

    def detect(self, path: Path) -> bool:
        """Files named ``*.ndjson``, ``*.jsonl`` or ``*.json-seq``."""
        return path.is_file() and path.suffix.lower() in (".ndjson", ".jsonl", ".json-seq")

    def count(self, path: Path) -> int | None:
        """The number of non-blank lines."""
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())

    def items(self, path: Path) -> Iterator[Item]:
        """Each non-blank line, as bytes (parsed in the worker)."""
        index = 0
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield Item(index, f"{path.name}:{number}", line)
                    index += 1

    def decode(self, payload: Any) -> CaseData:
        """Parse one line (numbers as exact decimals) and read the case."""
        return _case_from_data(read_json(payload, "(line)"), "(line)")

    def read_data(self, item: Item, where: str) -> tuple[Any, str]:
        """One line as plain data, as the JSON of case files is read (errors at ``where``).

        Duplicate keys and numbers past the limits are refused. The file is known to be
        UTF-8 text (a corpus checks the whole file first).
        """
        line = item.payload.decode("utf-8-sig").removesuffix("\n").removesuffix("\r")
        return parse_document(line, ".json", where), f"line {item.source.rsplit(':', 1)[1]}"


def read_json(payload: str | bytes, where: str) -> Any:
    """One JSON document (an NDJSON line, a file's bytes) as :func:`parse_document` reads JSON.

    Raises:
        InputError: not UTF-8, not JSON, a duplicate key, or past a limit (field path).
    """
    if isinstance(payload, bytes):
        if len(payload) > limits.MAX_DOCUMENT_BYTES:
            raise InputError(where, f"larger than {limits.MAX_DOCUMENT_BYTES // 2**20} MiB")
        payload = decode_text(payload, where)
    try:
        data = limits.loads_json(payload)
    except limits.JsonProblem as error:
        line = f":{error.line}" if error.line and error.line > 1 else ""
        raise InputError(f"{where}{line}", error.reason) from None
    problem = limits.find_problem(data)
    if problem is not None:
        raise InputError(*problem)
    return data


def files_in(directory: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The files directly in ``directory`` whose suffix is one of ``suffixes`` (any case), by name."""
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


class CaseFilesReader:
    """A directory of case files (YAML or JSON), one case per file, in file-name order."""

    name = "case-files"
    suffixes = (".yaml", ".yml", ".json")

    def _files(self, path: Path) -> list[Path]:
        return files_in(path, self.suffixes)

    def detect(self, path: Path) -> bool:
        """Directories holding at least one case file."""
        return path.is_dir() and bool(self._files(path))

    def count(self, path: Path) -> int | None:
        """The number of case files."""
        return len(self._files(path))

    def items(self, path: Path) -> Iterator[Item]:
        """Each file's name and text (read here, so that workers need no shared disk)."""
        for index, file in enumerate(self._files(path)):
            text: str | None = None
            problem: str | None = None
            try:
                if file.stat().st_size > limits.MAX_DOCUMENT_BYTES:
                    problem = f"larger than {limits.MAX_DOCUMENT_BYTES // 2**20} MiB"
                else:
                    text = decode_text(file.read_bytes(), "(file)")
            except OSError as error:
                problem = f"cannot read file: {error.strerror}"
            except InputError as error:
                problem = error.reason
            yield Item(index, file.name, (file.suffix.lower(), text, problem))

    def decode(self, payload: Any) -> CaseData:
        """Parse the file's text as JSON or YAML and read the case."""
        suffix, text, problem = payload
        if text is None:
            raise InputError("(file)", problem)
        return _case_from_data(parse_document(text, suffix, "(file)"), "(file)")


# ------------------------------------------------------------ one file, parsed in items


@attrs.frozen
class _Parsed:
    """A case of a file parsed in :meth:`Reader.items`: its data and its name, or why not."""

    data: Any = None
    fallback: str = ""
    error: InputError | None = None


def _suffix(path: Path) -> str:
    return path.name.lower()


class _OneFileReader:
    """A file read whole in :meth:`items`: the payloads are parsed cases (see the subclasses)."""

    name = ""

    def detect(self, path: Path) -> bool:  # pragma: no cover - every subclass says
        raise NotImplementedError

    def count(self, path: Path) -> int | None:
        """Not known before the file is parsed."""
        return None

    def _cases(self, path: Path, document: Any) -> Iterator[tuple[str, _Parsed]]:  # pragma: no cover
        raise NotImplementedError

    def items(self, path: Path) -> Iterator[Item]:
        """The file's cases, parsed; a file that cannot be read is one item that fails."""
        try:
            document = read_document(path)
        except InputError as error:
            yield Item(0, path.name, _Parsed(error=error))
            return
        for index, (after, parsed) in enumerate(self._cases(path, document)):
            yield Item(index, f"{path.name}{after}", parsed)

    def read_data(self, item: Item, where: str) -> tuple[Any, str]:
        """The case's plain data and its fallback name (``where`` is named by the file's errors)."""
        parsed: _Parsed = item.payload
        if parsed.error is not None:
            raise parsed.error
        return parsed.data, parsed.fallback

    def decode(self, payload: _Parsed) -> CaseData:
        """The case."""
        if payload.error is not None:
            raise payload.error
        return _case_from_data(payload.data, "(top level)")


class ScenarioReader(_OneFileReader):
    """``*.scenario.yaml``: the case keys of each scenario (``expect`` and authorship left out)."""

    name = "scenario"
    _NOT_CASE = ("expect", "author", "source")

    def detect(self, path: Path) -> bool:
        """Scenario files, by name."""
        return _suffix(path).endswith((".scenario.yaml", ".scenario.yml"))

    def _cases(self, path: Path, document: Any) -> Iterator[tuple[str, _Parsed]]:
        several = isinstance(document, Mapping) and isinstance(document.get("scenarios"), list)
        scenarios = document["scenarios"] if several else [document]
        for number, scenario in enumerate(scenarios, 1):
            data = (
                {k: v for k, v in scenario.items() if k not in self._NOT_CASE}
                if isinstance(scenario, Mapping)
                else scenario
            )
            yield (f"#{number}" if several else ""), _Parsed(data, f"scenario {number}")


class JsonReader(_OneFileReader):
    """``*.json``: one case, or a list of cases."""

    name = "json"

    def detect(self, path: Path) -> bool:
        """JSON files, by extension."""
        return _suffix(path).endswith(".json")

    def _cases(self, path: Path, document: Any) -> Iterator[tuple[str, _Parsed]]:
        if isinstance(document, list):
            for index, data in enumerate(document):
                yield f"[{index}]", _Parsed(data, f"case {index}")
        else:
            yield "", _Parsed(document, path.stem)


class YamlReader(_OneFileReader):
    """``*.yaml`` / ``*.yml``: one case."""

    name = "yaml"

    def detect(self, path: Path) -> bool:
        """YAML files, by extension."""
        return _suffix(path).endswith((".yaml", ".yml"))

    def _cases(self, path: Path, document: Any) -> Iterator[tuple[str, _Parsed]]:
        yield "", _Parsed(document, path.stem)
