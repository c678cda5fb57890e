"""The output directory of a batch run, written so that an interrupted run resumes exactly.

Layout::

    RESULTS/
      manifest.json         what this run is: the input's sha256, the reader, the options,
                            the ruleset digest, the chunk size; and, at the end, "complete"
      parts/000042.part     one file per finished chunk of input records (a header line:
                            run, chunk, first record, count, sha256 of the lines after it)
      manifest.parts.ndjson the ledger: per committed chunk, its records and the part's
                            sha256, appended and flushed by the main process
      assessments.ndjson    one line per assessed record, in input order   (at the end)
      errors.ndjson         one line per record that could not be assessed  (at the end)
      summary.md, summary.json, status-counts.svg                          (at the end)

Each chunk's part file is written to a temporary name, flushed to disk (``fsync``)
and then renamed into place: the rename is the commit point, so a part file is
either complete or absent, whenever the run is killed (Ctrl-C, ``kill -9``, power
loss). A resumed run checks that the manifest matches (same input bytes, same rules,
same options), discards temporary files, and assesses only the chunks without a part
file; a part that does not verify (against its own header and the ledger) is
discarded and its chunk assessed again. The final files are assembled from the parts
in chunk order, so the output is
the same whatever the order in which chunks finished, and however often the run was
interrupted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ketacds.batch.summary import Summary, Tally, render_svg
from ketacds.batch.work import ChunkResult
from ketacds.errors import InputError
from ketacds.ruleset.ir import RuleSet

__all__ = ["FORMAT", "RunStore", "fingerprint", "run_id", "write_part"]

FORMAT = "ketacds-batch/1"
ASSESSMENTS = "assessments.ndjson"
ERRORS = "errors.ndjson"
# Manifest keys that must be equal for a run to be resumed.
_IDENTITY = (
    "format",
    "input_sha256",
    "reader",
    "chunk_size",
    "digest",
    "context",
    "override",
    "package_version",
    "backend",  # written only when not the default (durable): a durable run's manifest is as before
)


def fingerprint(path: Path) -> str:
    """The sha256 of an input file, or of a directory's file names and contents."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, lines: Iterator[str] | list[str]) -> None:
    """Write ``lines`` to ``path`` so that it is either complete or absent.

    The temporary name is the writer's own (process id), so that a worker left over from
    a killed run and a resumed run never write into one temporary file.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.writelines(lines)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_dir(path.parent)


def part_name(number: int) -> str:
    """The file name of a chunk's part."""
    return f"{number:06d}.part"


def run_id(manifest: dict[str, Any]) -> str:
    """The identity of a run (input, rules, options), as written into its part files."""
    identity = json.dumps(
        {key: manifest.get(key) for key in _IDENTITY if key != "backend" or key in manifest}, sort_keys=True
    )
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def write_part(parts: Path, result: ChunkResult, run: str = "") -> str:
    """Commit one chunk's output to ``parts`` (atomically); returns the file's sha256.

    The header line says which run and chunk the part belongs to and which records it
    holds (``first`` and how many), and carries the sha256 of the lines after it, so a
    truncated, altered, misplaced or foreign part is recognised on resume.
    """
    body = [line + "\n" for line in result.assessments] + [line + "\n" for line in result.errors]
    header = {
        "run": run,
        "chunk": result.number,
        "first": result.first,
        "records": result.records,
        "assessments": len(result.assessments),
        "errors": len(result.errors),
        "tally": result.tally.to_data(),
        "body_sha256": hashlib.sha256("".join(body).encode()).hexdigest(),
    }
    lines = [json.dumps(header, sort_keys=True) + "\n", *body]
    _write_atomic(parts / part_name(result.number), lines)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _part_problem(path: Path, number: int, run: str, ledger: dict[int, dict[str, Any]]) -> str | None:
    """Why the part file ``path`` of chunk ``number`` cannot be trusted, or ``None``."""
    try:
        data = path.read_bytes()
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    if not data:
        return "is empty"
    head, newline, body = data.partition(b"\n")
    try:
        header = json.loads(head)
        counts = (header["assessments"], header["errors"], header["records"], header["first"])
        chunk, owner, body_sha = header["chunk"], header["run"], header["body_sha256"]
    except (ValueError, TypeError, KeyError):
        return "has no readable header"
    if owner != run:
        return "belongs to another run"
    if chunk != number:
        return f"holds chunk {chunk}, not {number}"
    if not newline or hashlib.sha256(body).hexdigest() != body_sha:
        return "is truncated or altered (its lines do not match their checksum)"
    if body.count(b"\n") != counts[0] + counts[1] or counts[0] + counts[1] != counts[2]:
        return "is truncated or altered (its line counts do not add up)"
    entry = ledger.get(number)
    if entry is None:
        return "is not in the run's ledger (written as the run was stopped?)"
    if (counts[3], counts[2]) != (entry.get("first"), entry.get("records")):
        return f"holds records {counts[3]}..{counts[3] + counts[2] - 1}, not those the ledger recorded"
    if entry.get("sha256") != hashlib.sha256(data).hexdigest():
        return "differs from what the run's ledger recorded"
    return None


class RunStore:
    """Reads and writes one run's output directory."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.parts = out / "parts"
        self.manifest_path = out / "manifest.json"

    # ------------------------------------------------------------------ start

    def manifest(self) -> dict[str, Any] | None:
        """The manifest written by an earlier start, if any."""
        if not self.manifest_path.exists():
            return None
        data: dict[str, Any] = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        return data

    def check(self, manifest: dict[str, Any], *, resume: bool) -> dict[str, Any]:
        """Check that a run can start (or resume) here, writing nothing; returns its manifest.

        Raises:
            InputError: the directory holds another run (without ``resume``), or the
                run to resume differs (input, rules or options).
        """
        previous = self.manifest()
        if resume:
            if previous is None:
                raise InputError(str(self.out), "there is no run to resume here (no manifest.json)")
            changed = [key for key in _IDENTITY if previous.get(key) != manifest.get(key)]
            if changed:
                raise InputError(
                    str(self.out),
                    f"cannot resume: the run differs in {', '.join(changed)} "
                    "(same input, rules and options are needed; or start afresh with another --out)",
                )
            return previous
        if previous is not None or (self.out.exists() and any(self.out.iterdir())):
            raise InputError(
                str(self.out), "is not empty (an earlier run?): use --resume to finish it, or another --out"
            )
        return manifest

    def begin(self, manifest: dict[str, Any], *, resume: bool, run: str = "") -> tuple[str, ...]:
        """Start writing: the manifest of a new run; or, resuming, verify what is there.

        Resuming, half-written chunks are discarded, and so is every part file that does
        not verify against its header and the run's ledger (:meth:`record`): empty,
        garbled, truncated, of another chunk or another run, or unrecorded. Those
        chunks are assessed again. Returns what was discarded, each with why.
        """
        self.parts.mkdir(parents=True, exist_ok=True)
        if not resume:
            _write_atomic(self.manifest_path, [json.dumps(manifest, indent=1, sort_keys=True) + "\n"])
            self.ledger_path.unlink(missing_ok=True)
            return ()
        for stale in self.parts.glob(".*.tmp"):
            stale.unlink()  # a chunk being written when the run stopped: it is redone
        ledger = self._ledger()
        redone = []
        for number in sorted(self.done()):
            problem = _part_problem(self._part(number), number, run, ledger)
            if problem is not None:
                self._part(number).unlink()
                redone.append(f"{part_name(number)} {problem}")
        return tuple(redone)

    @property
    def ledger_path(self) -> Path:
        """The run's ledger: one line per committed chunk (its records and the part's sha256)."""
        return self.out / "manifest.parts.ndjson"

    def _ledger(self) -> dict[int, dict[str, Any]]:
        entries: dict[int, dict[str, Any]] = {}
        if not self.ledger_path.exists():
            return entries
        with self.ledger_path.open("rb") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                    entries[int(entry["chunk"])] = entry
                except (ValueError, TypeError, KeyError):
                    continue  # a line cut short when the run was killed: its chunk is redone
        return entries

    def record(self, result: ChunkResult, run: str) -> None:
        """Commit a chunk (unless its worker did) and add it to the ledger, flushed to disk."""
        checksum = result.sha256 if result.committed else write_part(self.parts, result, run)
        entry = {"chunk": result.number, "first": result.first, "records": result.records, "sha256": checksum}
        with self.ledger_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    # ----------------------------------------------------------------- chunks

    def _part(self, number: int) -> Path:
        return self.parts / part_name(number)

    def done(self) -> set[int]:
        """The chunks whose part file is written."""
        if not self.parts.exists():
            return set()
        return {int(p.stem) for p in self.parts.glob("[0-9]*.part")}

    def write(self, result: ChunkResult, run: str = "") -> None:
        """Commit one chunk's output (atomically)."""
        write_part(self.parts, result, run)

    def _read_header(self, number: int) -> dict[str, Any]:
        with self._part(number).open(encoding="utf-8") as handle:
            header: dict[str, Any] = json.loads(handle.readline())
        return header

    def tally(self, chunks: set[int]) -> tuple[Tally, int]:
        """The counts of the given finished chunks, and how many records they hold."""
        total = Tally()
        records = 0
        for number in sorted(chunks):
            header = self._read_header(number)
            total.update(Tally.from_data(header["tally"]))
            records += header["assessments"] + header["errors"]
        return total, records

    # ----------------------------------------------------------------- finish

    def finish(self, chunks: int, ruleset: RuleSet, digest: str) -> Summary:
        """Assemble the final files from the parts of chunks ``0 .. chunks-1``; returns the summary.

        Raises:
            InputError: a chunk's part file is missing (the run is not finished).
        """
        missing = sorted(set(range(chunks)) - self.done())
        if missing:
            raise InputError(str(self.out), f"chunks not finished: {missing[:5]} (resume the run)")
        tally = Tally()
        temporary = {name: self.out / f".{name}.tmp" for name in (ASSESSMENTS, ERRORS)}
        with (
            temporary[ASSESSMENTS].open("w", encoding="utf-8") as assessments,
            temporary[ERRORS].open("w", encoding="utf-8") as errors,
        ):
            for number in range(chunks):
                with self._part(number).open(encoding="utf-8") as part:
                    header = json.loads(part.readline())
                    tally.update(Tally.from_data(header["tally"]))
                    for _ in range(header["assessments"]):
                        assessments.write(part.readline())
                    for _ in range(header["errors"]):
                        errors.write(part.readline())
            for handle in (assessments, errors):
                handle.flush()
                os.fsync(handle.fileno())
        for name, path in temporary.items():
            os.replace(path, self.out / name)
        summary = Summary.of(tally, ruleset, digest)
        _write_atomic(self.out / "status-counts.svg", [render_svg(summary)])
        _write_atomic(self.out / "summary.md", [summary.to_markdown(chart="status-counts.svg")])
        _write_atomic(self.out / "summary.json", [json.dumps(summary.to_data(), indent=1) + "\n"])
        manifest = {
            **(self.manifest() or {}),
            "complete": True,
            "chunks": chunks,
            "records": summary.records,
            "tally": tally.to_data(),
        }
        _write_atomic(self.manifest_path, [json.dumps(manifest, indent=1, sort_keys=True) + "\n"])
        shutil.rmtree(self.parts)
        self.ledger_path.unlink(missing_ok=True)
        return summary

    def summary(self, ruleset: RuleSet, digest: str) -> Summary:
        """The summary of a complete run (from the counts its manifest keeps)."""
        manifest = self.manifest() or {}
        return Summary.of(Tally.from_data(manifest.get("tally", {})), ruleset, digest)
