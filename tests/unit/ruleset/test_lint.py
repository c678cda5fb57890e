"""The linter: clean on the bundled rules, and each check caught by a fixture with one mistake."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from ketacds.engine.backends.durable import capacity
from ketacds.engine.backends.durable.capacity import program_load
from ketacds.errors import RulesetError
from ketacds.ruleset import checks, scope
from ketacds.ruleset import lint as lint_module
from ketacds.ruleset.checks import CHECKS
from ketacds.ruleset.lint import LintFinding, lint, lint_checked
from ketacds.ruleset.load import Checked, load_checked, load_ruleset
from rulesets_fixtures import GOOD_RULE, RULES, add_rule, copy_rules, line_of, replace
from support import ROOT

Mutation = Callable[[Path], None]


def rule(**changes: str) -> str:
    """GOOD_RULE with some of its lines replaced (old line text → new line text)."""
    text = GOOD_RULE
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def with_rule(text: str, file: str = "interactions.yaml") -> Mutation:
    return lambda rules_dir: add_rule(rules_dir, text, file)


def with_replacement(file: str, old: str, new: str) -> Mutation:
    return lambda rules_dir: replace(rules_dir, file, old, new)


def with_file(name: str, text: str) -> Mutation:
    return lambda rules_dir: (rules_dir / name).write_text(text, encoding="utf-8")


MEDICATION = "      - medication: {in: benzodiazepines, active: true}"
# KCDS-INT-002's condition and finding, word for word: a rule saying it again adds nothing.
INT_002_MEDICATION = "      - medication: {in: benzodiazepines, status: {in: [active, intended]}}"
INT_002_FINDING = (
    "      finding:\n"
    "        message: >-\n"
    "          Benzodiazepines potentiate ketamine's CNS and respiratory depression\n"
    "          and prolong its effect (diazepam prolongs its half-life)."
)

#: (code, mutation, file the finding names, text on the line it names, did-you-mean)
FIXTURES: list[tuple[str, Mutation, str | None, str | None, str | None]] = [
    ("KL001", with_file("interactions.yaml", "rules: [\n  - {id: x\n"), "interactions.yaml", None, None),
    (
        "KL001",
        with_rule(rule(**{"    confidence: R\n": "    confidence: R\n    confidence: S\n"})),
        "interactions.yaml",
        "confidence: S",
        None,
    ),
    (
        "KL002",
        with_rule(rule(**{"category: interaction": "category: surgery"})),
        None,
        "category: surgery",
        None,
    ),
    (
        "KL003",
        with_rule(rule(**{"    rationale: Only": "    rational: Only"})),
        "interactions.yaml",
        "rational: Only",
        "rationale",
    ),
    (
        "KL004",
        with_replacement("manifest.yaml", "  - data-gaps.yaml", "  - data-gaps.yaml\n  - nope.yaml"),
        "manifest.yaml",
        "nope.yaml",
        None,
    ),
    (
        "KL005",
        with_replacement("valuesets/phq-9.yaml", "id: phq-9", "id: phq-nine"),
        "valuesets/phq-9.yaml",
        "id: phq-nine",
        None,
    ),
    (
        "KL006",
        with_replacement(
            "tables/diazepam-equivalents.yaml", "id: diazepam-equivalents", "id: diazepam-equivalent"
        ),
        "tables/diazepam-equivalents.yaml",
        "id: diazepam-equivalent",
        None,
    ),
    (
        "KL007",
        with_replacement("validity.yaml", "field: patient.weight_kg", "field: patient.weight_kgs"),
        "validity.yaml",
        "field: patient.weight_kgs",
        "weight_kg",
    ),
    (
        "KL008",
        with_replacement("reference-facts.yaml", "routes: [esketamine-nasal]", "routes: [esketamine-nasl]"),
        "reference-facts.yaml",
        "esketamine-nasl",
        "esketamine-nasal",
    ),
    ("KL010", with_rule(rule(**{"- medication: {": "- medicaton: {"})), None, "medicaton", "medication"),
    ("KL011", with_rule(rule(**{"active: true}": "actve: true}"})), None, "actve", "active"),
    (
        "KL012",
        with_rule(rule(**{"in: benzodiazepines": "in: benzodiazepine"})),
        None,
        "in: benzodiazepine",
        "benzodiazepines",
    ),
    ("KL013", with_rule(rule(**{"source: KETAMAX": "source: KETAMAXX"})), None, "KETAMAXX", "KETAMAX"),
    (
        "KL014",
        with_rule(rule(**{"routes: [ketamine-iv]": "routes: [ketamine-ivv]"})),
        None,
        "ketamine-ivv",
        "ketamine-iv",
    ),
    ("KL015", with_rule(rule(**{"severity: caution": "severity: cautoin"})), None, "cautoin", "caution"),
    (
        "KL016",
        with_rule(rule(**{MEDICATION: f"      - flag: indicatd\n{MEDICATION}"})),
        None,
        "KCDS-TEST-001",
        "indicated",
    ),
    (
        "KL017",
        with_replacement("dosing.yaml", "function: weight-based", "function: weightbased"),
        "dosing.yaml",
        "weightbased",
        "weight-based",
    ),
    (
        "KL018",
        with_rule(rule(**{"    confidence: R\n": "    confidence: R\n    concepts: [CI_HYPERSENSE]\n"})),
        None,
        "CI_HYPERSENSE",
        "CI_HYPERSENS",
    ),
    (
        "KL018",
        with_rule(rule(**{"    confidence: R\n": "    confidence: R\n    concepts: [CI_ANEURYSM]\n"})),
        None,
        "concepts: [CI_ANEURYSM]",
        None,
    ),
    (
        "KL019",
        with_rule(rule(**{"    confidence: R\n": "    confidence: R\n    group: routine-sesion\n"})),
        None,
        "group: routine-sesion",
        "routine-session",
    ),
    (
        "KL019",
        with_replacement(
            "manifest.yaml", "groups:\n", "groups:\n  - {id: routine-course, title: Declared twice}\n"
        ),
        "manifest.yaml",
        "- id: routine-course",  # the second declaration is the one reported
        None,
    ),
    (
        # A patient-specific rule (it reads medications) folded into a routine group.
        "KL029",
        with_rule(rule(**{"    confidence: R\n": "    confidence: R\n    group: routine-session\n"})),
        None,
        "group: routine-session",
        None,
    ),
    (
        # A rule every patient on the route gets, but leading to a blocking status.
        "KL029",
        with_rule(
            rule(
                **{
                    MEDICATION: "      - patient: {}",
                    "severity: caution": "severity: relative",
                    "    confidence: R\n": "    confidence: R\n    group: routine-session\n",
                }
            )
        ),
        None,
        "group: routine-session",
        None,
    ),
    ("KL020", with_rule(rule(**{"KCDS-TEST-001": "KCDS-INT-001"})), None, "id: KCDS-INT-001", None),
    (
        "KL021",
        with_rule(rule(**{"    evidence: [{source: KETAMAX, section: Interactions}]\n": ""})),
        None,
        "KCDS-TEST-001",
        None,
    ),
    (
        "KL021",
        with_rule(rule(**{"evidence: [{source: KETAMAX, section: Interactions}]": "evidence: []"})),
        None,
        "evidence: []",
        None,
    ),
    (
        "KL022",
        with_rule(rule(**{"severity: caution": "severity: absolute", "confidence: R": "confidence: M"})),
        None,
        "severity: absolute",
        None,
    ),
    ("KL023", with_rule(rule(**{"active: true}": "active: {gt: 3}}"})), None, "gt: 3", None),
    (
        "KL024",
        with_rule(rule(**{"active: true}": "active: true, drug: {ne: {ref: other.drug}}}"})),
        None,
        "ref: other",
        None,
    ),
    (
        "KL025",
        with_rule(
            rule(**{"category: interaction": "category: derivation", "severity: caution": "severity: info"})
        ),
        None,
        "finding: {message",
        None,
    ),
    (
        "KL026",
        with_rule(rule(**{MEDICATION: "      - not: [{medication: {active: true}}, {trial: {}}]"})),
        None,
        "KCDS-TEST-001",
        None,
    ),
    (
        "KL027",
        with_rule(
            rule(
                **{
                    "category: interaction": "category: derivation",
                    "severity: caution": "severity: info",
                    "      finding: {message: A test finding.}": "      flag: loop",
                    MEDICATION: f"      - not: {{flag: loop}}\n{MEDICATION}",
                }
            )
        ),
        None,
        "KCDS-TEST-001",
        None,
    ),
    (
        "KL028",
        with_rule(rule(**{"{source: KETAMAX, section: Interactions}": "{source: KETAMAX}"})),
        None,
        "KCDS-TEST-001",
        None,
    ),
    (
        "KL030",
        with_rule(rule(**{MEDICATION: "      - patient: {age_years: {lt: 18, gt: 65}}"})),
        None,
        "KCDS-TEST-001",
        None,
    ),
    (
        "KL030",
        with_rule(rule(**{MEDICATION: "      - patient: {sex: {eq: female, ne: female}}"})),
        None,
        "KCDS-TEST-001",
        None,
    ),
    (
        "KL030",
        with_rule(
            rule(**{MEDICATION: f"{MEDICATION}\n      - not: {{medication: {{in: benzodiazepines}}}}"})
        ),
        None,
        "KCDS-TEST-001",
        None,
    ),
    (
        "KL031",
        with_rule(
            rule(
                **{
                    MEDICATION: "      - any:\n"
                    "          - observation: {in: phq-9, value: {gt: 27, lt: 5}}\n"
                    f"    {MEDICATION}"
                }
            )
        ),
        None,
        "KCDS-TEST-001",
        None,
    ),
    (
        "KL032",
        with_rule(
            rule(
                **{
                    MEDICATION: INT_002_MEDICATION,
                    "      finding: {message: A test finding.}": INT_002_FINDING,
                }
            )
        ),
        None,
        "KCDS-TEST-001",
        None,
    ),
    (
        "KL033",
        with_rule(
            rule(
                **{
                    MEDICATION: INT_002_MEDICATION.replace("}}", "}, daily_mg: {gt: 1000}}"),
                    "      finding: {message: A test finding.}": INT_002_FINDING,
                }
            )
        ),
        None,
        "KCDS-TEST-001",
        None,
    ),
    # `mdsi` is derived for esketamine only, so for ketamine-other no rule in scope derives it
    # (`indicated` no longer serves: KCDS-CAND-100 derives it for ketamine-other).
    (
        "KL034",
        with_rule(
            rule(
                **{
                    "routes: [ketamine-iv]": "routes: [ketamine-other]",
                    MEDICATION: f"{MEDICATION}\n      - not: {{flag: mdsi}}",
                }
            )
        ),
        None,
        "KCDS-TEST-001",
        None,
    ),
    (
        "KL035",
        with_rule(
            rule(
                **{
                    "routes: [ketamine-iv]": "routes: [ketamine-other]",
                    MEDICATION: f"{MEDICATION}\n      - flag: mdsi",
                }
            )
        ),
        None,
        "KCDS-TEST-001",
        None,
    ),
    (
        "KL050",
        with_replacement("contraindications.yaml", "    concepts: [CI_ANEURYSM]\n", ""),
        "manifest.yaml",
        "{id: CI_ANEURYSM, title",
        None,
    ),
    (
        "KL050",
        with_replacement(
            "manifest.yaml",
            "  - {route: esketamine-nasal, jurisdiction: CA, reason",
            "  - {route: esketamine-nasal, jurisdiction: US, reason",
        ),
        "manifest.yaml",
        "id: DOSE_ESK_MDSI",
        None,
    ),
    (
        "KL051",
        with_replacement(
            "manifest.yaml",
            "refusals:\n",
            "refusals:\n  - {route: esketamine-nasal, jurisdiction: US, reason: A test refusal.}\n",
        ),
        "manifest.yaml",
        "A test refusal",
        None,
    ),
    (
        "KL052",
        with_replacement(
            "reference-facts.yaml",
            "  - id: INT_TRIPTANS\n",
            "  - id: INT_TRIPTANS_NEW\n    chapter: 3\n    title: A fact no rule names\n"
            "    routes: [ketamine-iv]\n    confidence: R\n  - id: INT_TRIPTANS\n",
        ),
        "reference-facts.yaml",
        "INT_TRIPTANS_NEW",
        None,
    ),
    (
        "KL037",
        with_replacement(
            "manifest.yaml", "groups:\n", "groups:\n  - {id: nobody-uses-it, title: An unused group}\n"
        ),
        "manifest.yaml",
        "nobody-uses-it",
        None,
    ),
    (
        "KL036",
        with_file(
            "valuesets/unused.yaml",
            "id: unused\ntitle: Nothing uses this\nsource: a test\nnames: [nothing]\n",
        ),
        "valuesets/unused.yaml",
        "id: unused",
        None,
    ),
]


@pytest.mark.parametrize(
    ("code", "mutate", "file", "needle", "suggestion"),
    FIXTURES,
    ids=[f"{code}-{index}" for index, (code, *_) in enumerate(FIXTURES)],
)
def test_each_check_catches_its_fixture(tmp_path: Path, code, mutate, file, needle, suggestion):
    """A ruleset with one mistake gets a finding of that check, at the right file and line.

    The loader agrees: it raises (with one of the codes found) exactly when lint finds a loader problem.
    """
    rules_dir = copy_rules(tmp_path)
    mutate(rules_dir)
    checked = load_checked(rules_dir)

    report = lint_checked(checked)

    found = [f for f in report.findings if f.code == code]
    assert found, "\n".join(f.text() for f in report.findings)
    finding = found[-1]
    assert CHECKS[code].severity == finding.severity
    expected_file = file or "interactions.yaml"
    assert expected_file == finding.file
    if needle is not None:
        assert line_of(rules_dir, needle, expected_file) == finding.line
    assert suggestion == finding.suggestion
    assert all(p.code in CHECKS for p in checked.problems)
    if checked.problems:
        with pytest.raises(RulesetError) as info:
            load_ruleset(rules_dir)
        assert info.value.code in {p.code for p in checked.problems}


def test_collecting_and_strict_loading_agree_on_good_rules():
    """Without problems, the collecting loader builds exactly the ruleset the strict one does."""
    checked = load_checked(RULES)

    assert () == checked.problems
    assert load_ruleset(RULES) == checked.ruleset


def test_every_check_has_a_fixture():
    """Each code of the catalogue is exercised by a fixture here or by a dedicated test below."""
    dedicated = {"KL000", "KL040", "KL041", "KL042"}

    assert set(CHECKS) == {code for code, *_ in FIXTURES} | dedicated


def test_bundled_rules_lint_without_errors():
    """The bundled rules have no lint errors (warnings are listed for the auditor)."""
    report = lint(RULES)

    assert [] == [f.text() for f in report.errors]


def test_bundled_rules_have_no_vacuous_negation():
    """The negation KL034 once found in the real rules (KCDS-CAND-004 in CA, CH, GB) is fixed."""
    report = lint(RULES)

    assert [] == [f for f in report.findings if f.code == "KL034"]


def test_all_problems_are_collected_not_just_the_first(tmp_path: Path):
    """Several mistakes in several files are all reported in one run, ordered by file and line."""
    rules_dir = copy_rules(tmp_path)
    add_rule(rules_dir, rule(**{"in: benzodiazepines": "in: benzodiazepine"}))
    add_rule(rules_dir, rule(**{"KCDS-TEST-001": "KCDS-TEST-002", "source: KETAMAX": "source: NOPE"}))
    replace(rules_dir, "contraindications.yaml", "severity: defer", "severity: later")

    report = lint(rules_dir)

    assert ["KL015", "KL012", "KL013"] == [f.code for f in report.errors]
    assert ["contraindications.yaml", "interactions.yaml", "interactions.yaml"] == [
        f.file for f in report.errors
    ]


def test_a_broken_manifest_is_one_error(tmp_path: Path):
    """Without a readable manifest nothing else can be checked: one error, no crash."""
    rules_dir = copy_rules(tmp_path)
    replace(rules_dir, "manifest.yaml", "name: ketacds-core", "name: [ketacds-core")

    report = lint(rules_dir)

    assert ["KL001"] == report.codes()
    assert report.name is None


def test_a_missing_manifest_is_reported(tmp_path: Path):
    """A folder without manifest.yaml is a manifest error."""
    assert ["KL004"] == lint(tmp_path).codes()


def test_a_rule_file_that_is_not_a_mapping_skips_its_rules(tmp_path: Path):
    """A rule file whose top level is wrong is reported once; its rules are not guessed at."""
    rules_dir = copy_rules(tmp_path)
    (rules_dir / "interactions.yaml").write_text("- just a list\n", encoding="utf-8")

    report = lint(rules_dir)

    assert ["KL002"] == [f.code for f in report.errors]


def test_unknown_codes_fall_back_to_kl000(monkeypatch):
    """A loader problem without a code is still reported (under KL000), never dropped."""
    problem = RulesetError("something new", file="x.yaml", line=3)
    fake = Checked(root=Path("."), ruleset=None, files=(), problems=(problem,))
    monkeypatch.setattr(lint_module, "load_checked", lambda _directory: fake)

    report = lint(".")

    assert [("KL000", "x.yaml", 3, "something new")] == [
        (f.code, f.file, f.line, f.message) for f in report.findings
    ]


class TestCapacity:
    def test_too_many_durable_rules_in_a_program(self, monkeypatch):
        """A program with more durable rules than the limit is an error naming the program."""
        monkeypatch.setattr(capacity, "MAX_RULES_PER_PROGRAM", 5)

        report = lint(RULES)

        assert "KL040" in report.codes()
        assert any("esketamine-nasal in US" in f.message for f in report.errors)

    def test_too_many_rules_reading_one_fact_type(self, monkeypatch):
        """More durable rules reading one fact type than the limit is an error naming the type and program."""
        readers = program_load(scope.rules_for(load_ruleset(RULES), "ketamine-iv", "US")).readers[
            "medication"
        ]
        monkeypatch.setattr(capacity, "MAX_RULES_PER_FACT_TYPE", readers - 1)

        report = lint(RULES)

        expected = f"ketamine-iv in US, {readers} durable rules read 'medication' facts"
        assert any(f.code == "KL041" and expected in f.message for f in report.errors)

    def test_too_many_properties_on_one_fact_type(self, monkeypatch):
        """A fact type a program would assert wider than durable_rules accepts is an error."""
        widths = program_load(scope.rules_for(load_ruleset(RULES), "ketamine-iv", "US")).widths
        monkeypatch.setattr(capacity, "MAX_FACT_PROPERTIES", widths["condition"] - 1)

        report = lint(RULES)

        expected = f"ketamine-iv in US, 'condition' facts would carry {widths['condition']} properties"
        assert any(f.code == "KL042" and expected in f.message for f in report.errors)


def test_the_catalogue_names_are_unique_and_constants_match():
    """Codes and names are unique, and each module constant names a catalogue entry."""
    constants = {v for k, v in vars(checks).items() if k.isupper() and k != "CHECKS" and isinstance(v, str)}

    assert len({c.name for c in CHECKS.values()}) == len(CHECKS)
    assert constants == set(CHECKS)


def test_every_code_is_documented():
    """docs/lint.md has a section for every code, and no other."""
    text = (ROOT / "docs" / "lint.md").read_text(encoding="utf-8")
    documented = {line.split()[1] for line in text.splitlines() if line.startswith("### KL")}

    assert set(CHECKS) == documented


def test_finding_text_is_one_greppable_line():
    """A finding prints as file:line: code severity: message (did you mean ...)."""
    finding = LintFinding(
        code="KL012", severity="error", message="unknown value set 'x'", file="a.yaml", line=4, suggestion="y"
    )

    assert "rules/a.yaml:4: KL012 error: unknown value set 'x' (did you mean 'y'?)" == finding.text("rules")
    assert "unknown-valueset" == finding.name
    assert "(ruleset)" == attrs.evolve(finding, file=None, line=None).location()
