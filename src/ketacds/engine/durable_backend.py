"""The one module that touches durable_rules: compile the IR and drive the C engine.

We use durable_rules' C extension (``durable_rules_engine``) through a thin driver
of our own, not its ``Host``: the Host's timer threads race with synchronous calls
(silent empty results, error 307, segfaults) and it swallows exceptions raised in
actions. How each measured hazard (../shared/durable-rules-notes.md) is handled:

* **exceptions in actions**: our actions run in our own loop, not inside durable;
  any exception is re-raised as :class:`~ketacds.errors.EvaluationError` naming the
  rule, after the agenda is drained, so nothing is left pending;
* **background dispatcher**: there is none; every call is made from the caller's
  thread, under one lock per program, so calls are serialised;
* **order-dependent** ``none()``: never emitted. ``not`` over input facts becomes an
  ``absent`` marker fact computed before assertion; ``not`` over a derived flag is
  a guard checked at firing time, sound because durable runs lower ``pri`` first and
  the flag's producers sit in lower strata (``ruleset/plan.py``);
* **32-bit session and fact hashes**: one live session per program at a time; facts
  carry short ids whose FNV-1a hashes are checked distinct when the program is
  built, so no fact can be dropped as a "duplicate"; a duplicate report from the
  engine (return code 2) is still raised, never ignored;
* **facts no rule reads**: a sink rule stores every fact and never fires, so a batch
  is always fully handled in the caller's thread;
* **deleting a session with pending actions**: the agenda is always drained before
  ``delete_state``; after an engine error the program is marked broken and refuses
  further work rather than touch a corrupt session;
* **events and limits**: facts only, never events; at most 512 durable rules per
  program and 64 rules reading one fact type, checked when compiling.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import durable_rules_engine as _dre  # noqa: TID251 - the one sanctioned importer

from ketacds.engine.match import matches
from ketacds.engine.raw import RawFiring, RawResult, flag_fact, flag_id
from ketacds.errors import EngineCapacityError, EvaluationError
from ketacds.ruleset.ir import Pattern, Ref, Rule, Test
from ketacds.ruleset.plan import absence_key, alternatives, flag_name

__all__ = [
    "ENGINE_NAME",
    "MAX_FACTS",
    "MAX_RULES_PER_FACT_TYPE",
    "MAX_RULES_PER_PROGRAM",
    "DurableProgram",
    "fnv1a_32",
]

ENGINE_NAME = "durable_rules 2.0.28 (ketacds direct driver)"

#: durable_rules' measured hard limits, kept with a margin.
MAX_RULES_PER_PROGRAM = 500
MAX_RULES_PER_FACT_TYPE = 60
#: Facts one assessment may assert; their ids are checked collision-free up to here.
MAX_FACTS = 4096

_SINK = "__sink"
_ABSENT = "absent"
_ANCHOR = "__anchor"


def fnv1a_32(text: str) -> int:
    """The 32-bit hash durable_rules identifies sessions and facts by (``fnv1Hash32``)."""
    value = 0x811C9DC5
    for byte in text.encode("utf-8"):
        value ^= byte if byte < 128 else byte - 256 & 0xFFFFFFFF
        value = (value * 16777619) & 0xFFFFFFFF
    return value


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class _Alternative:
    """A compiled alternative: which durable aliases are ours to report, and the guards."""

    def __init__(self, rule: Rule, index: int, aliases: dict[str, str], missing_flags: Sequence[str]) -> None:
        self.rule = rule
        self.index = index
        self.report_aliases = aliases  # durable alias -> fact kind ("input" or "flag")
        self.missing_flags = tuple(missing_flags)


class DurableProgram:
    """The rules for one route and jurisdiction, compiled into one durable ruleset.

    Build once, then call :meth:`run` per assessment. Thread-safe: calls are serialised.
    """

    _counter = 0
    _counter_lock = threading.Lock()

    def __init__(self, name: str, rules: Sequence[Rule], strata: Mapping[str, int]) -> None:
        self.name = name
        self._alternatives: dict[str, _Alternative] = {}
        self._absent: dict[str, Pattern] = {}
        self._flag_ids: dict[str, str] = {}
        self.definition = self._compile(rules, strata)
        self._check_capacity(rules)
        self._check_ids()
        self._lock = threading.Lock()
        self._broken: str | None = None
        self._sessions = 0
        with DurableProgram._counter_lock:
            DurableProgram._counter += 1
            unique = f"{name}_{DurableProgram._counter}"
        self._handle: int | None = _dre.create_ruleset(unique, json.dumps(self.definition))

    # ----------------------------------------------------------------- compile

    def _compile(self, rules: Sequence[Rule], strata: Mapping[str, int]) -> dict[str, Any]:
        definition: dict[str, Any] = {}
        for rule in rules:
            for index, alt in enumerate(alternatives(rule)):
                aliases: dict[str, str] = {}
                durable_alias: dict[str | None, str] = {
                    p.alias: f"a_{p.alias}" for p in alt.positive if p.alias
                }
                patterns = []
                for position, pattern in enumerate(alt.positive):
                    alias = durable_alias.get(pattern.alias) or f"p{position}"
                    aliases[alias] = "flag" if flag_name(pattern) else "input"
                    patterns.append({alias: self._expression(pattern, durable_alias)})
                for position, pattern in enumerate(alt.absent):
                    key = absence_key(pattern)
                    self._absent[key] = pattern
                    patterns.append({f"n{position}": {"$and": [{"t": _ABSENT}, {"key": key}]}})
                if not patterns:
                    patterns.append({_ANCHOR: {"t": "patient"}})
                name = f"{rule.id}#{index}"
                definition[name] = {"all": patterns, "pri": strata[rule.id]}
                self._alternatives[name] = _Alternative(rule, index, aliases, alt.missing_flags)
            for flag in rule.flags:
                self._flag_ids[flag] = flag_id(flag)
        definition[_SINK] = {"all": [{"a": {"$ex": {"t": 1}}}, {"b": {"t": "__never__"}}]}
        return definition

    def _expression(self, pattern: Pattern, aliases: Mapping[str | None, str]) -> dict[str, Any]:
        terms: list[dict[str, Any]] = [{"t": pattern.fact}]
        # durable_rules 2.0.28 silently drops a test against another fact ({ref: ...}) that
        # follows an $or in the same $and (measured: `response in [none, partial]` then
        # `drug ne first.drug` matched two trials of the same drug), so references go first.
        ordered = sorted(pattern.tests, key=lambda test: not isinstance(test.value, Ref))
        terms.extend(self._test(test, aliases) for test in ordered)
        return terms[0] if len(terms) == 1 else {"$and": terms}

    @staticmethod
    def _test(test: Test, aliases: Mapping[str | None, str]) -> dict[str, Any]:
        field = test.field
        if test.op == "present":
            return {"$ex" if test.value else "$nex": {field: 1}}
        if test.op == "member":
            assert isinstance(test.value, tuple)
            members = [{"$iany": {field: {"$i": vs}}} for vs in test.value]
            return members[0] if len(members) == 1 else {"$or": members}
        if test.op == "in":
            assert isinstance(test.value, tuple)
            options = [{field: _number(v)} for v in test.value]
            return options[0] if len(options) == 1 else {"$or": options}
        value: Any
        if isinstance(test.value, Ref):
            value = {aliases[test.value.alias]: test.value.field}
        else:
            value = _number(test.value)
        if test.op == "eq":
            return {field: value}
        op = {"ne": "$neq", "gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte"}[test.op]
        return {op: {field: value}}

    def _check_capacity(self, rules: Sequence[Rule]) -> None:
        count = len(self.definition)
        if count > MAX_RULES_PER_PROGRAM:
            raise EngineCapacityError(
                f"{self.name}: {count} durable rules exceed durable_rules' limit of about 512 "
                f"per ruleset (ketacds keeps {MAX_RULES_PER_PROGRAM}); narrow rule scopes"
            )
        readers: dict[str, set[str]] = {}
        for name, alt in self._alternatives.items():
            for pattern in alternatives(alt.rule)[alt.index].positive:
                readers.setdefault(pattern.fact, set()).add(name)
        for fact, names in sorted(readers.items()):
            if len(names) > MAX_RULES_PER_FACT_TYPE:
                raise EngineCapacityError(
                    f"{self.name}: {len(names)} durable rules read {fact!r} facts; durable_rules "
                    f"allows 64 rules to match one fact (ketacds keeps {MAX_RULES_PER_FACT_TYPE})"
                )

    def _check_ids(self) -> None:
        ids = [str(n) for n in range(MAX_FACTS)] + list(self._flag_ids.values())
        ids += [f"absent:{key}" for key in self._absent]
        hashes = {fnv1a_32(i) for i in ids}
        if len(hashes) != len(ids):  # pragma: no cover - a property of the names, checked in tests
            raise EngineCapacityError(f"{self.name}: fact ids collide in durable_rules' 32-bit hash")

    # -------------------------------------------------------------------- run

    @property
    def absent_patterns(self) -> Mapping[str, Pattern]:
        """The negated input patterns, by absence key."""
        return self._absent

    def absence_markers(self, facts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """An ``absent`` fact for each negated pattern that no input fact matches."""
        markers = []
        for key, pattern in sorted(self._absent.items()):
            if not any(matches(pattern, fact, {}) for fact in facts):
                markers.append({"t": _ABSENT, "id": f"absent:{key}", "key": key})
        return markers

    def run(
        self, facts: Sequence[Mapping[str, Any]], *, action_hook: Callable[[str], None] | None = None
    ) -> RawResult:
        """Assert ``facts`` into a fresh session, fire every rule, and return the firings.

        Args:
            facts: input facts with unique ``id``s (see ``engine/facts.py``).
            action_hook: called with the rule id at every firing (for tests that
                make an action fail; never used in production).

        Raises:
            EvaluationError: an action failed (naming the rule), the engine reported an
                error or a dropped fact, or the program is broken by an earlier error.
        """
        with self._lock:
            if self._broken is not None:
                raise EvaluationError(f"engine unusable after an earlier failure: {self._broken}")
            if len(facts) + len(self._absent) > MAX_FACTS:
                raise EvaluationError(f"{len(facts)} facts exceed the {MAX_FACTS} one assessment may assert")
            try:
                return self._run(facts, action_hook)
            except EvaluationError:
                raise
            except _dre.error as error:
                self._broken = str(error)
                raise EvaluationError(f"durable_rules failed: {error}") from error

    def _run(
        self, facts: Sequence[Mapping[str, Any]], action_hook: Callable[[str], None] | None
    ) -> RawResult:
        self._sessions += 1
        sid = str(self._sessions)
        public: dict[str, str] = {}
        batch = []
        for number, fact in enumerate([*facts, *self.absence_markers(facts)]):
            durable_id = self._durable_id(number)
            public[durable_id] = fact["id"]
            batch.append({**fact, "id": durable_id, "sid": sid})
        public.update({flag: flag for flag in self._flag_ids.values()})
        code, state = _dre.assert_facts(self._handle, json.dumps(batch))
        firings: set[RawFiring] = set()
        derived: set[str] = set()
        failure: tuple[str, BaseException] | None = None
        if code != 0:
            failure = (
                "(assertion)",
                EvaluationError(f"durable_rules return code {code} on assertion: a fact was dropped"),
            )
        result = _dre.start_action_for_state(self._handle, state)
        message = result[1] if result else None
        while message is not None:
            if failure is None:
                try:
                    self._fire(json.loads(message), sid, public, firings, derived, action_hook)
                except Exception as action_error:
                    failure = (self._rule_of(message), action_error)
            message = _dre.complete_and_start_action(self._handle, state)
        _dre.delete_state(self._handle, sid)  # the agenda is drained: safe to delete
        if failure is not None:
            rule_id, cause = failure
            if isinstance(cause, EvaluationError):
                raise cause
            raise EvaluationError(f"{type(cause).__name__}: {cause}", rule_id=rule_id) from cause
        return RawResult.of(firings)

    @staticmethod
    def _durable_id(number: int) -> str:
        """The id a fact is asserted under: short, and checked collision-free up to MAX_FACTS."""
        return str(number)

    def _rule_of(self, message: str) -> str:
        try:
            name = next(iter(json.loads(message)))
            return self._alternatives[name].rule.id
        except Exception:
            return "(unknown)"

    def _fire(
        self,
        message: dict[str, Any],
        sid: str,
        public: Mapping[str, str],
        firings: set[RawFiring],
        derived: set[str],
        action_hook: Callable[[str], None] | None,
    ) -> None:
        ((name, bound),) = message.items()
        alt = self._alternatives[name]
        if action_hook is not None:
            action_hook(alt.rule.id)
        if any(flag in derived for flag in alt.missing_flags):
            return  # a flag this alternative needs absent has been derived: it does not hold
        ids = sorted(public[bound[alias]["id"]] for alias in alt.report_aliases)
        firings.add(RawFiring(alt.rule.id, tuple(sorted(set(ids)))))
        for flag in alt.rule.flags:
            if flag not in derived:
                derived.add(flag)
                fact = {**flag_fact(flag), "sid": sid}
                code, _ = _dre.assert_fact(self._handle, json.dumps(fact))
                if code != 0:
                    raise EvaluationError(
                        f"durable_rules return code {code} asserting flag {flag!r}", rule_id=alt.rule.id
                    )

    def close(self) -> None:
        """Free the C ruleset. The program cannot be used afterwards."""
        with self._lock:
            if self._handle is not None:
                _dre.delete_ruleset(self._handle)
                self._handle = None
                self._broken = "closed"
