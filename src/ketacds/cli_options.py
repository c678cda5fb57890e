"""Command-line options shared by several ``ketacds`` commands."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["RULES_DIR"]

#: ``--rules DIR``: the ruleset directory, passed to the command as ``rules_dir``.
RULES_DIR = click.option(
    "--rules",
    "rules_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="A ruleset directory (default: the bundled rulesets).",
)
