"""The CDS Hooks 2.0 messages as pydantic models.

They validate requests and responses, and are the schemas of the published OpenAPI document.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Card",
    "CardsResponse",
    "Coding",
    "DiscoveryResponse",
    "FeedbackItem",
    "FeedbackQueryResponse",
    "FeedbackRequest",
    "FhirAuthorization",
    "HookRequest",
    "Problem",
    "ServiceDescription",
]

_ID = Field(min_length=1, max_length=200)


class _Open(BaseModel):
    """Extensions (extra members) are allowed, as the specification permits."""

    model_config = ConfigDict(extra="allow")


class FhirAuthorization(_Open):
    """Access to the CDS client's FHIR server (an OAuth 2.0 bearer token)."""

    access_token: str = Field(min_length=1, max_length=10_000)
    token_type: Literal["Bearer"]
    expires_in: int = Field(ge=0)
    scope: str = Field(max_length=10_000)
    subject: str = Field(max_length=1_000)
    patient: str | None = Field(default=None, max_length=1_000)


class HookRequest(_Open):
    """A CDS Hooks call: the hook, its instance, context, prefetch and FHIR access."""

    hook: str = _ID
    hookInstance: str = _ID
    fhirServer: str | None = Field(default=None, max_length=2_000, pattern=r"^https?://")
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _authorization_needs_server(self) -> HookRequest:
        if self.fhirAuthorization is not None and self.fhirServer is None:
            raise ValueError("fhirAuthorization is given without fhirServer")
        return self


class Coding(BaseModel):
    """A code in a code system."""

    model_config = ConfigDict(extra="allow")

    system: str | None = Field(default=None, max_length=1_000)
    code: str = Field(min_length=1, max_length=1_000)
    display: str | None = Field(default=None, max_length=1_000)


class _Suggestion(BaseModel):
    uuid: str
    id: str | None = None


class _OverrideReason(BaseModel):
    model_config = ConfigDict(extra="allow")

    reason: Coding | None = None
    userComment: str | None = Field(default=None, max_length=10_000)


class FeedbackItem(_Open):
    """What the clinician did with one card."""

    card: str = _ID
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[dict[str, Any]] | None = Field(default=None, max_length=100)
    overrideReason: _OverrideReason | None = None
    outcomeTimestamp: AwareDatetime


class FeedbackRequest(_Open):
    """The body of a feedback call."""

    feedback: list[FeedbackItem] = Field(min_length=1, max_length=1_000)


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    url: str | None = None
    icon: str | None = None
    topic: dict[str, str] | None = None


class _Link(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    url: str
    type: Literal["absolute", "smart"]
    appContext: str | None = None


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["create", "update", "delete"]
    description: str
    resource: dict[str, Any] | None = None


class _CardSuggestion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    uuid: str
    isRecommended: bool | None = None
    actions: list[_Action]


class Card(BaseModel):
    """One card (summary < 140 characters, Markdown detail, the service as source).

    The specification makes ``uuid`` optional; this service always gives one (feedback needs it).
    """

    model_config = ConfigDict(extra="forbid")

    uuid: str | None = None
    summary: str = Field(max_length=139)
    indicator: Literal["info", "warning", "critical"]
    detail: str | None = None
    source: _Source
    suggestions: list[_CardSuggestion] | None = None
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[Coding] | None = None
    links: list[_Link] | None = None


class CardsResponse(BaseModel):
    """The answer to a hook call."""

    cards: list[Card]


class ServiceDescription(BaseModel):
    """One entry of the discovery document."""

    hook: str
    id: str
    title: str
    description: str
    prefetch: dict[str, str]
    usageRequirements: str | None = None


class DiscoveryResponse(BaseModel):
    """The discovery document."""

    services: list[ServiceDescription]


class FeedbackQueryResponse(BaseModel):
    """Recorded feedback, newest first, with the rules of each card."""

    feedback: list[dict[str, Any]]


class Problem(BaseModel):
    """An error answer: what is wrong, in words a developer can act on."""

    error: str
    problems: list[str] | None = None
