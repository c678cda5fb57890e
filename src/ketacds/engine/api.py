"""The public entry points: :class:`Engine` (long-lived) and :func:`assess` (one-shot)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from ketacds.engine.assemble import Assembler
from ketacds.engine.backend import Backend, Program, backend_named
from ketacds.engine.backends.reference import REFERENCE_ENGINE_NAME
from ketacds.engine.facts import FactSet, build_facts
from ketacds.engine.raw import RawResult
from ketacds.errors import (
    DigestMismatchError,
    EvaluationError,
    InputError,
    NotAssessedError,
    ProgramRefusedError,
    VerificationError,
)
from ketacds.models.inputs import Context, PatientRecord
from ketacds.models.results import Assessment
from ketacds.ruleset import scope
from ketacds.ruleset.ir import Rule, RuleSet
from ketacds.ruleset.load import load_ruleset
from ketacds.ruleset.plan import stratify
from ketacds.terminology.valuesets import terminology_for

__all__ = ["REFERENCE_ENGINE_NAME", "Backend", "BackendName", "Engine", "assess"]

#: The names of the backends that come with ketacds (``engine/backend.py``).
BackendName = Literal["durable", "reference", "compiled"]


class Engine:
    """Loads and compiles the rulesets once, then assesses patients.

    Args:
        rules_dir: a ruleset directory; the bundled rulesets by default.
        expected_digest: for governed deployments: refuse to start unless the rules
            have exactly this sha256 digest.
        verify_sample: the operators' shadow check: the fraction (0 to 1) of
            assessments that the reference evaluator also runs; when its firings
            differ from the backend's (durable_rules'),
            :class:`~ketacds.errors.VerificationError` names the rules and no result
            is given. Which assessments are checked is decided by a hash of the record
            and context, so the same input is always checked or never (deterministic,
            reproducible).
        backend: the rule engine: a registered name (``"durable"``, the default,
            ``"compiled"`` or ``"reference"``) or any :class:`~ketacds.engine.backend.Backend` object.

    Raises:
        RulesetError: the rules cannot be loaded.
        DigestMismatchError: the rules are not the pinned version.
        UnknownBackendError: ``backend`` names no registered backend.
        ValueError: ``verify_sample`` is not between 0 and 1.

    An Engine is safe to share between threads: each compiled program serialises its
    calls (durable_rules is not thread-safe and never releases the GIL, so threads
    add no speed; use one Engine per process for throughput).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        rules_dir: Path | str | None = None,
        *,
        expected_digest: str | None = None,
        verify_sample: float = 0.0,
        backend: str | Backend = "durable",
        _ruleset: RuleSet | None = None,
    ) -> None:
        if not 0.0 <= verify_sample <= 1.0:
            raise ValueError(f"verify_sample must be between 0 and 1, got {verify_sample}")
        self.verify_sample = verify_sample
        #: The backend that :meth:`assess` and :meth:`evaluate` run unless told otherwise.
        self.backend: Backend = backend_named(backend) if isinstance(backend, str) else backend
        self._backends: dict[str, Backend] = {self.backend.name: self.backend}
        self.ruleset: RuleSet = _ruleset if _ruleset is not None else load_ruleset(rules_dir)
        self.digest: str = self.ruleset.digest
        if expected_digest is not None and expected_digest != self.digest:
            raise DigestMismatchError(
                f"the rules have digest {self.digest}, not the pinned {expected_digest}; "
                f"refusing to start (ruleset {self.ruleset.name} {self.ruleset.version})"
            )
        # the value sets and the FHIR reading tables of the same directory
        self.terminology = terminology_for(self.ruleset, rules_dir)
        self.strata = stratify(self.ruleset.rules)
        self._programs: dict[tuple[str, str, str], Program] = {}  # (backend, route, jurisdiction)
        self._scoped: dict[tuple[str, str], tuple[Rule, ...]] = {}
        self._assemblers: dict[tuple[str, str, str], Assembler] = {}
        self._coverage: dict[tuple[str, str], scope.Coverage] = {}
        self._jurisdictions = frozenset(j.id for j in self.ruleset.jurisdictions)
        #: What :meth:`assess` has already checked and looked up for a (backend argument,
        #: route, jurisdiction): the backend, its program and the assembler. Filled once
        #: the first assessment of the key has passed the checks that depend on nothing
        #: else (the jurisdiction is known, the program covered, the backend found and
        #: compiled); read without the lock (one dict read under the GIL), emptied by close.
        self._ready: dict[tuple[str | None, str, str], tuple[Backend, Program, Assembler]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_ruleset(
        cls,
        ruleset: RuleSet,
        *,
        expected_digest: str | None = None,
        verify_sample: float = 0.0,
        rules_dir: Path | str | None = None,
        backend: str | Backend = "durable",
    ) -> Engine:
        """Build an Engine from an already loaded ruleset (no rule files are read).

        ``rules_dir``: the directory ``ruleset`` was loaded from, whose FHIR reading
        tables the engine's terminology reads a record with (``None``: the bundled ones).
        """
        return cls(
            rules_dir,
            expected_digest=expected_digest,
            verify_sample=verify_sample,
            backend=backend,
            _ruleset=ruleset,
        )

    def rules_for(self, route: str, jurisdiction: str) -> tuple[Rule, ...]:
        """The rules that apply to a route in a jurisdiction (and the jurisdictions it lies in)."""
        key = (route, jurisdiction)
        scoped = self._scoped.get(key)
        if scoped is None:
            scoped = self._scoped[key] = scope.rules_for(self.ruleset, route, jurisdiction)
        return scoped

    def warm(self, route: str, jurisdiction: str) -> Program:
        """Compile the program for ``route`` in ``jurisdiction`` now, not at its first assessment.

        Returns the compiled program (the same object every time; for the durable backend a
        :class:`~ketacds.engine.backends.durable.DurableProgram`, whose ``definition`` is the
        durable ruleset as compiled). A service warms every program it will serve at startup.

        Raises:
            EngineCapacityError: the rules in scope exceed a limit of the backend.

        .. versionadded:: 0.5.0
        """
        return self._compiled(self.backend, route, jurisdiction)

    def _backend(self, name: str | None) -> Backend:
        """The engine's backend (``None``), or the backend of that registered name (made once)."""
        if name is None:
            return self.backend
        found = self._backends.get(name)  # made once and never replaced: no lock to read it
        if found is not None:
            return found
        with self._lock:
            found = self._backends.get(name)
            if found is None:
                found = self._backends[name] = backend_named(name)
            return found

    def _compiled(self, backend: Backend, route: str, jurisdiction: str) -> Program:
        key = (backend.name, route, jurisdiction)
        program = self._programs.get(key)  # compiled once, replaced only by close: no lock to read it
        if program is not None:
            return program
        with self._lock:
            program = self._programs.get(key)
            if program is None:
                name = f"{self.ruleset.name}_{self.digest[:12]}_{route}_{jurisdiction}"
                program = backend.compile(name, self.rules_for(route, jurisdiction), self.strata)
                self._programs[key] = program
            return program

    def facts(self, record: PatientRecord, context: Context) -> FactSet:
        """The facts the rules will see for this record (for explanations and tests).

        Raises:
            NotAssessedError: the patient is recorded as deceased.
            InputError: an unknown jurisdiction, or an order (``context.order``) for another
                route's drug (racemic ketamine ordered for esketamine-nasal, or the reverse).
        """
        self._check_context(context)
        self._check_order(context)
        if record.patient.deceased:
            raise NotAssessedError(
                "patient.deceased",
                "the patient is recorded as deceased, so ketacds does not assess them (no status is given)",
            )
        return build_facts(record, context, self.terminology, self.ruleset.tables, self.ruleset.validity)

    def _check_order(self, context: Context) -> None:
        """Refuse an order that names another route's drug and not this route's (manifest ``drug``).

        The order rules read the order by its drug's value set, so an order for racemic ketamine
        in an esketamine case would be read by no esketamine rule: the case would be assessed
        as esketamine beside an order for another drug. That is an input error, never an
        assessment (issue 15).
        """
        if context.order is None:
            return
        drugs = dict(self.ruleset.route_drugs)
        drug = drugs.get(context.route)
        if drug is None:
            return
        tags = set(self.terminology.tag_text(context.order.code, context.order.name))
        others = sorted({d for d in drugs.values() if d != drug} & tags)
        if drug in tags or not others:
            return  # this route's drug, or no route's drug (the unrecognised order is reported)
        named = context.order.name or (context.order.code.code if context.order.code else "")
        titles = {v.id: v.title for v in self.ruleset.valuesets}
        raise InputError(
            "context.order",
            f"the order names {named!r}, which is {' and '.join(titles.get(o, o) for o in others)}, "
            f"not {titles.get(drug, drug)}, the drug of the planned route {context.route}: one drug "
            "is never assessed against another's label. Give the route of the ordered drug "
            "(intranasal racemic ketamine is ketamine-intranasal) or correct the order",
        )

    def _check_context(self, context: Context) -> None:
        if context.jurisdiction not in self._jurisdictions:
            known = [j.id for j in self.ruleset.jurisdictions]
            raise InputError(
                "context.jurisdiction",
                f"unknown jurisdiction {context.jurisdiction!r}; the rules know {', '.join(known)}",
            )

    def coverage(self, route: str, jurisdiction: str) -> scope.Coverage:
        """How the program for ``route`` in ``jurisdiction`` covers the ruleset's safety concepts."""
        key = (route, jurisdiction)
        found = self._coverage.get(key)
        if found is None:
            found = self._coverage[key] = scope.coverage(self.ruleset, route, jurisdiction)
        return found

    def check_program(self, route: str, jurisdiction: str) -> None:
        """Refuse a program the ruleset refuses, or one that leaves a safety concept unassessed.

        Raises:
            ProgramRefusedError: (an ``InputError`` on ``context.route``) naming the
                missing concepts and the reason; never an assessment with fewer rules.

        .. versionadded:: 0.4.0
        """
        found = self.coverage(route, jurisdiction)
        if found.state != "covered":
            raise ProgramRefusedError(
                route,
                jurisdiction,
                found.describe(),
                missing=found.missing,
                declared=found.refusal is not None,
            )

    def evaluate(
        self,
        record: PatientRecord,
        context: Context,
        *,
        backend: str | None = None,
        _action_hook: Callable[[str], None] | None = None,
    ) -> tuple[FactSet, RawResult]:
        """Run one backend and return the facts and raw firings (for differential tests).

        ``backend`` names a registered backend to run instead of the engine's own
        (``"reference"`` for the oracle). No Assessment comes of it, so a refused program
        is not checked here: :meth:`assess` and explanations
        (``scenarios.explain.CaseAnalysis``) refuse it.
        """
        facts = self._guarded_facts(record, context)
        chosen = self._backend(backend)
        program = self._compiled(chosen, context.route, context.jurisdiction)
        return facts, self._run(chosen, program, record, context, facts, _action_hook)

    def _guarded_facts(self, record: PatientRecord, context: Context) -> FactSet:
        """:meth:`facts`, any failure but an InputError an EvaluationError (see :func:`_failed`)."""
        try:
            return self.facts(record, context)
        except (InputError, EvaluationError):
            raise
        except Exception as error:
            raise _failed("building the facts", error) from error

    def _run(
        self,
        chosen: Backend,
        program: Program,
        record: PatientRecord,
        context: Context,
        facts: FactSet,
        action_hook: Callable[[str], None] | None = None,
    ) -> RawResult:
        """Run ``program`` (of backend ``chosen``) on ``facts``, and the shadow check if it is due."""
        try:
            raw = program.run(facts.facts, action_hook=action_hook)
        except (InputError, EvaluationError):
            raise
        except Exception as error:
            raise _failed(f"the {chosen.name} backend", error) from error
        if self.verify_sample and chosen.name != "reference" and self.sampled(record, context):
            oracle = self._compiled(self._backend("reference"), context.route, context.jurisdiction)
            _check_same(raw, oracle.run(facts.facts), chosen.name)
        return raw

    def sampled(self, record: PatientRecord, context: Context) -> bool:
        """Whether the shadow check runs for this input (a hash of its content against ``verify_sample``)."""
        if self.verify_sample >= 1.0:
            return True
        if self.verify_sample <= 0.0:
            return False
        digest = hashlib.sha256(repr((record, context)).encode()).digest()
        return int.from_bytes(digest[:8], "big") < self.verify_sample * 2**64

    def assess(self, record: PatientRecord, context: Context, *, backend: str | None = None) -> Assessment:
        """Assess one patient for one planned treatment.

        Args:
            record: what is known about the patient (its ``data_quality`` issues are
                carried into the Assessment, and errors among them are facts the rules see).
            context: the planned route, the jurisdiction, ``now``, and optionally the
                ordered dose.
            backend: a registered backend to run instead of the engine's own
                (``Engine(backend=...)``, durable_rules by default): ``"durable"``,
                ``"compiled"`` (generated Python; same answers, faster) or
                ``"reference"`` (the pure-Python oracle; same answers, slower).

        Raises:
            InputError: the record contradicts itself, or the jurisdiction is unknown.
            ProgramRefusedError: (an ``InputError``) the ruleset refuses this route in
                this jurisdiction, or a safety concept it declares has no rule there.
            NotAssessedError: the patient is recorded as deceased (an InputError: no Assessment).
            EvaluationError: the engine failed; no partial result is returned.
            VerificationError: (an EvaluationError) the shadow check ran for this input
                (``verify_sample``) and the two engines' firings differ.
        """
        route, jurisdiction = context.route, context.jurisdiction
        ready = self._ready.get((backend, route, jurisdiction))
        if ready is None or (backend is None and ready[0] is not self.backend):
            # The first assessment of this program: check it, and look up what it needs.
            self._check_context(context)
            self.check_program(route, jurisdiction)
            facts = self._guarded_facts(record, context)
            chosen = self._backend(backend)
            program = self._compiled(chosen, route, jurisdiction)
            raw = self._run(chosen, program, record, context, facts)
            assembler = self._assembler(route, jurisdiction, chosen)
            with self._lock:
                if self._programs.get((chosen.name, route, jurisdiction)) is program:  # not closed meanwhile
                    self._ready[(backend, route, jurisdiction)] = (chosen, program, assembler)
        else:
            # Checked before: the jurisdiction is known and the program covered (both depend
            # on the route and jurisdiction only); the backend, program and assembler found.
            chosen, program, assembler = ready
            facts = self._guarded_facts(record, context)
            raw = self._run(chosen, program, record, context, facts)
        quality = (*record.data_quality, *facts.quality)
        try:
            return assembler.assemble(facts, raw, context, quality)
        except (InputError, EvaluationError):
            raise
        except Exception as error:
            raise _failed("assembling the Assessment", error) from error

    def _assembler(self, route: str, jurisdiction: str, backend: Backend) -> Assembler:
        key = (route, jurisdiction, backend.name)
        assembler = self._assemblers.get(key)
        if assembler is None:
            assembler = Assembler(
                ruleset=self.ruleset,
                digest=self.digest,
                rules=self.rules_for(route, jurisdiction),
                engine=backend.engine_name,
                jurisdiction=jurisdiction,
                route=route,
            )
            self._assemblers[key] = assembler
        return assembler

    def __repr__(self) -> str:
        ruleset = self.ruleset
        return (
            f"<Engine {ruleset.name} {ruleset.version}: {len(ruleset.rules)} rules, "
            f"{len(ruleset.valuesets)} value sets, digest {self.digest[:16]}...>"
        )

    @property
    def usable(self) -> bool:
        """False once an engine error has left a compiled program unusable.

        The program then refuses every assessment (fail closed); a long-running
        process should build a new Engine. Batch workers do this by themselves.

        .. versionadded:: 0.1.0
        """
        with self._lock:
            return all(program.usable for program in self._programs.values())

    def close(self) -> None:
        """Free the compiled programs (durable_rules' rulesets and sessions)."""
        with self._lock:
            for program in self._programs.values():
                program.close()
            self._programs.clear()
            self._ready.clear()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _check_same(checked: RawResult, reference: RawResult, name: str) -> None:
    """Raise VerificationError unless backend ``name`` and the reference fired the same rules alike.

    ``name`` is the checked backend's name, as the message says it (``durable only: ...``).
    """
    if checked == reference:
        return
    only_checked = set(checked.firings) - set(reference.firings)
    only_reference = set(reference.firings) - set(checked.firings)
    rule_ids = tuple(sorted({f.rule_id for f in only_checked | only_reference}))
    detail = (
        f"{name} only: {', '.join(sorted({f.rule_id for f in only_checked})) or 'none'}; "
        f"reference only: {', '.join(sorted({f.rule_id for f in only_reference})) or 'none'}"
    )
    raise VerificationError(rule_ids, detail)


def _failed(step: str, error: Exception) -> EvaluationError:
    """The error of one step of an assessment that failed: any failure but an InputError is one.

    An assessment either returns a result or raises one of the two documented errors:
    a bug or a fault in fact building or assembly (a ``KeyError``, a Decimal signal, an
    ``OSError``) must not escape as something a caller does not expect to catch. Each
    step catches ``Exception`` only (after letting InputError and EvaluationError through
    as themselves) and raises this from it, so ``KeyboardInterrupt`` and ``SystemExit``
    pass through as themselves.
    """
    return EvaluationError(f"{step} failed: {type(error).__name__}: {error}")


_default: Engine | None = None
_default_lock = threading.Lock()


def assess(record: PatientRecord, context: Context) -> Assessment:
    """Assess one patient with the bundled rulesets (one Engine per process, built on first use).

    .. versionadded:: 0.1.0
    """
    global _default
    with _default_lock:
        if _default is None:
            _default = Engine()
        engine = _default
    return engine.assess(record, context)
