"""Bad input is one specific error, fast: never a traceback, a hang or a crash (ketacds.limits).

Each case here was found by fuzzing the loaders and the command line: non-UTF-8 bytes,
numbers too long or too large to compute with, deep nesting, YAML alias bombs and
duplicate JSON keys. Each must be an InputError (or RulesetError) naming the field or
the line, within a second or two; at the command line, exit 2 with one line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from ketacds import Engine, load_case
from ketacds.batch.readers import CaseFilesReader, NdjsonReader, read_json
from ketacds.cli import main
from ketacds.errors import InputError, RulesetError
from ketacds.limits import MAX_ALIAS_VALUES, MAX_DEPTH, MAX_NODES, find_problem, loads_json
from ketacds.models.load import parse_document, read_document
from rulesets_fixtures import copy_rules

#: A case that loads: each test breaks one thing in it.
CASE = {
    "patient": {"birth_date": "1981-03-14", "sex": "female", "weight": "68 kg", "height": "165 cm"},
    "medications": [{"name": "sertraline", "dose": 200, "unit": "mg", "frequency": "daily"}],
    "context": {"route": "esketamine-nasal", "jurisdiction": "US", "now": "2026-11-21T09:00:00-05:00"},
}

#: Nine levels of nine-fold aliases: 9^9 values from a few hundred bytes.
ALIAS_BOMB = "\n".join(
    [f"a0: &a0 [{','.join(['x'] * 9)}]"]
    + [f"a{n}: &a{n} [{','.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 9)]
)


def fast(seconds: float = 2.0):
    """Assert that the block ran within ``seconds`` (a hang is a failure too)."""

    class Timer:
        def __enter__(self):
            self.start = time.perf_counter()
            return self

        def __exit__(self, *exc):
            elapsed = time.perf_counter() - self.start
            assert elapsed < seconds, f"took {elapsed:.1f} s"

    return Timer()


class TestLoaders:
    def test_a_file_that_is_not_utf8_names_its_line_and_byte(self, tmp_path: Path):
        path = tmp_path / "case.yaml"
        path.write_bytes(b"patient:\n  sex: f\xe9minin\n")

        with pytest.raises(InputError, match=r"not UTF-8 text \(byte 18\)") as caught:
            read_document(path)
        assert f"{path}:2" == caught.value.path

    def test_a_byte_order_mark_is_not_an_error(self, tmp_path: Path):
        path = tmp_path / "case.json"
        path.write_bytes(b"\xef\xbb\xbf" + json.dumps(CASE).encode())

        assert "female" == read_document(path)["patient"]["sex"]

    @pytest.mark.parametrize("suffix", [".json", ".yaml"])
    def test_an_integer_of_5000_digits_is_refused_by_its_path(self, suffix: str):
        text = '{"patient": {"weight": {"value": ' + "9" * 5000 + ', "unit": "kg"}}}'

        with fast(), pytest.raises(InputError, match="number too large") as caught:
            parse_document(text, suffix, "case")
        assert "patient.weight.value" in str(caught.value)

    @pytest.mark.parametrize("suffix", [".json", ".yaml"])
    def test_an_exponent_of_a_billion_is_refused_at_once(self, suffix: str):
        text = '{"medications": [{"name": "x", "dose": 1E+999999999, "unit": "mg"}]}'

        with fast(), pytest.raises(InputError, match="number too large") as caught:
            parse_document(text, suffix, "case")
        assert "medications[0].dose" in str(caught.value)

    def test_a_tiny_exponent_is_refused_too(self):
        with pytest.raises(InputError, match="number too small"):
            parse_document('{"x": 1E-999999999}', ".json", "case")

    @pytest.mark.parametrize(
        ("change", "path"),
        [
            ({"patient": {**CASE["patient"], "weight": "1" + "0" * 30 + " kg"}}, "patient.weight"),
            (
                {"patient": {**CASE["patient"], "weight": {"value": Decimal("1e30"), "unit": "kg"}}},
                "patient.weight.value",
            ),
            ({"medications": [{**CASE["medications"][0], "dose": Decimal("1e26")}]}, "medications[0].dose"),
            ({"medications": [{**CASE["medications"][0], "dose": 10**30}]}, "medications[0].dose"),
        ],
    )
    def test_weights_and_doses_too_large_to_compute_with_are_input_errors(self, change, path):
        """Given as data (not text): the record reader checks each number, with its path."""
        with pytest.raises(InputError, match="number too large") as caught:
            load_case({**CASE, **change})
        assert path == caught.value.path

    @pytest.mark.parametrize("suffix", [".json", ".yaml"])
    @pytest.mark.parametrize("opening", ["[", '{"a": '])
    def test_a_thousand_levels_of_nesting_is_refused_fast(self, suffix: str, opening: str):
        closing = "]" if opening == "[" else "}"
        text = '{"patient": ' + opening * 1000 + "1" + closing * 1000 + "}"

        with fast(), pytest.raises(InputError, match=f"nested more than {MAX_DEPTH} levels deep"):
            parse_document(text, suffix, "case")

    def test_deep_block_yaml_is_refused_with_its_path(self):
        text = "patient:\n" + "".join("  " * i + "k:\n" for i in range(1, 100))

        with fast(), pytest.raises(InputError, match="nested more than") as caught:
            parse_document(text, ".yaml", "case")
        assert "patient.k.k.k" in str(caught.value)

    def test_a_thousand_levels_of_block_yaml_is_refused_fast(self):
        text = "patient:\n" + "".join("  " * i + "k:\n" for i in range(1, 1000))

        with fast(), pytest.raises(InputError, match="nested more than"):
            parse_document(text, ".yaml", "case")

    def test_a_yaml_alias_bomb_is_refused_fast(self):
        assert len(ALIAS_BOMB) < 400

        with fast(), pytest.raises(InputError, match=f"more than {MAX_NODES:,} values") as caught:
            parse_document(ALIAS_BOMB, ".yaml", "case")
        assert "case:9" == caught.value.path  # the line of the entry that holds the most

    def test_a_kilobyte_of_aliases_within_the_value_limit_is_refused_fast(self):
        """9^5 = 59,049 values from 300 bytes: under MAX_NODES, but it took seconds to read.

        Found by the loader fuzz target (over 2 s under load).
        """
        rows = ["x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
        rows += [f"x{n}: &x{n} [{', '.join([f'*x{n - 1}'] * 9)}]" for n in range(1, 5)]
        text = "\n".join(rows) + "\npatient: {sex: female}\n"

        with (
            fast(0.5),
            pytest.raises(InputError, match=f"more than {MAX_ALIAS_VALUES:,} values through") as caught,
        ):
            parse_document(text, ".yaml", "case")
        assert "case:5" == caught.value.path

    def test_modest_aliases_still_work(self):
        text = "a: &a {sex: female}\nb: *a\nc: *a\n"

        assert {"sex": "female"} == parse_document(text, ".yaml", "case")["c"]

    def test_duplicate_json_keys_are_refused_naming_the_key_and_line(self):
        text = '{"patient": {"sex": "female",\n  "pregnant": true,\n  "pregnant": false}}'

        with pytest.raises(InputError, match="duplicate key 'pregnant'") as caught:
            parse_document(text, ".json", "case.json")
        assert "case.json:3" == caught.value.path

    def test_the_line_of_a_duplicate_is_the_second_use_in_the_same_object(self):
        """A key repeated in another object is no duplicate; the line is of the real one."""
        text = '{"a": {"x": 1},\n "b": {"x": 2},\n "c": [1, {"y": 1,\n "y": 2}]}'

        with pytest.raises(InputError, match="duplicate key 'y'") as caught:
            parse_document(text, ".json", "f")
        assert "f:4" == caught.value.path

    @pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
    def test_non_finite_json_constants_are_refused(self, constant: str):
        with pytest.raises(InputError, match="not a number JSON allows"):
            parse_document('{"x": ' + constant + "}", ".json", "f")

    def test_the_synthea_bundles_are_within_every_limit(self):
        from support import FHIR_BUNDLES

        for path in sorted(FHIR_BUNDLES.glob("*.json")):
            assert find_problem(loads_json(path.read_text(encoding="utf-8"))) is None, path.name


class TestBatchReaders:
    def test_an_ndjson_line_with_a_duplicate_key_is_an_error_for_that_record(self):
        line = b'{"patient": {"sex": "female", "sex": "male"}}\n'

        with pytest.raises(InputError, match="duplicate key 'sex'"):
            NdjsonReader().decode(line)

    @pytest.mark.parametrize(
        ("payload", "reason"),
        [
            (b'{"x": ' + b"1" * 5000 + b"}", "number too large"),
            (b"[" * 5000 + b"]" * 5000, "nested more than"),
            (b'{"x": "\xff"}', "not UTF-8"),
            (b'{"x": 1E+999999999}', "number too large"),
        ],
    )
    def test_bad_lines_are_input_errors(self, payload: bytes, reason: str):
        with fast(), pytest.raises(InputError, match=reason):
            read_json(payload, "(line)")

    def test_a_case_file_with_a_duplicate_key(self, tmp_path: Path):
        (tmp_path / "a.json").write_text('{"patient": {"sex": "female",\n"sex": "male"}}', encoding="utf-8")
        reader = CaseFilesReader()
        (item,) = reader.items(tmp_path)

        with pytest.raises(InputError, match="duplicate key 'sex'") as caught:
            reader.decode(item.payload)
        assert "(file):2" == caught.value.path


class TestRules:
    def test_a_rules_file_that_is_not_utf8_is_a_ruleset_error_at_engine(self, tmp_path: Path):
        rules = copy_rules(tmp_path)
        path = rules / "interactions.yaml"
        path.write_bytes(path.read_bytes() + b"\n# caf\xe9\n")

        with pytest.raises(RulesetError, match="not UTF-8 text") as caught:
            Engine(rules)
        assert "interactions.yaml" == caught.value.file
        assert caught.value.line is not None

    def test_an_alias_bomb_in_a_rules_file_is_a_ruleset_error(self, tmp_path: Path):
        rules = copy_rules(tmp_path)
        (rules / "interactions.yaml").write_text(ALIAS_BOMB, encoding="utf-8")

        with fast(), pytest.raises(RulesetError, match="values"):
            Engine(rules)


def cli(*args: str):
    """The command line in-process; an exception other than SystemExit would be a traceback."""
    outcome = CliRunner().invoke(main, list(args))
    assert outcome.exception is None or isinstance(outcome.exception, SystemExit), outcome.exception
    return outcome


class TestCommandLine:
    @pytest.mark.parametrize(
        ("name", "content", "expected"),
        [
            ("latin1.yaml", b"patient:\n  sex: f\xe9minin\n", "not UTF-8"),
            ("huge.json", b'{"patient": {"weight": {"value": ' + b"9" * 5000 + b"}}}", "too large"),
            ("deep.json", b'{"patient": ' + b"[" * 1000 + b"]" * 1000 + b"}", "nested"),
            ("bomb.yaml", ALIAS_BOMB.encode(), "values"),
            ("dup.json", b'{"patient": {"pregnant": true,\n "pregnant": false}}', "duplicate key 'pregnant'"),
            ("exp.yaml", b"patient:\n  weight: {value: 1E+999999999, unit: kg}\n", "too large"),
        ],
    )
    def test_assess_exits_2_with_one_line(self, tmp_path: Path, name: str, content: bytes, expected: str):
        path = tmp_path / name
        path.write_bytes(content)

        result = cli("assess", str(path))  # how fast the loaders refuse is tested above

        assert 2 == result.exit_code
        assert expected in result.stderr
        assert 1 == len(result.stderr.strip().splitlines()), result.stderr

    def test_bracketed_words_in_an_error_are_shown_as_written(self, tmp_path: Path):
        """Rich markup would eat `[v2]` and `[batch]`: messages are escaped."""
        path = tmp_path / "case[v2].yaml"
        path.write_text("patient: [unclosed\n", encoding="utf-8")

        result = cli("assess", str(path))

        assert 2 == result.exit_code
        assert "case[v2].yaml" in result.stderr

    def test_batch_errors_keep_brackets(self, tmp_path: Path):
        path = tmp_path / "in[v2].ndjson"
        path.write_text("{}\n", encoding="utf-8")

        result = cli("batch", str(path), "--out", str(tmp_path / "out"), "--input-format", "no[such]")

        assert 2 == result.exit_code
        assert "no[such]" in result.stderr

    def test_dask_without_the_extra_is_a_usage_error(self, tmp_path: Path):
        """In a real process where `distributed` cannot be imported: exit 2, one line, naming [batch]."""
        cases = tmp_path / "cases.ndjson"
        cases.write_text(json.dumps(CASE) + "\n", encoding="utf-8")
        code = (
            "import sys; sys.modules['distributed'] = None; sys.argv[0] = 'ketacds'\n"
            "from ketacds.cli import main; main()"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, "batch", str(cases), "--out", str(tmp_path / "o"), "--dask=local"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

        assert 2 == result.returncode, result.stderr
        assert "Traceback" not in result.stderr
        assert "ketacds[batch]" in result.stderr
        assert 1 == len(result.stderr.strip().splitlines()), result.stderr


class TestFeedbackDatabase:
    def test_a_file_that_is_not_sqlite_is_refused(self, tmp_path: Path):
        path = tmp_path / "notes.sqlite3"
        path.write_text("not a database at all\n", encoding="utf-8")

        result = cli("feedback", "--database", str(path))

        assert 2 == result.exit_code
        assert "not a SQLite database" in result.stderr
        assert "not a database at all\n" == path.read_text(encoding="utf-8")

    def test_an_empty_file_is_refused_and_left_empty(self, tmp_path: Path):
        path = tmp_path / "empty.sqlite3"
        path.touch()

        result = cli("feedback", "--database", str(path))

        assert 2 == result.exit_code
        assert "empty file" in result.stderr
        assert 0 == path.stat().st_size
        assert [path] == list(tmp_path.iterdir())  # no -wal or -shm files either

    def test_another_sqlite_database_is_refused_and_not_changed(self, tmp_path: Path):
        import sqlite3

        path = tmp_path / "other.sqlite3"
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE t (x)")
        db.close()
        before = path.read_bytes()

        result = cli("feedback", "--database", str(path))

        assert 2 == result.exit_code
        assert "not a ketacds database" in result.stderr
        assert before == path.read_bytes()


class TestCorpus:
    def test_an_ndjson_corpus_line_with_a_duplicate_key_is_a_broken_case(self, tmp_path: Path):
        from ketacds.audit.corpus import read_corpus

        path = tmp_path / "cases.ndjson"
        duplicate = '{"patient": {"sex": "female", "sex": "male"}}'
        path.write_text(json.dumps(CASE) + "\n" + duplicate + "\n", encoding="utf-8")

        good, bad = read_corpus([path])

        assert good.load()[0].patient.sex == "female"
        with pytest.raises(InputError, match="duplicate key 'sex'"):
            bad.load()


KEYS_AT = b"issuers:\n  - iss: x\n    jwks_file: k.json\n"


class TestServeConfiguration:
    @pytest.mark.parametrize(
        ("issuers", "files", "expected"),
        [
            (b"\xff\xfe", {}, "not UTF-8 text"),
            (b"issuers:\n  - iss: x\n    jwks_file: nope.json\n", {}, "nope.json: cannot read file"),
            (KEYS_AT, {"k.json": b'{"keys": 5}'}, "is not a JWK Set"),
            (KEYS_AT, {"k.json": b'{"keys": [], "keys": []}'}, "duplicate"),
        ],
    )
    def test_a_broken_issuers_or_key_file_is_one_line_before_the_service_starts(
        self, tmp_path: Path, issuers: bytes, files: dict[str, bytes], expected: str
    ):
        (tmp_path / "issuers.yaml").write_bytes(issuers)
        for name, content in files.items():
            (tmp_path / name).write_bytes(content)

        result = cli("serve", "--issuers", str(tmp_path / "issuers.yaml"), "--port", "1")

        assert 2 == result.exit_code
        assert expected in result.stderr
        assert 1 == len(result.stderr.strip().splitlines()), result.stderr


def test_an_error_quotes_at_most_60_characters_of_the_value():
    with pytest.raises(InputError) as caught:
        load_case({**CASE, "patient": {**CASE["patient"], "sex": "f" * 5_000_000}})

    assert "patient.sex" == caught.value.path
    assert len(str(caught.value)) < 200
    assert str(caught.value).endswith("...")


# -- the quick pass of find_problem -------------------------------------------------------

_numbers = st.one_of(
    st.integers(min_value=-(10**16), max_value=10**16),
    st.sampled_from([10**15 - 1, 10**15, -(10**15), -(10**15) + 1, True, False]),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([Decimal("1e14"), Decimal("1e15"), Decimal("1e-30"), Decimal("1e-31")]),
    st.just(Decimal("1" * 41)),
    st.floats(),
)
_leaves = st.one_of(st.none(), st.text(max_size=3), _numbers)
_documents = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=2), inner, max_size=3),
    ),
    max_leaves=20,
)


def _nested(levels: int, leaf: object) -> object:
    value = leaf
    for i in range(levels):
        value = [value] if i % 2 else {"a": value}
    return value


@given(_documents, st.integers(0, 3), st.integers(MAX_DEPTH - 3, MAX_DEPTH + 1))
def test_the_quick_pass_names_the_same_first_problem_as_the_full_walk(document, where, levels):
    """find_problem decides with a quick pass and walks again only to name a problem: same answer."""
    from ketacds.limits import _first_problem

    for data in (document, _nested(levels, document), [document] * where):
        assert find_problem(data) == _first_problem(data)
