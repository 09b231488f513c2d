"""Event data models, one per CloudEvents ``type``, and the registry of every type.

Inbound events are published by outside producers to the ``<ns>.inbound`` exchange with
the type as routing key. Emitted events are published by Linkwell to ``<ns>.events`` with
routing key ``<type>.<suffix>``, the suffix being what subscribers filter on.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, field_validator

from .enums import (
    AgencyType,
    ClosureReason,
    ConsentMethod,
    ContactMode,
    ContactOutcome,
    ContactPreference,
    Need,
    Pathway,
    ReferralStatusValue,
    RejectionCode,
    WritebackFact,
)
from .envelope import UK, CloudEvent, OrgCode, new_event_id, now
from .limits import SafeText
from .nhs import NhsNumber
from .snomed import REGISTRY, SNOMED_CT_SYSTEM, Concept

PracticeCode = Annotated[
    str,
    Field(pattern=r"^[A-Z][0-9]{5}$", description="GP practice ODS code", examples=["A81001"]),
]
PcnCode = Annotated[
    str, Field(pattern=r"^U[0-9]{5}$", description="PCN ODS code", examples=["U12345"])
]
Reference = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
        description="The sender's own reference for the referral; unique per sender.",
    ),
]
WorkerId = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
Needs = Annotated[list[Need], Field(min_length=1, max_length=len(Need))]


class Direction(StrEnum):
    INBOUND = "inbound"
    EMITTED = "emitted"


class EventData(BaseModel):
    """Base of every event's ``data``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    TYPE: ClassVar[str]
    DIRECTION: ClassVar[Direction]
    ROUTED_BY: ClassVar[str | None] = None  # the data field that ends the routing key

    def routing_key(self) -> str:
        if self.ROUTED_BY is None:
            return self.TYPE
        return f"{self.TYPE}.{getattr(self, self.ROUTED_BY)}"

    def subject(self) -> str | None:
        referral_id = getattr(self, "referral_id", None)
        return str(referral_id) if referral_id is not None else None

    def envelope(
        self, *, source: str, correlationid: str | None = None, event_id: str | None = None
    ) -> CloudEvent[Any]:
        return CloudEvent[type(self)](  # type: ignore[misc]
            specversion="1.0",
            id=event_id or new_event_id(),
            source=source,
            type=self.TYPE,
            time=now(),
            subject=self.subject(),
            correlationid=correlationid,
            data=self,
        )


# ---------------------------------------------------------------- shared parts


class Consent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    given: bool = Field(description="The person consents to the referral. Must be true.")
    recorded_at: AwareDatetime
    method: ConsentMethod


class PersonContact(BaseModel):
    """How the person wants to be contacted; carried only to the services that contact them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preferred: ContactPreference
    phone: Annotated[str | None, Field(pattern=r"^\+?[0-9 ]{10,16}$")] = None
    email: EmailStr | None = None


class Person(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nhs_number: NhsNumber
    given_name: Annotated[SafeText, Field(min_length=1, max_length=100)]
    family_name: Annotated[SafeText, Field(min_length=1, max_length=100)]
    date_of_birth: date
    contact: PersonContact

    @field_validator("date_of_birth")
    @classmethod
    def _not_future(cls, value: date) -> date:
        if value > datetime.now(UK).date():
            raise ValueError("date of birth is in the future")
        return value


class Referrer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agency_type: AgencyType
    organisation_name: Annotated[SafeText, Field(min_length=1, max_length=200)]
    professional_role: Annotated[SafeText | None, Field(max_length=100)] = Field(
        default=None, description="Role of the referring professional, never their name."
    )


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: RejectionCode
    message: Annotated[SafeText, Field(max_length=1000)]
    field: Annotated[str | None, Field(max_length=200)] = Field(
        default=None, description="Dotted path of the offending field."
    )


class GpCoding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    system: str = Field(default=SNOMED_CT_SYSTEM, pattern="^http://snomed\\.info/sct$")
    code: str
    display: str

    @field_validator("code")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in REGISTRY:
            raise ValueError("not a SNOMED CT code in Linkwell's traceable registry")
        return value

    @classmethod
    def of(cls, concept: Concept) -> GpCoding:
        return cls(code=concept.code, display=concept.display)


# ---------------------------------------------------------------- inbound


class ReferralSubmitted(EventData):
    """An agency, or the person themself, refers someone to social prescribing.

    The sending organisation is the envelope's ``source`` (``urn:linkwell:org:<CODE>``).
    """

    TYPE = "referral.submitted.v1"
    DIRECTION = Direction.INBOUND

    sender_reference: Reference
    referrer: Referrer
    person: Person
    registered_practice: PracticeCode
    pcn: PcnCode
    needs: Needs
    consent: Consent
    in_crisis: bool = Field(
        default=False,
        description="The person is at immediate risk. Social prescribing is not an emergency "
        "service: such referrals are rejected with advice to redirect to urgent help.",
    )
    submitted_at: AwareDatetime


class LinkWorkerRegistered(EventData):
    """A link worker joins (or updates their place on) a PCN's roster."""

    TYPE = "linkworker.registered.v1"
    DIRECTION = Direction.INBOUND

    link_worker_id: WorkerId
    pcn: PcnCode
    capacity: Annotated[int, Field(ge=0, le=500, description="People the worker can hold at once.")]
    registered_at: AwareDatetime


class ContactRecorded(EventData):
    """A link worker's contact (or attempt) with the person."""

    TYPE = "contact.recorded.v1"
    DIRECTION = Direction.INBOUND

    referral_id: uuid.UUID
    link_worker_id: WorkerId
    occurred_at: AwareDatetime
    mode: ContactMode
    outcome: ContactOutcome


class ReferralClosed(EventData):
    """The episode ends."""

    TYPE = "referral.closed.v1"
    DIRECTION = Direction.INBOUND

    referral_id: uuid.UUID
    reason: ClosureReason
    closed_at: AwareDatetime
    link_worker_id: WorkerId | None = None


# ---------------------------------------------------------------- emitted


class ReferralAccepted(EventData):
    """Intake accepted a referral. Routed by the sender: the sender's acknowledgement.

    Carries the NHS number (for the GP writeback) and contact preference (to tell the
    person) and nothing more of the person: no name, no date of birth.
    """

    TYPE = "referral.accepted.v1"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "sender"

    referral_id: uuid.UUID
    sender: OrgCode
    sender_reference: Reference
    submission_event_id: str
    agency_type: AgencyType
    registered_practice: PracticeCode
    pcn: PcnCode
    needs: Needs
    pathway: Pathway
    nhs_number: NhsNumber
    contact: PersonContact
    accepted_at: AwareDatetime


class ReferralRejected(EventData):
    """Intake refused a submission. Routed by the sender."""

    TYPE = "referral.rejected.v1"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "sender"

    submission_event_id: str
    sender: Annotated[str, Field(description="Org code, or 'unknown' if none could be read.")]
    sender_reference: str | None = None
    reasons: Annotated[list[Reason], Field(min_length=1)]
    rejected_at: AwareDatetime

    def subject(self) -> str | None:
        return None


class EventRejected(EventData):
    """Any other inbound event that could not be read. Routed by the sender."""

    TYPE = "event.rejected.v1"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "sender"

    rejected_event_id: str
    rejected_type: str | None
    sender: str
    reasons: Annotated[list[Reason], Field(min_length=1)]
    rejected_at: AwareDatetime


class ReferralWaitlisted(EventData):
    """No link worker in the PCN has room; the referral waits. Routed by PCN.

    No waiting time is ever given.
    """

    TYPE = "referral.waitlisted.v1"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "pcn"

    referral_id: uuid.UUID
    pcn: PcnCode
    registered_practice: PracticeCode
    waitlisted_at: AwareDatetime


class ReferralAssigned(EventData):
    """A link worker has the referral. Routed by PCN: a team binds only its own."""

    TYPE = "referral.assigned.v1"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "pcn"

    referral_id: uuid.UUID
    pcn: PcnCode
    registered_practice: PracticeCode
    link_worker_id: WorkerId
    needs: Needs
    pathway: Pathway
    from_waitlist: bool
    assigned_at: AwareDatetime


class ReferralStatus(EventData):
    """Where a referral stands, for its referrer. Routed by the sender."""

    TYPE = "referral.status.v1"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "sender"

    referral_id: uuid.UUID | None
    sender: str
    sender_reference: str | None
    status: ReferralStatusValue
    message: str
    at: AwareDatetime


class GpWriteback(EventData):
    """SNOMED CT codes and a summary for the person's GP record. Routed by practice."""

    TYPE = "gp.writeback.v1"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "registered_practice"

    referral_id: uuid.UUID
    registered_practice: PracticeCode
    nhs_number: NhsNumber
    fact: WritebackFact
    codes: list[GpCoding]
    summary: Annotated[SafeText, Field(min_length=1, max_length=4000)]
    effective_at: AwareDatetime


class NotificationFailed(EventData):
    """A message to the person or to the team could not be delivered, after every retry:
    the team should reach the person another way. Routed by PCN. Carries no address."""

    TYPE = "notification.failed.v1"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "pcn"

    referral_id: uuid.UUID
    pcn: PcnCode
    audience: Literal["person", "team"]
    medium: Literal["email", "sms"]
    attempts: int
    error: Annotated[str, Field(max_length=100, description="What failed, e.g. SMTP refused")]
    failed_at: AwareDatetime


# ---------------------------------------------------------------- registry


class Party(StrEnum):
    """Who outside Linkwell takes part in an event: for an inbound type, who may publish
    it; for an emitted one, who receives it (besides the services that consume it). The
    broker permissions of every organisation are derived from these (``linkwell access``)."""

    AGENCIES = "agencies, self-referral services"
    TEAMS = "link worker teams"
    REFERRER = "the referrer"  # routed by sender: answers about a referral it sent
    SENDER = "the sender"  # routed by sender: answers to any inbound event
    GP_INTEGRATORS = "GP system integrators"


@dataclass(frozen=True)
class EventSpec:
    """One event type of the contract. Which services consume and emit it is declared by
    the services themselves (``services/<service>/app.py``)."""

    model: type[EventData]
    parties: tuple[Party, ...]

    @property
    def type(self) -> str:
        return self.model.TYPE

    @property
    def routing_key_pattern(self) -> str:
        if self.model.ROUTED_BY is None:
            return self.model.TYPE
        return f"{self.model.TYPE}.<{self.model.ROUTED_BY}>"


EVENTS: dict[str, EventSpec] = {
    spec.type: spec
    for spec in (
        EventSpec(ReferralSubmitted, (Party.AGENCIES,)),
        EventSpec(LinkWorkerRegistered, (Party.TEAMS,)),
        EventSpec(ContactRecorded, (Party.TEAMS,)),
        EventSpec(ReferralClosed, (Party.TEAMS,)),
        EventSpec(ReferralAccepted, (Party.REFERRER,)),
        EventSpec(ReferralRejected, (Party.REFERRER,)),
        EventSpec(EventRejected, (Party.SENDER,)),
        EventSpec(ReferralWaitlisted, (Party.TEAMS,)),
        EventSpec(ReferralAssigned, (Party.TEAMS,)),
        EventSpec(ReferralStatus, (Party.REFERRER,)),
        EventSpec(GpWriteback, (Party.GP_INTEGRATORS,)),
        EventSpec(NotificationFailed, (Party.TEAMS,)),
    )
}


M = TypeVar("M", bound=EventData)


def parse_event(model: type[M], payload: bytes | str | dict[str, Any]) -> CloudEvent[M]:
    """Validate a whole envelope of a known type, strictly, as Linkwell validates what it
    receives: JSON types only (no number for a date, no "true" for true, no "3" for 3)."""
    envelope = CloudEvent[model]  # type: ignore[valid-type]
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    return envelope.model_validate_json(payload, strict=True)
