"""Presentation groups (issue 15 §10): routine findings shown as one item, every finding kept.

The ruleset declares groups (manifest ``groups:``) and rules join one (``group:``); the
loader refuses a grouped rule that is patient-specific; the Assessment keeps every
finding, each with its group; text, Markdown and CDS Hooks show a group as one item.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner

from ketacds import RulesetError, load_case_file, load_ruleset
from ketacds.adapters.cds_hooks import cards_for
from ketacds.cli import main
from ketacds.models.results import Assessment
from ketacds.reporting import render
from ketacds.ruleset import checks
from ketacds.ruleset.ir import canonical, from_canonical
from ketacds.ruleset.load import CONTEXT_FIELDS
from rulesets_fixtures import GOOD_RULE, add_rule, copy_rules, line_of, replace
from support import EXAMPLES, card_context

ESKETAMINE_US = EXAMPLES / "01-trd-esketamine-us.yaml"
MEDICATION = "      - medication: {in: benzodiazepines, active: true}"

#: What every esketamine patient in the US (outpatient or setting not given) gets, whatever the record.
ROUTINE_ESKETAMINE_US = {
    "KCDS-MON-001",
    "KCDS-MON-002",
    "KCDS-MON-004",
    "KCDS-MON-005",
    "KCDS-MON-006",
    "KCDS-MON-007",
    "KCDS-MON-009",
    "KCDS-MON-014",
    "KCDS-MON-015",
    "KCDS-MON-016",
    "KCDS-MON-022",
}


@pytest.fixture(scope="module")
def esketamine(engine) -> Assessment:
    record, context = load_case_file(ESKETAMINE_US)
    return engine.assess(record, context)


@pytest.fixture(scope="module")
def child_pugh_b(engine) -> Assessment:
    """The same patient with moderate hepatic impairment: patient-specific monitoring (KCDS-MON-011)."""
    record, context = load_case_file(ESKETAMINE_US)
    return engine.assess(
        attrs.evolve(record, patient=attrs.evolve(record.patient, hepatic_class="B")), context
    )


def grouped_rule(group: str, condition: str = MEDICATION, **changes: str) -> str:
    """GOOD_RULE in ``group``, with its condition line and other lines replaced (old → new)."""
    text = GOOD_RULE.replace("    confidence: R\n", f"    confidence: R\n    group: {group}\n")
    for old, new in {MEDICATION: condition, **changes}.items():
        text = text.replace(old, new)
    return text


def section(text: str, heading: str) -> list[str]:
    """The lines of one section of a text report (up to the next blank line)."""
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


# ------------------------------------------------------------------ the ruleset


def test_bundled_groups_are_declared_once_and_in_the_digest():
    """The manifest declares the groups; rules name them; both are in the canonical form (the digest)."""
    ruleset = load_ruleset()
    data = canonical(ruleset)

    assert ["routine-session", "routine-course"] == [g.id for g in ruleset.groups]
    assert [g["id"] for g in data["groups"]] == ["routine-session", "routine-course"]
    assert "routine-session" == next(r for r in data["rules"] if r["id"] == "KCDS-MON-001")["group"]
    assert from_canonical(data) == ruleset
    retitled = attrs.evolve(
        ruleset, groups=(attrs.evolve(ruleset.groups[0], title="Something else"), *ruleset.groups[1:])
    )
    assert retitled.digest != ruleset.digest
    ungrouped = attrs.evolve(
        ruleset,
        rules=tuple(attrs.evolve(r, group=None) if r.id == "KCDS-MON-001" else r for r in ruleset.rules),
    )
    assert ungrouped.digest != ruleset.digest


def test_patient_specific_monitoring_is_never_grouped():
    """Grouped rules read at most the setting; the patient-specific monitoring rules stay on their own."""
    ruleset = load_ruleset()
    patient_specific = {"KCDS-MON-008", "KCDS-MON-011", "KCDS-MON-012", "KCDS-MON-013"}

    assert all(ruleset.rule(rule_id).group is None for rule_id in patient_specific)
    assert ROUTINE_ESKETAMINE_US <= {r.id for r in ruleset.rules if r.group is not None}
    assert {"setting"} == CONTEXT_FIELDS


def test_unknown_group_is_a_load_error_at_file_and_line(tmp_path: Path):
    """A rule naming an undeclared group: refused at its line, with a did-you-mean."""
    rules_dir = copy_rules(tmp_path)
    add_rule(rules_dir, grouped_rule("routine-sesion", "      - patient: {}"))

    with pytest.raises(RulesetError) as info:
        load_ruleset(rules_dir)

    assert checks.UNKNOWN_GROUP == info.value.code
    assert "unknown group 'routine-sesion'" in info.value.reason
    assert ("interactions.yaml", line_of(rules_dir, "group: routine-sesion")) == (
        info.value.file,
        info.value.line,
    )
    assert "routine-session" == info.value.suggestion


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (grouped_rule("routine-session"), "reads medication facts"),
        (grouped_rule("routine-session", "      - patient: {hepatic_class: B}"), "reads hepatic_class"),
        (
            grouped_rule(
                "routine-session", "      - patient: {}", **{"severity: caution": "severity: absolute"}
            ),
            "cannot be grouped",
        ),
    ],
)
def test_a_patient_specific_or_blocking_rule_cannot_join_a_group(tmp_path: Path, text, reason):
    """Grouping a rule that reads the record, or that blocks, is refused (KL029), at the group line."""
    rules_dir = copy_rules(tmp_path)
    add_rule(rules_dir, text)

    with pytest.raises(RulesetError) as info:
        load_ruleset(rules_dir)

    assert checks.GROUP_MEMBER == info.value.code
    assert reason in info.value.reason
    assert line_of(rules_dir, "group: routine-session") == info.value.line


def test_a_rule_on_the_setting_alone_may_join_a_group(tmp_path: Path):
    """The setting is the treatment context, not the patient: such a rule may be grouped."""
    rules_dir = copy_rules(tmp_path)
    add_rule(rules_dir, grouped_rule("routine-session", "      - patient: {setting: inpatient}"))

    assert "routine-session" == load_ruleset(rules_dir).rule("KCDS-TEST-001").group


def test_a_data_gap_rule_cannot_join_a_group(tmp_path: Path):
    """Missing data always shows on its own."""
    rules_dir = copy_rules(tmp_path)
    replace(
        rules_dir,
        "data-gaps.yaml",
        "    confidence: S\n",
        "    confidence: S\n    group: routine-session\n",
    )

    with pytest.raises(RulesetError, match="a data-gap rule cannot be grouped") as info:
        load_ruleset(rules_dir)

    assert checks.GROUP_MEMBER == info.value.code


def test_group_in_the_schema_is_checked(tmp_path: Path):
    """A group id that is not lower-case words fails the rules schema."""
    rules_dir = copy_rules(tmp_path)
    add_rule(rules_dir, grouped_rule("Routine_Session", "      - patient: {}"))

    with pytest.raises(RulesetError, match="group"):
        load_ruleset(rules_dir)


# ------------------------------------------------------------------ the Assessment


def test_every_finding_stays_in_the_json_with_its_group(esketamine):
    """Nothing disappears: each routine finding is in the JSON, whole, with its group id."""
    data = json.loads(esketamine.to_json())
    by_id = {f["rule_id"]: f for f in data["findings"]}

    assert ROUTINE_ESKETAMINE_US <= set(by_id)
    assert all(by_id[r]["group"] in {"routine-session", "routine-course"} for r in ROUTINE_ESKETAMINE_US)
    assert all(
        by_id[r]["evidence"] and by_id[r]["basis"] and by_id[r]["message"] for r in ROUTINE_ESKETAMINE_US
    )
    assert by_id["KCDS-INT-001"]["group"] is None
    assert ["routine-session", "routine-course"] == [g["id"] for g in data["groups"]]
    assert {m["rule_id"]: m["group"] for m in data["monitoring"]}["KCDS-MON-001"] == "routine-session"
    assert Assessment.from_json(esketamine.to_json()) == esketamine


def test_json_from_before_groups_reads_back(esketamine):
    """An Assessment written before groups existed reads back with none."""
    data = json.loads(esketamine.to_json())
    del data["groups"]
    for finding in data["findings"]:
        del finding["group"]
    for item in data["monitoring"]:
        del item["group"]

    old = Assessment.from_dict(data)

    assert () == old.groups
    assert old.findings == tuple(attrs.evolve(f, group=None) for f in esketamine.findings)


# ------------------------------------------------------------------ text and Markdown


def test_standard_esketamine_us_text_has_few_top_level_monitoring_items(esketamine):
    """11 routine monitoring findings become 2 top-level items; the patient's own findings come first."""
    text = render(esketamine, "text")
    monitoring = section(text, "Monitoring:")
    top_level = [line for line in monitoring if line.startswith("  - ")]

    assert len(top_level) <= 5
    assert [
        "  - Routine monitoring at every session (8 items):",
        "  - Routine monitoring before and throughout the course (3 items):",
    ] == top_level
    assert "      - Abuse and misuse risk (before treatment; throughout) [KCDS-MON-016]" in monitoring
    findings = section(text, "Findings:")
    headlines = [line for line in findings if line.startswith("  [")]
    assert 6 == len(headlines)  # 2 interactions, candidacy, dose, 2 groups
    assert "  [info] Routine monitoring at every session (8 items, group routine-session)" == headlines[4]
    assert "      - Observe for at least 2 hours after esketamine (KCDS-MON-002)" in findings
    assert all(rule_id in text for rule_id in ROUTINE_ESKETAMINE_US)
    # The full text of a grouped finding is not repeated in the report ...
    assert "Measure sedation with MOAA/S" not in text
    # ... but is one option away.
    assert "Measure sedation with MOAA/S" in render(esketamine, "text", expand_groups=True)


def test_patient_specific_monitoring_shows_on_its_own_in_full(child_pugh_b):
    """Child-Pugh B: the longer monitoring is a finding of its own, with its message and basis."""
    text = render(child_pugh_b, "text")
    finding = child_pugh_b.finding("KCDS-MON-011")

    assert finding is not None
    assert finding.group is None
    assert (
        "  [info] Extended monitoring in moderate hepatic impairment (KCDS-MON-011, monitoring, confidence R)"
        in text
    )
    assert "Child-Pugh B: extend post-dose monitoring for adverse reactions." in text
    monitoring = section(text, "Monitoring:")
    assert monitoring[0].startswith("  - Extended monitoring in moderate hepatic impairment")
    assert 3 == len([line for line in monitoring if line.startswith("  - ")])


def test_markdown_shows_a_group_as_one_row_and_nested_monitoring(esketamine):
    """Markdown: one findings row per group with its members' titles and ids; nested monitoring."""
    md = render(esketamine, "markdown")
    rows = [line for line in md.splitlines() if line.startswith("| group `")]

    assert 2 == len(rows)
    assert "**Routine monitoring at every session** (8 items)." in rows[0]
    assert "No driving until the next day after esketamine (`KCDS-MON-007`)" in rows[0]
    assert "| `KCDS-MON-007` |" not in md
    monitoring = md.split("### Monitoring", 1)[1].split("\n\n*Rules", 1)[0]
    assert 2 == len([line for line in monitoring.splitlines() if line.startswith("- ")])
    assert (
        "  - Sedation (MOAA/S) and dissociation (CADSS) — before and after dosing (`KCDS-MON-006`)"
        in monitoring
    )
    expanded = render(esketamine, "markdown", expand_groups=True)
    assert "| `KCDS-MON-007` | info |" in expanded


def test_assess_expand_groups_option():
    """`ketacds assess --expand-groups` prints every finding in full."""
    short = CliRunner().invoke(main, ["assess", str(ESKETAMINE_US)])
    full = CliRunner().invoke(main, ["assess", "--expand-groups", str(ESKETAMINE_US)])

    assert 0 == short.exit_code == full.exit_code
    assert "group routine-session" in short.stdout
    assert "group routine-session" not in full.stdout
    assert "(KCDS-MON-006, monitoring, confidence R)" in full.stdout


# ------------------------------------------------------------------ CDS Hooks


def group_cards(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in cards if "Routine monitoring" in c["summary"]]


def test_one_card_per_group_with_members_ids_and_sources(engine, esketamine):
    """A card per group: title and count, members with rule ids and sources; the summary names them."""
    rendered = cards_for(esketamine, card_context(engine.ruleset))
    cards = [r.card for r in rendered]
    session, course = group_cards(cards)

    assert ("info", "Esketamine nasal spray: Routine monitoring at every session (8 items)") == (
        session["indicator"],
        session["summary"],
    )
    assert (
        "Esketamine nasal spray: Routine monitoring before and throughout the course (3 items)"
        == (course["summary"])
    )
    assert "- **Abuse and misuse risk** (KCDS-MON-016; info; confidence R)" in course["detail"]
    assert "Sources: US-ESK-2019 §5.3; ASA-2025 Recommendations" in course["detail"]
    assert 8 == len(session["links"])
    assert {"code": "monitoring"}.items() <= session["source"]["topic"].items()
    # No routine finding has a card of its own, and the summary lists only the groups' titles.
    assert not [c for c in cards if c["summary"].endswith("(KCDS-MON-001)")]
    summary = cards[-1]
    assert summary["summary"].endswith("— ketacds")
    assert "- Routine monitoring at every session (8 items)" in summary["detail"]
    assert "KCDS-MON-001" not in summary["detail"]
    # The rule ids behind each card are recorded (feedback by rule).
    by_summary = {r.card["summary"]: r.rule_ids for r in rendered}
    assert set(by_summary[session["summary"]]) | set(by_summary[course["summary"]]) == ROUTINE_ESKETAMINE_US


def test_group_card_indicator_is_the_most_serious_members(engine, esketamine):
    """A caution among the members makes the group card a warning, with override reasons."""
    findings = tuple(
        attrs.evolve(f, severity="caution") if f.rule_id == "KCDS-MON-015" else f for f in esketamine.findings
    )
    cards = [
        r.card for r in cards_for(attrs.evolve(esketamine, findings=findings), card_context(engine.ruleset))
    ]
    course, session = group_cards(cards)  # warning cards come before info ones

    assert "throughout the course" in course["summary"]
    assert ("info", "warning") == (session["indicator"], course["indicator"])
    assert "overrideReasons" in course
    assert "overrideReasons" not in session


def test_group_cards_left_out_at_order_sign_and_uuids_deterministic(engine, esketamine):
    """Info group cards do not interrupt signing; the same input gives the same cards and uuids."""
    signing = [r.card for r in cards_for(esketamine, card_context(engine.ruleset, "order-sign"))]
    first = [r.card for r in cards_for(esketamine, card_context(engine.ruleset))]
    again = [r.card for r in cards_for(esketamine, card_context(engine.ruleset))]

    assert [] == group_cards(signing)
    assert first == again
    assert len({c["uuid"] for c in first}) == len(first)
