"""The loader's per-file parse cache, and the error for an unknown rule id.

Each file of a ruleset is parsed (and checked against its schema) once per content: a
copy of the rules with one file changed parses that one file again, both when loading
(:func:`load_ruleset`) and when linting (:func:`load_checked`), and the result is the
one an uncached load gives.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ketacds import _yaml, yamldoc
from ketacds.errors import KetacdsError, UnknownRuleError
from ketacds.ruleset import load as load_module
from ketacds.ruleset.load import load_checked, load_ruleset
from rulesets_fixtures import GOOD_RULE, add_rule, copy_rules


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts the YAML parser really parses (a cache hit is not a parse)."""
    seen: list[str] = []
    real = _yaml._parse

    def counting(text: str) -> tuple[object, dict[_yaml.Path, int]]:
        seen.append(text)
        return real(text)

    monkeypatch.setattr(_yaml, "_parse", counting)
    return seen


def test_a_copy_with_one_changed_file_parses_only_that_file(tmp_path: Path, parses: list[str]):
    first = copy_rules(tmp_path / "a")
    load_checked(first)  # every file parsed (or found in the cache)
    second = copy_rules(tmp_path / "b")
    add_rule(second, GOOD_RULE.replace("A test rule", "A test rule (changed for the load)"))
    parses.clear()

    ruleset = load_ruleset(second)

    assert 1 == len(parses)
    assert parses[0] == (second / "interactions.yaml").read_text(encoding="utf-8")
    assert "KCDS-TEST-001" in {rule.id for rule in ruleset.rules}


def test_load_checked_uses_the_same_cache(tmp_path: Path, parses: list[str]):
    load_checked(copy_rules(tmp_path / "a"))
    changed = copy_rules(tmp_path / "b")
    add_rule(changed, GOOD_RULE.replace("A test rule", "A test rule (changed for the linter)"))
    parses.clear()

    checked = load_checked(changed)

    assert 1 == len(parses)
    assert () == checked.problems
    parses.clear()
    load_checked(changed)  # nothing changed: nothing parsed
    load_ruleset(changed)
    assert [] == parses


def test_a_cached_load_equals_an_uncached_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    rules_dir = copy_rules(tmp_path)
    add_rule(rules_dir, GOOD_RULE)
    cached_ruleset, cached_checked = load_ruleset(rules_dir), load_checked(rules_dir)

    # Empty caches for this test only (what clear_caches() empties); the warm ones come back after.
    monkeypatch.setattr(_yaml, "_PARSED", {})
    monkeypatch.setattr(yamldoc, "_VALIDATED", {})
    monkeypatch.setattr(load_module, "_CACHE", {})
    monkeypatch.setenv("KETACDS_CACHE_DIR", "off")  # and no ruleset kept on disk
    assert cached_ruleset == load_ruleset(rules_dir)
    assert cached_checked == load_checked(rules_dir)


def test_a_caller_changing_its_data_changes_no_cached_parse():
    text = "a: {b: [1, 2.5]}\n"
    data, lines = _yaml.load_yaml(text)
    data["a"]["b"].append(3)
    data["a"]["c"] = "x"
    lines.clear()

    again, lines_again = _yaml.load_yaml(text)

    assert {"a": {"b": [1, again["a"]["b"][1]]}} == again
    assert str(again["a"]["b"][1]) == "2.5"
    assert {(): 1, ("a",): 1, ("a", "b"): 1, ("a", "b", 0): 1, ("a", "b", 1): 1} == lines_again


def test_an_unknown_rule_id_names_the_id_and_the_nearest_ids():
    ruleset = load_ruleset()

    with pytest.raises(UnknownRuleError) as caught:
        ruleset.rule("KCDS-CI-00l")

    error = caught.value
    assert isinstance(error, KetacdsError)
    assert isinstance(error, KeyError)  # callers catching the old bare KeyError keep working
    assert "KCDS-CI-00l" == error.rule_id
    assert ("KCDS-CI-001", "KCDS-CI-002", "KCDS-CI-003") == error.suggestions
    assert str(error).startswith(f"no rule 'KCDS-CI-00l' in {ruleset.name} (did you mean KCDS-CI-001 or ")


def test_an_id_close_to_none_is_refused_without_a_suggestion():
    with pytest.raises(KeyError, match=r"^no rule 'nothing like it' in ketacds-core$"):
        load_ruleset().rule("nothing like it")
