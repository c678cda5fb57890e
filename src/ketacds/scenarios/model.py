"""What a scenario file says, as frozen attrs classes that remember their YAML lines.

A :class:`Scenario` is a patient, a planned treatment, and :class:`Expectations`:
the overall status, findings that must be present or absent, the dose, monitoring
items and data gaps. Every expectation keeps the line it was written on, so a
failure can point the pharmacist at it. The format is documented in
``docs/scenario-format.md``; :mod:`ketacds.scenarios.load` reads it.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from ketacds.models.inputs import Context, PatientRecord

__all__ = [
    "DoseExpectation",
    "Expectations",
    "FindingExpectation",
    "NamedExpectation",
    "Scenario",
    "ScenarioFile",
    "StatusExpectation",
    "TextExpectation",
]


@attrs.frozen(kw_only=True)
class FindingExpectation:
    """A finding that must be present (or absent): by rule id, or by category and title.

    ``severity``, when given, must also match (it pins how serious the finding is).
    """

    rule_id: str | None = None
    category: str | None = None
    title: str | None = None
    severity: str | None = None
    line: int | None = None

    def describe(self) -> str:
        """A short name for this expectation, as the pharmacist wrote it."""
        parts = []
        if self.rule_id:
            parts.append(self.rule_id)
        if self.category:
            parts.append(f"{self.category} finding")
        if self.title:
            parts.append(f"“{self.title}”")
        if self.severity:
            parts.append(f"with severity {self.severity}")
        return " ".join(parts)


@attrs.frozen(kw_only=True)
class StatusExpectation:
    """The overall status the Assessment must have."""

    status: str
    line: int | None = None


@attrs.frozen(kw_only=True)
class NamedExpectation:
    """A monitoring item or data gap that must be present: a rule id or a ``missing`` name."""

    name: str
    line: int | None = None


@attrs.frozen(kw_only=True)
class TextExpectation:
    """Words that must be (``present``) or must not be in the Assessment's text.

    The text is every word the rules put in the Assessment (see
    :func:`ketacds.scenarios.check.assessment_text`); case and spacing do not matter.
    """

    text: str
    present: bool = True
    line: int | None = None


@attrs.frozen(kw_only=True)
class DoseExpectation:
    """The expected dose option (``none``: there must be no dose advice at all).

    Numbers are exact; ``tolerance`` (absolute, default 0) applies to ``mg``,
    ``mg_per_kg`` and ``dosing_weight_kg``.
    """

    none: bool = False
    label: str | None = None
    mg: Decimal | None = None
    mg_per_kg: Decimal | None = None
    dosing_weight_kg: Decimal | None = None
    infusion_minutes: int | None = None
    tolerance: Decimal = Decimal(0)
    line: int | None = None


@attrs.frozen(kw_only=True)
class Expectations:
    """Everything a scenario expects; every part is optional."""

    status: StatusExpectation | None = None
    findings: tuple[FindingExpectation, ...] = ()
    absent: tuple[FindingExpectation, ...] = ()
    dose: DoseExpectation | None = None
    monitoring: tuple[NamedExpectation, ...] = ()
    data_gaps: tuple[NamedExpectation, ...] = ()
    no_data_gaps: bool = False
    no_data_gaps_line: int | None = None
    #: Words the Assessment's text must hold (``text``) or must not hold (``not_text``).
    text: tuple[TextExpectation, ...] = ()
    #: The rules must refuse this route in this jurisdiction (a program with a declared refusal).
    refused: bool = False
    refused_line: int | None = None
    line: int | None = None

    @property
    def count(self) -> int:
        """How many separate expectations there are."""
        return (
            (self.status is not None)
            + len(self.findings)
            + len(self.absent)
            + (self.dose is not None)
            + len(self.monitoring)
            + len(self.data_gaps)
            + self.no_data_gaps
            + len(self.text)
            + self.refused
        )


@attrs.frozen(kw_only=True)
class Scenario:
    """One patient, one planned treatment, and what the engine should say.

    ``file`` is the path as given to the loader; ``line`` is where the scenario starts.
    ``data`` is the case exactly as written (the ``ketacds assess`` shape).
    """

    title: str
    record: PatientRecord
    context: Context
    expect: Expectations
    file: str
    line: int
    description: str | None = None
    author: str | None = None
    source: str | None = None
    data: dict[str, object] = attrs.field(factory=dict, eq=False, repr=False)
    lines: dict[tuple[str | int, ...], int] = attrs.field(factory=dict, eq=False, repr=False)

    @property
    def where(self) -> str:
        """``file:line`` of the scenario."""
        return f"{self.file}:{self.line}"

    def line_of(self, path: tuple[str | int, ...]) -> int:
        """The line of a key in this scenario (``("context", "jurisdiction")``), or of its nearest parent."""
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, self.line)


@attrs.frozen(kw_only=True)
class ScenarioFile:
    """A scenario file: its scenarios, in the order written."""

    path: str
    scenarios: tuple[Scenario, ...]
    title: str | None = None
    description: str | None = None
