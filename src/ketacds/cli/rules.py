"""``ketacds rules``: what an auditor runs on a ruleset. Parses, prints, and holds no clinical logic.

* ``docs``: render the rules as Markdown pages and one HTML file;
* ``coverage``: each clinical-reference fact per program, as one Markdown page;
* ``lint``: every problem, with file:line and a stable code (``docs/lint.md``);
* ``digest``: the name, version and sha256 digest that every Assessment carries;
* ``programs``: each route × jurisdiction: covered, following a label, refused or a gap;
* ``diff``: what changed between two versions, and for which patients of a corpus.

Exit status: 0 when all is well, 1 when lint finds errors (or ``docs --check`` finds
stale pages), 2 for rules or input that cannot be read.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.markup import escape

from ketacds.audit import history
from ketacds.audit.corpus import read_corpus
from ketacds.audit.diff import MISSING, Impact, RulesetDiff, compare, impact, report
from ketacds.audit.revisions import ruleset_dir
from ketacds.engine.api import Engine
from ketacds.errors import InputError, RulesetError
from ketacds.ruleset.describe import Describer
from ketacds.ruleset.facts import render_coverage
from ketacds.ruleset.lint import LintReport, lint
from ketacds.ruleset.load import bundled_rules_dir, load_checked, load_ruleset
from ketacds.ruleset.render import render, stale, write
from ketacds.ruleset.scope import coverage, programs

__all__ = ["rules"]

EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2

_RULES_DIR = click.Path(path_type=Path, file_okay=False, exists=True)


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[bold red]error:[/] {escape(message)}", markup=True
    )
    sys.exit(code)


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to here when below here."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix() or "."
    except ValueError:
        return str(path)


@click.group()
def rules() -> None:
    """Auditors: render, lint, pin and compare rulesets (default: the bundled rules)."""


@rules.command()
@click.argument("path", required=False, type=_RULES_DIR)
@click.option(
    "--out", required=True, type=click.Path(path_type=Path, file_okay=False), help="Folder for the pages."
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the pages in --out are stale.")
def docs(path: Path | None, out: Path, check: bool) -> None:
    """Render the rules as Markdown pages (index, one per rule file, one per value set) and one HTML file."""
    checked = load_checked(path)
    if checked.ruleset is None or checked.problems:
        first = checked.problems[0]
        _fail(f"{first} ({len(checked.problems)} problems; see `ketacds rules lint`)")
    files = render(checked.ruleset, checked.files)
    if check:
        outdated = stale(files, out)
        for name in outdated:
            click.echo(f"stale: {_shown(out / name)}")
        if outdated:
            click.echo(f"{len(outdated)} stale files in {_shown(out)}: run `make docs` and commit the result")
            sys.exit(EXIT_FINDINGS)
        click.echo(f"{_shown(out)} is up to date ({len(files)} files)")
        return
    result = write(files, out)
    click.echo(
        f"{len(files)} files in {_shown(out)}: {len(result.written)} written, {len(result.removed)} removed "
        f"({checked.ruleset.name} {checked.ruleset.version})"
    )


@rules.command(name="coverage")
@click.argument("path", required=False, type=_RULES_DIR)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The Markdown file to write.",
)
@click.option(
    "--rules-docs",
    default="rules",
    show_default=True,
    help="Where `ketacds rules docs` wrote the rule pages, relative to --out's folder (for links).",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if --out is stale.")
def coverage_command(path: Path | None, out: Path, rules_docs: str, check: bool) -> None:
    """Write each clinical-reference fact per program (route × jurisdiction): encoded, in part, or not."""
    checked = load_checked(path)
    if checked.ruleset is None or checked.problems:
        first = checked.problems[0]
        _fail(f"{first} ({len(checked.problems)} problems; see `ketacds rules lint`)")
    if not checked.ruleset.facts:
        _fail("the ruleset has no reference-facts.yaml: nothing to show")
    text = render_coverage(checked.ruleset, rules_docs)
    current = out.read_text(encoding="utf-8") if out.is_file() else None
    if check:
        if current != text:
            click.echo(f"stale: {_shown(out)}: run `make docs` and commit the result")
            sys.exit(EXIT_FINDINGS)
        click.echo(f"{_shown(out)} is up to date")
        return
    if current != text:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
        except OSError as error:
            _fail(f"{out}: cannot write: {error.strerror}")
    state = "written" if current != text else "unchanged"
    click.echo(
        f"{_shown(out)} {state} ({len(checked.ruleset.facts)} facts; "
        f"{checked.ruleset.name} {checked.ruleset.version})"
    )


@rules.command(name="lint")
@click.argument("path", required=False, type=_RULES_DIR)
@click.option("--strict", is_flag=True, help="Warnings count as errors (exit 1).")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output."
)
def lint_command(path: Path | None, strict: bool, fmt: str) -> None:
    """Check the rules and report every problem, with file:line and a code (docs/lint.md)."""
    result = lint(path)
    root = _shown(path if path is not None else bundled_rules_dir())
    if fmt == "json":
        click.echo(json.dumps(_lint_json(result, root), indent=2, sort_keys=True))
    else:
        for finding in result.findings:
            click.echo(finding.text(root))
        name = f"{result.name} {result.version}" if result.name else root
        click.echo(f"{name}: {len(result.errors)} errors, {len(result.warnings)} warnings")
    if result.errors or (strict and result.warnings):
        sys.exit(EXIT_FINDINGS)


def _lint_json(result: LintReport, root: str) -> dict[str, object]:
    return {
        "ruleset": result.name,
        "version": result.version,
        "digest": result.digest,
        "root": root,
        "findings": [
            {
                "code": f.code,
                "name": f.name,
                "severity": f.severity,
                "message": f.message,
                "file": f.file,
                "line": f.line,
                "suggestion": f.suggestion,
                "rule_id": f.rule_id,
            }
            for f in result.findings
        ],
    }


@rules.command()
@click.argument("path", required=False, type=_RULES_DIR)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def digest(path: Path | None, as_json: bool) -> None:
    """Print the ruleset's name, version and sha256 digest (what every Assessment carries)."""
    root = path if path is not None else bundled_rules_dir()
    try:
        ruleset = load_ruleset(root)
    except RulesetError as error:
        _fail(f"rules: {error}")
    record_path = root / history.RECORD_FILE
    try:
        recorded = history.read_record(record_path).get(ruleset.name, {}).get(ruleset.version)
    except ValueError as error:
        _fail(str(error))
    if recorded is None:
        note = (
            f"version not in {history.RECORD_FILE}" if record_path.is_file() else f"no {history.RECORD_FILE}"
        )
    else:
        note = (
            f"as recorded in {history.RECORD_FILE}"
            if recorded == ruleset.digest
            else (f"DIFFERS from {recorded} recorded in {history.RECORD_FILE}")
        )
    if as_json:
        data = {
            "name": ruleset.name,
            "version": ruleset.version,
            "digest": ruleset.digest,
            "recorded": recorded,
        }
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    click.echo(f"ruleset  {ruleset.name}")
    click.echo(f"version  {ruleset.version}")
    click.echo(f"sha256   {ruleset.digest}")
    click.echo(f"record   {note}")


@rules.command(name="programs")
@click.argument("path", required=False, type=_RULES_DIR)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def programs_command(path: Path | None, as_json: bool) -> None:
    """Print each program (route × jurisdiction): covered, following a label, refused, or a gap.

    Exit 1 when a program has a gap the ruleset does not refuse (lint KL050).
    """
    try:
        ruleset = load_ruleset(path)
    except RulesetError as error:
        _fail(f"rules: {error}")
    found = [coverage(ruleset, *program) for program in programs(ruleset)]
    if as_json:
        data = [
            {
                "route": c.route,
                "jurisdiction": c.jurisdiction,
                "state": c.state,
                "follows": c.follows.label if c.follows else None,
                "scope": list(c.scope),
                "missing": list(c.missing),
                "refusal": c.refusal.reason if c.refusal else None,
            }
            for c in found
        ]
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        for c in found:
            state = f"follows {c.follows.label}" if c.state == "covered" and c.follows else c.state
            missing = f"  missing: {', '.join(c.missing)}" if c.missing else ""
            click.echo(f"{c.route:17} {c.jurisdiction:3} {state:11}{missing}".rstrip())
    if any(c.state == "gap" for c in found):
        sys.exit(EXIT_FINDINGS)


@rules.command(name="diff")
@click.argument("old")
@click.argument("new")
@click.option(
    "--corpus",
    multiple=True,
    type=click.Path(path_type=Path, exists=True),
    help="Patient cases (folder or file; YAML, JSON, NDJSON, *.scenario.yaml); repeatable.",
)
@click.option(
    "--markdown", type=click.Path(path_type=Path, dir_okay=False), help="Also write a Markdown report."
)
def diff_command(old: str, new: str, corpus: Sequence[Path], markdown: Path | None) -> None:
    """Compare rules OLD and NEW (each a ruleset folder, or a git revision: REV or REV:TREE).

    With --corpus, assess every case with both and show which patients change.
    """
    with tempfile.TemporaryDirectory(prefix="ketacds-diff-") as tmp:
        try:
            before = load_ruleset(ruleset_dir(old, Path(tmp) / "old"))
            after = load_ruleset(ruleset_dir(new, Path(tmp) / "new"))
        except RulesetError as error:
            _fail(f"rules: {error}")
    result = compare(before, after)
    effect = None
    if corpus:
        try:
            cases = read_corpus(corpus)
        except InputError as error:
            _fail(f"corpus: {error}")
        with Engine.from_ruleset(before) as old_engine, Engine.from_ruleset(after) as new_engine:
            effect = impact(old_engine, new_engine, cases)
    _print_diff(result, old, new, effect)
    if markdown is not None:
        try:
            markdown.parent.mkdir(parents=True, exist_ok=True)
            markdown.write_text(report(result, old, new, effect), encoding="utf-8")
        except OSError as error:
            _fail(f"{markdown}: cannot write: {error.strerror}")
        click.echo(f"Markdown report: {_shown(markdown)}")


def _value(value: object) -> str:
    return "(none)" if value is MISSING else str(value)


def _print_diff(result: RulesetDiff, old_label: str, new_label: str, effect: Impact | None) -> None:
    console = Console(highlight=False, soft_wrap=True)
    out = console.print
    for side, label, ruleset in (("old", old_label, result.old), ("new", new_label, result.new)):
        out(
            f"[bold]{side}[/] {escape(label)}: {escape(ruleset.name)} {escape(ruleset.version)}, "
            f"sha256 {ruleset.digest[:16]}..."
        )
    if result.identical:
        out("The two rulesets are identical (same digest).")
    out(
        f"Rules: {len(result.added)} added, {len(result.removed)} removed, {len(result.changed)} changed. "
        f"Value sets: {len(result.valuesets_added)} added, {len(result.valuesets_removed)} removed, "
        f"{len(result.valuesets_changed)} changed. Manifest: {len(result.manifest)} changes."
    )
    for rule in result.added:
        out(f"  [green]+ {rule.id}[/] {escape(rule.title)}")
    for rule in result.removed:
        out(f"  [red]- {rule.id}[/] {escape(rule.title)}")
    old_words, new_words = Describer(result.old), Describer(result.new)
    for rule_change in result.changed:
        out(f"  [yellow]~ {rule_change.rule_id}[/] {escape(rule_change.new.title)}")
        for item in rule_change.changes:
            out(escape(f"      {item.path}: {_value(item.old)} → {_value(item.new)}"))
        if rule_change.condition_changed:
            out(escape(f"      before: {old_words.sentence(rule_change.old.when)}"))
            out(escape(f"      after:  {new_words.sentence(rule_change.new.when)}"))
    for vs in result.valuesets_changed:
        out(
            f"  [yellow]~ value set {vs.id}[/]: +{len(vs.codes_added)}/-{len(vs.codes_removed)} codes, "
            f"+{len(vs.names_added)}/-{len(vs.names_removed)} names, {len(vs.other)} other changes"
        )
    for change in result.manifest:
        what = f"{change.path}: {_value(change.old)} → {_value(change.new)}"
        out(f"  [yellow]~ manifest[/] {escape(what)}")
    if effect is None:
        return
    total, affected = len(effect.cases), len(effect.affected)
    out(
        f"\n[bold]Impact on {total} cases:[/] the status changes for {len(effect.status_changes)}, "
        f"something changes for {affected}, {total - affected} are unchanged."
    )
    for old_status, new_status, count in effect.transitions():
        out(f"  {old_status} → {new_status}: {count}")
    for case in effect.affected:
        out(f"  [bold]{escape(case.source)}[/] ({escape(case.label)})")
        details = [f"status {case.transition()}"]
        listed = (("appeared", case.appeared), ("vanished", case.vanished), ("changed", case.altered))
        details += [f"{what}: {', '.join(ids)}" for what, ids in listed if ids]
        details += ["dose changed"] if case.dose_changed else []
        out(escape(f"      {'; '.join(details)}"))
    failed = [case for case in effect.cases if case.old_error or case.new_error]
    if failed:
        out(f"[bold red]{len(failed)} cases could not be assessed:[/]")
    for case in failed:
        for error in sorted({e for e in (case.old_error, case.new_error) if e is not None}):
            out(escape(f"  {case.source}: {error}"))
