"""A state machine over the Engine: assess, reload the rules, pin the digest, assess from
several threads. However the steps interleave, results match a fresh engine and no
durable_rules session is left alive."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ketacds import DigestMismatchError, Engine, load_ruleset
from strategies import contexts, records

_RULESET = load_ruleset()
_ORACLE = Engine.from_ruleset(_RULESET)


class EngineMachine(RuleBasedStateMachine):
    """Drives one long-lived Engine through random steps."""

    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine.from_ruleset(_RULESET)

    @rule(record=records, context=contexts)
    def assess(self, record, context):
        """An assessment equals the oracle's (a separate engine)."""
        assert _ORACLE.assess(record, context) == self.engine.assess(record, context)

    @rule()
    def reload_rules(self):
        """Closing and replacing the engine (a rules reload) leaves nothing behind."""
        self.engine.close()
        self.engine = Engine.from_ruleset(load_ruleset())

    @rule(good=st.booleans())
    def pin_digest(self, good):
        """Pinning the current digest works; any other digest is refused."""
        digest = self.engine.digest if good else "0" * 64
        try:
            pinned = Engine.from_ruleset(_RULESET, expected_digest=digest)
        except DigestMismatchError:
            assert not good
        else:
            assert good
            pinned.close()

    @rule(cases=st.lists(st.tuples(records, contexts), min_size=2, max_size=6))
    def assess_concurrently(self, cases):
        """Assessments from four threads equal the sequential ones."""
        expected = [_ORACLE.assess(r, c) for r, c in cases]
        with ThreadPoolExecutor(max_workers=4) as pool:
            assert expected == list(pool.map(lambda rc: self.engine.assess(*rc), cases))

    @invariant()
    def sessions_are_empty(self):
        """Between steps, each program has at most one durable_rules session, holding no facts."""
        for program in self.engine._programs.values():
            live = program.live_sessions()
            assert len(live) <= 1
            assert all(held == 0 for held in live.values())

    def teardown(self) -> None:
        self.engine.close()


EngineMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=8, deadline=None)
TestEngineMachine = EngineMachine.TestCase
