"""`ketacds rules ...` and `ketacds assess --expect-digest`, run in-process."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketacds.cli import main
from ketacds.ruleset.load import load_ruleset
from rulesets_fixtures import GOOD_RULE, RULES, add_rule, copy_rules, replace, set_version
from support import EXAMPLES


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run(*args: str | Path) -> Result:
    """Run the CLI in-process, with stdout and stderr apart."""
    outcome = CliRunner().invoke(main, [str(a) for a in args])
    if outcome.exception is not None and not isinstance(outcome.exception, SystemExit):
        raise outcome.exception
    return Result(outcome.exit_code, outcome.stdout, outcome.stderr)


@pytest.fixture(scope="module")
def digest() -> str:
    return load_ruleset(RULES).digest


class TestDocs:
    def test_writes_then_checks(self, tmp_path: Path):
        """`rules docs` writes the pages; `--check` then finds them up to date."""
        out = tmp_path / "docs"

        written = run("rules", "docs", RULES, "--out", out)
        checked = run("rules", "docs", RULES, "--out", out, "--check")

        assert 0 == written.returncode
        assert f"{len(list(out.rglob('*.*')))} files" in written.stdout
        assert (out / "ruleset.html").is_file()
        assert 0 == checked.returncode
        assert "is up to date" in checked.stdout

    def test_check_fails_on_stale_pages(self, tmp_path: Path):
        """`--check` exits 1 and names each stale page and how to regenerate."""
        out = tmp_path / "docs"
        run("rules", "docs", RULES, "--out", out)
        (out / "dosing.md").write_text("edited by hand\n")

        result = run("rules", "docs", RULES, "--out", out, "--check")

        assert 1 == result.returncode
        assert "stale:" in result.stdout
        assert "dosing.md" in result.stdout
        assert "run `make docs`" in result.stdout

    def test_broken_rules_are_not_rendered(self, tmp_path: Path):
        """Rules that do not load are not rendered: exit 2, pointing at `rules lint`."""
        rules_dir = copy_rules(tmp_path)
        replace(rules_dir, "interactions.yaml", "source: KETAMAX", "source: KETAMAXX")

        result = run("rules", "docs", rules_dir, "--out", tmp_path / "docs")

        assert 2 == result.returncode
        assert "ketacds rules lint" in result.stderr


def with_unused_valueset(tmp_path: Path) -> Path:
    """A copy of the rules with a value set no rule reads (a KL036 warning)."""
    rules_dir = copy_rules(tmp_path)
    (rules_dir / "valuesets" / "unused.yaml").write_text(
        "id: unused\ntitle: Nothing uses this\nsource: a test\nnames: [nothing]\n", encoding="utf-8"
    )
    return rules_dir


class TestLint:
    def test_bundled_rules_pass(self):
        """The bundled rules lint without errors: exit 0 and a summary line."""
        result = run("rules", "lint")

        assert 0 == result.returncode
        assert re.search(r"^ketacds-core [\d.]+: 0 errors, \d+ warnings$", result.stdout, re.M)

    def test_warnings_pass(self, tmp_path: Path):
        """Warnings only: exit 0, each warning printed."""
        result = run("rules", "lint", with_unused_valueset(tmp_path))

        assert 0 == result.returncode
        assert "KL036 warning" in result.stdout

    def test_strict_makes_warnings_fail(self, tmp_path: Path):
        """--strict exits 1 on warnings."""
        assert 1 == run("rules", "lint", with_unused_valueset(tmp_path), "--strict").returncode

    def test_errors_exit_1_with_file_and_line(self, tmp_path: Path):
        """An error is printed as path:line: code and exits 1."""
        rules_dir = copy_rules(tmp_path)
        add_rule(rules_dir, GOOD_RULE.replace("in: benzodiazepines", "in: benzodiazepine"))

        result = run("rules", "lint", rules_dir)

        assert 1 == result.returncode
        assert "/interactions.yaml:" in result.stdout
        assert (
            "KL012 error: unknown value set 'benzodiazepine' (did you mean 'benzodiazepines'?)"
            in result.stdout
        )

    def test_json(self, tmp_path: Path):
        """--format json gives the findings as data."""
        data = json.loads(run("rules", "lint", with_unused_valueset(tmp_path), "--format", "json").stdout)

        assert "ketacds-core" == data["ruleset"]
        assert "KL036" in [f["code"] for f in data["findings"]]
        assert {"warning"} == {f["severity"] for f in data["findings"]}
        assert "unused-valueset" == next(f["name"] for f in data["findings"] if f["code"] == "KL036")


def recorded_copy(tmp_path: Path) -> Path:
    """A copy of the rules with a record that holds exactly their version and digest."""
    rules_dir = copy_rules(tmp_path)
    ruleset = load_ruleset(rules_dir)
    (rules_dir / "versions.yaml").write_text(f"{ruleset.name}:\n  {ruleset.version}: {ruleset.digest}\n")
    return rules_dir


class TestDigest:
    def test_prints_name_version_digest_and_record(self, tmp_path: Path):
        """`rules digest` prints the identity an Assessment carries, and whether it is recorded."""
        rules_dir = recorded_copy(tmp_path)
        ruleset = load_ruleset(rules_dir)

        result = run("rules", "digest", rules_dir)

        assert 0 == result.returncode
        lines = ["ruleset  ketacds-core", f"version  {ruleset.version}", f"sha256   {ruleset.digest}"]
        assert "\n".join([*lines, "record   as recorded in versions.yaml"]) in result.stdout

    def test_json_and_unrecorded_changes(self, tmp_path: Path):
        """A changed ruleset shows that its digest differs from the recorded one."""
        rules_dir = recorded_copy(tmp_path)
        replace(rules_dir, "contraindications.yaml", "value: {gt: 140}", "value: {gt: 150}")

        text = run("rules", "digest", rules_dir).stdout
        data = json.loads(run("rules", "digest", rules_dir, "--json").stdout)

        assert "DIFFERS from" in text
        assert load_ruleset(rules_dir).digest == data["digest"]
        assert data["recorded"] != data["digest"]

    def test_without_a_record(self, tmp_path: Path):
        """A ruleset without versions.yaml says so; a version not in it says that."""
        rules_dir = recorded_copy(tmp_path)
        set_version(rules_dir, "9.0.0")
        assert "version not in versions.yaml" in run("rules", "digest", rules_dir).stdout

        (rules_dir / "versions.yaml").unlink()
        assert "no versions.yaml" in run("rules", "digest", rules_dir).stdout

    def test_broken_rules_or_record_exit_2(self, tmp_path: Path):
        """A ruleset that does not load, or a malformed record, is an error."""
        rules_dir = copy_rules(tmp_path)
        (rules_dir / "versions.yaml").write_text("- nope\n")
        assert 2 == run("rules", "digest", rules_dir).returncode

        (rules_dir / "manifest.yaml").unlink()
        assert 2 == run("rules", "digest", rules_dir).returncode


class TestDiff:
    def test_threshold_change_over_the_examples(self, tmp_path: Path):
        """The summary names the changed field and the affected patient; --markdown writes the report."""
        rules_dir = copy_rules(tmp_path)
        replace(rules_dir, "contraindications.yaml", "value: {gt: 140}", "value: {gt: 150}")
        markdown = tmp_path / "diff.md"

        result = run("rules", "diff", RULES, rules_dir, "--corpus", EXAMPLES, "--markdown", markdown)

        assert 0 == result.returncode
        assert "~ KCDS-CI-004" in result.stdout
        assert "when.items[0].tests[2].value: 140 → 150" in result.stdout
        assert "the status changes for 1, something changes for 1, 9 are unchanged" in result.stdout
        assert "examples/08-esketamine-systolic-only.yaml" in result.stdout
        assert "status defer → no-concerns-found; vanished: KCDS-CI-004" in result.stdout
        assert "## Impact on the corpus" in markdown.read_text()

    def test_added_removed_value_sets_and_manifest(self, tmp_path: Path):
        """Every kind of change has a line in the summary."""
        rules_dir = copy_rules(tmp_path)
        add_rule(rules_dir, GOOD_RULE)
        replace(rules_dir, "monitoring.yaml", "  - id: KCDS-MON-003", "  - id: KCDS-MON-999")
        replace(rules_dir, "valuesets/phq-9.yaml", '  - "phq9"\n', "")
        old_version = set_version(rules_dir, "9.0.0")

        out = run("rules", "diff", RULES, rules_dir).stdout

        assert "+ KCDS-MON-999" in out
        assert "+ KCDS-TEST-001" in out
        assert "- KCDS-MON-003" in out
        assert "~ value set phq-9: +0/-0 codes, +0/-1 names" in out
        assert f"~ manifest version: {old_version} → 9.0.0" in out

    def test_bad_revision_and_bad_corpus_exit_2(self, tmp_path: Path):
        """An unknown ruleset or an unreadable corpus file is bad input."""
        (tmp_path / "notes.txt").write_text("x")

        assert 2 == run("rules", "diff", "no-such-revision-anywhere", RULES).returncode
        assert 2 == run("rules", "diff", RULES, RULES, "--corpus", tmp_path / "notes.txt").returncode

    def test_unreadable_cases_are_shown(self, tmp_path: Path):
        """A case that cannot be read is listed with its error, and the run completes."""
        (tmp_path / "bad.yaml").write_text("patient: {weight: 70 stone}\n")

        result = run("rules", "diff", RULES, RULES, "--corpus", tmp_path)

        assert 0 == result.returncode
        assert "The two rulesets are identical (same digest)." in result.stdout
        assert "the status changes for 0" in result.stdout
        assert "1 cases could not be assessed:" in result.stdout
        assert "bad.yaml: patient.weight" in result.stdout


class TestExpectDigest:
    def test_the_pinned_digest_runs(self, digest):
        """assess --expect-digest with the rules' own digest assesses as usual."""
        result = run("assess", "--expect-digest", digest, EXAMPLES / "01-trd-esketamine-us.yaml")

        assert 0 == result.returncode

    def test_any_other_digest_refuses_to_start(self):
        """assess --expect-digest with another digest exits 2 and names both digests."""
        result = run("assess", "--expect-digest", "0" * 64, EXAMPLES / "01-trd-esketamine-us.yaml")

        assert 2 == result.returncode
        assert "not the pinned 0000" in result.stderr
        assert "" == result.stdout
