"""From a checked hook request and its FHIR resources to the cards of the answer.

:func:`check_context` checks the hook's ``context`` (422 when it lacks what the hook
needs). :func:`evaluate` then runs in place on the worker's event loop: it reads the resources into a
:class:`~ketacds.models.inputs.PatientRecord`, builds one
:class:`~ketacds.models.inputs.Context` per assessment (each configured route for
``patient-view``; each drafted or selected order for the order hooks), assesses, and
renders the cards, most serious first. A record that cannot be read, a patient that is
not assessed or an order whose route is not assessed each give an error card; a route
the rules refuse (:class:`~ketacds.errors.ProgramRefusedError`) and an engine failure
(:class:`~ketacds.errors.EvaluationError`) propagate to the route, which answers 422
or 503.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from fastapi import HTTPException

from ketacds.adapters.cds_hooks import CardContext, RenderedCard, cards_for, error_card
from ketacds.adapters.fhir import read_draft_orders
from ketacds.adapters.fhir.records import read_json_resources
from ketacds.engine.api import Engine
from ketacds.errors import InputError, NotAssessedError, ProgramRefusedError
from ketacds.models.inputs import Context, Medication, PatientRecord
from ketacds.models.quality import DataQualityIssue
from ketacds.server.settings import ServiceSettings
from ketacds.terminology.mapping import FhirMapping

__all__ = ["check_context", "evaluate"]


def check_context(hook: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """The hook's ``context``, checked to hold what ``hook`` needs.

    Raises:
        HTTPException: 422 naming every problem found.
    """
    problems = []
    if not isinstance(context.get("patientId"), str) or not context["patientId"].strip():
        problems.append("context.patientId: a patient id (text) is required")
    if hook != "patient-view":
        orders = context.get("draftOrders")
        if not isinstance(orders, Mapping) or orders.get("resourceType") != "Bundle":
            problems.append("context.draftOrders: a FHIR Bundle of the drafted orders is required")
    selections = context.get("selections")
    if (
        hook == "order-select"
        and selections is not None
        and (not isinstance(selections, list) or not all(isinstance(s, str) for s in selections))
    ):
        problems.append("context.selections: a list of resource references (text) is expected")
    elif hook == "order-select" and selections and isinstance(context.get("draftOrders"), Mapping):
        drafted = _drafted(context["draftOrders"])
        # Never answered as "nothing selected needs a card": the selected order was not read.
        # (Named by position: an error answer never echoes request values.)
        problems += [
            f"context.selections[{i}]: matches no resource in draftOrders (a selection is the Type/id "
            "of a drafted resource, such as MedicationRequest/123)"
            for i, selection in enumerate(selections)
            if selection not in drafted
        ][:5]
    if problems:
        raise HTTPException(422, "; ".join(problems))
    return dict(context)


def _drafted(draft_orders: Mapping[str, Any]) -> set[str]:
    """The ``Type/id`` of every resource a ``draftOrders`` Bundle gives (what a selection may name)."""
    entries = draft_orders.get("entry")
    drafted = set()
    for entry in entries if isinstance(entries, list) else ():
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if isinstance(resource, Mapping):
            kind, rid = resource.get("resourceType"), resource.get("id")
            if isinstance(kind, str) and isinstance(rid, str) and rid:
                drafted.add(f"{kind}/{rid}")
    return drafted


def evaluate(
    settings: ServiceSettings,
    new_uuid: Callable[[], str],
    engine: Engine,
    mapping: FhirMapping,
    hook: str,
    context: Mapping[str, Any],
    resources: Sequence[Any],
    issues: Sequence[DataQualityIssue],
    now: dt.datetime,
) -> list[RenderedCard]:
    """Everything that touches the engine: the cards of one hook call.

    Args:
        settings: the service configuration (jurisdiction, patient-view routes, docs URL).
        new_uuid: makes card and suggestion uuids.
        engine: this worker's engine.
        mapping: the FHIR mapping the resources are read with.
        hook: the hook called (``patient-view``, ``order-select`` or ``order-sign``).
        context: the checked hook context (:func:`check_context`).
        resources: the prefetched and fetched FHIR resources.
        issues: data-quality issues found while prefetching.
        now: the time of the assessment.

    Raises:
        ProgramRefusedError: the rules refuse a route in this jurisdiction.
        EvaluationError: the engine failed.
    """
    evaluation = _Evaluation(settings, new_uuid, engine, mapping, now)
    try:
        # The body's resources are JSON data: the record is remembered by their content.
        record = read_json_resources(
            resources, patient_id=context["patientId"], mapping=mapping, terminology=engine.terminology
        )
    except InputError as error:
        return evaluation.fail(
            "ketacds could not read this patient's record", f"The record could not be read: {error}."
        )
    if issues:  # (without, the record read is assessed as it is: evolving it copies it)
        record = attrs.evolve(record, data_quality=(*record.data_quality, *issues))
    card_context = CardContext(
        hook=hook,
        ruleset=engine.ruleset,
        docs_url=settings.docs_url,
        mapping_version=f"{mapping.version} (sha256 {mapping.digest[:12]})",
        uuid=new_uuid,
    )
    if hook == "patient-view":
        return _most_serious_first(evaluation.patient_view(record, card_context))
    return _most_serious_first(evaluation.orders(hook, context, record, card_context))


@attrs.frozen
class _Evaluation:
    """The assessments of one hook call: one per patient-view route, or one per order."""

    settings: ServiceSettings
    new_uuid: Callable[[], str]
    engine: Engine
    mapping: FhirMapping
    now: dt.datetime

    @property
    def label(self) -> str:
        """The source label of an error card: the ruleset's name, version and digest."""
        ruleset = self.engine.ruleset
        return f"ketacds {ruleset.name} {ruleset.version} (rules sha256 {self.engine.digest[:12]})"

    def fail(self, summary: str, detail: str) -> list[RenderedCard]:
        """One error card saying what could not be done."""
        return [
            RenderedCard(
                error_card(summary=summary, detail=detail, uuid=self.new_uuid, source_label=self.label)
            )
        ]

    def assess(self, record: PatientRecord, ctx: Context, cards: CardContext) -> list[RenderedCard]:
        """The cards of one assessment, or an error card when the patient is not assessed."""
        try:
            return cards_for(self.engine.assess(record, ctx), cards)
        except ProgramRefusedError:
            raise  # the whole request is refused (HTTP 422), never answered with fewer rules
        except NotAssessedError as error:
            return self.fail("Not assessed: ketacds gives no advice for this patient", f"{error.reason}.")
        except InputError as error:
            return self.fail(
                "ketacds could not assess this patient", f"The record cannot be assessed: {error}."
            )

    def patient_view(self, record: PatientRecord, card_context: CardContext) -> list[RenderedCard]:
        """``patient-view``: one assessment per configured route."""
        rendered: list[RenderedCard] = []
        for route in self.settings.patient_view_routes:
            ctx = Context(route=route, jurisdiction=self.settings.jurisdiction, now=self.now)  # type: ignore[arg-type]
            rendered += self.assess(record, ctx, card_context)
        return rendered

    def orders(
        self, hook: str, context: Mapping[str, Any], record: PatientRecord, card_context: CardContext
    ) -> list[RenderedCard]:
        """The order hooks: one assessment per drafted order (per selected one for ``order-select``).

        The drafted orders replace their own entries among the record's medications,
        so an order is never counted twice.
        """
        drafts = read_draft_orders(
            context["draftOrders"], mapping=self.mapping, terminology=self.engine.terminology
        )
        selected = context.get("selections")
        orders = [o for o in drafts.orders if hook != "order-select" or not selected or o.key in selected]
        unknown = [k for k in drafts.unrecognised if hook != "order-select" or not selected or k in selected]
        unreadable = drafts.unreadable if hook != "order-select" or not selected else ()
        if not orders and (unknown or unreadable):
            # a drafted order whose drug cannot be told could be the planned treatment: said, never silent
            reasons = " ".join(
                i.message for i in drafts.issues if i.resource in unknown and i.severity == "error"
            )
            said = [f"Order {', '.join(f'`{k}`' for k in unknown)}: {reasons}"] if unknown else []
            said += [f"draftOrders: {message}" for message in unreadable]
            return self.fail(
                "ketacds cannot tell whether a drafted order is ketamine or esketamine",
                f"{' '.join(said)} If it is ketamine or esketamine, no check was made.",
            )
        if not orders:
            return []
        draft_keys = {o.key for o in drafts.orders}
        medications: list[Medication] = [
            m for m in record.medications if (m.id or "").split("#", 1)[0] not in draft_keys
        ]
        order_issues = {issue for order in drafts.orders for issue in order.issues}
        record = attrs.evolve(
            record,
            medications=(*medications, *drafts.medications),
            data_quality=(*record.data_quality, *(i for i in drafts.issues if i not in order_issues)),
        )
        rendered: list[RenderedCard] = []
        for order in orders:
            if order.route is None:
                reasons = " ".join(i.message for i in order.issues if i.severity == "error")
                rendered += self.fail(
                    "ketacds cannot check this ketamine or esketamine order: its drug or route is not one it "
                    "reads or assesses",
                    f"Order `{order.key}`: {reasons or 'the route could not be read.'} No check was made.",
                )
                continue
            ctx = Context(
                route=order.route,  # type: ignore[arg-type]
                jurisdiction=self.settings.jurisdiction,
                now=self.now,
                order=order.order,
            )
            order_record = (  # (an order without issues is assessed with the record as it is)
                attrs.evolve(record, data_quality=(*record.data_quality, *order.issues))
                if order.issues
                else record
            )
            rendered += self.assess(
                order_record,
                ctx,
                attrs.evolve(card_context, order_resource=order.resource, order_key=order.key),
            )
        return rendered


def _most_serious_first(rendered: list[RenderedCard]) -> list[RenderedCard]:
    """The cards sorted critical, warning, info (stable: ties keep their order)."""
    rank = {"critical": 0, "warning": 1, "info": 2}
    return sorted(rendered, key=lambda r: rank[r.card["indicator"]])
