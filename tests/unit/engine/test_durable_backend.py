"""The durable_rules driver (``engine/backends/durable/``): each measured hazard, handled.

See ../shared/durable-rules-notes.md for the measurements behind each test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

from ketacds import EvaluationError, load_case, load_case_file
from ketacds.engine.backends.durable.capacity import MAX_FACTS, fnv1a_32
from ketacds.engine.raw import flag_id
from support import EXAMPLES


@pytest.fixture
def case():
    return load_case_file(EXAMPLES / "02-trd-iv-ketamine-obese.yaml")


class TestActionExceptions:
    def test_an_action_that_raises_is_an_evaluation_error_naming_the_rule(self, engine, case):
        """durable_rules swallows exceptions in actions; ours surface, naming the rule."""
        record, context = case

        def explode(rule_id: str) -> None:
            if rule_id == "KCDS-INT-002":
                raise ZeroDivisionError("boom")

        with pytest.raises(EvaluationError, match="ZeroDivisionError: boom") as info:
            engine.evaluate(record, context, _action_hook=explode)

        assert "KCDS-INT-002" == info.value.rule_id

    def test_the_engine_is_usable_after_a_failed_action(self, engine, case):
        """A failed evaluation drains and deletes its session, so the next one is correct."""
        record, context = case
        expected = engine.assess(record, context)

        def explode(rule_id: str) -> None:
            raise RuntimeError(rule_id)

        for _ in range(3):
            with pytest.raises(EvaluationError):
                engine.evaluate(record, context, _action_hook=explode)

        assert expected == engine.assess(record, context)


class TestNoDispatcher:
    def test_no_threads_are_started(self, case):
        """Our driver starts no timer threads (durable's Host starts two per instance)."""
        from ketacds import Engine

        record, context = case
        before = threading.active_count()
        with Engine() as fresh:
            fresh.assess(record, context)
            during = threading.active_count()

        assert before == during


class TestNegation:
    def test_no_none_in_compiled_rules(self, engine):
        """The compiled durable rules never use durable's order-dependent negation."""
        for route in ("ketamine-iv", "esketamine-nasal"):
            definition = json.dumps(engine.warm(route, "US").definition)

            assert "$not" not in definition

    def test_flag_negation_is_sound_whatever_the_order(self, engine, case):
        """'not indicated' never fires beside an indication, in every fact order."""
        record, context = case
        facts = engine.facts(record, context).facts
        program = engine.warm(context.route, context.jurisdiction)
        for order in (facts, tuple(reversed(facts)), facts[1:] + facts[:1]):
            result = program.run(order)
            fired = {f.rule_id for f in result.firings}

            assert "KCDS-CAND-003" in fired
            assert "KCDS-CAND-004" not in fired


class TestJoins:
    def test_a_reference_after_a_disjunction_is_honoured(self, engine):
        """Two trials of one drug are not two drugs, although `response in [...]` precedes the reference."""
        record, context = load_case(
            {
                "patient": {"age_years": 40},
                "conditions": [{"code": {"system": "icd-10-cm", "code": "F33.2"}}],
                "trials": [
                    {"name": "sertraline", "weeks": 8, "response": "none", "adequate_dose": True},
                    {
                        "name": "sertraline",
                        "dose": 200,
                        "unit": "mg",
                        "weeks": 8,
                        "response": "none",
                        "adequate_dose": True,
                    },
                ],
                "context": {"route": "esketamine-nasal", "jurisdiction": "US", "now": "2026-11-21T09:00:00Z"},
            }
        )
        _, durable = engine.evaluate(record, context)
        _, reference = engine.evaluate(record, context, backend="reference")

        assert reference == durable
        assert "KCDS-CAND-001" not in {firing.rule_id for firing in durable.firings}

    def test_references_are_compiled_before_disjunctions(self, engine):
        """In every compiled pattern, no test against another fact follows an $or."""

        def refers(term: dict) -> bool:
            op, body = next(iter(term.items()))
            if op in ("$or", "$iany", "$ex", "$nex"):
                return False
            inner = body if not op.startswith("$") else next(iter(body.values()))
            return isinstance(inner, dict)

        for route, jurisdiction in [("ketamine-iv", "US"), ("esketamine-nasal", "US")]:
            for rule in engine.warm(route, jurisdiction).definition.values():
                for pattern in rule["all"]:
                    terms = next(iter(pattern.values())).get("$and", [])
                    first_or = next((i for i, t in enumerate(terms) if "$or" in t), len(terms))

                    assert not any(refers(t) for t in terms[first_or:])


class TestHashes:
    def test_our_hash_is_durables(self):
        """fnv1a_32 reproduces the collision measured in durable_rules' session lookup."""
        assert fnv1a_32("patient-332789") == fnv1a_32("patient-529192")
        assert fnv1a_32("patient-1") != fnv1a_32("patient-2")

    def test_fact_ids_cannot_collide(self, engine):
        """The ids facts are asserted under have distinct 32-bit hashes."""
        program = engine.warm("ketamine-iv", "US")
        flags = {flag_id(f) for r in engine.ruleset.rules for f in r.flags}
        ids = [str(n) for n in range(MAX_FACTS)] + sorted(flags)

        assert len(ids) == len({fnv1a_32(i) for i in ids})
        assert program is engine.warm("ketamine-iv", "US")

    def test_a_dropped_fact_is_an_error(self, engine, case, monkeypatch):
        """If durable reports a fact as already seen (a hash collision), we raise."""
        record, context = case
        facts = engine.facts(record, context).facts
        program = engine.warm(context.route, context.jurisdiction)
        # every fact asserted under one id (the heads are remade for the patched id)
        monkeypatch.setattr(program, "_durable_id", lambda number: "0")
        monkeypatch.setattr(program, "_heads", {})

        with pytest.raises(EvaluationError, match="dropped"):
            program.run(facts)
        monkeypatch.undo()
        assert program.run(facts).firings

    def test_duplicate_input_items_collapse(self, engine, case):
        """Two identical medication entries become one fact, not a durable error."""
        record, context = case
        doubled = attrs.evolve(record, medications=record.medications * 2)

        assert engine.assess(record, context) == engine.assess(doubled, context)


class TestSessions:
    def test_one_session_is_reused_and_left_empty(self, engine, case):
        """Assessments reuse one session per program, and each leaves it empty."""
        from ketacds.engine.backends.durable import program as durable_backend

        record, context = case
        program = engine.warm(context.route, context.jurisdiction)
        engine.assess(record, context)
        opened = program._sessions
        for _ in range(3):
            engine.assess(record, context)

        assert (opened, 0) == (program._sessions, program.session_resets)
        assert "[]" == durable_backend._dre.get_facts(program._handle, program._sid)

    def test_a_session_left_not_empty_is_replaced(self, engine, case, monkeypatch):
        """If retraction leaves anything behind, the session is deleted and replaced."""
        from ketacds.engine.backends.durable import program as durable_backend

        record, context = case
        expected = engine.assess(record, context)
        program = engine.warm(context.route, context.jurisdiction)
        resets, opened = program.session_resets, program._sessions
        monkeypatch.setattr(durable_backend._dre, "retract_facts", lambda handle, facts: (0, 0))

        assert expected == engine.assess(record, context)
        monkeypatch.undo()
        assert expected == engine.assess(record, context)
        assert (resets + 1, opened + 1) == (program.session_resets, program._sessions)

    def test_first_assessment_that_fires_nothing_is_safe(self):
        """A program whose first assessment fires nothing closes cleanly (durable frees a wild pointer)."""
        code = (
            "from ketacds import load_ruleset\n"
            "from ketacds.engine.backends.durable import DurableProgram\n"
            "rule = load_ruleset().rule('KCDS-CAND-013')\n"
            "program = DurableProgram('quiet', [rule], {rule.id: 1})\n"
            "fact = {'t': 'condition', 'id': 'c', 'vs': [], 'clinical_status': 'active', 'active': True}\n"
            "assert () == program.run([fact]).firings\n"
            "program.close()\n"
            "print('closed')\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)

        assert (0, "closed") == (result.returncode, result.stdout.strip()), result.stderr

    def test_sessions_do_not_leak(self, engine, case):
        """More assessments than durable's 1024 live sessions: each session is deleted."""
        record, context = case
        expected = engine.assess(record, context)
        for _ in range(1100):
            result = engine.assess(record, context)

        assert expected == result

    def test_unread_facts_are_harmless(self, engine, case):
        """Facts no rule reads (a resolved penicillin allergy, caffeine never used) neither raise nor
        change the findings; they are listed in data quality instead."""
        from ketacds import Allergy, SubstanceUse

        record, context = case
        extra = attrs.evolve(
            record,
            allergies=(Allergy(name="penicillin", status="resolved"),),
            substance_use=(SubstanceUse(name="caffeine", status="never"),),
        )

        result = engine.assess(extra, context)
        assert engine.assess(record, context).findings == result.findings
        messages = " ".join(issue.message for issue in result.data_quality)
        assert "penicillin" in messages
        assert "caffeine" in messages

    def test_every_rule_reading_a_fact_fires(self, engine, case):
        """Facts, not events: one lorazepam fact fires both benzodiazepine rules."""
        record, context = case

        assert {"KCDS-INT-002", "KCDS-INT-003"} <= set(engine.assess(record, context).rule_ids)


def _synthetic_facts(engine, patients: int):
    """(program, facts) of the first synthetic patients the engine accepts."""
    from ketacds import KetacdsError
    from ketacds.synthetic import synthetic_cases

    found = []
    for data in synthetic_cases(patients):
        try:
            record, context = load_case(data)
            facts = engine.facts(record, context).facts
        except KetacdsError:
            continue
        found.append((engine.warm(context.route, context.jurisdiction), facts))
    return found


class TestTheBatchText:
    """The driver writes the batch as text; it must be exactly the JSON of the encoded facts."""

    def test_the_text_is_the_json_of_the_encoded_facts_and_the_absent_keys_are_the_patterns(self, engine):
        from ketacds.engine.backends.durable.encoding import encode_json
        from ketacds.engine.match import compile_pattern

        for program, facts in _synthetic_facts(engine, 300) * 2:  # twice: remembered values too
            heads: dict[int, str] = {}

            def head(number, heads=heads):
                heads[number] = f'{{"id":"{number}","sid":"7"'
                return heads[number]

            texts, numbered, absent = program._encoder.batch(facts, heads, head)
            expected = [program.encode(str(number), fact, "7") for number, fact in numbered.items()]
            by_type: dict[str, list] = {}
            for fact in facts:
                by_type.setdefault(fact["t"], []).append(fact)
            negated = sorted(program.absent_patterns.items())

            assert "[" + ",".join(texts) + "]" == encode_json(expected)
            assert sorted(numbered.values(), key=id) == sorted(
                (f for f in facts if program.encode("0", f, "1") is not None), key=id
            )
            assert absent == [
                key for key, p in negated if not any(map(compile_pattern(p), by_type.get(p.fact, ())))
            ]

    def test_a_type_with_more_facts_than_its_range_is_numbered_by_position(self, engine, case):
        """Each fact type has a range of durable ids; beyond it, ids are positions (same firings)."""
        record, context = case
        facts = list(engine.facts(record, context).facts)
        program = engine.warm(context.route, context.jurisdiction)
        extra = [
            {
                "t": "condition",
                "id": f"condition:extra{n}",
                "vs": ["depressive-disorders"],
                "active": n % 2 == 0,
            }
            for n in range(program._encoder._span + 5)
        ]
        reference = engine._compiled(engine._backend("reference"), context.route, context.jurisdiction)

        assert program._encoder.batch(facts + extra, {}, lambda n: "") is None
        assert reference.run(facts + extra) == program.run(facts + extra)

    def test_what_the_driver_remembers_is_bounded(self, engine):
        from ketacds.engine.backends.durable import program as durable_program
        from ketacds.engine.backends.durable.encoding import MEMO_LIMIT

        found = _synthetic_facts(engine, 300)
        for program, facts in found:
            program.run(facts)
        for program in {id(p): p for p, _ in found}.values():
            assert len(program._activations) <= durable_program._REMEMBERED
            for plan in program._encoder._plans.values():
                assert all(len(field.memo) <= MEMO_LIMIT for field in plan.fields)


class TestEncoding:
    def test_value_sets_become_boolean_properties(self, engine):
        """Durable sees membership as one property per value set some rule reads, and only read fields."""
        program = engine.warm("ketamine-iv", "US")
        fact = {"t": "condition", "id": "c", "vs": ["depressive-disorders", "no-such-set"], "note": "x"}
        encoded = program.encode("0", fact, "1")

        assert encoded is not None
        assert {"id": "0", "sid": "1", "t": "condition", "vs:depressive-disorders": True} == {
            k: v for k, v in encoded.items() if k not in ("active", "clinical_status", "onset_days_ago")
        }

    def test_facts_no_rule_reads_are_not_asserted(self, engine):
        """A fact of a type no rule of the program reads is not sent to durable at all."""
        program = engine.warm("ketamine-iv", "US")

        assert program.encode("0", {"t": "nothing-reads-this", "id": "x"}, "1") is None

    def test_an_unexpected_activation_is_read_as_json(self, engine):
        """An activation in an unexpected layout falls back to a JSON parse with the same result."""
        program = engine.warm("ketamine-iv", "US")
        name = next(iter(program._alternatives))
        aliases = [next(iter(p)) for p in program.definition[name]["all"]]
        compact = (
            "{" + json.dumps(name) + ":{" + ",".join(f'"{a}":{{"id":"{n}"}}' for n, a in enumerate(aliases))
        )
        compact += "}}"
        spaced = json.dumps({name: {a: {"t": "x", "id": str(n)} for n, a in enumerate(aliases)}}, indent=1)

        assert program._parse(compact) == program._parse(spaced)
        assert "(unknown)" == program._rule_of("not json")

    def test_too_wide_a_fact_is_refused_at_compile_time(self, engine, monkeypatch):
        """A program whose facts would carry more properties than durable accepts is not built."""
        from ketacds import EngineCapacityError
        from ketacds.engine.backends.durable import capacity
        from ketacds.engine.backends.durable import program as durable_backend

        rules = engine.rules_for("ketamine-iv", "US")
        widest = max(capacity.program_load(rules).widths.values())
        monkeypatch.setattr(capacity, "MAX_FACT_PROPERTIES", widest - 1)

        with pytest.raises(EngineCapacityError, match=f"would carry {widest} properties"):
            durable_backend.DurableProgram("capacity_test", rules, engine.strata)


def test_python_313_is_refused_with_one_sentence():
    """On Python 3.13+, importing ketacds fails with a clear sentence, not a C traceback."""
    code = "import sys; sys.version_info = (3, 13, 0, 'final', 0); import ketacds"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)

    assert 0 != result.returncode
    assert "ImportError: ketacds needs Python 3.11 or 3.12" in result.stderr
    assert "durable_rules 2.0.28 does not import on Python 3.13" in result.stderr


def _heart_rate_case(*, with_blood_pressure: bool) -> tuple[object, object]:
    """Example 04 with a heart rate of 0.00001/min (which Python writes as ``1e-05``)."""
    document = {
        "patient": {
            "id": "tiny-heart-rate",
            "age_years": 38,
            "sex": "female",
            "pregnant": False,
            "lactating": False,
            "weight": "61 kg",
            "height": "160 cm",
        },
        "conditions": [{"name": "major depressive disorder", "clinical_status": "recurrence"}],
        "observations": [
            {"name": "heart rate", "time": "2026-11-21T08:55:00-08:00", "value": 0.00001, "unit": "/min"}
        ],
        "context": {"route": "esketamine-nasal", "jurisdiction": "US", "now": "2026-11-21T09:00:00-08:00"},
    }
    if with_blood_pressure:
        document["observations"].append(
            {
                "name": "blood pressure",
                "time": "2026-11-21T08:55:00-08:00",
                "components": [
                    {"name": "systolic", "value": 190, "unit": "mmHg"},
                    {"name": "diastolic", "value": 115, "unit": "mmHg"},
                ],
            }
        )
    return load_case(document)


class TestNumbersNeverReachDurable:
    def test_a_tiny_number_loses_no_fact(self, engine):
        """BP 190/115 and a heart rate of 0.00001: durable says defer, as the reference does.

        On 0.3.0 the number reached durable as ``1e-05``; durable silently dropped every
        fact after it and the Assessment read no-concerns-found.
        """
        record, context = _heart_rate_case(with_blood_pressure=True)
        durable = engine.assess(record, context)
        reference = engine.assess(record, context, backend="reference")

        assert "defer" == reference.status == durable.status
        assert reference.rule_ids == durable.rule_ids

    def test_a_tiny_order_loses_no_fact(self, engine):
        """An esketamine order of 0.00001 mg: durable fires what the reference fires (0.3.0 did not)."""
        from ketacds.models.inputs import Order

        record, context = load_case_file(EXAMPLES / "01-trd-esketamine-us.yaml")
        context = attrs.evolve(context, order=Order(name="esketamine", dose=Decimal("0.00001"), unit="mg"))
        durable = engine.assess(record, context)
        reference = engine.assess(record, context, backend="reference")

        assert reference.status == durable.status
        assert reference.rule_ids == durable.rule_ids

    def test_a_lone_tiny_number_does_not_crash(self):
        """A patient with only that heart rate: same answer as the reference, and the process lives."""
        code = (
            f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); sys.path.insert(0, 'tests')\n"
            "from test_durable_backend import _heart_rate_case\n"
            "from ketacds import Engine\n"
            "record, context = _heart_rate_case(with_blood_pressure=False)\n"
            "engine = Engine()\n"
            "a, b = engine.assess(record, context), engine.assess(record, context, backend='reference')\n"
            "print(a.status == b.status and a.rule_ids == b.rule_ids)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)

        assert (0, "True") == (result.returncode, result.stdout.strip()), result.stderr

    def test_no_number_is_sent(self, engine, case):
        """Every fact asserted carries strings and booleans only: tests are decided in Python."""
        record, context = case
        program = engine.warm(context.route, context.jurisdiction)
        encoded = [program.encode(str(n), f, "1") for n, f in enumerate(engine.facts(record, context).facts)]
        values = [v for fact in encoded if fact for v in fact.values()]

        assert values
        assert all(isinstance(v, str | bool) for v in values)

    def test_a_threshold_is_crossed_exactly(self, engine):
        """0.75 mg/kg is not above 0.75; 0.7500000000001 mg/kg is (KCDS-ORD-003 reads ``> 0.75``)."""
        program = engine.warm("ketamine-iv", "US")
        name = next(n for n in program.test_checks("order") if n.startswith("mg_per_kg>"))
        check = program.test_checks("order")[name]

        assert "mg_per_kg>0.75" == name
        assert not check({"t": "order", "mg_per_kg": Decimal("0.75")})
        assert check({"t": "order", "mg_per_kg": Decimal("0.7500000000001")})


class TestEveryFactReachesTheSession:
    def test_a_fact_durable_drops_is_an_error_not_a_result(self, case):
        """If durable stops reading a batch part way (as it does at ``1e-05``), no result is given."""
        from ketacds import Engine

        record, context = case
        engine = Engine()
        program = engine.warm(context.route, context.jurisdiction)
        batch = program._encoder.batch

        def with_exponent(*args, **kwargs):  # what 0.3.0 sent for a tiny number
            texts, numbered, absent = batch(*args, **kwargs)
            texts[2] = texts[2][:-1] + ',"value":1e-05}'
            return texts, numbered, absent

        program._encoder.batch = with_exponent  # type: ignore[method-assign]
        with pytest.raises(EvaluationError, match="does not hold"):
            engine.assess(record, context)
        assert not program.usable
        assert not engine.usable
        engine.close()


class TestFaultsInsideDurableCalls:
    @pytest.mark.parametrize(
        "call",
        ["assert_facts", "start_action_for_state", "complete_and_start_action", "get_facts", "retract_facts"],
    )
    @pytest.mark.parametrize("fault", [MemoryError, OSError])
    def test_a_fault_is_an_evaluation_error_and_the_program_refuses_work(
        self, case, monkeypatch, call, fault
    ):
        from ketacds import Engine
        from ketacds.engine.backends.durable import program as durable_backend

        record, context = case
        engine = Engine()
        engine.assess(record, context)  # the session is open and warm
        program = engine.warm(context.route, context.jurisdiction)

        def broken(*_args):
            raise fault("injected")

        monkeypatch.setattr(durable_backend._dre, call, broken)
        with pytest.raises(EvaluationError, match=f"{fault.__name__}: injected"):
            engine.assess(record, context)
        monkeypatch.undo()

        assert not program.usable
        assert not engine.usable
        with pytest.raises(EvaluationError, match="unusable"):
            engine.assess(record, context)

    def test_keyboard_interrupt_is_itself_and_the_program_refuses_work(self, case, monkeypatch):
        from ketacds import Engine
        from ketacds.engine.backends.durable import program as durable_backend

        record, context = case
        engine = Engine()
        program = engine.warm(context.route, context.jurisdiction)

        def interrupted(*_args):
            raise KeyboardInterrupt

        monkeypatch.setattr(durable_backend._dre, "complete_and_start_action", interrupted)
        with pytest.raises(KeyboardInterrupt):
            engine.assess(record, context)

        assert not program.usable

    def test_a_bug_in_fact_building_or_assembly_is_an_evaluation_error(self, engine, case, monkeypatch):
        from ketacds.engine import api, assemble

        record, context = case

        def bug(*_args, **_kwargs):
            raise KeyError("no such fact")

        monkeypatch.setattr(api, "build_facts", bug)
        with pytest.raises(EvaluationError, match="building the facts failed: KeyError"):
            engine.assess(record, context)
        monkeypatch.undo()
        monkeypatch.setattr(assemble.Assembler, "assemble", bug)
        with pytest.raises(EvaluationError, match="assembling the Assessment failed: KeyError"):
            engine.assess(record, context)
