"""Intake's rules, free of I/O.

Schema rules (NHS number check digit, required fields) live in the contract models;
these are the rules that need the whole, well-formed referral.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from contracts.enums import Pathway, RejectionCode
from contracts.events import (
    ACCEPTED_V1_UNTIL,
    EventData,
    Reason,
    ReferralAccepted,
    ReferralAcceptedV2,
    ReferralContact,
    ReferralPlacement,
    ReferralRecorded,
    ReferralSubmitted,
)
from contracts.times import implausible

ADULT_AGE = 18

CRISIS = Reason(
    code=RejectionCode.CRISIS_REDIRECT,
    field="data.in_crisis",
    message=(
        "Social prescribing is not an emergency service and this referral has not been "
        "queued. Redirect the person to urgent help now: 999 if life is at risk, NHS 111 "
        "(option 2 for an urgent mental health crisis), or their GP practice's urgent line. "
        "Refer again once the crisis has passed."
    ),
)
NO_CONSENT = Reason(
    code=RejectionCode.CONSENT_MISSING,
    field="data.consent.given",
    message=(
        "The person has not consented to the referral. Without consent there is no "
        "referral: record the person's consent and submit again."
    ),
)


# Two referrals are the same person when the NHS number and the date of birth agree
# (``Referrals.accept``). Names are not compared: they change (marriage, a preferred name)
# and are spelled differently from one system to the next, so comparing them would keep
# apart people who are one; the date of birth does not change, and an NHS number mistyped
# by one digit almost never lands on someone born the same day. A disagreement is never
# merged: the team is asked to confirm who the person is.
IDENTITY_CONFLICT = (
    "This referral's NHS number was given before with a different date of birth. Linkwell "
    "has kept them apart as two people. Confirm the person's NHS number and date of birth "
    "with them (or on the national register) before you act on this referral."
)
# A referral without an NHS number (most people referring themselves do not know theirs)
# is a new person every time: with nothing to match on, matching would risk joining two
# people. The team is asked to confirm who the person is.
IDENTITY_UNKNOWN = (
    "This referral came without an NHS number. Linkwell has not matched it to anyone and "
    "writes nothing to the GP record until you confirm the person's NHS number (with them, "
    "their GP practice or the national register): send referral.identity_confirmed.v1."
)


@dataclass(frozen=True)
class Accept:
    pathway: Pathway


@dataclass(frozen=True)
class Reject:
    reasons: tuple[Reason, ...]


def age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def pathway_for(born: date, today: date) -> Pathway:
    """Children and young people follow their own pathway (docs/domain.md#people-and-roles)."""
    if age_on(born, today) < ADULT_AGE:
        return Pathway.CHILDREN_AND_YOUNG_PEOPLE
    return Pathway.ADULT


def assess(
    referral: ReferralSubmitted,
    today: date,
    *,
    now: datetime | None = None,
    sent: datetime | None = None,
) -> Accept | Reject:
    """Crisis first: the sender must act on it before anything else. Given ``now``, a
    referral dated in the future (its ``submitted_at``, its consent, or ``sent``: the
    envelope's time) is refused as ``time_implausible`` (``contracts.times``)."""
    reasons = []
    if referral.in_crisis:
        reasons.append(CRISIS)
    if not referral.consent.given:
        reasons.append(NO_CONSENT)
    if now is not None:
        reasons.extend(implausible(sent or now, referral, now))
    if reasons:
        return Reject(tuple(reasons))
    return Accept(pathway_for(referral.person.date_of_birth, today))


def announcements(accepted: ReferralAccepted, today: date) -> list[EventData]:
    """What intake publishes about an accepted referral, in one outbox transaction: each
    consumer's own event with only the fields it needs (docs/architecture/minimal-events.md),
    and, until ``ACCEPTED_V1_UNTIL`` (inclusive), the deprecated v1 for integrators."""
    a = accepted
    if a.person_id is None:  # intake gives every accepted referral a person id
        raise ValueError("an accepted referral has a person id")
    out: list[EventData] = [
        ReferralAcceptedV2(
            referral_id=a.referral_id,
            sender=a.sender,
            sender_reference=a.sender_reference,
            submission_event_id=a.submission_event_id,
            accepted_at=a.accepted_at,
        ),
        ReferralPlacement(
            referral_id=a.referral_id,
            sender=a.sender,
            registered_practice=a.registered_practice,
            pcn=a.pcn,
            needs=a.needs,
            pathway=a.pathway,
            accepted_at=a.accepted_at,
            person_id=a.person_id,
            nhs_number_known=a.nhs_number is not None,
        ),
        ReferralContact(
            referral_id=a.referral_id,
            sender=a.sender,
            sender_reference=a.sender_reference,
            submission_event_id=a.submission_event_id,
            pcn=a.pcn,
            contact=a.contact,
            accepted_at=a.accepted_at,
        ),
        ReferralRecorded(
            referral_id=a.referral_id,
            sender=a.sender,
            agency_type=a.agency_type,
            registered_practice=a.registered_practice,
            pcn=a.pcn,
            needs=a.needs,
            pathway=a.pathway,
            accepted_at=a.accepted_at,
            nhs_number=a.nhs_number,
            person_id=a.person_id,
            gp_sharing=a.gp_sharing,
        ),
    ]
    if today <= ACCEPTED_V1_UNTIL:
        out.insert(0, a)
    return out
