"""Seed documents and the deterministic derivation of case *i* of a run."""

from __future__ import annotations

import copy
import random
from functools import lru_cache
from pathlib import Path
from typing import Any

from ketacds.models.load import read_document

__all__ = ["ROOT", "Case", "case", "seeds"]

ROOT = Path(__file__).resolve().parent.parent
_DROPPED_KEYS = ("title", "description", "author", "source", "expect", "tags")

Case = tuple[str, list[str], dict[str, Any]]  # (seed name, mutations applied, document)


@lru_cache(maxsize=1)
def seeds() -> tuple[tuple[str, dict[str, Any]], ...]:
    """Every example and scenario case, named ``file#n``, as plain documents."""
    found: list[tuple[str, dict[str, Any]]] = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        found.append((path.name, _strip(read_document(path))))
    for path in sorted((ROOT / "tests" / "scenarios").glob("*.scenario.yaml")):
        for number, scenario in enumerate(read_document(path)["scenarios"]):
            found.append((f"{path.name}#{number}", _strip(scenario)))
    return tuple(found)


def _strip(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in _DROPPED_KEYS}


def case(run_seed: int, index: int) -> Case:
    """Case ``index`` of the run seeded ``run_seed``: a seed document and 1-3 mutations."""
    from fuzz.mutators import MUTATORS, mutate

    rng = random.Random(f"{run_seed}:{index}")  # noqa: S311 - reproducible test input, not secrets
    name, document = seeds()[rng.randrange(len(seeds()))]
    document = copy.deepcopy(document)
    applied = [rng.choice(sorted(MUTATORS)) for _ in range(rng.choice((1, 1, 2, 3)))]
    for mutation in applied:
        mutate(mutation, document, rng)
    return name, applied, document
