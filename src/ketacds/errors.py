"""Every exception ketacds raises, under one root.

The tree::

    KetacdsError                       anything from ketacds
    ├── InputError (ValueError)        a patient or context that cannot be read;
    │   │                              ``path`` names the field, e.g. ``medications[2].dose``
    │   ├── ProgramRefusedError        the rules refuse this route in this jurisdiction
    │                                  (a safety concept is not assessed there)
    │   └── NotAssessedError           a patient ketacds must not assess (recorded as deceased)
    ├── RulesetError (ValueError)      a ruleset that cannot be loaded or compiled;
    │   │                              ``file`` and ``line`` say where
    │   ├── DigestMismatchError        the rules are not the version the deployment pinned
    │   └── EngineCapacityError        the rules would exceed a durable_rules hard limit
    ├── UnknownRuleError (KeyError)    ``RuleSet.rule`` asked for an id the rules do not have;
    │                                  ``suggestions`` holds the nearest ids
    ├── ScenarioError (ValueError)     a scenario file that cannot be read or names
    │                                  an unknown rule; ``file`` and ``line`` say where
    ├── TerminologyError (LookupError) an unknown value set, unit or code system
    ├── UnknownBackendError (ValueError) ``Engine(backend=...)`` names no known backend
    ├── EvaluationError (RuntimeError) the engine failed while assessing;
    │   │                              ``rule_id`` names the rule when one is to blame
    │   └── VerificationError          the shadow check (``verify_sample``) found
    │                                  durable_rules and the reference evaluator
    │                                  disagreeing; ``rule_ids`` names the rules
    ├── BatchError (RuntimeError)      a batch run cannot go on (workers keep dying,
    │                                  the Dask cluster cannot be reached)
    ├── Interrupted (RuntimeError)     a batch run was stopped (Ctrl-C); a stop, not an
    │                                  error of the data
    ├── AuthError                      the CDS Hooks service: a request is not
    │                                  authenticated (answered 401)
    └── FetchError                     the CDS Hooks service: a FHIR request failed
                                       (answered 412)

Each class also inherits the matching builtin, so an integrator's existing
``except ValueError`` keeps working. ``AuthError`` and ``FetchError`` inherit no builtin
(they never did); the service turns each into an HTTP answer and never lets one reach a
caller.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BatchError",
    "DigestMismatchError",
    "EngineCapacityError",
    "EvaluationError",
    "FetchError",
    "InputError",
    "Interrupted",
    "KetacdsError",
    "NotAssessedError",
    "ProgramRefusedError",
    "RulesetError",
    "ScenarioError",
    "TerminologyError",
    "UnknownBackendError",
    "UnknownRuleError",
    "VerificationError",
]


def _located(reason: str, file: str | None, line: int | None, suggestion: str | None) -> str:
    """``file:line: reason (did you mean 'x'?)``, leaving out what is not known."""
    where = "" if file is None else f"{file}:{line}: " if line is not None else f"{file}: "
    hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
    return f"{where}{reason}{hint}"


class _Located(Exception):
    """An error that says where it is: ``reason``, ``file``, ``line`` and a ``suggestion``."""

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        line: int | None = None,
        suggestion: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.line = line
        self.suggestion = suggestion
        super().__init__(_located(reason, file, line, suggestion))


class KetacdsError(Exception):
    """Root of every exception raised by ketacds.

    .. versionadded:: 0.1.0
    """


class InputError(KetacdsError, ValueError):
    """Patient or context data that cannot be read.

    Attributes:
        path: where in the input the problem is, e.g. ``medications[2].dose``.
        reason: what is wrong there, in one sentence.

    .. versionadded:: 0.1.0
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)


class ProgramRefusedError(InputError):
    """The ruleset refuses to assess this route in this jurisdiction.

    Scoping never leaves a hole: when a safety concept the ruleset declares for the
    route has no rule in scope there, and the jurisdiction follows no label that has
    one, the engine refuses rather than assess with fewer rules.

    Attributes:
        route: the planned route.
        jurisdiction: the jurisdiction.
        missing: the concepts (clinical-reference fact ids) no rule in scope assesses.
        declared: whether the ruleset declares the refusal (``False``: an undeclared gap).

    .. versionadded:: 0.4.0
    """

    def __init__(
        self, route: str, jurisdiction: str, reason: str, *, missing: tuple[str, ...] = (), declared: bool
    ) -> None:
        self.route = route
        self.jurisdiction = jurisdiction
        self.missing = missing
        self.declared = declared
        super().__init__("context.route", reason)


class NotAssessedError(InputError):
    """A patient ketacds refuses to assess, so no Assessment (and no status) exists.

    Raised for a patient recorded as deceased (``patient.deceased``, FHIR
    ``Patient.deceased[x]``): any status would be meaningless, and a reassuring one
    dangerous. The CLI exits 2, a batch records an error line, the CDS Hooks service
    answers with an error card saying the patient was not assessed.

    .. versionadded:: 0.4.0
    """


class RulesetError(_Located, KetacdsError, ValueError):
    """A ruleset that cannot be loaded, validated or compiled.

    Attributes:
        reason: what is wrong, in one sentence.
        file: the ruleset file, when known.
        line: the 1-based line in that file, when known.
        suggestion: a likely intended name, when one is close.
        code: the stable code of the check that failed (``KL012``; see
            ``docs/lint.md``), when one applies.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        line: int | None = None,
        suggestion: str | None = None,
        code: str | None = None,
    ) -> None:
        self.code = code
        super().__init__(reason, file=file, line=line, suggestion=suggestion)


class ScenarioError(_Located, KetacdsError, ValueError):
    """A scenario file that cannot be read, or an expectation the rules cannot meet by construction.

    Attributes:
        reason: what is wrong, in one sentence.
        file: the scenario file.
        line: the 1-based line in that file, when known.
        suggestion: a likely intended name, when one is close.

    .. versionadded:: 0.1.0
    """


class DigestMismatchError(RulesetError):
    """The loaded rules do not have the digest the deployment pinned.

    .. versionadded:: 0.1.0
    """


class UnknownRuleError(KetacdsError, KeyError):
    """A rule id the ruleset does not have (from :meth:`ketacds.ruleset.ir.RuleSet.rule`).

    Also a :class:`KeyError`, so callers that caught the bare ``KeyError`` it used to be
    keep working; unlike one, its text is a sentence.

    Attributes:
        rule_id: the id asked for.
        ruleset: the name of the ruleset.
        suggestions: the nearest ids the ruleset has (closest first; may be empty).
    """

    def __init__(self, rule_id: str, ruleset: str, suggestions: tuple[str, ...] = ()) -> None:
        self.rule_id = rule_id
        self.ruleset = ruleset
        self.suggestions = suggestions
        hint = f" (did you mean {' or '.join(suggestions)}?)" if suggestions else ""
        self.message = f"no rule {rule_id!r} in {ruleset}{hint}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class TerminologyError(KetacdsError, LookupError):
    """An unknown value set, unit or code system.

    .. versionadded:: 0.1.0
    """


class EvaluationError(KetacdsError, RuntimeError):
    """The engine failed while assessing a patient; no partial result is returned.

    Attributes:
        rule_id: the rule whose action failed, when one is to blame.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, rule_id: str | None = None) -> None:
        self.rule_id = rule_id
        prefix = f"rule {rule_id}: " if rule_id else ""
        super().__init__(f"{prefix}{message}")


class VerificationError(EvaluationError):
    """The shadow check failed: durable_rules and the reference evaluator fired different rules.

    Raised only for the sampled assessments of an Engine built with ``verify_sample``
    (``--verify-sample`` on ``ketacds assess`` and ``ketacds batch``); no result is given.

    Attributes:
        rule_ids: the rules whose firings differ, sorted.

    .. versionadded:: 0.1.0
    """

    def __init__(self, rule_ids: tuple[str, ...], detail: str) -> None:
        self.rule_ids = rule_ids
        names = ", ".join(rule_ids)
        super().__init__(
            f"shadow check: durable_rules and the reference evaluator disagree on {names} ({detail})"
        )


class EngineCapacityError(RulesetError):
    """The rules would exceed a durable_rules hard limit (rules per ruleset, per fact, ...).

    .. versionadded:: 0.1.0
    """


class BatchError(KetacdsError, RuntimeError):
    """The run cannot go on (its workers keep dying, or the cluster is unreachable).

    .. versionadded:: 0.1.0
    """


class Interrupted(KetacdsError, RuntimeError):  # a stop, not an error of the data
    """The run was stopped (Ctrl-C) after committing the chunks in progress.

    .. versionadded:: 0.1.0
    """


class AuthError(KetacdsError):
    """The request is not authenticated; ``str(error)`` says why (safe to return to the client)."""


class FetchError(KetacdsError):
    """A FHIR request failed; the message is safe to return to the client."""


class UnknownBackendError(KetacdsError, ValueError):
    """``Engine(backend=...)`` names no registered engine backend (the message lists the known ones).

    .. versionadded:: 0.5.0
    """
