"""The words ketacds reads, compares and prints, each written down once.

Every other module imports these names instead of writing the strings:

* **routes** (:data:`Route`, :data:`ROUTES`): the planned treatment routes. The ruleset
  loader refuses a manifest whose ``routes`` are not exactly these
  (``ketacds.ruleset.load``), because models, readers and the CLI accept only them;
* **statuses** (:data:`Status`, :data:`STATUSES`): the status levels of the bundled
  ruleset's manifest (``status: levels``), most serious first. A ruleset may declare its
  own levels; these are the ones the card indicators (:data:`INDICATORS`) know;
* **finding severities** (:data:`Severity`, :data:`SEVERITIES`): the bundled manifest's
  ``status: severities`` keys, which a rule's ``severity`` names;
* **categories** (:data:`Category`, :data:`CATEGORIES`): what a rule does (the rule
  schema's ``category`` enum);
* **confidence** (:data:`Confidence`, :data:`CONFIDENCES`): how sure the clinical
  reference is of a rule's basis (the rule schema's ``confidence`` enum);
* **card indicators** (:data:`Indicator`, :data:`INDICATORS`, :data:`INDICATOR_RANK`): the
  CDS Hooks indicator of each status level (docs/safety-model.md);
* **care settings** (:data:`Setting`, :data:`SETTINGS`): the values of a context's
  ``setting`` (the rules read ``inpatient``, and treat any other as not inpatient);
* **frequency words** (:data:`FREQUENCIES`): dosing-frequency abbreviations of case files,
  as administrations per day (the FHIR reader has its own table, in the terminology YAML).

The tables live here and not under ``rulesets/`` so that the ruleset digest does not
move: they are the program's policy, not clinical content. ``tests/unit/test_vocabulary.py``
checks that the bundled manifest and the JSON Schemas say the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Final, Literal, get_args

__all__ = [
    "CANDIDACY",
    "CATEGORIES",
    "CAUTIONS",
    "CONFIDENCES",
    "CONTRAINDICATED",
    "CONTRAINDICATION",
    "DATA_GAP",
    "DEFER",
    "DERIVATION",
    "DOSING",
    "ESKETAMINE_NASAL",
    "FREQUENCIES",
    "INCOMPLETE",
    "INDICATORS",
    "INDICATOR_RANK",
    "INTERACTION",
    "KETAMINE_INTRANASAL",
    "KETAMINE_IV",
    "KETAMINE_OTHER",
    "MONITORING",
    "NOT_INDICATED",
    "NO_CONCERNS_FOUND",
    "PRIMARY",
    "ROUTES",
    "SECONDARY",
    "SETTINGS",
    "SEVERITIES",
    "SPECIALIST_REVIEW",
    "STATUSES",
    "UNCONFIRMED",
    "Category",
    "Confidence",
    "Indicator",
    "Route",
    "Severity",
    "Status",
]

# --- Routes ---------------------------------------------------------------------------

#: A planned treatment route.
Route = Literal["ketamine-iv", "esketamine-nasal", "ketamine-other", "ketamine-intranasal"]
#: The planned treatment routes: IV racemic ketamine, esketamine nasal spray, racemic
#: ketamine by IM, SC, oral or sublingual route, and intranasal racemic ketamine (a route
#: of its own so that it is never assessed as esketamine; the ruleset refuses it).
ROUTES: Final[tuple[Route, ...]] = get_args(Route)

Setting = Literal["outpatient", "inpatient", "certified-healthcare-setting"]
#: The care settings a context may name. The rules compare ``setting`` with ``inpatient``
#: (KCDS-MON: the REMS duties differ); ``outpatient`` and ``certified-healthcare-setting``
#: (an outpatient setting certified under the REMS) are both "not inpatient". Any other
#: word is refused: a typo (``inpatinet``) would silently be read as not inpatient.
SETTINGS: Final[tuple[Setting, ...]] = get_args(Setting)
KETAMINE_IV: Final[Route] = ROUTES[0]
ESKETAMINE_NASAL: Final[Route] = ROUTES[1]
KETAMINE_OTHER: Final[Route] = ROUTES[2]
KETAMINE_INTRANASAL: Final[Route] = ROUTES[3]

# --- Status levels ----------------------------------------------------------------------

#: A status level of the bundled ruleset, most serious first.
Status = Literal[
    "contraindicated",
    "not-indicated",
    "specialist-review",
    "defer",
    "incomplete",
    "cautions",
    "no-concerns-found",
]
STATUSES: Final[tuple[Status, ...]] = get_args(Status)
CONTRAINDICATED: Final[Status] = STATUSES[0]
NOT_INDICATED: Final[Status] = STATUSES[1]
SPECIALIST_REVIEW: Final[Status] = STATUSES[2]
DEFER: Final[Status] = STATUSES[3]
INCOMPLETE: Final[Status] = STATUSES[4]
CAUTIONS: Final[Status] = STATUSES[5]
NO_CONCERNS_FOUND: Final[Status] = STATUSES[6]

# --- Finding severities -----------------------------------------------------------------

#: A finding severity of the bundled ruleset (each maps to a status level in the manifest).
Severity = Literal[
    "absolute",
    "not-indicated",
    "relative",
    "off-label",
    "defer",
    "dose-error",
    "data-gap",
    "caution",
    "info",
]
SEVERITIES: Final[tuple[Severity, ...]] = get_args(Severity)

# --- Rule categories --------------------------------------------------------------------

#: What a rule does: its findings' category (``derivation`` rules only derive flags).
Category = Literal[
    "candidacy",
    "contraindication",
    "interaction",
    "dosing",
    "monitoring",
    "data-gap",
    "derivation",
]
CATEGORIES: Final[tuple[Category, ...]] = get_args(Category)
CANDIDACY: Final[Category] = CATEGORIES[0]
CONTRAINDICATION: Final[Category] = CATEGORIES[1]
INTERACTION: Final[Category] = CATEGORIES[2]
DOSING: Final[Category] = CATEGORIES[3]
MONITORING: Final[Category] = CATEGORIES[4]
DATA_GAP: Final[Category] = CATEGORIES[5]
DERIVATION: Final[Category] = CATEGORIES[6]

# --- Confidence -------------------------------------------------------------------------

#: How sure the clinical reference is: R read in the primary source, S from a secondary
#: source or summary, M unconfirmed (advisory only: never a blocking status).
Confidence = Literal["R", "S", "M"]
CONFIDENCES: Final[tuple[Confidence, ...]] = get_args(Confidence)
PRIMARY: Final[Confidence] = CONFIDENCES[0]
SECONDARY: Final[Confidence] = CONFIDENCES[1]
UNCONFIRMED: Final[Confidence] = CONFIDENCES[2]

# --- CDS Hooks card indicators ----------------------------------------------------------

#: A CDS Hooks card indicator.
Indicator = Literal["info", "warning", "critical"]
#: Card indicator by status level (docs/safety-model.md). A level this table does not
#: know (a ruleset's own) is a ``warning``, never ``info``.
INDICATORS: Final[Mapping[str, Indicator]] = MappingProxyType(
    {
        CONTRAINDICATED: "critical",
        NOT_INDICATED: "warning",
        SPECIALIST_REVIEW: "warning",
        DEFER: "warning",
        INCOMPLETE: "warning",
        CAUTIONS: "warning",
        NO_CONCERNS_FOUND: "info",
    }
)
#: Indicators, most serious first (0), for sorting cards.
INDICATOR_RANK: Final[Mapping[str, int]] = MappingProxyType({"critical": 0, "warning": 1, "info": 2})

# --- Frequency words --------------------------------------------------------------------

#: Common dosing-frequency words and abbreviations of case files, as administrations per day.
FREQUENCIES: Final[Mapping[str, Decimal]] = MappingProxyType(
    {
        "once daily": Decimal(1),
        "daily": Decimal(1),
        "qd": Decimal(1),
        "od": Decimal(1),
        "qhs": Decimal(1),
        "nightly": Decimal(1),
        "bid": Decimal(2),
        "twice daily": Decimal(2),
        "tid": Decimal(3),
        "three times daily": Decimal(3),
        "qid": Decimal(4),
        "four times daily": Decimal(4),
    }
)
