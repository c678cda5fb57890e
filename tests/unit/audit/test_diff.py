"""Ruleset diffs field by field, and their impact on a corpus of patients."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ketacds.audit.corpus import read_corpus, readers, register
from ketacds.audit.diff import MISSING, Change, Impact, changes, compare, flatten, impact, report
from ketacds.audit.revisions import ruleset_dir
from ketacds.cases import Item
from ketacds.engine.api import Engine
from ketacds.errors import InputError, RulesetError
from ketacds.models.load import load_case_file, load_record, read_document
from ketacds.ruleset.load import load_ruleset
from rulesets_fixtures import GOOD_RULE, RULES, add_rule, copy_rules, replace, set_version
from support import EXAMPLES


@pytest.fixture(scope="module")
def old():
    return load_ruleset(RULES)


@pytest.fixture(scope="module")
def systolic_150(tmp_path_factory):
    """The bundled rules with KCDS-CI-004's systolic threshold raised from 140 to 150."""
    rules_dir = copy_rules(tmp_path_factory.mktemp("new"))
    replace(rules_dir, "contraindications.yaml", "value: {gt: 140}", "value: {gt: 150}")
    return load_ruleset(rules_dir)


def assess_both(old, new, paths: list[Path]) -> Impact:
    """The impact of going from ``old`` to ``new`` on the cases under ``paths``."""
    with Engine.from_ruleset(old) as before, Engine.from_ruleset(new) as after:
        return impact(before, after, read_corpus(paths))


def test_flatten_names_every_leaf():
    """Nested data becomes dotted paths with list indexes; empty containers are leaves."""
    assert {"a.b[0]": 1, "a.b[1].c": "x", "d": [], "e": {}} == flatten(
        {"a": {"b": [1, {"c": "x"}]}, "d": [], "e": {}}
    )


def test_changes_mark_missing_sides():
    """A leaf on one side only is a change from or to MISSING."""
    assert (Change("a", 1, 2), Change("b", MISSING, 3)) == changes({"a": 1}, {"a": 2, "b": 3})


def test_identical_rulesets_have_no_changes(old):
    """A ruleset compared with itself is identical."""
    diff = compare(old, old)

    assert diff.identical
    assert ((), (), (), ()) == (diff.added, diff.removed, diff.changed, diff.manifest)


def test_a_threshold_change_is_one_field(old, systolic_150):
    """Raising one threshold shows as exactly one changed field of one rule."""
    diff = compare(old, systolic_150)

    assert ["KCDS-CI-004"] == [c.rule_id for c in diff.changed]
    assert (Change("when.items[0].tests[2].value", 140, 150),) == diff.changed[0].changes
    assert diff.changed[0].condition_changed
    assert not diff.identical


def test_rules_added_removed_and_value_sets_changed(tmp_path: Path, old):
    """Added and removed rules, value-set codes and names, and manifest fields are all listed."""
    rules_dir = copy_rules(tmp_path)
    add_rule(rules_dir, GOOD_RULE)
    replace(rules_dir, "monitoring.yaml", "  - id: KCDS-MON-003", "  - id: KCDS-MON-999")
    replace(rules_dir, "valuesets/phq-9.yaml", '  - "phq9"\n', '  - "phq 9"\n')
    replace(rules_dir, "valuesets/phq-9.yaml", 'code: "44261-6"', 'code: "44261-7"')
    set_version(rules_dir, "9.0.0")
    shutil.copy(rules_dir / "valuesets" / "phq-9.yaml", rules_dir / "valuesets" / "phq-9b.yaml")
    replace(rules_dir, "valuesets/phq-9b.yaml", "id: phq-9", "id: phq-9b")
    new = load_ruleset(rules_dir)

    diff = compare(old, new)

    assert ["KCDS-MON-999", "KCDS-TEST-001"] == [r.id for r in diff.added]
    assert ["KCDS-MON-003"] == [r.id for r in diff.removed]
    assert ["phq-9b"] == [v.id for v in diff.valuesets_added]
    (phq,) = diff.valuesets_changed
    assert ("http://loinc.org|44261-7",) == phq.codes_added
    assert ("http://loinc.org|44261-6",) == phq.codes_removed
    assert (("phq 9",), ("phq9",)) == (phq.names_added, phq.names_removed)
    assert (Change("version", old.version, "9.0.0"),) == diff.manifest


def test_impact_of_the_threshold_change_on_the_examples(old, systolic_150):
    """Raising the systolic threshold to 150 changes one example patient: 146/84 is no longer deferred."""
    result = assess_both(old, systolic_150, [EXAMPLES])

    (affected,) = result.affected
    assert "examples/08-esketamine-systolic-only.yaml" == affected.source
    assert "example-08 — Systolic pressure alone above the pre-dose guide" == affected.label
    assert ("defer", "no-concerns-found") == (affected.old_status, affected.new_status)
    assert ("KCDS-CI-004",) == affected.vanished
    assert [("defer", "no-concerns-found", 1)] == result.transitions()
    assert {"KCDS-CI-004": [affected]} == result.by_rule("vanished")
    assert len(list(EXAMPLES.glob("*.yaml"))) == len(result.cases)


def test_the_markdown_report_names_rules_fields_and_patients(old, systolic_150):
    """The report shows the field change, the condition before and after, and the affected patient."""
    cases = [EXAMPLES / "08-esketamine-systolic-only.yaml", EXAMPLES / "04-esketamine-bp-defer.yaml"]
    result = assess_both(old, systolic_150, cases)

    text = report(compare(old, systolic_150), "HEAD", "proposal", result)

    assert "| `when.items[0].tests[2].value` | `140` | `150` |" in text
    assert "with value above 150" in text
    assert "2 cases assessed with both versions: 1 change status" in text
    assert (
        "| `examples/08-esketamine-systolic-only.yaml` | example-08 — Systolic pressure alone above the "
        "pre-dose guide | defer → no-concerns-found | — | KCDS-CI-004 | — |"
    ) in text
    assert "04-esketamine" not in text.split("### Affected patients")[1]


def test_a_finding_that_changes_wording_is_altered_not_new(tmp_path: Path, old):
    """A finding in both versions whose text changed is reported as changed, with the status unchanged."""
    rules_dir = copy_rules(tmp_path)
    replace(rules_dir, "contraindications.yaml", "Do not give esketamine.", "Do not give esketamine, ever.")
    new = load_ruleset(rules_dir)
    (case,) = assess_both(old, new, [EXAMPLES / "03-esketamine-aortic-aneurysm.yaml"]).cases

    assert ("KCDS-CI-001",) == case.altered
    assert not case.status_changed
    assert case.changed
    assert "contraindicated (unchanged)" == case.transition()


def test_cases_that_cannot_be_assessed_are_reported_not_fatal(tmp_path: Path, old):
    """A case one version cannot assess (a program it refuses) is an error for that version only."""
    rules_dir = copy_rules(tmp_path)
    replace(
        rules_dir,
        "manifest.yaml",
        "refusals:\n",
        "refusals:\n  - {route: ketamine-iv, jurisdiction: CA, reason: a test refusal}\n",
    )
    new = load_ruleset(rules_dir)
    result = assess_both(old, new, [EXAMPLES / "05-iv-incomplete-record.yaml"])

    (case,) = result.cases
    assert case.new_error is not None
    assert "refuses ketamine-iv in CA" in case.new_error
    assert "incomplete → error" == case.transition()
    assert "### Cases that could not be assessed" in report(compare(old, new), "a", "b", result)


class TestCorpus:
    def test_scenario_files_drop_expectations(self, tmp_path: Path):
        """A scenario file's cases are the scenarios without expect, author and source."""
        example = (EXAMPLES / "03-esketamine-aortic-aneurysm.yaml").read_text()
        body = "\n".join("    " + line for line in example.splitlines()).replace(
            "    title:", "  - title:", 1
        )
        (tmp_path / "many.scenario.yaml").write_text(
            "scenarios:\n" + body + "\n    expect: {status: contraindicated}\n    author: a pharmacist\n"
        )
        (tmp_path / "one.scenario.yml").write_text(example + "expect: {status: contraindicated}\nsource: x\n")

        cases = read_corpus([tmp_path])

        assert ["many.scenario.yaml#1", "one.scenario.yml"] == [Path(c.source).name for c in cases]
        assert [c.load() for c in cases] == [
            load_case_file(EXAMPLES / "03-esketamine-aortic-aneurysm.yaml")
        ] * 2

    def test_ndjson_json_and_yaml(self, tmp_path: Path):
        """NDJSON has a case per line, JSON a case or a list, YAML one case; bad lines stay in the corpus."""
        case = json.loads(json.dumps(_plain(EXAMPLES / "01-trd-esketamine-us.yaml"), default=str))
        (tmp_path / "batch.ndjson").write_text(json.dumps(case) + "\n\n{not json\n")
        (tmp_path / "list.json").write_text(json.dumps([case, case]))
        (tmp_path / "one.json").write_text(json.dumps(case))
        (tmp_path / "notes.txt").write_text("ignored")

        cases = read_corpus([tmp_path, EXAMPLES / "01-trd-esketamine-us.yaml"])

        names = [c.source.rsplit("/", 1)[-1] for c in cases]
        assert ["batch.ndjson:1", "batch.ndjson:3", "list.json[0]", "list.json[1]", "one.json"] == names[:5]
        assert (
            "example-01 — Adult with treatment-resistant depression, esketamine in the US" == cases[0].label
        )
        with pytest.raises(InputError, match="invalid JSON"):
            cases[1].load()
        assert cases[0].load() == cases[-1].load()

    def test_unreadable_files_become_unreadable_cases(self, tmp_path: Path):
        """A file that does not parse is a case that fails to load, not a crash of the whole run."""
        (tmp_path / "bad.yaml").write_text("patient: [\n")
        (tmp_path / "bad.scenario.yaml").write_text("scenarios: [\n")
        (tmp_path / "bad.json").write_text("{")
        (tmp_path / "list.yaml").write_text("- 1\n")

        cases = read_corpus([tmp_path])

        assert 4 == len(cases)
        for case in cases:
            with pytest.raises(InputError):
                case.load()

    def test_a_file_of_no_known_format_is_refused_when_named(self, tmp_path: Path):
        """Naming a file no reader claims, or a path that does not exist, is an input error."""
        (tmp_path / "notes.txt").write_text("x")

        with pytest.raises(InputError, match="not a corpus file"):
            read_corpus([tmp_path / "notes.txt"])
        with pytest.raises(InputError, match="no such file"):
            read_corpus([tmp_path / "missing.yaml"])

    def test_a_new_format_plugs_in_first(self, tmp_path: Path, monkeypatch):
        """A registered reader is asked before the built-in ones (how FHIR bundles will come in)."""

        class BundleReader:
            """The one reader protocol (ketacds.cases.Reader); without read_data, read through decode."""

            name = "fhir-bundle"

            def detect(self, path: Path) -> bool:
                return path.suffix == ".json" and '"resourceType": "Bundle"' in path.read_text()

            def count(self, path: Path) -> int | None:
                return 1

            def items(self, path: Path):
                yield Item(0, path.name, str(EXAMPLES / "07-esketamine-avm-us.yaml"))

            def decode(self, payload: str):
                data = read_document(payload)
                return load_record(data), data.get("context") or {}

        monkeypatch.setattr("ketacds.audit.corpus._READERS", list(readers()))
        register(BundleReader())
        (tmp_path / "bundle.json").write_text('{"resourceType": "Bundle"}')

        (case,) = read_corpus([tmp_path])

        assert "bundle.json" == case.label
        assert case.source.endswith("/bundle.json")
        assert load_case_file(EXAMPLES / "07-esketamine-avm-us.yaml") == case.load()
        assert "fhir-bundle" == readers()[0].name


def _plain(path: Path):
    from ketacds.models.load import read_document

    return read_document(path)


class TestRevisions:
    @pytest.fixture
    def repo(self, tmp_path: Path) -> Path:
        if shutil.which("git") is None:
            pytest.skip("git is not installed")
        root = tmp_path / "repo"
        shutil.copytree(RULES, root / "rulesets")
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"]
        subprocess.run([*git, "init", "-q", str(root)], check=True)
        subprocess.run([*git, "-C", str(root), "add", "-A"], check=True)
        subprocess.run([*git, "-C", str(root), "commit", "-q", "-m", "first"], check=True)
        replace(root / "rulesets", "contraindications.yaml", "value: {gt: 140}", "value: {gt: 150}")
        subprocess.run([*git, "-C", str(root), "commit", "-q", "-am", "second"], check=True)
        return root

    def test_a_revision_is_its_rulesets_tree(self, repo: Path, tmp_path: Path, old):
        """HEAD~1 and HEAD name the rulesets/ tree of those commits."""
        before = load_ruleset(ruleset_dir("HEAD~1", tmp_path / "a", repo=repo))
        after = load_ruleset(ruleset_dir("HEAD:rulesets", tmp_path / "b", repo=repo))

        assert old.digest == before.digest
        assert ["KCDS-CI-004"] == [c.rule_id for c in compare(before, after).changed]

    def test_a_directory_is_used_as_it_is(self, tmp_path: Path):
        """An existing directory is not looked up in git."""
        assert RULES == ruleset_dir(str(RULES), tmp_path)

    def test_unknown_revisions_and_trees_are_ruleset_errors(self, repo: Path, tmp_path: Path):
        """Neither a directory nor a revision, or a revision without the tree: a clear error."""
        with pytest.raises(RulesetError, match="neither a ruleset directory nor a git revision"):
            ruleset_dir("no-such-rev", tmp_path, repo=repo)
        with pytest.raises(RulesetError, match="no tree 'nope' at HEAD"):
            ruleset_dir("HEAD:nope", tmp_path, repo=repo)
