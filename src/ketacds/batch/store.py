"""The output directory of a batch run, written so that an interrupted run resumes exactly.

Layout::

    RESULTS/
      manifest.json         what this run is: the input's sha256, the reader, the options,
                            the ruleset digest, the chunk size; and, at the end, "complete"
      parts/000042.part     one file per finished chunk of input records
      assessments.ndjson    one line per assessed record, in input order   (at the end)
      errors.ndjson         one line per record that could not be assessed  (at the end)
      summary.md, summary.json, status-counts.svg                          (at the end)

Each chunk's part file is written to a temporary name, flushed to disk (``fsync``)
and then renamed into place: the rename is the commit point, so a part file is
either complete or absent, whenever the run is killed (Ctrl-C, ``kill -9``, power
loss). A resumed run checks that the manifest matches (same input bytes, same rules,
same options), discards temporary files, and assesses only the chunks without a part
file. The final files are assembled from the parts in chunk order, so the output is
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

__all__ = ["FORMAT", "RunStore", "fingerprint", "write_part"]

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


def write_part(parts: Path, result: ChunkResult) -> None:
    """Commit one chunk's output to ``parts`` (atomically): a header line, then its lines."""
    header = {
        "chunk": result.number,
        "assessments": len(result.assessments),
        "errors": len(result.errors),
        "tally": result.tally.to_data(),
    }
    lines = [json.dumps(header, sort_keys=True) + "\n"]
    lines += [line + "\n" for line in result.assessments]
    lines += [line + "\n" for line in result.errors]
    _write_atomic(parts / part_name(result.number), lines)


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

    def begin(self, manifest: dict[str, Any], *, resume: bool) -> None:
        """Start writing: the manifest of a new run; or, resuming, discard half-written chunks."""
        self.parts.mkdir(parents=True, exist_ok=True)
        if resume:
            for stale in self.parts.glob(".*.tmp"):
                stale.unlink()  # a chunk being written when the run stopped: it is redone
        else:
            _write_atomic(self.manifest_path, [json.dumps(manifest, indent=1, sort_keys=True) + "\n"])

    # ----------------------------------------------------------------- chunks

    def _part(self, number: int) -> Path:
        return self.parts / part_name(number)

    def done(self) -> set[int]:
        """The chunks whose part file is written."""
        if not self.parts.exists():
            return set()
        return {int(p.stem) for p in self.parts.glob("[0-9]*.part")}

    def write(self, result: ChunkResult) -> None:
        """Commit one chunk's output (atomically)."""
        write_part(self.parts, result)

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
        return summary

    def summary(self, ruleset: RuleSet, digest: str) -> Summary:
        """The summary of a complete run (from the counts its manifest keeps)."""
        manifest = self.manifest() or {}
        return Summary.of(Tally.from_data(manifest.get("tally", {})), ruleset, digest)
