"""``ketacds batch``: assess a population, resumably, on local processes or a Dask cluster.

Exit status: 0 when the run is complete (records that could not be assessed are
listed in ``errors.ndjson``, never fatal); 2 for bad options or input, or an output
directory that holds another run; 3 when workers keep dying or the Dask cluster
cannot be reached; 130 when interrupted (Ctrl-C): ``--resume`` finishes the run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ketacds.batch import BatchError, BatchOptions, Interrupted, default_workers, reader_for, run_batch
from ketacds.batch.runner import DEFAULT_CHUNK_SIZE, BatchResult
from ketacds.batch.store import ERRORS
from ketacds.cli.options import BACKEND, RULES_DIR, VERIFY_SAMPLE
from ketacds.errors import InputError, RulesetError, VerificationError
from ketacds.vocabulary import ROUTES

__all__ = ["batch"]

EXIT_BAD_INPUT = 2
EXIT_WORKERS = 3
EXIT_VERIFY = 4
EXIT_INTERRUPTED = 130


class _Rate(ProgressColumn):
    """Records per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed else "-/s", style="progress.data.speed")


class _Bar:
    """The runner's progress, drawn as a rich progress bar (on standard error)."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
        )
        self.task: Any = None

    def start(self, total: int | None, done: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("assessing", total=total, completed=done)

    def advance(self, records: int) -> None:
        self.progress.advance(self.task, records)

    def stop(self) -> None:
        self.progress.stop()


def _fail(console: Console, message: str, code: int) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True)
    sys.exit(code)


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory for the results (assessments.ndjson, errors.ndjson, summary.md, ...).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Worker processes (default: one per core); 1 assesses in this process.",
)
@click.option(
    "--resume", is_flag=True, help="Finish an interrupted run in --out (same input, rules and options)."
)
@click.option(
    "--dask",
    metavar="ADDRESS|local",
    help="Run on a Dask cluster: a scheduler address, or 'local' to start one (needs ketacds[batch]).",
)
@click.option(
    "--input-format",
    help=(
        "Input reader: ndjson, case-files, fhir-bundles, fhir-bulk, or a plug-in's "
        "(default: recognised from INPUT)."
    ),
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=DEFAULT_CHUNK_SIZE,
    show_default=True,
    help="Records per chunk (the unit of work and of commit).",
)
@click.option("--route", type=click.Choice(ROUTES), help="Default planned route for cases that give none.")
@click.option("--jurisdiction", help="Default jurisdiction (e.g. US, EU, DE) for cases that give none.")
@click.option("--now", help="Default assessment time, ISO 8601 with timezone, for cases that give none.")
@click.option("--setting", help="Default care setting for cases that give none.")
@click.option(
    "--override-context",
    is_flag=True,
    help="The --route/--jurisdiction/--now/--setting values replace each case's own.",
)
@RULES_DIR
@VERIFY_SAMPLE
@BACKEND
@click.option("--quiet", is_flag=True, help="No progress bar and no summary (the files are still written).")
def batch(
    input_path: Path,
    out: Path,
    workers: int | None,
    resume: bool,
    dask: str | None,
    input_format: str | None,
    chunk_size: int,
    route: str | None,
    jurisdiction: str | None,
    now: str | None,
    setting: str | None,
    override_context: bool,
    rules_dir: Path | None,
    verify_sample: float,
    backend: str,
    quiet: bool,
) -> None:
    """Assess every case in INPUT (NDJSON, or a directory of case files) into --out.

    Results are committed chunk by chunk: after Ctrl-C or kill -9, run the same command
    with --resume and it finishes exactly, losing and repeating nothing.
    """
    errors = Console(stderr=True)
    context = {"route": route, "jurisdiction": jurisdiction, "now": now, "setting": setting}
    try:
        reader = reader_for(input_path, input_format)
    except InputError as error:
        _fail(errors, str(error), EXIT_BAD_INPUT)
    options = BatchOptions(
        input=input_path,
        out=out,
        reader=reader,
        workers=workers or default_workers(),
        chunk_size=chunk_size,
        resume=resume,
        dask=dask,
        rules_dir=rules_dir,
        context=tuple(sorted((k, v) for k, v in context.items() if v is not None)),
        override=override_context,
        verify_sample=verify_sample,
        backend=backend,
    )
    bar = _Bar(errors, enabled=not quiet)
    try:
        result = run_batch(options, bar)
    except (InputError, RulesetError) as error:
        _fail(errors, str(error), EXIT_BAD_INPUT)
    except BatchError as error:
        _fail(errors, str(error), EXIT_WORKERS)
    except Interrupted as error:
        bar.stop()
        errors.print(
            f"interrupted: {escape(str(error))}; finish with the same command and --resume", highlight=False
        )
        sys.exit(EXIT_INTERRUPTED)
    finally:
        bar.stop()
    for problem in result.redone:
        errors.print(
            f"warning: resume: parts/{escape(problem)}; assessed again", highlight=False, soft_wrap=True
        )
    if not quiet:
        _report(result, out)
    if verify_sample:
        disagreements = _disagreements(out / ERRORS)
        if disagreements:
            _fail(
                errors,
                f"the shadow check failed for {len(disagreements)} records (see {ERRORS}): "
                + "; ".join(disagreements[:3]),
                EXIT_VERIFY,
            )


def _disagreements(errors_file: Path) -> list[str]:
    """Each shadow-check failure recorded in the run's errors.ndjson, as record number and reason."""
    if not errors_file.exists():
        return []
    found = []
    with errors_file.open(encoding="utf-8") as lines:
        for line in lines:
            data = json.loads(line)
            if data.get("error") == VerificationError.__name__:
                found.append(f"record {data.get('record')}: {data.get('reason')}")
    return found


def _report(result: BatchResult, out: Path) -> None:
    console = Console()
    result.summary.print(console)
    rate = f" ({result.records / result.seconds:,.0f} records/s)" if result.seconds and result.records else ""
    console.print(
        f"Wrote {out / 'assessments.ndjson'}, {out / 'errors.ndjson'} and {out / 'summary.md'}; "
        f"{result.records} records assessed in this run in {result.seconds:.1f} s{rate}.",
        highlight=False,
        soft_wrap=True,
    )
