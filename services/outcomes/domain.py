"""Coding rules, free of I/O.

The GP record gets one writeback per coding fact and referral:

- ``accepted``: the person's first decisive contact shows they accepted support:
  871731000000106 Referral to social prescribing service, plus 306098008
  Self-referral when they referred themself. First interaction of an episode only.
- ``declined``: the first decisive contact shows they declined, or the episode closes
  as declined before they ever accepted: 871711000000103 Social prescribing declined.
- ``closed``: the episode ends: no code, a free-text summary for the GP.

``accepted`` and ``declined`` exclude each other: whichever is written first stands.
Contacts that did not reach the person decide nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from contracts import UK
from contracts.enums import AgencyType, ClosureReason, ContactMode, ContactOutcome, WritebackFact
from contracts.snomed import (
    REFERRAL_TO_SOCIAL_PRESCRIBING,
    SELF_REFERRAL,
    SOCIAL_PRESCRIBING_DECLINED,
    Concept,
)


@dataclass(frozen=True, slots=True)
class Contact:
    occurred_at: datetime
    mode: ContactMode
    outcome: ContactOutcome


@dataclass(frozen=True, slots=True)
class Closure:
    reason: ClosureReason
    closed_at: datetime


@dataclass(frozen=True)
class Episode:
    referral_id: str
    registered_practice: str
    nhs_number: str
    agency_type: AgencyType
    pcn: str
    needs: tuple[str, ...]
    accepted_at: datetime
    contacts: tuple[Contact, ...] = ()
    closure: Closure | None = None

    @property
    def decisive_contact(self) -> Contact | None:
        decisive = [c for c in self.contacts if c.outcome is not ContactOutcome.NOT_REACHED]
        return min(decisive, key=lambda c: c.occurred_at) if decisive else None


@dataclass(frozen=True)
class RecordEntry:
    """What one ``gp.writeback.v1`` puts in the GP record: a fact, its codes, a summary."""

    fact: WritebackFact
    concepts: tuple[Concept, ...]
    summary: str
    effective_at: datetime
    extras: dict[str, str] = field(default_factory=dict)


DECISIONS = {WritebackFact.ACCEPTED, WritebackFact.DECLINED}


def _day(moment: datetime) -> str:
    """The UK calendar date, as the GP and the person know it."""
    return moment.astimezone(UK).date().isoformat()


def _label(value: str) -> str:
    return value.replace("_", " ")


def _opening(ep: Episode) -> str:
    who = (
        "the person themself"
        if ep.agency_type is AgencyType.SELF_REFERRAL
        else _label(ep.agency_type.value)
    )
    return (
        f"Referred to social prescribing by {who} on {_day(ep.accepted_at)} "
        f"for: {', '.join(_label(n) for n in ep.needs)}."
    )


def due_entries(ep: Episode, written: set[WritebackFact]) -> list[RecordEntry]:
    """The entries this episode calls for that have not been written yet."""
    out: list[RecordEntry] = []
    if not written & DECISIONS:
        contact = ep.decisive_contact
        if contact is not None and contact.outcome is ContactOutcome.ENGAGED:
            concepts = [REFERRAL_TO_SOCIAL_PRESCRIBING]
            if ep.agency_type is AgencyType.SELF_REFERRAL:
                concepts.append(SELF_REFERRAL)
            out.append(
                RecordEntry(
                    WritebackFact.ACCEPTED,
                    tuple(concepts),
                    f"{_opening(ep)} First contact with a link worker of PCN {ep.pcn} on "
                    f"{_day(contact.occurred_at)} ({_label(contact.mode.value)}): "
                    "the person accepted support.",
                    contact.occurred_at,
                )
            )
        elif contact is not None:
            out.append(
                RecordEntry(
                    WritebackFact.DECLINED,
                    (SOCIAL_PRESCRIBING_DECLINED,),
                    f"{_opening(ep)} Contacted by a link worker of PCN {ep.pcn} on "
                    f"{_day(contact.occurred_at)} ({_label(contact.mode.value)}): "
                    "the person declined social prescribing.",
                    contact.occurred_at,
                )
            )
        elif ep.closure is not None and ep.closure.reason is ClosureReason.DECLINED:
            out.append(
                RecordEntry(
                    WritebackFact.DECLINED,
                    (SOCIAL_PRESCRIBING_DECLINED,),
                    f"{_opening(ep)} The person declined social prescribing "
                    f"({_day(ep.closure.closed_at)}).",
                    ep.closure.closed_at,
                )
            )
    if ep.closure is not None and WritebackFact.CLOSED not in written:
        reached = [c for c in ep.contacts if c.outcome is not ContactOutcome.NOT_REACHED]
        span = ""
        if reached:
            first = _day(min(c.occurred_at for c in reached))
            last = _day(max(c.occurred_at for c in reached))
            span = f" {len(reached)} contact(s) with the person between {first} and {last}."
        attempts = len(ep.contacts) - len(reached)
        if attempts:
            span += f" {attempts} attempt(s) did not reach the person."
        out.append(
            RecordEntry(
                WritebackFact.CLOSED,
                (),
                f"Social prescribing episode closed on {_day(ep.closure.closed_at)}: "
                f"{_label(ep.closure.reason.value)}.{span}",
                ep.closure.closed_at,
            )
        )
    return out
