"""Rulesets kept on disk between processes (:mod:`ketacds.ruleset.diskcache`).

An entry is used only for the same bytes of the same files, read by the same ketacds, and
only when what it holds rebuilds a ruleset with the digest it recorded; anything else is
parsed from the YAML as if there were no entry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from ketacds.ruleset import diskcache
from ketacds.ruleset import load as load_module
from ketacds.ruleset.load import _content_key, load_ruleset
from rulesets_fixtures import GOOD_RULE, add_rule, copy_rules


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache directory of this test's own, and no ruleset remembered in the process."""
    monkeypatch.setenv("KETACDS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(load_module, "_CACHE", {})
    return tmp_path / "cache" / "rulesets"


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The ruleset directories really loaded from their YAML (not read from an entry)."""
    seen: list[Path] = []
    real = load_module._load

    def counting(root: Path, problems: object) -> object:
        seen.append(root)
        return real(root, problems)

    monkeypatch.setattr(load_module, "_load", counting)
    return seen


def _locations(value: object, out: list[object]) -> list[object]:
    """Every source location (file, line) in an IR value, in order."""
    if attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            item = getattr(value, field.name)
            if field.metadata.get("canonical", True) is False:
                out.append(item)
            _locations(item, out)
    elif isinstance(value, tuple | list):
        for item in value:
            _locations(item, out)
    return out


def _forget(monkeypatch: pytest.MonkeyPatch) -> None:
    """As a new process: no ruleset remembered in memory."""
    monkeypatch.setattr(load_module, "_CACHE", {})


def test_a_second_process_reads_the_entry_instead_of_the_yaml(
    tmp_path: Path, cache: Path, parses: list[Path], monkeypatch: pytest.MonkeyPatch
):
    rules = copy_rules(tmp_path)
    parsed = load_ruleset(rules)
    assert parses, "the first load parses the YAML"
    assert 1 == len(list(cache.glob("*.json")))
    _forget(monkeypatch)
    parses.clear()

    read = load_ruleset(rules)

    assert [] == parses
    assert parsed == read
    assert parsed.digest == read.digest
    assert _locations(parsed, []) == _locations(read, []), "source locations are kept too"
    assert len(_locations(read, [])) > 100


def test_a_changed_byte_is_another_entry(
    tmp_path: Path, cache: Path, parses: list[Path], monkeypatch: pytest.MonkeyPatch
):
    rules = copy_rules(tmp_path)
    before = load_ruleset(rules)
    add_rule(rules, GOOD_RULE)
    _forget(monkeypatch)
    parses.clear()

    after = load_ruleset(rules)

    assert [rules] == parses, "loaded from the YAML, not taken from the old entry"
    assert "KCDS-TEST-001" in {rule.id for rule in after.rules}
    assert before.digest != after.digest
    assert 2 == len(list(cache.glob("*.json")))


def test_other_ketacds_code_is_another_entry(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch):
    key = _content_key(copy_rules(tmp_path))
    name = diskcache.entry_name(key)
    monkeypatch.setattr(diskcache, "_code_key", "another version of the loader")

    assert diskcache.entry_name(key) != name


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda entry: entry.update(digest="0" * 64), id="another digest"),
        pytest.param(lambda entry: entry["ruleset"].update(version="9.9.9"), id="a changed ruleset"),
        pytest.param(lambda entry: entry["ruleset"].pop("rules"), id="a field missing"),
        pytest.param(lambda entry: entry.update(name="someone else's"), id="another name"),
        pytest.param(lambda entry: entry.update(format="ketacds-ruleset-cache/0"), id="another format"),
    ],
)
def test_an_entry_that_does_not_check_out_is_ignored(
    tmp_path: Path, cache: Path, parses: list[Path], monkeypatch: pytest.MonkeyPatch, spoil
):
    rules = copy_rules(tmp_path)
    parsed = load_ruleset(rules)
    (path,) = cache.glob("*.json")
    entry = json.loads(path.read_text(encoding="utf-8"))
    spoil(entry)
    path.write_text(json.dumps(entry), encoding="utf-8")
    _forget(monkeypatch)
    parses.clear()

    assert parsed == load_ruleset(rules)
    assert parses, "parsed from the YAML again"
    assert parsed.digest == json.loads(path.read_text(encoding="utf-8"))["digest"], "and written again"


def test_a_damaged_entry_is_ignored(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch):
    rules = copy_rules(tmp_path)
    parsed = load_ruleset(rules)
    (path,) = cache.glob("*.json")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _forget(monkeypatch)

    assert parsed == load_ruleset(rules)


def test_off_keeps_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KETACDS_CACHE_DIR", "off")
    monkeypatch.setattr(load_module, "_CACHE", {})
    monkeypatch.chdir(tmp_path)

    load_ruleset(copy_rules(tmp_path))

    assert diskcache.cache_dir() is None
    assert [] == list(tmp_path.rglob("*.json"))


def test_a_directory_that_cannot_be_written_is_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blocked = tmp_path / "a file, not a directory"
    blocked.write_text("")
    monkeypatch.setenv("KETACDS_CACHE_DIR", str(blocked))
    monkeypatch.setattr(load_module, "_CACHE", {})
    rules = copy_rules(tmp_path)

    assert "KCDS-CI-001" in {rule.id for rule in load_ruleset(rules).rules}
    assert blocked.is_file()


def test_the_least_recently_used_entries_go(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(diskcache, "KEPT", 2)
    rules = copy_rules(tmp_path)
    first = load_ruleset(rules)
    for n in (1, 2):
        add_rule(rules, GOOD_RULE.replace("KCDS-TEST-001", f"KCDS-TEST-00{n}"))
        _forget(monkeypatch)
        load_ruleset(rules)
    names = {p.name for p in cache.glob("*.json")}

    assert 2 == len(names)
    assert f"{diskcache.entry_name(_content_key(rules))}.json" in names
    assert first.digest not in {json.loads((cache / n).read_text())["digest"] for n in names}


def test_the_command_line_uses_the_entry(tmp_path: Path):
    """Two `ketacds` processes: the second reads the entry the first wrote, same answer."""
    environment = {**os.environ, "KETACDS_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, "-c", "from ketacds.cli import main; main()", "rules", "digest"]
    first = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    second = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)

    assert 0 == first.returncode, first.stderr
    assert first.stdout == second.stdout
    assert 1 == len(list((tmp_path / "cache" / "rulesets").glob("*.json")))
