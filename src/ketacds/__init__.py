"""ketacds: clinical decision support for ketamine and esketamine therapy in mood disorders.

Advisory only: ketacds informs a clinician, with the basis for every statement; it
does not order treatment.

>>> from ketacds import Engine, load_case_file                    # doctest: +SKIP
>>> record, context = load_case_file("examples/01-trd-esketamine-us.yaml")  # doctest: +SKIP
>>> Engine().assess(record, context).status                       # doctest: +SKIP
'cautions'
"""

import sys

if sys.version_info >= (3, 13):  # pragma: no cover - exercised only on 3.13+
    raise ImportError(
        "ketacds needs Python 3.11 or 3.12, because its rule engine durable_rules 2.0.28 "
        f"does not import on Python {sys.version_info[0]}.{sys.version_info[1]}."
    )

from ketacds._version import __version__
from ketacds.engine.api import Engine, assess
from ketacds.errors import (
    DigestMismatchError,
    EngineCapacityError,
    EvaluationError,
    InputError,
    KetacdsError,
    NotAssessedError,
    ProgramRefusedError,
    RulesetError,
    ScenarioError,
    TerminologyError,
    UnknownBackendError,
    UnknownRuleError,
    VerificationError,
)
from ketacds.models.inputs import (
    Allergy,
    AntidepressantTrial,
    Coding,
    Condition,
    Context,
    Medication,
    Observation,
    ObservationComponent,
    Patient,
    PatientRecord,
    Quantity,
    SubstanceUse,
)
from ketacds.models.load import load_case, load_case_file, load_context, load_record
from ketacds.models.results import (
    Assessment,
    DataGap,
    DoseAdvice,
    DoseOption,
    EvidenceRef,
    FactRef,
    Finding,
    Firing,
    MonitoringItem,
    Provenance,
)
from ketacds.ruleset.ir import RuleSet
from ketacds.ruleset.load import load_ruleset
from ketacds.scenarios.explain import Explanation, explain

__all__ = [
    "Allergy",
    "AntidepressantTrial",
    "Assessment",
    "Coding",
    "Condition",
    "Context",
    "DataGap",
    "DigestMismatchError",
    "DoseAdvice",
    "DoseOption",
    "Engine",
    "EngineCapacityError",
    "EvaluationError",
    "EvidenceRef",
    "Explanation",
    "FactRef",
    "Finding",
    "Firing",
    "InputError",
    "KetacdsError",
    "Medication",
    "MonitoringItem",
    "NotAssessedError",
    "Observation",
    "ObservationComponent",
    "Patient",
    "PatientRecord",
    "ProgramRefusedError",
    "Provenance",
    "Quantity",
    "RuleSet",
    "RulesetError",
    "ScenarioError",
    "SubstanceUse",
    "TerminologyError",
    "UnknownBackendError",
    "UnknownRuleError",
    "VerificationError",
    "__version__",
    "assess",
    "explain",
    "load_case",
    "load_case_file",
    "load_context",
    "load_record",
    "load_ruleset",
]
