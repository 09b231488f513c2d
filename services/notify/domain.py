"""What each audience is told, free of I/O.

- The referrer gets a ``referral.status.v1`` event on the broker for every step, with the
  HL7 Gravity task status it leaves the referral in (``TASK_STATUS``).
- The link worker team gets a message when a referral is assigned to one of them.
- The person is told when they are placed: that a link worker will contact them, or
  that there is a waiting list. They are never given a waiting time, and are not
  contacted again once the referral is withdrawn or the episode has ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from contracts.enums import ContactPreference, ReferralStatusValue, TaskStatus
from contracts.events import (
    PersonContact,
    Reason,
    ReferralAssigned,
    ReferralWaitlisted,
)


class Audience(StrEnum):
    PERSON = "person"
    TEAM = "team"


class Medium(StrEnum):
    EMAIL = "email"
    SMS = "sms"


@dataclass(frozen=True)
class Message:
    audience: Audience
    medium: Medium
    address: str
    subject: str
    body: str


@dataclass(frozen=True)
class Known:
    """What notify keeps of a referral (from referral.accepted.v1)."""

    referral_id: str
    sender: str
    sender_reference: str
    pcn: str
    contact: PersonContact


# The task status each step leaves a referral in, as steps notify hears of directly; the
# steps after assignment come from outcomes (referral.updated.v1) with their own.
TASK_STATUS: dict[ReferralStatusValue, TaskStatus] = {
    ReferralStatusValue.ACCEPTED: TaskStatus.RECEIVED,
    ReferralStatusValue.REJECTED: TaskStatus.REJECTED,
    ReferralStatusValue.WAITLISTED: TaskStatus.RECEIVED,
    ReferralStatusValue.ASSIGNED: TaskStatus.ACCEPTED,
}
# After these, the person is never contacted again.
FINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.CANCELLED, TaskStatus.FAILED})

# How far along the Gravity task lifecycle a status is: a referrer's task status never goes
# back down this order (on-hold and in-progress alternate at one rank; the ends are last).
_RANK = {
    TaskStatus.RECEIVED: 0,
    TaskStatus.ACCEPTED: 1,
    TaskStatus.IN_PROGRESS: 2,
    TaskStatus.ON_HOLD: 2,
    TaskStatus.COMPLETED: 3,
    TaskStatus.CANCELLED: 3,
    TaskStatus.FAILED: 3,
    TaskStatus.REJECTED: 3,
}


@dataclass(frozen=True)
class Told:
    """How a step is told: with which task status, and whether it is now the referral's
    latest step (False: it happened before one already told, and arrived late)."""

    task_status: TaskStatus
    latest: bool


def telling(
    current: TaskStatus, current_at: datetime | None, step: TaskStatus, at: datetime
) -> Told:
    """Every step is told once, whatever order the events arrive in. A step dated before
    the latest one told is still told, with the task status the referral has now; a newer
    step moves the task status on, never back (a person waitlisted again when their worker
    left stays ``accepted``; nothing follows an end)."""
    if current_at is not None and at < current_at:
        return Told(current, latest=False)
    if current in FINAL or _RANK[step] < _RANK[current]:
        return Told(current, latest=True)
    return Told(step, latest=True)


def status_text(
    status: ReferralStatusValue,
    pcn: str | None = None,
    reasons: list[Reason] | None = None,
    reason: str | None = None,
) -> str:
    why = f" ({reason})" if reason else ""
    match status:
        case ReferralStatusValue.ACCEPTED:
            return f"Received by Linkwell for the social prescribing service of PCN {pcn}."
        case ReferralStatusValue.REJECTED:
            codes = ", ".join(r.code.value for r in reasons or [])
            return f"Not accepted ({codes}). See referral.rejected.v1 for what to do."
        case ReferralStatusValue.WAITLISTED:
            return f"On the waiting list of PCN {pcn}'s link worker team{why}."
        case ReferralStatusValue.ASSIGNED:
            return f"A link worker in PCN {pcn} has taken the referral and will contact the person."
        case ReferralStatusValue.JOINED:
            return (
                f"The person is already supported by PCN {pcn}'s link worker team: this "
                "referral has been added to that support, with its needs."
            )
        case ReferralStatusValue.DUPLICATE:
            return "Already received: this resend made no second referral. Its status is given."
        case ReferralStatusValue.IN_PROGRESS:
            return "The person has taken up support from their link worker."
        case ReferralStatusValue.ON_HOLD:
            return f"Support is paused{why}."
        case ReferralStatusValue.RESUMED:
            return f"Support has resumed{why}."
        case ReferralStatusValue.CLOSED:
            return f"The social prescribing episode has ended{why}."
        case ReferralStatusValue.WITHDRAWN:
            return f"The referral was withdrawn{why}; the person will not be contacted again."


def person_address(contact: PersonContact) -> tuple[Medium, str] | None:
    """Where the person asked to be reached; None when there is nowhere to write to.
    Someone who asked for letters is not texted or emailed instead: referrals carry no
    postal address, so the link worker team tells them when it first makes contact."""
    if contact.preferred is ContactPreference.LETTER:
        return None
    if contact.preferred is ContactPreference.EMAIL and contact.email:
        return Medium.EMAIL, contact.email
    if contact.preferred in (ContactPreference.SMS, ContactPreference.PHONE) and contact.phone:
        return Medium.SMS, contact.phone
    if contact.email:
        return Medium.EMAIL, contact.email
    if contact.phone:
        return Medium.SMS, contact.phone
    return None


WAITLIST_TEXT = (
    "You have been referred to a social prescribing link worker, who can help you find "
    "support in your community. There is a waiting list at the moment. A link worker will "
    "contact you when one is free. If you need help urgently, contact your GP practice or "
    "call NHS 111."
)
ASSIGNED_TEXT = (
    "You have been referred to a social prescribing link worker, who can help you find "
    "support in your community. A link worker from your local team will contact you soon. "
    "If you need help urgently, contact your GP practice or call NHS 111."
)


WORKER_LEFT_TEXT = (
    "Your social prescribing link worker has left the team. You are first on the waiting "
    "list for another link worker, who will contact you when one is free. If you need help "
    "urgently, contact your GP practice or call NHS 111."
)


def for_person(known: Known, placed: ReferralAssigned | ReferralWaitlisted) -> Message | None:
    """What the person hears of a placement; None for nothing (no address, or a move
    between link workers of a team already in touch with them)."""
    address = person_address(known.contact)
    if address is None:
        return None
    if isinstance(placed, ReferralAssigned) and placed.transferred_from is not None:
        return None  # their team tells them of a new worker
    medium, to = address
    if isinstance(placed, ReferralAssigned):
        text = ASSIGNED_TEXT
    else:
        text = WORKER_LEFT_TEXT if placed.reason else WAITLIST_TEXT
    return Message(Audience.PERSON, medium, to, "Your social prescribing referral", text)


def for_team(known: Known, assigned: ReferralAssigned, team_address: str) -> Message:
    contact = known.contact
    came = " from the waiting list." if assigned.from_waitlist else "."
    if assigned.transferred_from:
        came = f", moved from {assigned.transferred_from}."
    lines = [
        f"Referral {assigned.referral_id} has been assigned to link worker "
        f"{assigned.link_worker_id}{came}",
        f"Registered practice: {assigned.registered_practice}",
        f"Pathway: {assigned.pathway.value.replace('_', ' ')}",
        f"Needs: {', '.join(n.value.replace('_', ' ') for n in assigned.needs)}",
        f"Contact preference: {contact.preferred.value}",
    ]
    if contact.phone:
        lines.append(f"Phone: {contact.phone}")
    if contact.email:
        lines.append(f"Email: {contact.email}")
    if contact.adjustments:  # what the person needs to be contacted and supported
        lines.append(f"Reasonable adjustments: {contact.adjustments}")
    lines.append("Full details are in the referral record (by referral id).")
    return Message(
        Audience.TEAM,
        Medium.EMAIL,
        team_address,
        f"New social prescribing referral for PCN {assigned.pcn}",
        "\n".join(lines),
    )


# Delivery rules. A message the channel refused (the relay answered no) backs off on its
# own: 1, 2, 4... seconds, at most an hour. A channel that cannot be reached is judged as
# a whole (``ChannelState``): it is down, its messages wait without being tried (and are
# charged nothing), it is probed every 0.25, 0.5, 1, then 2 s, and once a probe succeeds
# every message held back only by its outage is due at once.
MAX_BACKOFF = 3600.0
FIRST_PROBE = 0.25
MAX_PROBE = 2.0


def backoff(attempts_made: int) -> float:
    """Seconds before a message the channel refused is tried again."""
    return min(2.0 ** min(attempts_made - 1, 20), MAX_BACKOFF)


def probe_delay(outages: int) -> float:
    """Seconds before a channel found down ``outages`` times in a row is probed again."""
    return min(FIRST_PROBE * 2.0 ** min(outages - 1, 10), MAX_PROBE)  # no overflow


@dataclass
class ChannelState:
    """What the dispatcher knows of one channel, in memory. A new one knows nothing: the
    channel is probed before its first message (so a dispatcher restarted during an
    outage charges no message for it). ``outages`` counts the times in a row it was
    found unreachable; only a delivered message resets it, so a relay that answers a
    probe and then drops every message is probed less and less often (up to
    ``MAX_PROBE``). ``release`` is set while messages may be held by an outage: from
    the start (a previous process may have left some) and from each outage until the
    channel answers again."""

    outages: int = 0
    down: bool = True
    probe_at: float = 0.0
    release: bool = True

    def usable(self, now: float) -> bool:
        """May the channel be used now (up, or down or unknown and due for a probe)?"""
        return not self.down or now >= self.probe_at

    def unreachable(self, now: float) -> None:
        """A send or a probe could not reach the channel: down, probed later."""
        self.outages += 1
        self.down = True
        self.release = True
        self.probe_at = now + probe_delay(self.outages)

    def reached(self) -> None:
        """A probe reached the channel: it is up again (the count of outages stays until
        a message is delivered)."""
        self.down = False

    def delivered(self) -> None:
        self.down = False
        self.outages = 0
