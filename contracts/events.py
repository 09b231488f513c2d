"""Event data models, one per CloudEvents ``type``, and the registry of every type.

Inbound events are published by outside producers to the ``<ns>.inbound`` exchange with
the type as routing key. Emitted events are published by Linkwell to ``<ns>.events`` with
routing key ``<type>.<suffix>``, the suffix being what subscribers filter on.
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    field_validator,
    model_validator,
)

from .enums import (
    AgencyType,
    ClosureReason,
    ConnectionCategory,
    ConsentMethod,
    ContactMode,
    ContactOutcome,
    ContactPreference,
    GpSharing,
    Instrument,
    MeasurePoint,
    Need,
    Pathway,
    ReferralStatusValue,
    RejectionCode,
    TaskStatus,
    WithdrawnBy,
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


@functools.cache
def envelope_type(model: type[Any]) -> type[CloudEvent[Any]]:
    """``CloudEvent[model]``, made once: pydantic keeps parametrised models only weakly, and
    building one again costs a whole schema generation."""
    return CloudEvent[model]  # type: ignore[valid-type]


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
        return envelope_type(type(self))(
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
    adjustments: Annotated[SafeText | None, Field(min_length=1, max_length=500)] = Field(
        default=None,
        description="Reasonable adjustments the person needs to be contacted and supported, "
        'in their words (e.g. "call, don\'t text", an interpreter for Polish, large print). '
        "Free text: what people need is open-ended (which language, which format), and a "
        "closed list would lose it. Carried only to those who contact the person (the team's "
        "notification); absent: none asked for.",
    )


class Person(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nhs_number: NhsNumber | None = Field(
        default=None,
        description="Absent: not known (most people do not know theirs). Checked (modulus 11) "
        "when given. A referral without one is accepted, is never matched to another "
        "person's, and nothing is written to a GP record until the person's team confirms "
        "it (referral.identity_confirmed.v1).",
    )
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
    gp_sharing: GpSharing = Field(
        default=GpSharing.CODES_AND_SUMMARIES,
        description="What the person agreed their GP receives: codes only, or codes and the "
        "link worker's summaries (plan, notes, measures, closing summary).",
    )


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


class LinkWorkerUpdated(EventData):
    """A worker's capacity changes, or the worker leaves. Nobody is dropped: people above a
    lower capacity stay with their worker (who takes nobody new until below it); a
    leaving worker's people are moved to colleagues with room, or put at the head of the
    waitlist, each with a decision (``referral.assigned.v1`` or ``.waitlisted.v1``)."""

    TYPE = "linkworker.updated.v1"
    DIRECTION = Direction.INBOUND

    link_worker_id: WorkerId
    pcn: PcnCode
    capacity: Annotated[int | None, Field(ge=0, le=500)] = Field(
        default=None, description="The new number of people the worker can hold at once."
    )
    leaving: bool = Field(default=False, description="The worker leaves the PCN's roster.")
    updated_at: AwareDatetime

    @model_validator(mode="after")
    def _one_change(self) -> LinkWorkerUpdated:
        if (self.capacity is None) == (not self.leaving):
            raise ValueError("give either a capacity or leaving: true")
        return self


class PlanGoal(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: Annotated[SafeText, Field(min_length=1, max_length=500)]
    review_on: date


class PlanConnection(BaseModel):
    """A community group or service the person is connected to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[SafeText, Field(min_length=1, max_length=200)]
    category: ConnectionCategory
    introduced_in_person: bool = Field(description="The link worker went with the person.")


class PlanAgreed(EventData):
    """The personalised care and support plan the person and link worker agreed. A later
    plan for the same referral is a revision that supersedes the earlier one."""

    TYPE = "plan.agreed.v1"
    DIRECTION = Direction.INBOUND

    referral_id: uuid.UUID
    link_worker_id: WorkerId
    what_matters: Annotated[SafeText, Field(min_length=1, max_length=2000)] = Field(
        description="What matters to the person, in their words."
    )
    goals: Annotated[list[PlanGoal], Field(max_length=20)] = []
    connections: Annotated[list[PlanConnection], Field(max_length=30)] = []
    agreed_at: AwareDatetime


class WellbeingMeasured(EventData):
    """A wellbeing measurement. ``items`` in the instrument's order: SWEMWBS its seven
    statements, each 1 to 5; ONS4 life satisfaction, worthwhile, happiness and anxiety,
    each 0 to 10. Counts and ranges are checked per instrument; a wrong one is refused."""

    TYPE = "wellbeing.measured.v1"
    DIRECTION = Direction.INBOUND

    referral_id: uuid.UUID
    link_worker_id: WorkerId
    instrument: Instrument
    point: MeasurePoint
    items: Annotated[list[Annotated[int, Field(ge=0, le=10)]], Field(min_length=1, max_length=14)]
    taken_at: AwareDatetime


class Attachment(BaseModel):
    """A document's description. Documents themselves never travel on the bus."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: Annotated[SafeText, Field(min_length=1, max_length=200)]
    media_type: Annotated[str, Field(max_length=100, pattern=r"^[a-z]+/[a-z0-9.+-]+$")]
    size_bytes: Annotated[int, Field(ge=0, le=100_000_000)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class NoteShared(EventData):
    """A note from the link worker for the GP, at any point of the journey."""

    TYPE = "note.shared.v1"
    DIRECTION = Direction.INBOUND

    referral_id: uuid.UUID
    link_worker_id: WorkerId
    text: Annotated[SafeText, Field(min_length=1, max_length=4000)]
    attachments: Annotated[list[Attachment], Field(max_length=10)] = []
    shared_at: AwareDatetime


class ReferralWithdrawn(EventData):
    """The sending organisation withdraws its own referral, or the person's team records
    that the person withdrew consent. The place is freed (or the waitlist entry removed)
    and the person is not contacted again."""

    TYPE = "referral.withdrawn.v1"
    DIRECTION = Direction.INBOUND

    referral_id: uuid.UUID
    by: WithdrawnBy
    reason: Annotated[SafeText | None, Field(max_length=300)] = None
    withdrawn_at: AwareDatetime


class ReferralHeld(EventData):
    """The team pauses support; the person keeps their place."""

    TYPE = "referral.held.v1"
    DIRECTION = Direction.INBOUND

    referral_id: uuid.UUID
    reason: Annotated[SafeText, Field(min_length=1, max_length=300)]
    held_at: AwareDatetime


class ReferralResumed(EventData):
    """The team resumes support paused by ``referral.held.v1``."""

    TYPE = "referral.resumed.v1"
    DIRECTION = Direction.INBOUND

    referral_id: uuid.UUID
    reason: Annotated[SafeText | None, Field(max_length=300)] = None
    resumed_at: AwareDatetime


class ReferralTransferred(EventData):
    """The team moves the referral to another link worker of the same PCN; refused
    (``at_capacity``) if that worker has no room."""

    TYPE = "referral.transferred.v1"
    DIRECTION = Direction.INBOUND

    referral_id: uuid.UUID
    to_link_worker_id: WorkerId
    reason: Annotated[SafeText | None, Field(max_length=300)] = None
    transferred_at: AwareDatetime


class ReferralIdentityConfirmed(EventData):
    """The person's team confirms who the person of a referral is: their NHS number (asked
    of the person, or found on the national register). Published only by the team of the
    referral's PCN. Until a referral has an NHS number nothing is written to the GP record;
    once confirmed, the writebacks that were due go out, each once. A referral whose NHS
    number is already known takes a confirmation of the same number as a no-op."""

    TYPE = "referral.identity_confirmed.v1"
    DIRECTION = Direction.INBOUND

    referral_id: uuid.UUID
    nhs_number: NhsNumber
    confirmed_at: AwareDatetime


# ---------------------------------------------------------------- emitted


class ReferralAccepted(EventData):
    """Intake accepted a referral. Routed by the sender: the sender's acknowledgement.

    Deprecated: superseded by ``referral.accepted.v2``, which drops ``nhs_number``,
    ``contact``, ``person_id``, ``gp_sharing`` and the referral's details the sender gave;
    published beside it until ``ACCEPTED_V1_UNTIL`` and consumed by no Linkwell service.

    Carries the NHS number (for the GP writeback) and contact preference (to tell the
    person) and nothing more of the person: no name, no date of birth. ``nhs_number`` is
    absent when the submission gave none (since ``referral.submitted.v1`` made it
    optional): a consumer must not assume it is present.
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
    nhs_number: NhsNumber | None = Field(
        default=None,
        description="As submitted; absent when the referrer did not know it. Then the team "
        "confirms it (referral.identity_confirmed.v1) and GP writebacks wait until it does.",
    )
    contact: PersonContact
    accepted_at: AwareDatetime
    person_id: uuid.UUID | None = Field(
        default=None,
        description="Linkwell's id for the person (the same for every referral with the same "
        "NHS number), so that a person already supported is not given a second place.",
    )
    gp_sharing: GpSharing = GpSharing.CODES_AND_SUMMARIES


# referral.accepted.v1 is superseded by referral.accepted.v2 (the referrer's answer) and
# three internal events, each for the one service that needs what it carries
# (docs/architecture/minimal-events.md). Intake publishes v1 beside them until this day
# (the last day), for integrators still reading it.
ACCEPTED_V1_UNTIL = date(2027, 6, 30)


class ReferralAcceptedV2(EventData):
    """Intake accepted a referral: the referrer's answer. Routed by the sender.

    Carries ids only: nothing about the person (no NHS number, no contact, no
    ``person_id``) and nothing the referrer sent that it does not need back. Replaces
    ``referral.accepted.v1``, which intake publishes beside it until ``ACCEPTED_V1_UNTIL``.
    """

    TYPE = "referral.accepted.v2"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "sender"

    referral_id: uuid.UUID
    sender: OrgCode
    sender_reference: Reference
    submission_event_id: str
    accepted_at: AwareDatetime


class ReferralPlacement(EventData):
    """Internal, to triage only: what it needs to place an accepted referral with a link
    worker, or join it to the person's open episode. Routed by PCN. Nothing that names the
    person: ``person_id`` is intake's pseudonymous key, matched only when
    ``nhs_number_known`` (a referral without an NHS number is never matched to anyone).
    May come several to a message (a CloudEvents JSON batch, ``BATCH_CONTENT_TYPE``)."""

    TYPE = "referral.placement.v1"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "pcn"

    referral_id: uuid.UUID
    sender: OrgCode
    registered_practice: PracticeCode
    pcn: PcnCode
    needs: Needs
    pathway: Pathway
    accepted_at: AwareDatetime
    person_id: uuid.UUID
    nhs_number_known: bool


class ReferralContact(EventData):
    """Internal, to notify only: how to contact the person and whom to answer about the
    referral (the sender's ids for its statuses). Routed by PCN. No NHS number. May come
    several to a message (a CloudEvents JSON batch, ``BATCH_CONTENT_TYPE``)."""

    TYPE = "referral.contact.v1"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "pcn"

    referral_id: uuid.UUID
    sender: OrgCode
    sender_reference: Reference
    submission_event_id: str
    pcn: PcnCode
    contact: PersonContact
    accepted_at: AwareDatetime


class ReferralRecorded(EventData):
    """Internal, to outcomes only: what the record of the referral needs (the GP
    writeback, the timeline and the reports). Routed by PCN. The NHS number (absent when
    the submission gave none: then the team confirms it, referral.identity_confirmed.v1,
    and GP writebacks wait) and the person's choice of what the GP is told; no contact.
    May come several to a message (a CloudEvents JSON batch, ``BATCH_CONTENT_TYPE``)."""

    TYPE = "referral.recorded.v1"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "pcn"

    referral_id: uuid.UUID
    sender: OrgCode
    agency_type: AgencyType
    registered_practice: PracticeCode
    pcn: PcnCode
    needs: Needs
    pathway: Pathway
    accepted_at: AwareDatetime
    nhs_number: NhsNumber | None = None
    person_id: uuid.UUID
    gp_sharing: GpSharing


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
    # Where the form could be read: for the figures on refusals (never the person).
    agency_type: AgencyType | None = None
    registered_practice: PracticeCode | None = None
    pcn: PcnCode | None = None

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
    reason: Annotated[str | None, Field(max_length=300)] = Field(
        default=None, description="Why, when it is not a new referral (its worker left)."
    )


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
    transferred_from: WorkerId | None = Field(
        default=None, description="The worker the referral was with before (a transfer)."
    )


class ReferralStatus(EventData):
    """Where a referral stands, for its referrer. Routed by the sender."""

    TYPE = "referral.status.v1"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "sender"

    referral_id: uuid.UUID | None
    sender: str
    sender_reference: str | None
    status: ReferralStatusValue
    message: Annotated[str, Field(max_length=1000)]
    at: AwareDatetime
    task_status: TaskStatus | None = Field(
        default=None, description="Where the referral stands (HL7 Gravity task status)."
    )
    reason: Annotated[str | None, Field(max_length=300)] = Field(
        default=None, description="Why, for rejected, on-hold, cancelled and failed."
    )
    submission_event_id: Annotated[str | None, Field(max_length=128)] = Field(
        default=None, description="The id of the submission this answers."
    )
    step_at: AwareDatetime | None = Field(
        default=None,
        description="When the step happened (``at`` is when it was told). Steps can reach "
        "Linkwell out of order: each is told once, and one that happened before a step "
        "already told carries the referral's current task_status, never an older one.",
    )
    codes: Annotated[list[GpCoding], Field(max_length=20)] = Field(
        default_factory=list,
        description="On the closure step (``closed``) only: the SNOMED CT codes written back "
        "to the person's GP record for the episode, each once (code and display, never a "
        "value or free text); empty on every other step.",
    )


class Observation(BaseModel):
    """A measured value for the GP record: coded where a traceable code exists (SWEMWBS),
    labelled only where none does (ONS4)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(max_length=100)]
    code: GpCoding | None = None
    value: float
    unit: Annotated[str | None, Field(max_length=30)] = None
    interpretation: Annotated[str | None, Field(max_length=100)] = None


class RosterChanged(EventData):
    """A PCN's roster as triage now holds it, for one link worker: their capacity and
    whether they are still on it. Routed by PCN (for the reports on caseloads)."""

    TYPE = "roster.changed.v1"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "pcn"

    pcn: PcnCode
    link_worker_id: WorkerId
    capacity: Annotated[int, Field(ge=0, le=500)]
    active: bool
    changed_at: AwareDatetime


class ReferralDuplicate(EventData):
    """A submission was a resend of a referral already received (the same event id, or the
    same sender reference): it made no second referral. Routed by the sender; its
    ``referral.status.v1`` with the referral's current status follows."""

    TYPE = "referral.duplicate.v1"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "sender"

    referral_id: uuid.UUID
    sender: OrgCode
    sender_reference: Reference
    submission_event_id: Annotated[str, Field(max_length=128)]
    original_submission_event_id: Annotated[str, Field(max_length=128)]
    received_at: AwareDatetime


class ReferralJoined(EventData):
    """The person already has an open episode in the PCN: this referral joins it and takes
    no second place. Routed by PCN (the team sees the new referral's needs)."""

    TYPE = "referral.joined.v1"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "pcn"

    referral_id: uuid.UUID
    episode_referral_id: uuid.UUID
    pcn: PcnCode
    registered_practice: PracticeCode
    needs: Needs
    link_worker_id: WorkerId | None = None
    joined_at: AwareDatetime


class ReferralIdentityConflict(EventData):
    """The NHS number of a referral was given before with another date of birth: Linkwell
    keeps them apart as two people (never one episode) until the team confirms who this
    person is. Also sent (``nhs_number_missing``) for a referral that came without an NHS
    number: it is matched to nobody, and its GP writebacks wait until the team confirms
    the number (``referral.identity_confirmed.v1``). Routed by PCN, to the team of this
    referral only; the referrer is not told, and nothing says who made the other referral
    or where it went."""

    TYPE = "referral.identity_conflict.v1"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "pcn"

    referral_id: uuid.UUID
    pcn: PcnCode
    registered_practice: PracticeCode
    detected_at: AwareDatetime
    message: Annotated[str, Field(max_length=500)]
    nhs_number_missing: bool = Field(
        default=False,
        description="The referral came without an NHS number (rather than with one given "
        "before with another date of birth): confirm it with referral.identity_confirmed.v1.",
    )


class ReferralUpdated(EventData):
    """A step of the journey after assignment, as the referrer will hear of it: the person
    took up support, support paused or resumed, the episode closed or was withdrawn.
    Routed by PCN; notify tells each referrer of the episode. Internal (no organisation
    receives it): may come several to a message (a CloudEvents JSON batch,
    ``BATCH_CONTENT_TYPE``)."""

    TYPE = "referral.updated.v1"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "pcn"

    referral_id: uuid.UUID
    pcn: PcnCode
    step: ReferralStatusValue
    task_status: TaskStatus
    reason: Annotated[str | None, Field(max_length=300)] = None
    at: AwareDatetime
    codes: Annotated[list[GpCoding], Field(max_length=20)] = Field(
        default_factory=list,
        description="On the closure step (``closed``) only: the SNOMED CT codes written back "
        "to the GP record for the episode, each once (code and display, never a value or "
        "free text); empty on every other step, and when nothing coded was written back.",
    )


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
    summary: Annotated[SafeText, Field(min_length=1, max_length=4000)] = Field(
        description="Free text for the GP; when the person chose codes only, it says so "
        "and holds nothing else."
    )
    effective_at: AwareDatetime
    observations: list[Observation] = Field(
        default_factory=list, description="Measured values (wellbeing), coded or labelled."
    )


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


# ---------------------------------------------------------------- the person's rights


class SubjectAction(StrEnum):
    """What an operator asks every service to do with one person's data (UK GDPR)."""

    FIND = "find"  # which referrals are this person's (intake answers; the others: none)
    ACCESS = "access"  # Art. 15: a copy of what each service holds
    RECTIFY = "rectify"  # Art. 16: a wrong NHS number or date of birth corrected
    RESTRICT = "restrict"  # Art. 18: stored only, no further processing, until lifted
    LIFT = "lift"  # the restriction lifted
    ERASE = "erase"  # Art. 17: erased, except what must be kept (each with its ground)


class SubjectRequested(EventData):
    """An operator's request about one person's data, to every service that holds some.
    Published by Linkwell's operators only (no organisation may publish it). The person is
    named by referral ids, or (``find``) by NHS number and date of birth together.
    Each service answers with ``subject.answered.v1``, routed by ``request_id``."""

    TYPE = "subject.requested.v1"
    DIRECTION = Direction.INBOUND

    request_id: uuid.UUID
    action: SubjectAction
    referral_ids: list[uuid.UUID] = Field(default_factory=list, max_length=100)
    nhs_number: NhsNumber | None = None
    date_of_birth: date | None = None
    new_nhs_number: NhsNumber | None = None
    new_date_of_birth: date | None = None
    reply_by: AwareDatetime = Field(
        description="After this, a service answers without any personal data: nobody waits "
        "for the answer any more, and it must not rest on the broker."
    )

    def subject(self) -> str | None:
        return None

    @model_validator(mode="after")
    def _identified(self) -> SubjectRequested:
        by_identity = self.nhs_number is not None and self.date_of_birth is not None
        if self.action is SubjectAction.FIND and not by_identity:
            raise ValueError("find needs nhs_number and date_of_birth")
        if self.action is not SubjectAction.FIND and not self.referral_ids:
            raise ValueError(f"{self.action.value} needs referral_ids")
        correcting = self.new_nhs_number is not None or self.new_date_of_birth is not None
        if (self.action is SubjectAction.RECTIFY) != correcting:
            raise ValueError("new_nhs_number/new_date_of_birth go with rectify, and only with it")
        return self


class SubjectItem(BaseModel):
    """One thing a service holds about the person, in plain words."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    what: Annotated[str, Field(max_length=200, description="What it is")]
    source: Annotated[str, Field(max_length=200, description="Where it came from")]
    kept: Annotated[str, Field(max_length=300, description="How long it is kept, and why")]
    referral_id: uuid.UUID | None = None
    content: dict[str, Any] = Field(default_factory=dict)


class SubjectKept(BaseModel):
    """Something not erased, and the legal ground for keeping it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    what: Annotated[str, Field(max_length=200)]
    ground: Annotated[str, Field(max_length=400)]


class SubjectAnswered(EventData):
    """One service's answer to ``subject.requested.v1``: what it holds (``access``), what it
    did, and what it must keep and why. Routed by request id to the operator's own
    exclusive reply queue only; carries personal data for ``access``."""

    TYPE = "subject.answered.v1"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "request_id"

    request_id: uuid.UUID
    service: Annotated[str, Field(max_length=40, pattern=r"^[a-z][a-z0-9-]*$")]
    action: SubjectAction
    referral_ids: list[uuid.UUID] = Field(default_factory=list)
    items: list[SubjectItem] = Field(default_factory=list)
    done: list[Annotated[str, Field(max_length=300)]] = Field(default_factory=list)
    kept: list[SubjectKept] = Field(default_factory=list)
    late: bool = Field(False, description="Answered after reply_by: carries no personal data")
    answered_at: AwareDatetime

    def subject(self) -> str | None:
        return None


class AuditAction(StrEnum):
    """What left Linkwell, or who looked or acted: the kinds of record in the audit trail."""

    ANSWER = "answer"  # intake's accepted / rejected / duplicate to the sender
    STATUS = "status"  # a referral.status.v1 to a referrer
    ASSIGNMENT = "assignment"  # an assignment, waitlisting or join told to a team
    GP_WRITEBACK = "gp_writeback"  # codes and a summary for the GP record
    NOTIFICATION = "notification"  # a message to the person or the team, per channel
    EXPORT = "export"  # a subject access export
    RECTIFICATION = "rectification"
    ERASURE = "erasure"
    RESTRICTION = "restriction"
    SIGN_IN = "sign_in"  # a sign-in to a page showing personal data or figures
    PAGE_VIEW = "page_view"  # a page showing a person's data or figures was served
    TOKEN_ISSUED = "token_issued"  # linkwell access: a broker user, token or password issued
    DLQ_REPLAY = "dlq_replay"  # linkwell dlq replay
    INVITE = "invite"  # linkwell gateway invite
    ENDPOINT = "endpoint"  # linkwell gateway client endpoint: where step messages are pushed
    PUBLICATION = "publication"  # figures for commissioners published (a frozen snapshot)


class AuditRecipientKind(StrEnum):
    """Who received (or saw) it."""

    SENDER = "sender"  # the organisation that sent the event answered
    REFERRER = "referrer"
    TEAM = "team"  # a PCN's link worker team
    GP = "gp"  # a GP practice's record
    PERSON = "person"  # the person themself (or their carer)
    PROFESSIONAL = "professional"  # a signed-in professional of an organisation
    COMMISSIONER = "commissioner"  # a reader of the figures (dashboard)
    OPERATOR = "operator"  # whoever ran the operator command


class AuditActorKind(StrEnum):
    """Who did it: a service, a signed-in account, or an operator at the command line."""

    SERVICE = "service"
    ACCOUNT = "account"
    OPERATOR = "operator"


AuditId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$",
        description="An id or a code, never free text, a name or an NHS number.",
    ),
]
AuditKey = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]


class AuditRecorded(EventData):
    """A disclosure of a person's data, a sign-in or page view, or an operator action, as
    it committed: written by the service in the transaction of the disclosure itself (or,
    for an operator command, published confirmed before the command reports success), and
    kept by the audit service in a hash chain. Carries ids only: never a name, a date of
    birth, an NHS number, an address or free text. Routed by the recording service; no
    organisation receives it. The services' outbox relays send several in one message, as
    a CloudEvents JSON batch (content type ``application/cloudevents-batch+json``: a JSON
    array of these envelopes, all with the message's routing key)."""

    TYPE = "audit.recorded.v1"
    DIRECTION = Direction.EMITTED
    ROUTED_BY = "by_service"

    action: AuditAction
    recipient_kind: AuditRecipientKind
    recipient_org: AuditId | None = Field(
        default=None,
        description="The organisation that received it (ODS or sender code, PCN code), or "
        "absent (the person themself, an operator).",
    )
    referral_id: uuid.UUID | None = None
    person_id: uuid.UUID | None = Field(
        default=None, description="Linkwell's id of the person, where the service knows it."
    )
    by_service: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")] = Field(
        description="The service (or ``ops`` for the operator commands) that recorded it."
    )
    by_kind: AuditActorKind = AuditActorKind.SERVICE
    by: AuditId | None = Field(
        default=None, description="The account or operator that acted, by id; absent: the service."
    )
    at: AwareDatetime
    detail: Annotated[dict[AuditKey, AuditId], Field(max_length=12)] = Field(
        default_factory=dict,
        description="Ids that say what exactly (the event id told, the channel, the fact): "
        "ids and codes only.",
    )

    def subject(self) -> str | None:
        return str(self.referral_id) if self.referral_id is not None else None


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
        EventSpec(LinkWorkerUpdated, (Party.TEAMS,)),
        EventSpec(PlanAgreed, (Party.TEAMS,)),
        EventSpec(WellbeingMeasured, (Party.TEAMS,)),
        EventSpec(NoteShared, (Party.TEAMS,)),
        EventSpec(ReferralHeld, (Party.TEAMS,)),
        EventSpec(ReferralResumed, (Party.TEAMS,)),
        EventSpec(ReferralTransferred, (Party.TEAMS,)),
        EventSpec(ReferralIdentityConfirmed, (Party.TEAMS,)),
        EventSpec(ReferralWithdrawn, (Party.AGENCIES, Party.TEAMS)),
        EventSpec(ReferralAccepted, (Party.REFERRER,)),
        EventSpec(ReferralAcceptedV2, (Party.REFERRER,)),
        EventSpec(ReferralPlacement, ()),
        EventSpec(ReferralContact, ()),
        EventSpec(ReferralRecorded, ()),
        EventSpec(ReferralRejected, (Party.REFERRER,)),
        EventSpec(ReferralDuplicate, (Party.REFERRER,)),
        EventSpec(EventRejected, (Party.SENDER,)),
        EventSpec(ReferralWaitlisted, (Party.TEAMS,)),
        EventSpec(ReferralAssigned, (Party.TEAMS,)),
        EventSpec(ReferralJoined, (Party.TEAMS,)),
        EventSpec(ReferralIdentityConflict, (Party.TEAMS,)),
        EventSpec(ReferralUpdated, ()),
        EventSpec(RosterChanged, ()),
        EventSpec(ReferralStatus, (Party.REFERRER,)),
        EventSpec(GpWriteback, (Party.GP_INTEGRATORS,)),
        EventSpec(NotificationFailed, (Party.TEAMS,)),
        EventSpec(SubjectRequested, ()),
        EventSpec(SubjectAnswered, ()),
        EventSpec(AuditRecorded, ()),
    )
}


M = TypeVar("M", bound=EventData)


def parse_event(model: type[M], payload: bytes | str | dict[str, Any]) -> CloudEvent[M]:
    """Validate a whole envelope of a known type, strictly, as Linkwell validates what it
    receives: JSON types only (no number for a date, no "true" for true, no "3" for 3)."""
    envelope = envelope_type(model)
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    return envelope.model_validate_json(payload, strict=True)
