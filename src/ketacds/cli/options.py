"""Command-line options shared by several ``ketacds`` commands."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["BACKEND", "RULES_DIR", "VERIFY_SAMPLE"]

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
