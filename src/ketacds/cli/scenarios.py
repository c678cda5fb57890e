"""The pharmacists' commands: ``ketacds scenarios run|coverage|mutate``, ``ketacds explain``, what-if.

Parses arguments and prints; the work is done in :mod:`ketacds.scenarios`.

Exit status:

* ``scenarios run``: 0 every scenario passed, 1 some failed, 2 a scenario file is bad
  (or names a rule, status or label the rules lack), 3 the engine failed;
* ``scenarios coverage``: 0, or 1 when ``--fail-under-rs`` is not met, 2 bad files;
* ``scenarios mutate``: 0, or 1 when ``--fail-under`` is not met, 2 bad files;
* ``explain``: 0, or 2 for bad input (unknown rule, unreadable file).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import attrs
import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ketacds.cli.options import RULES_DIR, case_of_document
from ketacds.engine.api import BackendName, Engine
from ketacds.errors import InputError, KetacdsError, RulesetError, ScenarioError
from ketacds.models.inputs import Context, PatientRecord
from ketacds.models.load import read_document
from ketacds.models.results import Assessment
from ketacds.reporting import render
from ketacds.scenarios.coverage import REQUIRED_CONFIDENCES, measure_coverage
from ketacds.scenarios.explain import CaseAnalysis
from ketacds.scenarios.load import load_scenario_file
from ketacds.scenarios.model import Scenario
from ketacds.scenarios.mutate import OPERATORS, run_mutation
from ketacds.scenarios.run import EXIT_BAD_SCENARIO, load_suite, run_suite, write_junit
from ketacds.scenarios.whatif import Edit, apply_edits, compare_assessments, parse_edit
from ketacds.vocabulary import ROUTES

__all__ = ["explain", "scenarios", "what_if_outputs", "whatif_options"]

F = TypeVar("F", bound=Callable[..., Any])

_LOG_WIDTH = 150
_QUIET = click.option("-q", "--quiet", is_flag=True, help="Print only problems and the summary line.")

_PATHS = click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))

# (option, what it does): each may be given several times.
_EDIT_OPTIONS = (
    (
        "--set",
        "Change a patient or context field: weight=120kg, age=70, route=ketamine-iv "
        "('weight=' makes it unknown).",
    ),
    ("--remove-med", "Remove medications by name, code or value set (e.g. benzodiazepines)."),
    ("--remove-condition", "Remove conditions by name, code (F33.2, icd-10-cm:F33.2) or value set."),
    ("--remove-trial", "Remove antidepressant trials by drug name or code."),
    ("--remove-observation", "Remove observations by name, code or value set (a panel goes whole)."),
    ("--add-med", "Add a medication: clonazepam, 'clonazepam 0.5 mg bid', rxnorm:2598, or a {mapping}."),
    ("--add-condition", "Add a condition: a name, icd-10-cm:I71.40, or a {mapping}."),
    ("--add-trial", "Add an antidepressant trial: a name or a {mapping} (dose, unit, weeks, response, ...)."),
    ("--add-observation", "Add an observation timed at 'now': systolic=150 mmHg, or a {mapping}."),
)


def whatif_options(command: F) -> F:
    """Add the what-if edit options (``--set``, ``--add-med``, ...) to a click command."""
    for option, help_text in reversed(_EDIT_OPTIONS):
        command = click.option(option, multiple=True, metavar="EDIT", help=help_text)(command)
    return command


def _edits(options: Mapping[str, tuple[str, ...]]) -> list[Edit]:
    """The edits in the order they apply: every --set, then removals, then additions."""
    edits: list[Edit] = []
    for option, _ in _EDIT_OPTIONS:
        key = option.lstrip("-").replace("-", "_")
        action, _, kind = option.lstrip("-").partition("-")
        edits += [parse_edit(action, kind, text) for text in options.get(key, ())]
    return edits


def _apply(
    engine: Engine, record: PatientRecord, context: Context, edits: list[Edit]
) -> tuple[PatientRecord, Context]:
    titles = {vs.id: vs.title for vs in engine.ruleset.valuesets}
    return apply_edits(record, context, edits, terminology=engine.terminology, valueset_titles=titles)


def what_if_outputs(
    engine: Engine,
    record: PatientRecord,
    context: Context,
    before: Assessment,
    options: Mapping[str, tuple[str, ...]],
    fmt: str,
    *,
    title: str,
) -> tuple[str, str] | None:
    """For ``ketacds assess`` with edits: the report and the JSON of the edited case (None without edits).

    Raises:
        InputError: an edit cannot be applied.
    """
    edits = _edits(options)
    if not edits:
        return None
    edited, edited_context = _apply(engine, record, context, edits)
    after = engine.assess(edited, edited_context)
    changes = compare_assessments(before, after)
    described = "; ".join(edit.describe() for edit in edits)
    data = {
        "edits": [edit.describe() for edit in edits],
        "changes": attrs.asdict(changes),
        "before": before.to_dict(),
        "after": after.to_dict(),
    }
    if fmt == "markdown":
        head = [f"## What if: {described}", "", *(f"- {line}" for line in changes.lines()), ""]
    else:
        head = [f"What if: {described}", *(f"  {line}" for line in changes.lines()), ""]
    report = "\n".join(head) + "\n" + render(after, fmt, title=f"{title} (edited)")
    return report, json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False)


def _console(*, stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = max(console.width, _LOG_WIDTH)  # CI logs: do not squeeze tables into 80 columns
    return console


def _fail(message: str, code: int) -> NoReturn:
    _console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", markup=True)
    sys.exit(code)


def _engine(rules_dir: Path | None) -> Engine:
    try:
        return Engine(rules_dir)
    except RulesetError as error:
        _fail(f"rules: {error}", EXIT_BAD_SCENARIO)


def _load(
    rules_dir: Path | None, paths: tuple[Path, ...], *, strict: bool
) -> tuple[Engine, list[Scenario], list[ScenarioError]]:
    """The engine and the scenarios; bad files are printed, and with ``strict`` end the command (exit 2)."""
    engine = _engine(rules_dir)
    found, errors = load_suite(paths)
    for problem in errors:
        _console(stderr=True).print(f"[bold red]bad scenario file:[/] {escape(str(problem))}", markup=True)
    if errors and strict:
        sys.exit(EXIT_BAD_SCENARIO)
    return engine, found, errors


@click.group("scenarios")
def scenarios() -> None:
    """Scenario files (*.scenario.yaml): run them, measure rule coverage, mutation-test the rules."""


@scenarios.command("run")
@_PATHS
@RULES_DIR
@click.option(
    "--backend",
    type=click.Choice(["durable", "compiled", "reference"]),
    default="durable",
    show_default=True,
    help="The engine: durable_rules (of record), the compiled rules, or the reference evaluator.",
)
@click.option(
    "--junit-xml", type=click.Path(path_type=Path, dir_okay=False), help="Also write JUnit XML here."
)
@click.option("-k", "keyword", help="Only scenarios whose title contains this text (case-insensitive).")
@_QUIET
def run_command(
    paths: tuple[Path, ...],
    rules_dir: Path | None,
    backend: BackendName,
    junit_xml: Path | None,
    keyword: str | None,
    quiet: bool,
) -> None:
    """Run the scenarios in PATHS (files, or directories searched for *.scenario.yaml)."""
    engine, found, errors = _load(rules_dir, paths, strict=False)
    if keyword:
        found = [s for s in found if keyword.lower() in s.title.lower()]
    suite = run_suite(engine, found, backend=backend, file_errors=errors)
    out = _console()
    table = Table(
        title=f"Scenarios ({engine.ruleset.name} {engine.ruleset.version}, {backend})", title_justify="left"
    )
    table.add_column("result")
    table.add_column("scenario")
    table.add_column("where")
    style = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "error": "[bold red]ERROR[/]"}
    for result in suite.results:
        if not (quiet and result.outcome == "pass"):
            table.add_row(style[result.outcome], escape(result.scenario.title), escape(result.scenario.where))
    if table.row_count:
        out.print(table)
    for result in suite.results:
        if result.outcome != "pass":
            out.print()
            out.print(result.report, markup=False, end="")
    if table.row_count:
        out.print()
    summary = (
        f"{suite.count('pass')} passed, {suite.count('fail')} failed, {suite.count('error')} in error"
        f"{f', {len(errors)} bad file(s)' if errors else ''} in {suite.seconds:.2f} s"
    )
    out.print(summary, markup=False)
    if junit_xml is not None:
        write_junit(suite, junit_xml)
    sys.exit(suite.exit_code)


@scenarios.command("coverage")
@_PATHS
@RULES_DIR
@click.option(
    "--markdown", type=click.Path(path_type=Path, dir_okay=False), help="Also write a Markdown report here."
)
@click.option(
    "--fail-under-rs",
    type=click.FloatRange(0, 100),
    help="Exit 1 unless at least this % of the R and S confidence rules fired in some scenario.",
)
@_QUIET
def coverage_command(
    paths: tuple[Path, ...],
    rules_dir: Path | None,
    markdown: Path | None,
    fail_under_rs: float | None,
    quiet: bool,
) -> None:
    """Which rules the scenarios in PATHS make fire, nearly fire (near miss), or never exercise."""
    engine, found, _ = _load(rules_dir, paths, strict=True)
    report = measure_coverage(engine, found)
    table = Table(title=f"Rule coverage ({report.ruleset} {report.version})", title_justify="left")
    for column in ("rule", "conf.", "title", "fired in", "near-missed in", "state"):
        table.add_column(column)
    colour = {"fired": "green", "near miss": "yellow", "not exercised": "bold red"}
    for rule in report.rules:
        near = str(len(rule.near_missed_in)) if rule.near_miss_possible else "—"
        table.add_row(
            rule.rule_id,
            rule.confidence,
            rule.title,
            str(len(rule.fired_in)),
            near,
            f"[{colour[rule.state]}]{rule.state}[/]",
        )
    out = _console()
    if not quiet:
        out.print(table)
    out.print(report.summary(), markup=False)
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(report.to_markdown(), encoding="utf-8")
    if fail_under_rs is not None and report.percent(REQUIRED_CONFIDENCES) < fail_under_rs:
        missing = ", ".join(r.rule_id for r in report.unfired(REQUIRED_CONFIDENCES))
        _fail(
            f"only {report.percent(REQUIRED_CONFIDENCES):.1f}% of R/S rules fired in a scenario "
            f"(at least {fail_under_rs:g}% required); never fired: {missing}",
            1,
        )


@scenarios.command("mutate")
@_PATHS
@RULES_DIR
@click.option(
    "--markdown", type=click.Path(path_type=Path, dir_okay=False), help="Also write a Markdown report here."
)
@click.option("--max-mutants", type=click.IntRange(1), help="Run a reproducible sample of at most N mutants.")
@click.option("--rule", "rule_ids", multiple=True, help="Only mutate this rule (repeatable).")
@click.option(
    "--operator",
    "operators",
    multiple=True,
    type=click.Choice(OPERATORS),
    help="Only this operator (repeatable).",
)
@click.option(
    "--fail-under", type=click.FloatRange(0, 100), help="Exit 1 when the mutation score is below this %."
)
@_QUIET
def mutate_command(
    paths: tuple[Path, ...],
    rules_dir: Path | None,
    markdown: Path | None,
    max_mutants: int | None,
    rule_ids: tuple[str, ...],
    operators: tuple[str, ...],
    fail_under: float | None,
    quiet: bool,
) -> None:
    """Change each rule in small ways and report the changes the scenarios in PATHS do not catch."""
    engine, found, _ = _load(rules_dir, paths, strict=True)
    report = run_mutation(
        engine, found, max_mutants=max_mutants, rule_ids=rule_ids or None, operators=operators or None
    )
    out = _console()
    table = Table(title=f"Rule mutation testing ({report.ruleset} {report.version})", title_justify="left")
    for column in ("ruleset file", "mutants", "killed", "survived", "score"):
        table.add_column(column)
    for name, total, killed in report.by_file():
        table.add_row(name, str(total), str(killed), str(total - killed), f"{100 * killed / total:.0f}%")
    if not quiet:
        out.print(table)
    if report.survivors:
        out.print("Surviving mutants (changes no scenario notices):", markup=False)
        for result in report.survivors:
            m = result.mutant
            out.print(
                f"  {m.rule_id} [{m.operator}] {m.description}  ({report.where(m.rule_id)})", markup=False
            )
    for where in report.baseline_failures:
        out.print(f"left out (fails on the real rules): {where}", markup=False)
    out.print(report.summary(), markup=False)
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(report.to_markdown(), encoding="utf-8")
    if fail_under is not None and report.score() < fail_under:
        _fail(f"mutation score {report.score():.1f}% is below {fail_under:g}%", 1)


def _pick(file: Path, choice: str | None) -> Scenario:
    loaded = load_scenario_file(file).scenarios
    if choice is None:
        if len(loaded) == 1:
            return loaded[0]
        titles = "; ".join(f"{i}. {s.title}" for i, s in enumerate(loaded, 1))
        raise InputError("--scenario", f"{file} holds {len(loaded)} scenarios; choose one: {titles}")
    if choice.isdigit() and 1 <= int(choice) <= len(loaded):
        return loaded[int(choice) - 1]
    for scenario in loaded:
        if scenario.title.lower() == choice.lower():
            return scenario
    raise InputError("--scenario", f"no scenario titled {choice!r} in {file}")


@click.command("explain")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--rule",
    "rule_ids",
    multiple=True,
    required=True,
    help="The rule to explain, e.g. KCDS-CI-004 (repeatable).",
)
@click.option(
    "--scenario", "choice", help="In a scenario file: the title or number (1, 2, ...) of the scenario."
)
@click.option(
    "--route",
    type=click.Choice(ROUTES),
    help="Planned route (overrides the file's context).",
)
@click.option("--jurisdiction", help="Two-letter jurisdiction (overrides the file's context).")
@click.option("--now", help="Assessment time, ISO 8601 with timezone (overrides the file's context).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@RULES_DIR
@whatif_options
def explain(
    file: Path,
    rule_ids: tuple[str, ...],
    choice: str | None,
    route: str | None,
    jurisdiction: str | None,
    now: str | None,
    fmt: str,
    rules_dir: Path | None,
    **options: tuple[str, ...],
) -> None:
    """Why each --rule fired, or why not, for the case in FILE (a patient, scenario or FHIR Bundle file).

    A FHIR Bundle carries no treatment context: give --route, --jurisdiction and --now.

    The what-if options explain an edited copy of the case.
    """
    engine = _engine(rules_dir)
    overrides = {"route": route, "jurisdiction": jurisdiction, "now": now}
    try:
        if file.name.endswith(".scenario.yaml"):
            scenario = _pick(file, choice)
            record, context = scenario.record, scenario.context
            extra = [Edit("set", "field", f"{k}={v}") for k, v in overrides.items() if v is not None]
        else:
            document = read_document(file)
            record, context = case_of_document(document, overrides=overrides, terminology=engine.terminology)
            extra = []
        record, context = _apply(engine, record, context, [*extra, *_edits(options)])
        analysis = CaseAnalysis(engine, record, context)
        explanations = [analysis.explain(rule_id) for rule_id in rule_ids]
    except KetacdsError as error:
        _fail(f"{file}: {error}", EXIT_BAD_SCENARIO)
    if fmt == "json":
        data = [attrs.asdict(e) for e in explanations]
        click.echo(json.dumps(data if len(data) > 1 else data[0], indent=2, ensure_ascii=False, default=str))
        return
    click.echo("\n".join(e.to_text() for e in explanations), nl=False)
