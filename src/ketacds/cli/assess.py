"""``ketacds assess``: assess case files and FHIR Bundles, and print the Assessments.

Exit status of ``ketacds assess``: 0 when every assessment completed (whatever its
status), 2 for bad input (one line naming the field), 3 when the engine failed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from ketacds.cli.options import RULES_DIR, VERIFY_SAMPLE, case_of_document
from ketacds.cli.scenarios import what_if_outputs, whatif_options
from ketacds.engine.api import Engine
from ketacds.errors import EvaluationError, InputError, RulesetError
from ketacds.models.load import read_document
from ketacds.reporting import render
from ketacds.vocabulary import ROUTES

__all__ = ["EXIT_BAD_INPUT", "EXIT_ENGINE", "assess"]

EXIT_BAD_INPUT = 2
EXIT_ENGINE = 3


def _fail(message: str, code: int) -> None:
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[bold red]error:[/] {escape(message)}", markup=True
    )
    sys.exit(code)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--route",
    type=click.Choice(ROUTES),
    help="Planned route (overrides the file's context).",
)
@click.option("--jurisdiction", help="Two-letter jurisdiction, e.g. US, EU, DE (overrides the file).")
@click.option("--now", "now", help="Assessment time, ISO 8601 with timezone (overrides the file).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@RULES_DIR
@click.option(
    "--expect-digest",
    metavar="SHA256",
    help="Refuse to run unless the rules have this digest (see `ketacds rules digest`).",
)
@VERIFY_SAMPLE
@click.option(
    "--expand-groups",
    is_flag=True,
    help="Show every finding in full, also those of a group of routine items (text and markdown).",
)
@whatif_options
def assess(
    files: tuple[Path, ...],
    route: str | None,
    jurisdiction: str | None,
    now: str | None,
    fmt: str,
    rules_dir: Path | None,
    expect_digest: str | None,
    verify_sample: float,
    expand_groups: bool,
    **edits: tuple[str, ...],
) -> None:
    """Assess each FILE: a YAML or JSON case, or a FHIR R4 Bundle (with --route, --jurisdiction, --now).

    With --set, --add-* or --remove-* (docs/what-if.md), assess an edited copy too and show what changed.
    """
    try:
        engine = Engine(rules_dir, expected_digest=expect_digest, verify_sample=verify_sample)
    except RulesetError as error:
        _fail(f"rules: {error}", EXIT_BAD_INPUT)
    overrides = {"route": route, "jurisdiction": jurisdiction, "now": now}
    reports: list[str] = []
    results: list[str] = []
    for file in files:
        try:
            document = read_document(file)
            record, context = case_of_document(document, overrides=overrides, terminology=engine.terminology)
            assessment = engine.assess(record, context)
            label = f"{file.name}: {document['title']}" if document.get("title") else file.name
            what_if = what_if_outputs(engine, record, context, assessment, edits, fmt, title=label)
        except InputError as error:
            _fail(f"{file}: {error}", EXIT_BAD_INPUT)
        except RulesetError as error:  # the FHIR tables of the rules, read with the first Bundle
            _fail(f"rules: {error}", EXIT_BAD_INPUT)
        except EvaluationError as error:
            _fail(f"{file}: the engine failed, no result: {error}", EXIT_ENGINE)
        reports.append(
            what_if[0] if what_if else render(assessment, fmt, title=label, expand_groups=expand_groups)
        )
        results.append(what_if[1] if what_if else assessment.to_json(indent=2))
    if fmt == "json":
        text = results[0] if len(results) == 1 else "[\n" + ",\n".join(results) + "\n]"
        click.echo(text)
    else:
        click.echo("\n".join(reports), nl=False)
