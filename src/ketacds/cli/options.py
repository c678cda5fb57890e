"""Command-line options, and the reading of a case file, shared by several ``ketacds`` commands."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from ketacds.models.inputs import Context, PatientRecord
from ketacds.models.load import load_case
from ketacds.terminology.valuesets import Terminology

__all__ = ["BACKEND", "RULES_DIR", "VERIFY_SAMPLE", "case_of_document"]


def case_of_document(
    document: Any, *, overrides: Mapping[str, Any], terminology: Terminology
) -> tuple[PatientRecord, Context]:
    """The record and context of a case document: a FHIR R4 Bundle, or a case (YAML/JSON data).

    ``terminology`` is the engine's, so a Bundle is read with the FHIR tables of the rules
    it will be assessed with.
    """
    if isinstance(document, dict) and document.get("resourceType") == "Bundle":
        from ketacds.adapters.fhir import read_bundle_case  # FHIR is imported only when needed

        return read_bundle_case(document, overrides=overrides, terminology=terminology)
    return load_case(document, overrides=overrides)


#: ``--rules DIR``: the ruleset directory, passed to the command as ``rules_dir``.
RULES_DIR = click.option(
    "--rules",
    "rules_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="A ruleset directory (default: the bundled rulesets).",
)

#: ``--verify-sample RATE``: the shadow check, passed to the command as ``verify_sample``.
VERIFY_SAMPLE = click.option(
    "--verify-sample",
    "verify_sample",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    metavar="RATE",
    help=(
        "Shadow check: also run the reference evaluator on this fraction of patients (0 to 1, "
        "chosen by a hash of each record, so reproducible) and fail, naming the rules, "
        "if its firings differ from durable_rules'."
    ),
)

#: ``--backend NAME``: the engine backend (``Engine(backend=...)``), passed as ``backend``.
BACKEND = click.option(
    "--backend",
    "backend",
    type=click.Choice(["durable", "compiled", "reference"]),
    default="durable",
    show_default=True,
    help=(
        "The rule engine: durable_rules (the engine of record), compiled (the rules as "
        "generated Python: the same findings, faster; the Assessment's provenance names it) "
        "or reference (the pure-Python oracle, slow)."
    ),
)
