"""The compiled backend: each program's rules as one generated Python function.

At compile time the condition trees of one route × jurisdiction program are turned into
the source of one function, ``run(facts)``, which is ``compile()``d and ``exec``d once.
It computes exactly what the reference evaluator (:mod:`ketacds.engine.reference`)
computes, in the same way, without interpreting the trees at every assessment:

* a pattern is a ``for`` loop over the facts of its type, its tests ``if`` statements
  (with the same comparisons as :mod:`ketacds.engine.match`), and the patterns of one
  conjunction bind distinct facts (``is`` checks against the facts bound so far);
* ``all`` nests the loops; ``any`` repeats what follows it once per alternative;
* ``not`` calls a nested function that says whether any choice of facts satisfies the
  negated condition (uncorrelated, decided over all facts, as the reference does);
* the strata run in order, each to a fixed point: a rule that reads flags runs again
  after a pass that derived a new flag; a rule that reads none runs once.

The generated source holds only what the rules say: field names, fact types, rule ids
and flag names as Python string literals (``repr`` of a ``str``), and every other
constant (numbers, tuples of values) as a name bound to the IR's own object. No text of a
patient record ever becomes code; records are data the function loops over.

``Engine(backend="compiled")`` runs it; its Assessments name
:data:`COMPILED_ENGINE_NAME` in their provenance (and are otherwise the durable backend's).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from functools import partial
from typing import Any

from ketacds.engine.backend import CapacityProblem
from ketacds.engine.match import _EXACT_NUMBERS, _MISSING, _NUMERIC_OPS, _compare
from ketacds.engine.raw import RawFiring, RawResult, flag_fact
from ketacds.errors import EvaluationError, InputError
from ketacds.models.facts import FLAG
from ketacds.models.trusted import trusted_constructor
from ketacds.ruleset.ir import All, AnyOf, Condition, Not, Pattern, Ref, Rule, Test

__all__ = ["COMPILED_ENGINE_NAME", "CompiledBackend", "CompiledProgram", "generate_source"]

_Pair = tuple[str, tuple[str, ...]]

#: The engine named on an Assessment the compiled backend produced.
COMPILED_ENGINE_NAME = "ketacds compiled rules (generated Python)"

# A RawResult from the sorted tuple of RawFirings built here, unvalidated; a RawFiring
# from the (rule id, fact ids) pair it equals (what RawFiring._make does, without a Python call).
_new_raw_result = trusted_constructor(RawResult)
_new_raw_firing = partial(tuple.__new__, RawFiring)

_PY_OPS = {"eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class _Everything:
    """The set of strings a guard reads when a fact holds something odd in the field: it holds all."""

    def __contains__(self, item: object) -> bool:
        return True

    def isdisjoint(self, other: object) -> bool:
        return False


_EVERYTHING = _Everything()


def _unbound(alias: str) -> None:
    """A reference to a pattern not bound where it is read (the reference raises KeyError too)."""
    raise KeyError(alias)


class _Source:
    """The lines and the constants of one generated module."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        self._counter = 0

    def fresh(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    def emit(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def literal(self, value: Any) -> str:
        """Python text for an IR constant: a literal for a str or an int, else a bound name."""
        if type(value) is str or (type(value) is int):
            return repr(value)
        name = self.fresh("K")
        self.constants[name] = value
        return name


class _Shared:
    """What the writers of one program share: the helpers, and the names of ``run``'s locals."""

    def __init__(self, source: _Source) -> None:
        #: The negation helpers: functions of the generated module, beside ``run``.
        self.helpers = _Source()
        self.helpers.constants, self.helpers.fresh = source.constants, source.fresh  # type: ignore[method-assign]
        #: Fact type -> the local list of the facts of that type.
        self.lists: dict[str, str] = {FLAG: "flag_list"}
        #: Field -> the local set of the strings that field lists over the input facts (see
        #: :meth:`_RuleWriter.guard`).
        self.seen: dict[str, str] = {}
        #: ``repr`` of a negated condition -> its helper's name, its call and the locals it reads
        #: (one helper per distinct condition, so one answer per run for every rule asking).
        self.negations: dict[str, tuple[str, str, frozenset[str]]] = {}
        #: The locals of ``run`` that hold the answer of a negation on the input facts
        #: (``None`` until it is first read).
        self.decided: list[str] = []

    def body(self) -> _Source:
        """An empty piece of source in the program's namespace (its constants, its counter)."""
        part = _Source()
        part.constants, part.fresh = self.helpers.constants, self.helpers.fresh  # type: ignore[method-assign]
        return part


class _RuleWriter:
    """Writes the loops of one rule into ``source``."""

    def __init__(self, source: _Source, shared: _Shared, rule: Rule, *, in_run: bool = True) -> None:
        self.source = source
        self.shared = shared
        self.rule = rule
        #: Whether the code is written into ``run`` itself (else into a negation helper).
        self.in_run = in_run
        #: The locals of ``run`` the written code reads (a negation helper takes them as arguments).
        self.used: set[str] = set()

    def list_of(self, fact_type: str) -> str:
        lists = self.shared.lists
        name = lists.get(fact_type)
        if name is None:
            name = lists[fact_type] = f"L{len(lists)}"
        self.used.add(name)
        return name

    def condition(
        self, cond: Condition, env: dict[str, str], indent: int, then: Callable[[dict[str, str], int], None]
    ) -> None:
        """Write the code that runs ``then`` once for every binding under which ``cond`` holds."""
        if isinstance(cond, Pattern):
            self.pattern(cond, env, indent, then)
        elif isinstance(cond, All):
            self.conjunction(cond.items, env, indent, then)
        elif isinstance(cond, AnyOf):
            for item in cond.items:
                self.condition(item, env, indent, then)
        elif isinstance(cond, Not):
            helper, call = self.negation(cond.item)
            if _reads_flags(cond.item):
                decided = call  # flags grow during a stratum: decided where it is read
            elif self.in_run:  # the input facts never change: decided once per run, on first reading
                local = f"decided{helper}"
                if local not in self.shared.decided:
                    self.shared.decided.append(local)
                decided = f"({local} if {local} is not None else ({local} := {call}))"
            else:  # the same in a helper, in a dict that ``run`` passes it
                key = repr(helper)
                decided = f"(absent[{key}] if {key} in absent else absent.setdefault({key}, {call}))"
                self.used.add("absent")
            self.source.emit(indent, f"if not {decided}:")
            then(env, indent + 1)
        else:  # pragma: no cover - the IR has no other kind
            raise TypeError(f"unknown condition {cond!r}")

    def conjunction(
        self,
        items: Sequence[Condition],
        env: dict[str, str],
        indent: int,
        then: Callable[[dict[str, str], int], None],
    ) -> None:
        if not items:
            then(env, indent)
            return
        self.condition(
            items[0], env, indent, lambda bound, inner: self.conjunction(items[1:], bound, inner, then)
        )

    def negation(self, item: Condition) -> tuple[str, str]:
        """Write a helper function: does any choice of facts satisfy ``item``?

        The helper is a function of the generated module (defined once, when the program
        is compiled, not at every run), and takes the locals of ``run`` it reads as
        arguments. Rules negating the same condition share one. Returns its name and the
        expression that calls it.
        """
        shared = self.shared
        key = repr(item)  # not the IR's equality: Test(..., 1) == Test(..., True), yet they differ
        known = shared.negations.get(key)
        if known is None:
            name = shared.helpers.fresh("_not")
            body = shared.body()
            writer = _RuleWriter(body, shared, self.rule, in_run=False)
            writer.condition(item, {}, 1, lambda _env, inner: body.emit(inner, "return True"))
            body.emit(1, "return False")
            arguments = ", ".join(sorted(writer.used))
            shared.helpers.emit(0, f"def {name}({arguments}):")
            shared.helpers.lines.extend(body.lines)
            known = shared.negations[key] = (name, f"{name}({arguments})", frozenset(writer.used))
        name, call, used = known
        self.used |= used
        return name, call

    def pattern(
        self, pattern: Pattern, env: dict[str, str], indent: int, then: Callable[[dict[str, str], int], None]
    ) -> None:
        src = self.source
        guard = self.guard(pattern)
        if guard is not None:
            src.emit(indent, f"if {guard}:")
            indent += 1
        var = src.fresh("f")
        src.emit(indent, f"for {var} in {self.list_of(pattern.fact)}:")
        bound = list(env.values())
        if bound:
            src.emit(indent + 1, f"if {' or '.join(f'{var} is {b}' for b in bound)}:")
            src.emit(indent + 2, "continue")
        for test in pattern.tests:
            src.emit(indent + 1, f"if not ({self.test(test, var, env)}):")
            src.emit(indent + 2, "continue")
        key = pattern.alias if pattern.alias is not None else f"#{var}"
        then({**env, key: var}, indent + 1)

    def guard(self, pattern: Pattern) -> str | None:
        """A cheap condition that is false only where no fact can pass the pattern's first test.

        Most patterns start by asking for a value set (``vs`` member of a few ids) that no
        fact of the patient has; the guard answers that once for the pattern instead of
        once per fact, from the strings that field lists over all the input facts (taken
        in the same pass that groups them by type; when a fact holds anything but a list
        of hashable values there, the set is :data:`_EVERYTHING` and the loop decides).
        For a derived flag asked for by name, the set of flags derived so far answers it
        (unless the input held facts of type ``flag`` of its own). Only the first test is
        guarded on: a test before it could have raised on a fact the loop would read.
        """
        if not pattern.tests:
            return None
        test = pattern.tests[0]
        value = test.value
        if pattern.fact == FLAG and test.field == "name" and test.op == "eq" and type(value) is str:
            self.used |= {"input_flags", "flags"}
            return f"input_flags or {self.source.literal(value)} in flags"
        if (
            pattern.fact == FLAG  # the flags grow during a run: no set taken at its start holds them
            or test.op != "member"
            or not isinstance(value, tuple)
            or not all(type(v) is str for v in value)
        ):
            return None
        seen = self.shared.seen.get(test.field)
        if seen is None:
            seen = self.shared.seen[test.field] = f"S{len(self.shared.seen)}"
        self.used.add(seen)
        if len(value) == 1:
            return f"{self.source.literal(value[0])} in {seen}"
        return f"not {seen}.isdisjoint({self.source.literal(frozenset(value))})"

    def test(self, test: Test, var: str, env: dict[str, str]) -> str:
        """A Python expression for :func:`ketacds.engine.match.passes` on fact ``var``."""
        src = self.source
        field = src.literal(test.field)
        op, value = test.op, test.value
        if op == "present":
            return f"{field} in {var}" if value else f"{field} not in {var}"
        if isinstance(value, Ref):
            other = env.get(value.alias)
            operand = (
                f"{other}.get({src.literal(value.field)})"
                if other is not None
                else f"_unbound({src.literal(value.alias)})"
            )
            return f"{field} in {var} and _compare({src.literal(op)}, {var}[{field}], {operand})"
        # The fast paths of match.compile_test, each exactly what _compare gives.
        if op == "eq" and isinstance(value, bool):
            return f"{var}.get({field}, _MISSING) is {value!r}"
        if op == "eq" and isinstance(value, str):
            return f"{var}.get({field}, _MISSING) == {src.literal(value)}"
        if op == "member" and isinstance(value, tuple) and all(type(v) is str for v in value):
            # a list of value-set ids shares one with the strings of ``value`` exactly when the
            # set of those strings is not disjoint from it (str equality is hash equality)
            wanted = src.literal(frozenset(value))
            return (
                f"(not {wanted}.isdisjoint(a) if (a := {var}.get({field}, _MISSING)).__class__ is list "
                f"else (a is not _MISSING and _compare('member', a, {src.literal(value)})))"
            )
        if op == "ne" and isinstance(value, str):
            # a value of another kind than str is unequal; a str, unless it is this one
            return (
                f"((a := {var}.get({field}, _MISSING)) is not _MISSING "
                f"and (a.__class__ is not str or a != {src.literal(value)}))"
            )
        if op in ("in", "not_in") and isinstance(value, tuple) and all(type(v) is str for v in value):
            # only a str is of the kind of these values (a str subclass is not: _same_kind)
            wanted = src.literal(frozenset(value))
            if op == "in":
                return f"((a := {var}.get({field}, _MISSING)).__class__ is str and a in {wanted})"
            return (
                f"((a := {var}.get({field}, _MISSING)) is not _MISSING "
                f"and (a.__class__ is not str or a not in {wanted}))"
            )
        if op in _NUMERIC_OPS and isinstance(value, int | Decimal) and not isinstance(value, bool):
            expected = src.literal(value)
            return (
                f"(a {_PY_OPS[op]} {expected} if (a := {var}.get({field}, _MISSING)).__class__ in _EXACT "
                f"else (a is not _MISSING and _compare({src.literal(op)}, a, {expected})))"
            )
        return f"{field} in {var} and _compare({src.literal(op)}, {var}[{field}], {src.literal(value)})"

    def fire(self, env: dict[str, str], indent: int) -> None:
        """Write the recording of one firing (and of the flags it derives) under ``env``."""
        src = self.source
        ids = [f'{var}["id"]' for var in env.values()]
        if not ids:
            facts = "()"
        elif len(ids) == 1:
            facts = f"({ids[0]},)"
        else:
            facts = f"tuple(sorted({{{', '.join(ids)}}}))"
        if not self.rule.flags:
            src.emit(indent, f"firings.add(({src.literal(self.rule.id)}, {facts}))")
            return
        src.emit(indent, f"firing = ({src.literal(self.rule.id)}, {facts})")
        src.emit(indent, "if firing not in firings:")
        src.emit(indent + 1, "firings.add(firing)")
        for flag in self.rule.flags:
            name = src.literal(flag)
            src.emit(indent + 1, f"if {name} not in flags:")
            src.emit(indent + 2, f"flags.add({name})")
            src.emit(indent + 2, f"flag_list.append(flag_fact({name}))")
            src.emit(indent + 2, "changed = True")


def _reads_flags(cond: Condition) -> bool:
    if isinstance(cond, Pattern):
        return cond.fact == FLAG
    if isinstance(cond, Not):
        return _reads_flags(cond.item)
    return any(_reads_flags(item) for item in cond.items)


def generate_source(rules: Sequence[Rule], strata: Mapping[str, int]) -> tuple[str, dict[str, Any]]:
    """The source of ``run(facts)`` for ``rules`` and the constants it names.

    ``run`` takes the input facts and returns the set of ``(rule id, sorted fact ids)``
    firings. It groups the facts by type (``flag`` included: the list it appends the
    derived flags to), then runs each stratum: every rule once, then the rules that read
    flags again while a pass derives a new flag (the rules that read none would find
    nothing new).
    """
    source = _Source()
    shared = _Shared(source)
    body = shared.body()
    for stratum in sorted({strata[r.id] for r in rules}):
        layer = [r for r in rules if strata[r.id] == stratum]
        again = [r for r in layer if _reads_flags(r.when)]
        body.emit(1, f"# stratum {stratum}")
        body.emit(1, "changed = False")
        for rule in layer:
            body.emit(1, f"# {rule.id}")
            writer = _RuleWriter(body, shared, rule)
            writer.condition(rule.when, {}, 1, writer.fire)
        if again:
            body.emit(1, "while changed:")
            body.emit(2, "changed = False")
            for rule in again:
                body.emit(2, f"# {rule.id} again")
                writer = _RuleWriter(body, shared, rule)
                writer.condition(rule.when, {}, 2, writer.fire)
    source.lines.extend(shared.helpers.lines)
    source.emit(0, "def run(facts):")
    source.emit(1, "flag_list = []")
    source.emit(1, f"by_type = {{{FLAG!r}: flag_list}}")
    source.emit(1, "group_of = by_type.get")
    for name in shared.seen.values():
        source.emit(1, f"{name} = set()")
        source.emit(1, f"odd_{name} = False")
    source.emit(1, "for f in facts:")
    source.emit(2, "t = f['t']")
    source.emit(2, "group = group_of(t)")
    source.emit(2, "if group is None:")
    source.emit(3, "by_type[t] = [f]")
    source.emit(2, "else:")
    source.emit(3, "group.append(f)")
    for field, name in shared.seen.items():
        source.emit(2, f"a = f.get({source.literal(field)}, _MISSING)")
        source.emit(2, "if a.__class__ is list:")
        source.emit(3, "try:")
        source.emit(4, f"{name}.update(a)")
        source.emit(3, "except TypeError:  # an unhashable item: let the loops decide")
        source.emit(4, f"odd_{name} = True")
        source.emit(2, "elif a is not _MISSING:")
        source.emit(3, f"odd_{name} = True")
    for name in shared.seen.values():
        source.emit(1, f"if odd_{name}:")
        source.emit(2, f"{name} = _EVERYTHING")
    source.emit(1, "input_flags = bool(flag_list)")
    for fact_type, name in shared.lists.items():
        if name != "flag_list":
            source.emit(1, f"{name} = group_of({source.literal(fact_type)}, ())")
    if any("absent" in used for _name, _call, used in shared.negations.values()):
        source.emit(1, "absent = {}")  # the answers of the negations that helpers read
    for local in shared.decided:
        source.emit(1, f"{local} = None")
    source.emit(1, "flags = set()")
    source.emit(1, "firings = set()")
    source.lines.extend(body.lines)
    source.emit(1, "return firings")
    return "\n".join(source.lines) + "\n", source.constants


class CompiledProgram:
    """One program's rules as a generated Python function (stateless between runs: thread-safe)."""

    def __init__(self, name: str, rules: Sequence[Rule], strata: Mapping[str, int]) -> None:
        self.name = name
        #: The generated Python source (for reading and debugging; never built from input).
        self.source, constants = generate_source(rules, strata)
        namespace: dict[str, Any] = {
            **constants,
            "__builtins__": {
                "bool": bool,
                "list": list,
                "set": set,
                "sorted": sorted,
                "str": str,
                "tuple": tuple,
                "TypeError": TypeError,
            },
            "_compare": _compare,
            "_MISSING": _MISSING,
            "_EXACT": _EXACT_NUMBERS,
            "_unbound": _unbound,
            "_EVERYTHING": _EVERYTHING,
            "flag_fact": flag_fact,
        }
        exec(compile(self.source, f"<ketacds compiled program {name}>", "exec"), namespace)  # noqa: S102
        self._run: Callable[[Sequence[Mapping[str, Any]]], set[_Pair]]
        self._run = namespace["run"]

    def run(
        self, facts: Sequence[Mapping[str, Any]], *, action_hook: Callable[[str], None] | None = None
    ) -> RawResult:
        """Every distinct firing of the rules on ``facts`` (the reference evaluator's answer).

        ``action_hook`` is called with the rule id of each firing, in the result's order.
        Any failure is an :class:`~ketacds.errors.EvaluationError` ("the compiled backend failed: ...").
        """
        try:
            # Distinct (rule id, fact ids) pairs, sorted as RawResult.of sorts its firings
            # (by rule id, then fact ids); each pair becomes the RawFiring it equals.
            result = _new_raw_result(tuple(map(_new_raw_firing, sorted(self._run(facts)))))
        except (InputError, EvaluationError):
            raise
        except Exception as error:
            raise EvaluationError(f"the compiled backend failed: {type(error).__name__}: {error}") from error
        if action_hook is not None:
            for firing in result.firings:
                action_hook(firing.rule_id)
        return result

    @property
    def usable(self) -> bool:
        """Always true: nothing is kept between runs that a failure could spoil."""
        return True

    def close(self) -> None:
        """Nothing to free."""


class CompiledBackend:
    """The rules compiled to Python: the reference evaluator's answers at generated-code speed."""

    name = "compiled"
    engine_name = COMPILED_ENGINE_NAME

    def capacity(self, rules: Sequence[Rule], route: str, jurisdiction: str) -> tuple[CapacityProblem, ...]:
        """Generated Python has no limits the rules could reach: always empty."""
        return ()

    def compile(self, name: str, rules: Sequence[Rule], strata: Mapping[str, int]) -> CompiledProgram:
        """Generate, compile and load the function of ``rules``."""
        return CompiledProgram(name, rules, strata)

    def __repr__(self) -> str:
        return f"<CompiledBackend {self.engine_name}>"
