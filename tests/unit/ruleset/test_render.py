"""Rendered ruleset docs: fresh in docs/rules/, deterministic, self-contained, and readable."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

import pytest

from ketacds.ruleset.load import load_checked
from ketacds.ruleset.render import HTML_FILE, MARKER, render, stale, write
from rulesets_fixtures import RULES, copy_rules, replace
from support import ROOT

DOCS = ROOT / "docs" / "rules"


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    checked = load_checked(RULES)
    assert checked.ruleset is not None
    return render(checked.ruleset, checked.files)


def test_committed_docs_are_fresh(files):
    """docs/rules/ is exactly what `ketacds rules docs` makes of rulesets/ now."""
    outdated = stale(files, DOCS)

    assert [] == outdated, (
        f"docs/rules/ is stale ({', '.join(outdated)}): run `make docs` "
        "(or `ketacds rules docs rulesets --out docs/rules`) and commit the result"
    )


def test_rendering_is_deterministic(files):
    """Rendering twice gives identical files, with no date or time in them."""
    checked = load_checked(RULES)
    assert checked.ruleset is not None

    assert files == render(checked.ruleset, checked.files)
    assert not any(re.search(r"20\d\d-\d\d-\d\dT\d\d:\d\d", text) for text in files.values())


def test_one_page_per_rule_file_value_set_and_an_index(files):
    """The index, a page per rule file, a page per value set, validity.md and the single HTML file."""
    checked = load_checked(RULES)
    assert checked.ruleset is not None
    expected = {"index.md", "concepts.md", HTML_FILE, "validity.md"}
    expected |= {f.name.replace(".yaml", ".md") for f in checked.files}
    expected |= {f"valuesets/{vs.id}.md" for vs in checked.ruleset.valuesets}

    assert expected == set(files)


def test_the_concept_matrix_shows_rules_labels_followed_and_refusals(files):
    """concepts.md: per route, a row per safety concept and a column per jurisdiction."""
    page = files["concepts.md"]
    esketamine = page[page.index("## `esketamine-nasal`") : page.index("## `ketamine-other`")]
    row = next(line for line in esketamine.splitlines() if line.startswith("| `CI_ANEURYSM`"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    header = next(line for line in esketamine.splitlines() if line.startswith("| concept"))

    assert "CH (follows EU)" in header
    assert "CA (refused)" in header
    assert "KCDS-CI-001" in cells[1]  # US
    assert cells[4].startswith("**follows EU**: ")  # CH
    assert "**refused**" == cells[6]  # CA
    assert "| `esketamine-nasal` | `CA` | **refused** |" in page


def test_the_validity_page_lists_every_range_with_its_rationale(files):
    """validity.md: each plausible range and window, with rationale and evidence."""
    page = files["validity.md"]

    assert "at least 40 and at most 300 mmHg | 12 h" in page
    assert "`patient.weight_kg` | at least 2 and at most 400 kg | 720 h" in page
    assert "more than 5 minutes later is an error" in page


def test_a_rule_card_says_everything_an_auditor_signs(files):
    """A card has id, title, scope, the condition in plain English, consequence, rationale and evidence."""
    page = files["contraindications.md"]
    card = page[page.index('<a id="kcds-ci-001">') : page.index('<a id="kcds-ci-002">')]

    assert "### `KCDS-CI-001` Aneurysmal vascular disease" in card
    assert "| contraindication | **absolute** → *contraindicated* | esketamine-nasal | US, EU |" in card
    assert (
        "**When** an active condition in the value set [*Aneurysmal vascular disease*]"
        "(valuesets/aneurysmal-vascular-disease.md#vs-aneurysmal-vascular-disease)"
        " (18 codes, 2 code prefixes, 7 names)"
    ) in card
    assert "management: Do not give esketamine." in card
    assert "**Rationale** Esketamine raises blood pressure" in card
    assert (
        "*SPRAVATO (esketamine) US Prescribing Information, Janssen, revised 03/2019*, §4 Contraindications"
        in card
    )
    assert "**R** (read in the primary source)" in card


def test_flags_link_producers_and_readers(files):
    """A negated flag names the rules that derive it; a derivation names the rules that read it."""
    page = files["candidacy.md"]

    assert (
        "the flag **indicated** has not been derived (derived by [`KCDS-CAND-002`](#kcds-cand-002), "
        "[`KCDS-CAND-003`](#kcds-cand-003)"
    ) in page
    assert "derives the flag **trd-trial-criteria** (read by [`KCDS-CAND-002`](#kcds-cand-002)" in page


def test_value_set_pages_list_codes_and_users(files):
    """A value set page lists its codes with provenance and links back to the rules using it."""
    page = files["valuesets/systolic-blood-pressure.md"]

    assert "| loinc | `8480-6` | Systolic blood pressure | verified:" in page
    assert "[`KCDS-CI-004`](../contraindications.md#kcds-ci-004)" in page


def test_every_markdown_link_resolves(files):
    """Every relative link points at a generated page and an anchor that page defines."""
    anchors = {path: set(re.findall(r'<a id="([^"]+)"></a>', text)) for path, text in files.items()}
    for path, text in files.items():
        if not path.endswith(".md"):
            continue
        for target in re.findall(r"\]\(([^)]+)\)", text):
            page, _, anchor = target.partition("#")
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), page)) if page else path
            assert resolved in files, f"{path}: {target}"
            assert not anchor or anchor in anchors[resolved], f"{path}: {target}"


def test_the_html_file_is_self_contained(files):
    """The HTML file loads nothing from elsewhere, and every in-page link has its target."""
    html = files[HTML_FILE]
    ids = set(re.findall(r' id="([^"]+)"', html))

    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script" not in html
    assert set(re.findall(r'href="#([^"]+)"', html)) <= ids
    assert '<article class="card" id="kcds-ci-004">' in html


def test_write_replaces_changed_pages_and_removes_only_generated_leftovers(tmp_path: Path, files):
    """write() rewrites what changed, removes generated pages no longer produced, keeps other files."""
    out = tmp_path / "docs"
    write(files, out)
    (out / "old-rules.md").write_text(f"{MARKER} from an older ruleset -->\n", encoding="utf-8")
    (out / "notes.md").write_text("written by hand\n", encoding="utf-8")

    result = write(files, out)

    assert () == result.written
    assert ("old-rules.md",) == result.removed
    assert (out / "notes.md").is_file()
    assert [] == stale(files, out)


def test_a_changed_threshold_makes_the_docs_stale(tmp_path: Path, files):
    """Changing one number changes the page showing it, the index (its digest) and the HTML file, only."""
    rules_dir = copy_rules(tmp_path)
    replace(rules_dir, "contraindications.yaml", "value: {gt: 140}", "value: {gt: 150}")
    checked = load_checked(rules_dir)
    assert checked.ruleset is not None
    out = tmp_path / "docs"
    write(files, out)

    outdated = stale(render(checked.ruleset, checked.files), out)

    assert ["contraindications.md", "index.md", HTML_FILE] == outdated


def test_the_html_file_is_well_formed(files):
    """Every element of the HTML file is closed, in order."""
    from html.parser import HTMLParser

    class Checker(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.open: list[str] = []
            self.mismatched: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag != "meta":
                self.open.append(tag)

        def handle_endtag(self, tag):
            if self.open and self.open[-1] == tag:
                self.open.pop()
            else:
                self.mismatched.append(tag)

    checker = Checker()
    checker.feed(files[HTML_FILE])

    assert ([], []) == (checker.open, checker.mismatched)
