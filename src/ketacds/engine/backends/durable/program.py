"""The one module that touches durable_rules: compile the IR and drive the C engine.

The durable_rules :class:`~ketacds.engine.backend.Backend` (``__init__.py`` beside this
module) compiles each program into a :class:`DurableProgram`.

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
  ``delete_state``; after an engine error, or any exception escaping part way
  (``MemoryError``/``OSError`` from a durable call: ``EvaluationError``;
  ``KeyboardInterrupt``: itself), the program is marked broken and refuses further
  work rather than touch a corrupt session;
* **found here: deleting a session in which no action ever ran** frees an
  uninitialised pointer (``createStateNode`` never sets ``context.messages``) and
  crashes the process; a program's session is therefore opened with a warm-up fact
  that fires an internal rule once, which leaves those pointers cleared;
* **found here: durable_rules keeps pointers into the name and definition strings**
  given to ``create_ruleset``; a temporary name freed afterwards corrupts the heap at
  the next ``delete_state``, so both strings live as long as the program;
* **events and limits**: facts only, never events; at most 512 durable rules per
  program, 64 rules reading one fact type, and 254 properties per fact (durable
  refuses a wider fact, then crashes on the next call), all checked when compiling,
  with the limits and the counting shared with the ruleset linter
  (``capacity.py`` beside this module).

What crosses into the C engine is kept small, because its cost grows with every
fact, property and firing (measured in ``docs/performance.md``):

* facts are encoded per program, and **durable_rules never sees a field value**:
  every constant test a durable pattern needs (``weeks >= 6``, ``mg_per_kg > 0.75``,
  ``sex = 'female'``, ``present``) is decided in Python with the reference
  evaluator's exact semantics (``engine/match.py``: Decimal against the rule's
  constant) and sent as one boolean property named for the test
  (``capacity.py``, ``test_property``); value-set membership likewise, one
  boolean property per value set (``vs:ID``). So no number crosses into durable's
  JSON parser (measured on 0.3.0: a float written ``1e-05`` made durable silently drop
  every later fact of the batch, and crash with a lone one), and no rounding decides
  a comparison. Facts of a type no rule reads are not asserted at all (the reference
  evaluator and the absence markers still see every fact);
* **proof that every fact arrived**: after the agenda is drained, the ids in
  ``get_facts`` must include every fact asserted (inputs, marker, derived flags),
  or the assessment fails with ``EvaluationError`` and the program refuses work;
* the ``absent`` markers of one assessment are properties of one fact;
* one session per program is reused: creating one costs about 8 KB of memset per
  beta node (measured: half of ``assert_facts``), so after each assessment every
  fact asserted (inputs, marker, flags) is retracted instead, and the session is
  checked empty with ``get_facts``; if anything were left, the session is deleted
  and the next assessment opens a fresh one;
* activations are not parsed as JSON: durable echoes each matched fact's JSON
  verbatim and ours start with ``id``, so the fact ids are read from the message
  text (``activation.py``; anything unexpected falls back to ``json.loads``);
* the driver's own work per assessment is kept small (issue 18): the batch is written
  as JSON text directly, each field remembering the properties its recent values gave,
  with the absence markers decided in the same pass (``encoding.py``); the k-th fact of
  a type has the same durable id in every assessment, so activations recur, and what an
  activation means is remembered by its text (bounded memories of numbers and strings
  only, which the garbage collector does not track); the proof of arrival counts the
  facts stored before comparing ids.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import durable_rules_engine as _dre  # noqa: TID251 - the one sanctioned importer

from ketacds.engine.backends.durable import capacity
from ketacds.engine.backends.durable.activation import Alternative, Prepared, parse_activation
from ketacds.engine.backends.durable.capacity import (
    ABSENT,
    MAX_FACTS,
    SESSION,
    absence_key,
    absent_property,
    fnv1a_32,
    member_property,
    test_property,
)
from ketacds.engine.backends.durable.encoding import FactEncoder
from ketacds.engine.match import compile_test, passes
from ketacds.engine.raw import RawFiring, RawResult, flag_fact, flag_id
from ketacds.errors import EngineCapacityError, EvaluationError
from ketacds.ruleset.ir import Pattern, Ref, Rule, Test
from ketacds.ruleset.plan import alternatives

__all__ = [
    "ENGINE_NAME",
    "MAX_FACTS",
    "DurableProgram",
    "fnv1a_32",
]

ENGINE_NAME = "durable_rules 2.0.28 (ketacds direct driver)"

_SINK = "__sink"
_ABSENT_ID = "absent"
_ANCHOR = "__anchor"
_WARMUP_ID = "__warmup"
_ABSENT_ALIAS = "n0"

# Compact JSON, made once (json.dumps with options builds an encoder per call).
_encode_json = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
# get_facts returns '[{"id":"0","sid":"1",...},...]': each stored fact's JSON as asserted.
_STORED_ID = re.compile(r'\{"id":"([^"]*)"')
# Activation texts (each a few hundred bytes) remembered per program, before starting afresh.
_REMEMBERED = 4096


class DurableProgram:
    """The rules for one route and jurisdiction, compiled into one durable ruleset.

    Build once, then call :meth:`run` per assessment. Thread-safe: calls are serialised.
    """

    _counter = 0
    _counter_lock = threading.Lock()

    def __init__(self, name: str, rules: Sequence[Rule], strata: Mapping[str, int]) -> None:
        self.name = name
        self._alternatives: dict[str, Alternative] = {}
        self._absent: dict[str, Pattern] = {}
        self._flag_ids: dict[str, str] = {}
        # What a fact of each type is encoded with: the outcome of each constant test
        # durable reads (by property name, with its check), and the codes fields read by
        # value-set membership (both sent as boolean properties).
        self._fields: dict[str, dict[str, tuple[Test, Callable[[Mapping[str, Any]], bool]]]] = {}
        self._codes: dict[str, set[str]] = {}
        self._members: dict[str, set[str]] = {}  # per fact type: the value-set properties read
        self.definition = self._compile(rules, strata)
        self._alternative_list = tuple(self._alternatives.values())
        for number, alt in enumerate(self._alternative_list):
            alt.number = number
        capacity.refuse_beyond_limits(self.name, len(self.definition), rules)
        self._check_ids()
        self._encoder = FactEncoder(self._fields, self._codes, self._members, self._absent)
        self._flag_facts = {fid: flag_fact(flag) for flag, fid in self._flag_ids.items()}
        self._flag_json = {flag: self._flag_text(flag, fid) for flag, fid in self._flag_ids.items()}
        self._lock = threading.Lock()
        self._broken: str | None = None
        self._sessions = 0  # sessions opened so far (each gets the next number as its sid)
        self._sid: str | None = None  # the open session, reused by every assessment
        # '{"id":"N","sid":"S"': how fact number N of an assessment starts in the open session.
        self._heads: dict[int, str] = {}
        self._marker_head = ""  # the same for the `absent` marker
        # Each activation text seen (bounded), with what it means (see _prepare).
        self._activations: dict[str, Prepared] = {}
        self.session_resets = 0  # sessions found not empty after an assessment (expected: 0)
        with DurableProgram._counter_lock:
            DurableProgram._counter += 1
            # durable_rules keeps pointers into both strings (see the module notes).
            self._durable_name = f"{name}_{DurableProgram._counter}"
        self._definition_json = json.dumps(self.definition)
        self._handle: int | None = _dre.create_ruleset(self._durable_name, self._definition_json)

    # ----------------------------------------------------------------- compile

    def _compile(self, rules: Sequence[Rule], strata: Mapping[str, int]) -> dict[str, Any]:
        definition: dict[str, Any] = {}
        for rule in rules:
            for index, alt in enumerate(alternatives(rule)):
                durable_alias: dict[str | None, str] = {
                    p.alias: f"a_{p.alias}" for p in alt.positive if p.alias
                }
                patterns: list[dict[str, Any]] = []
                report: list[str] = []
                types: list[str] = []
                joins: list[tuple[str, str | None, tuple[Test, ...]]] = []
                for position, pattern in enumerate(alt.positive):
                    alias = durable_alias.get(pattern.alias) or f"p{position}"
                    report.append(alias)
                    types.append(pattern.fact)
                    patterns.append({alias: self._expression(pattern)})
                    refs = tuple(t for t in pattern.tests if isinstance(t.value, Ref))
                    joins.append((alias, pattern.alias, refs))
                if alt.absent:
                    # Every negated input pattern of the alternative is one property of the
                    # single `absent` fact (patterns of one rule must match different facts).
                    keys = sorted({absence_key(p) for p in alt.absent})
                    self._absent.update((absence_key(p), p) for p in alt.absent)
                    terms = [{"t": ABSENT}, *({absent_property(key): True} for key in keys)]
                    patterns.append({_ABSENT_ALIAS: {"$and": terms}})
                    types.append(ABSENT)
                if not patterns:
                    self._fields.setdefault("patient", {})
                    patterns.append({_ANCHOR: {"t": "patient"}})
                    types.append("patient")
                name = f"{rule.id}#{index}"
                definition[name] = {"all": patterns, "pri": strata[rule.id]}
                self._alternatives[name] = Alternative(
                    rule, index, report, len(patterns), types, alt.missing_flags, joins
                )
            for flag in rule.flags:
                self._flag_ids[flag] = flag_id(flag)
        definition[_SINK] = {"all": [{"a": {"$ex": {"t": 1}}}, {"b": {"t": "__never__"}}]}
        definition[SESSION] = {"all": [{"w": {"t": SESSION}}]}
        return definition

    def _expression(self, pattern: Pattern) -> dict[str, Any]:
        # Tests that compare with another pattern's fact are not given to durable_rules:
        # its compiler mishandles them beside constant tests (measured: a reference after
        # an `$or` is silently ignored, and after a plain comparison it crashes the
        # process). They are checked in Python when the rule fires (`_joins_hold`).
        # Every other test is decided in Python too, when the fact is encoded, and
        # durable reads only its outcome: one boolean property per distinct test
        # (`test_property`), so durable_rules never parses or compares a number.
        terms: list[dict[str, Any]] = [{"t": pattern.fact}]
        tests = self._fields.setdefault(pattern.fact, {})
        for test in pattern.tests:
            if isinstance(test.value, Ref):
                continue
            if test.op == "member":
                assert isinstance(test.value, tuple)
                self._codes.setdefault(pattern.fact, set()).add(test.field)
                members = self._members.setdefault(pattern.fact, set())
                members.update(member_property(test.field, str(vs)) for vs in test.value)
                options = [{member_property(test.field, str(vs)): True} for vs in test.value]
                terms.append(options[0] if len(options) == 1 else {"$or": options})
            else:
                name = test_property(test)
                tests.setdefault(name, (test, compile_test(test)))
                terms.append({name: True})
        return terms[0] if len(terms) == 1 else {"$and": terms}

    def test_checks(self, kind: str) -> dict[str, Callable[[Mapping[str, Any]], bool]]:
        """The boolean properties sent for facts of type ``kind``, each with the check that decides it."""
        return self._encoder.test_checks(kind)

    def _flag_text(self, flag: str, fid: str) -> tuple[str, str]:
        """A derived flag's fact as durable sees it, as JSON text split where the sid goes."""
        placeholder = "\x00sid\x00"
        encoded = self.encode(fid, flag_fact(flag), placeholder) or {
            "id": fid,
            "sid": placeholder,
            "t": "flag",
        }
        head, tail = _encode_json(encoded).split(json.dumps(placeholder), 1)
        return head + '"', '"' + tail

    def _check_ids(self) -> None:
        ids = [str(n) for n in range(MAX_FACTS)] + list(self._flag_ids.values()) + [_ABSENT_ID, _WARMUP_ID]
        hashes = {fnv1a_32(i) for i in ids}
        if len(hashes) != len(ids):  # pragma: no cover - a property of the names, checked in tests
            raise EngineCapacityError(f"{self.name}: fact ids collide in durable_rules' 32-bit hash")

    # -------------------------------------------------------------------- run

    @property
    def usable(self) -> bool:
        """False once an engine error (or :meth:`close`) has made this program refuse work."""
        return self._broken is None

    @property
    def absent_patterns(self) -> Mapping[str, Pattern]:
        """The negated input patterns, by absence key."""
        return self._absent

    def absent_keys(self, facts: Sequence[Mapping[str, Any]]) -> list[str]:
        """The keys of the negated patterns that no input fact matches, sorted."""
        return self._encoder.absent_keys(facts)

    def encode(self, durable_id: str, fact: Mapping[str, Any], sid: str) -> dict[str, Any] | None:
        """The fact as durable sees it (``None`` when no rule of this program reads its type)."""
        return self._encoder.encode(durable_id, fact, sid)

    def run(
        self, facts: Sequence[Mapping[str, Any]], *, action_hook: Callable[[str], None] | None = None
    ) -> RawResult:
        """Assert ``facts`` into the (empty) session, fire every rule, and return the firings.

        Args:
            facts: input facts with unique ``id``s (see ``engine/facts.py``).
            action_hook: called with the rule id at every firing (for tests that
                make an action fail; never used in production).

        Raises:
            EvaluationError: an action failed (naming the rule), the engine reported an
                error or a dropped fact, a fact asserted is not in the session, a call
                into durable_rules raised, or the program is broken by an earlier error.
                After a fact missing from the session, a durable_rules error or any
                exception part way, the program refuses further work (:attr:`usable`
                is false); after an action's failure it stays usable (the agenda was
                drained and the session emptied).
            KeyboardInterrupt: raised inside a durable_rules call (re-raised as itself,
                and the program is left unusable, as for any failure part way).
        """
        with self._lock:
            if self._broken is not None:
                raise EvaluationError(f"engine unusable after an earlier failure: {self._broken}")
            if len(facts) > MAX_FACTS:
                raise EvaluationError(f"{len(facts)} facts exceed the {MAX_FACTS} one assessment may assert")
            try:
                return self._run(facts, action_hook)
            except EvaluationError:
                raise
            except _dre.error as error:
                self._broken = str(error)
                raise EvaluationError(f"durable_rules failed: {error}") from error
            except BaseException as error:
                # Anything else that escapes part way (MemoryError or OSError from inside a
                # durable_rules call, KeyboardInterrupt, a bug of ours) may leave the session
                # with pending actions or half a batch: never touch it again (deleting it
                # could crash the process). Interrupts and exits keep their own type.
                self._broken = f"{type(error).__name__} during an assessment"
                if not isinstance(error, Exception):
                    raise
                raise EvaluationError(
                    f"durable_rules call failed: {type(error).__name__}: {error}"
                ) from error

    def _run(
        self, facts: Sequence[Mapping[str, Any]], action_hook: Callable[[str], None] | None
    ) -> RawResult:
        sid = self._sid if self._sid is not None else self._open_session()
        # The batch as JSON text, made directly (the same bytes as encoding the dicts);
        # `at` holds the facts asserted by durable number.
        batch = self._encoder.batch(facts, self._heads, self._head) or self._encoder.batch(
            facts, self._heads, self._head, by_position=True
        )
        assert batch is not None
        parts, at, absent = batch
        if absent:
            parts.append(self._marker_head + self._encoder.absent_text(absent) + "}")
        if not parts:
            return RawResult(())  # nothing any rule reads: nothing can fire
        payload = "[" + ",".join(parts) + "]"
        code, state = _dre.assert_facts(self._handle, payload)
        firings: set[tuple[str, tuple[str, ...]]] = set()
        derived: set[str] = set()
        failure: tuple[str, BaseException] | None = None
        if code != 0:
            failure = (
                "(assertion)",
                EvaluationError(f"durable_rules return code {code} on assertion: a fact was dropped"),
            )
        result = _dre.start_action_for_state(self._handle, state)
        message = result[1] if result else None
        prepared = self._activations
        alternative_list = self._alternative_list
        while message is not None:
            if failure is None:
                # One firing, inline (this loop runs about 20 times per assessment).
                try:
                    index, guarded, one, refs, binding = prepared.get(message) or self._prepare(message)
                    alt = alternative_list[index]
                    if action_hook is not None:
                        action_hook(alt.rule_id)
                    if not guarded or self._holds(alt, binding, at, derived):
                        if one is None:
                            ids = tuple(
                                sorted({ref if isinstance(ref, str) else at[ref]["id"] for ref in refs})
                            )
                        else:
                            ids = (one if isinstance(one, str) else at[one]["id"],)
                        firings.add((alt.rule_id, ids))
                        if alt.flags:
                            self._derive(alt, sid, derived)
                except Exception as action_error:
                    failure = (self._rule_of(message), action_error)
            message = _dre.complete_and_start_action(self._handle, state)
        # The agenda is drained. Proof that durable holds every fact we asserted (it has
        # been seen to stop reading a batch part way and still return success):
        # nothing is ever retracted during an assessment, so each must be stored now.
        missing = self._missing(sid, at, bool(absent), derived)
        self._clear_session(sid, payload, derived)  # the agenda is drained: safe to clean
        if missing and failure is None:
            # durable_rules misread what we sent: its state cannot be trusted any more.
            self._broken = f"durable_rules dropped {len(missing)} asserted facts"
            failure = (
                "(assertion)",
                EvaluationError(
                    f"durable_rules does not hold {len(missing)} of the {len(parts) + len(derived)} facts "
                    f"asserted (durable ids {', '.join(missing[:5])}): no result is given"
                ),
            )
        if failure is not None:
            rule_id, cause = failure
            if isinstance(cause, EvaluationError):
                raise cause
            raise EvaluationError(f"{type(cause).__name__}: {cause}", rule_id=rule_id) from cause
        return RawResult(tuple([RawFiring(rule_id, ids) for rule_id, ids in sorted(firings)]))

    def _head(self, number: int) -> str:
        """How fact number ``number`` starts in the open session (``{"id":"N","sid":"S"``), remembered."""
        assert self._sid is not None
        head = '{"id":' + _encode_json(self._durable_id(number)) + ',"sid":' + _encode_json(self._sid)
        self._heads[number] = head
        return head

    def _derive(self, alt: Alternative, sid: str, derived: set[str]) -> None:
        """Assert the flags ``alt``'s rule derives that are not derived yet."""
        for flag in alt.flags:
            if flag not in derived:
                derived.add(flag)
                head, tail = self._flag_json[flag]
                code, _ = _dre.assert_fact(self._handle, head + sid + tail)
                if code != 0:
                    raise EvaluationError(
                        f"durable_rules return code {code} asserting flag {flag!r}", rule_id=alt.rule_id
                    )

    def _missing(self, sid: str, asserted: Mapping[int, Any], marker: bool, derived: set[str]) -> list[str]:
        """The durable ids of the facts asserted in this assessment that the session does not hold."""
        stored = _dre.get_facts(self._handle, sid)
        expected = len(asserted) + marker + len(derived)
        # The session was empty before this assessment (checked after every assessment and
        # when it is opened), so it holds only facts asserted now, each under a distinct id:
        # as many stored as asserted means all of them are.
        if stored.count('{"id":"') == expected:
            return []
        held = set(_STORED_ID.findall(stored))
        ids = [self._durable_id(number) for number in asserted]
        if marker:
            ids.append(_ABSENT_ID)
        ids.extend(self._flag_ids[flag] for flag in sorted(derived))
        return [fid for fid in ids if fid not in held]

    def _open_session(self) -> str:
        """Open the session assessments reuse, with one warm-up firing (see the module notes)."""
        self._sessions += 1
        sid = str(self._sessions)
        warmup = _encode_json({"id": _WARMUP_ID, "sid": sid, "t": SESSION})
        code, state = _dre.assert_fact(self._handle, warmup)
        result = _dre.start_action_for_state(self._handle, state)
        fired = 0
        while result is not None:
            fired += 1
            result = _dre.complete_and_start_action(self._handle, state)
        _dre.retract_fact(self._handle, warmup)
        if (code, fired) != (0, 1) or _dre.get_facts(self._handle, sid) != "[]":  # pragma: no cover
            # durable_rules changed under us
            self._broken = f"the warm-up of a new session fired {fired} actions (code {code})"
            raise EvaluationError(f"durable_rules failed: {self._broken}")
        self._sid = sid
        self._heads = {}
        self._marker_head = '{"id":' + _encode_json(_ABSENT_ID) + ',"sid":' + _encode_json(sid) + ',"t":'
        self._marker_head += _encode_json(ABSENT)
        return sid

    def _clear_session(self, sid: str, payload: str, derived: set[str]) -> None:
        """Retract everything one assessment asserted, so the session is empty again (one call)."""
        if derived:
            flags = ",".join(self._flag_json[flag][0] + sid + self._flag_json[flag][1] for flag in derived)
            payload = payload[:-1] + "," + flags + "]"
        _dre.retract_facts(self._handle, payload)
        if _dre.get_facts(self._handle, sid) != "[]":
            # Retraction missed something (it fails silently on content it cannot find):
            # never carry it into the next patient. Deleting is safe: the agenda is drained
            # and an action has run in this session (the warm-up).
            _dre.delete_state(self._handle, sid)
            self._sid = None
            self.session_resets += 1

    def live_sessions(self) -> dict[str, int]:
        """Each live durable_rules session of this program, with how many facts it holds.

        Between assessments there is at most one (the reused session) and it holds
        nothing; property tests check this after every step.
        """
        with self._lock:
            if self._handle is None:
                return {}
            live: dict[str, int] = {}
            for number in range(1, self._sessions + 1):
                sid = str(number)
                with contextlib.suppress(_dre.error):  # error 309: the session was deleted
                    live[sid] = len(json.loads(_dre.get_facts(self._handle, sid)))
            return live

    @staticmethod
    def _durable_id(number: int) -> str:
        """The id a fact is asserted under: short, and checked collision-free up to MAX_FACTS."""
        return str(number)

    def _parse(self, message: str) -> tuple[Alternative, dict[str, str]]:
        """The alternative an activation is for, and the durable fact id bound to each alias."""
        return parse_activation(message, self._alternatives)

    def _prepare(self, message: str) -> Prepared:
        """What an activation means, remembered by its text.

        That is the alternative (by index); whether it has guards to check when firing
        (flags that must not be derived, tests between its facts); the facts it reports
        (each a fact's durable number, or a flag's id; ``one`` when there is exactly one)
        and, for joins, the fact bound to each durable alias. The text names the session
        and each fact's number and properties, so the same text always means the same
        thing. An entry holds only numbers, strings and tuples and dicts of them, so the
        garbage collector stops tracking it: a memory that grows does not make Python's
        full collections more frequent (measured: keeping objects here did).
        """
        alt, bound = self._parse(message)
        refs = {alias: self._ref(bound[alias]) for alias in alt.report_aliases}
        reported = tuple(refs.values())
        one = reported[0] if len(reported) == 1 else None
        guarded = bool(alt.missing_flags or alt.joins)
        entry = (alt.number, guarded, one, reported, refs if alt.joins else {})
        if len(self._activations) >= _REMEMBERED:
            self._activations.clear()
        self._activations[message] = entry
        return entry

    def _ref(self, durable_id: str) -> int | str:
        """A fact bound in an activation: its durable number, or a flag's id."""
        if durable_id in self._flag_facts:
            return durable_id
        number = int(durable_id)
        if self._durable_id(number) != durable_id:
            raise KeyError(durable_id)
        return number

    def _rule_of(self, message: str) -> str:
        try:
            return self._parse(message)[0].rule_id
        except Exception:
            return "(unknown)"

    def _holds(
        self,
        alt: Alternative,
        binding: Mapping[str, int | str],
        at: Mapping[int, Mapping[str, Any]],
        derived: set[str],
    ) -> bool:
        """Whether an activation of ``alt`` passes its guards.

        That is: no flag it needs absent has been derived, and the tests that compare one
        matched fact with another hold (checked on our own facts).
        """
        if alt.missing_flags and any(flag in derived for flag in alt.missing_flags):
            return False
        if not alt.joins:
            return True
        flags = self._flag_facts
        bound = {alias: flags[ref] if isinstance(ref, str) else at[ref] for alias, ref in binding.items()}
        env = {rule_alias: bound[durable] for rule_alias, durable in alt.rule_aliases.items()}
        return all(passes(test, bound[durable], env) for durable, _, tests in alt.joins for test in tests)

    def close(self) -> None:
        """Free the session and the C ruleset. The program cannot be used afterwards."""
        with self._lock:
            if self._handle is not None:
                # delete_ruleset does not free sessions. Ours is empty, drained and warmed up,
                # so deleting it is safe, unless an engine error left it in an unknown state:
                # then it is left alone (a leak is better than a crash).
                if self._sid is not None and self._broken is None:
                    _dre.delete_state(self._handle, self._sid)
                    self._sid = None
                _dre.delete_ruleset(self._handle)
                self._handle = None
                self._broken = "closed"
