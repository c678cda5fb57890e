"""Helpers for the batch tests: inputs, a crashing reader, and running ``ketacds batch``.

Importable by worker processes too (``tests/`` is on their path), which the crashing
reader needs: it is unpickled, and its ``decode`` run, in a worker.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ketacds import RuleSet, load_ruleset
from ketacds.batch import NdjsonReader
from ketacds.synthetic import synthetic_cases

#: The record the crashing reader kills its worker on.
POISON = b'"poison"'


@functools.cache
def bundled_rules() -> RuleSet:
    """The bundled ruleset, loaded once per process."""
    return load_ruleset()


def write_cases(path: Path, count: int, *, seed: int = 1, bad: dict[int, str] | None = None) -> Path:
    """Write ``count`` synthetic cases as NDJSON, with ``bad`` lines put in at given indexes."""
    cases = synthetic_cases(count, seed=seed, ruleset=bundled_rules())
    lines = [json.dumps(case, sort_keys=True) for case in cases]
    for index, text in sorted((bad or {}).items()):
        lines.insert(index, text)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class CrashingReader(NdjsonReader):
    """NDJSON, but the worker process dies (as if the C engine crashed) on a poison line."""

    name = "crashing-ndjson"

    def decode(self, payload: Any) -> Any:
        if POISON in payload:
            os._exit(70)
        return super().decode(payload)


#: A line on which :class:`HangingReader` hangs inside C code, holding the GIL.
HANG = b"HANG-IN-C"


class HangingReader(NdjsonReader):
    """NDJSON, but a line holding HANG sums a huge range: minutes in C, with the GIL held."""

    name = "hanging-ndjson"

    def decode(self, payload: Any) -> Any:
        if HANG in payload:
            sum(range(10**13))
        return super().decode(payload)


def batch_command(*args: str) -> list[str]:
    """The command line that runs ``ketacds batch`` in a fresh interpreter."""
    return [sys.executable, "-m", "ketacds.cli", "batch", *args]


def run_batch_process(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run ``ketacds batch`` to completion in a child process."""
    return subprocess.run(batch_command(*args), capture_output=True, text=True, timeout=timeout, check=False)


def outputs(out: Path) -> tuple[bytes, bytes]:
    """The two result files of a finished run, byte for byte."""
    return (out / "assessments.ndjson").read_bytes(), (out / "errors.ndjson").read_bytes()
