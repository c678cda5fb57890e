"""The catalogue of ruleset checks: a stable code, a name and a severity for each.

The loader (``ruleset/load.py``) tags every :class:`~ketacds.errors.RulesetError` it
raises with one of these codes; the linter (``ruleset/lint.py``) reports the loader's
problems under the same codes and adds its own checks over the loaded rules. A code
never changes meaning once released; ``docs/lint.md`` explains each one with an
example and the fix.
"""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = ["CHECKS", "Check", "Severity"]

Severity = Literal["error", "warning"]


@attrs.frozen
class Check:
    """One check: ``KL012``, its short name, and whether a finding is an error or a warning."""

    code: str
    name: str
    severity: Severity
    summary: str


_ALL = (
    Check("KL000", "load", "error", "a problem the loader reports without a more specific code"),
    # Files and structure
    Check("KL001", "yaml", "error", "the file is not valid YAML, has a duplicate key, or cannot be read"),
    Check("KL002", "schema", "error", "the file does not match its JSON Schema"),
    Check("KL003", "unknown-key", "error", "a key the format does not have (with a did-you-mean)"),
    Check(
        "KL004",
        "manifest",
        "error",
        "the manifest is inconsistent (routes, jurisdictions, status table, files)",
    ),
    Check("KL005", "valueset", "error", "a value set file is inconsistent (id, code system)"),
    Check("KL006", "table", "error", "a conversion table is inconsistent (id, fact, fields, rows)"),
    Check(
        "KL007",
        "validity",
        "error",
        "validity.yaml is inconsistent (unknown field or unit, bounds out of order, a range twice)",
    ),
    Check(
        "KL008",
        "reference-facts",
        "error",
        "reference-facts.yaml is inconsistent (a fact twice, unknown route or jurisdiction, "
        "a manifest concept missing)",
    ),
    # Names a rule uses
    Check("KL010", "unknown-fact-type", "error", "a condition names a fact type that does not exist"),
    Check("KL011", "unknown-field", "error", "a condition tests a field its fact type does not have"),
    Check("KL012", "unknown-valueset", "error", "a condition names a value set that does not exist"),
    Check("KL013", "unknown-source", "error", "evidence cites a source missing from the register"),
    Check("KL014", "unknown-scope", "error", "an unknown route or jurisdiction, or 'any' beside others"),
    Check("KL015", "unknown-severity", "error", "a severity the manifest's status table does not map"),
    Check("KL016", "unknown-flag", "error", "a condition reads a flag no rule derives"),
    Check("KL017", "dose-spec", "error", "an unknown dose function, or a missing or wrong parameter"),
    Check(
        "KL018",
        "unknown-concept",
        "error",
        "a rule names a concept neither the manifest nor the fact register declares (or not for its routes)",
    ),
    Check(
        "KL019",
        "unknown-group",
        "error",
        "a rule names a presentation group the manifest does not declare (or declares twice)",
    ),
    # What a rule means
    Check("KL020", "duplicate-id", "error", "two rules share an id"),
    Check("KL021", "no-evidence", "error", "a rule cites no evidence"),
    Check(
        "KL022",
        "unconfirmed-blocks",
        "error",
        "an M-confidence (unconfirmed) rule leads to a blocking status",
    ),
    Check("KL023", "type-mismatch", "error", "an operator or value that does not fit the field's kind"),
    Check(
        "KL024", "bad-reference", "error", "a reference to an alias not bound earlier, or to a missing field"
    ),
    Check("KL025", "consequence", "error", "'then' does not fit the rule's category"),
    Check(
        "KL026",
        "unsupported-condition",
        "error",
        "a condition the engines cannot run ('not' over a join, too many alternatives)",
    ),
    Check(
        "KL027",
        "negation-cycle",
        "error",
        "a flag depends on its own absence: the rules cannot be stratified",
    ),
    Check(
        "KL028", "evidence-without-section", "warning", "evidence that does not name the section relied on"
    ),
    Check(
        "KL029",
        "group-member",
        "error",
        "a grouped rule reads patient data beyond the setting, reaches a blocking status, or is a data gap",
    ),
    # Logic across rules
    Check("KL030", "never-holds", "error", "a condition that can never hold"),
    Check("KL031", "dead-alternative", "warning", "one alternative of a condition can never hold"),
    Check("KL032", "duplicate-rule", "warning", "a rule with the same condition and effect as another"),
    Check(
        "KL033",
        "shadowed-rule",
        "warning",
        "whenever the rule fires, a broader rule of the same kind fires too",
    ),
    Check(
        "KL034",
        "vacuous-negation",
        "warning",
        "a negated flag no rule in scope can derive, so the negation always holds",
    ),
    Check(
        "KL035",
        "unreachable-flag",
        "warning",
        "a flag no rule in scope can derive, so the rule never fires there",
    ),
    Check("KL036", "unused-valueset", "warning", "a value set no rule uses"),
    Check("KL037", "unused-group", "warning", "a presentation group no rule names"),
    # durable_rules capacity
    Check(
        "KL040",
        "program-too-large",
        "error",
        "more durable rules in one compiled program than durable_rules allows",
    ),
    Check(
        "KL041",
        "fact-type-overloaded",
        "error",
        "more durable rules read one fact type than durable_rules allows",
    ),
    Check("KL042", "fact-too-wide", "error", "a fact type has more properties than durable_rules allows"),
    # Scope completeness
    Check(
        "KL050",
        "concept-gap",
        "error",
        "a program (route, jurisdiction) lacks a rule for a declared safety concept, and is not refused",
    ),
    Check(
        "KL051",
        "refusal-without-gap",
        "warning",
        "a refused program now covers every concept: the refusal can be lifted",
    ),
    Check(
        "KL052",
        "fact-coverage",
        "warning",
        "the fact register and the rules disagree (encoded without a rule, not encoded with one, "
        "a program with neither rule nor reason)",
    ),
)

#: Every check, by code.
CHECKS: dict[str, Check] = {check.code: check for check in _ALL}

LOAD = "KL000"
YAML = "KL001"
SCHEMA = "KL002"
UNKNOWN_KEY = "KL003"
MANIFEST = "KL004"
VALUESET = "KL005"
TABLE = "KL006"
VALIDITY = "KL007"
FACTS = "KL008"
UNKNOWN_FACT_TYPE = "KL010"
UNKNOWN_FIELD = "KL011"
UNKNOWN_VALUESET = "KL012"
UNKNOWN_SOURCE = "KL013"
UNKNOWN_SCOPE = "KL014"
UNKNOWN_SEVERITY = "KL015"
UNKNOWN_FLAG = "KL016"
DOSE_SPEC = "KL017"
UNKNOWN_CONCEPT = "KL018"
UNKNOWN_GROUP = "KL019"
DUPLICATE_ID = "KL020"
NO_EVIDENCE = "KL021"
UNCONFIRMED_BLOCKS = "KL022"
TYPE_MISMATCH = "KL023"
BAD_REFERENCE = "KL024"
CONSEQUENCE = "KL025"
UNSUPPORTED_CONDITION = "KL026"
NEGATION_CYCLE = "KL027"
EVIDENCE_WITHOUT_SECTION = "KL028"
GROUP_MEMBER = "KL029"
NEVER_HOLDS = "KL030"
DEAD_ALTERNATIVE = "KL031"
DUPLICATE_RULE = "KL032"
SHADOWED_RULE = "KL033"
VACUOUS_NEGATION = "KL034"
UNREACHABLE_FLAG = "KL035"
UNUSED_VALUESET = "KL036"
UNUSED_GROUP = "KL037"
PROGRAM_TOO_LARGE = "KL040"
FACT_TYPE_OVERLOADED = "KL041"
FACT_TOO_WIDE = "KL042"
CONCEPT_GAP = "KL050"
REFUSAL_WITHOUT_GAP = "KL051"
FACT_COVERAGE = "KL052"
