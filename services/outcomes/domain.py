"""What the GP record and the referrer hear of an episode, free of I/O
(docs/domain.md#writing-back-to-the-gp-record).

The GP record gets one writeback per fact:

- ``accepted``: the person's first decisive contact shows they accepted support:
  871731000000106 Referral to social prescribing service, plus 306098008 Self-referral
  when they referred themself. First interaction of an episode only (a person referred
  again after a closure starts a new episode, and is coded again).
- ``declined``: the first decisive contact shows they declined, or the episode closes as
  declined before they ever accepted: 871711000000103 Social prescribing declined.
- ``plan``: each agreed personalised care and support plan (a revision is a new one): what
  matters, goals and connections, in a summary.
- ``note``: each note the link worker shares.
- ``wellbeing``: each measurement: SWEMWBS as 718466001 with the metric score as its
  value; ONS4 as four labelled values, without a code (none could be traced).
- ``closed``: the episode ends (closed or withdrawn): a summary for the GP, with the
  change in wellbeing from baseline to end.

``accepted`` and ``declined`` exclude each other: whichever is written first stands.
Contacts that did not reach the person decide nothing. When the person chose codes only,
no free text is sent: coded entries carry a summary saying so, and entries with no code
(plans, notes, ONS4, the closing summary) are not sent at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from contracts import UK
from contracts.enums import (
    AgencyType,
    ClosureReason,
    ContactMode,
    ContactOutcome,
    GpSharing,
    Instrument,
    ReferralStatusValue,
    TaskStatus,
    WithdrawnBy,
    WritebackFact,
)
from contracts.snomed import (
    REFERRAL_TO_SOCIAL_PRESCRIBING,
    REGISTRY,
    SELF_REFERRAL,
    SOCIAL_PRESCRIBING_DECLINED,
    SWEMWBS_SCORE,
    Concept,
)

from .wellbeing import ONS4_ITEMS, Measurement, change, paired

CODES_ONLY_TEXT = (
    "Codes only: the person chose not to share the link worker's summaries with the GP."
)
SUMMARY_LIMIT = 4000


@dataclass(frozen=True, slots=True)
class Contact:
    occurred_at: datetime
    mode: ContactMode
    outcome: ContactOutcome


@dataclass(frozen=True, slots=True)
class Closure:
    reason: ClosureReason | None  # None: withdrawn
    closed_at: datetime
    withdrawn_by: WithdrawnBy | None = None
    why: str | None = None


@dataclass(frozen=True)
class Plan:
    key: str
    what_matters: str
    goals: tuple[tuple[str, date], ...]
    connections: tuple[tuple[str, str, bool], ...]  # name, category, introduced in person
    agreed_at: datetime


@dataclass(frozen=True)
class Note:
    key: str
    text: str
    attachments: tuple[tuple[str, str, int], ...]  # title, media type, size in bytes
    shared_at: datetime


@dataclass(frozen=True)
class Episode:
    referral_id: str
    registered_practice: str
    nhs_number: str | None  # None: not known yet; nothing is written to the GP record
    agency_type: AgencyType
    pcn: str
    needs: tuple[str, ...]
    accepted_at: datetime
    contacts: tuple[Contact, ...] = ()
    closure: Closure | None = None
    gp_sharing: GpSharing = GpSharing.CODES_AND_SUMMARIES
    plans: tuple[Plan, ...] = ()
    notes: tuple[Note, ...] = ()
    measurements: tuple[Measurement, ...] = ()

    @property
    def decisive_contact(self) -> Contact | None:
        decisive = [c for c in self.contacts if c.outcome is not ContactOutcome.NOT_REACHED]
        return min(decisive, key=lambda c: c.occurred_at) if decisive else None

    @property
    def summaries(self) -> bool:
        return self.gp_sharing is GpSharing.CODES_AND_SUMMARIES


@dataclass(frozen=True)
class Observed:
    name: str
    value: float
    concept: Concept | None = None
    interpretation: str | None = None


@dataclass(frozen=True)
class RecordEntry:
    """What one ``gp.writeback.v1`` puts in the GP record: a fact, its codes, a summary."""

    fact: WritebackFact
    concepts: tuple[Concept, ...]
    summary: str
    effective_at: datetime
    extras: dict[str, str] = field(default_factory=dict)
    key: str = ""  # the plan, note or measurement; "" for once-per-episode facts
    observations: tuple[Observed, ...] = ()


DECISIONS = {WritebackFact.ACCEPTED, WritebackFact.DECLINED}
Written = Iterable[WritebackFact | tuple[WritebackFact, str]]


def _day(moment: datetime) -> str:
    """The UK calendar date, as the GP and the person know it."""
    return moment.astimezone(UK).date().isoformat()


def _label(value: str) -> str:
    return value.replace("_", " ")


def cut(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """At most ``limit`` characters, cut at a word boundary, never mid-word."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    return (head[:space] if space > limit // 2 else head).rstrip(" ,;:") + "…"


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


def _coded(ep: Episode, entry: RecordEntry) -> RecordEntry | None:
    """The entry as the person's sharing choice allows: codes only keeps coded entries,
    with no free text, and drops the rest."""
    if ep.summaries:
        return entry
    if not entry.concepts:
        return None
    kept = tuple(o for o in entry.observations if o.concept is not None)
    return RecordEntry(
        entry.fact,
        entry.concepts,
        CODES_ONLY_TEXT,
        entry.effective_at,
        key=entry.key,
        observations=kept,
    )


def _decision(ep: Episode) -> RecordEntry | None:
    contact = ep.decisive_contact
    if contact is not None and contact.outcome is ContactOutcome.ENGAGED:
        concepts = [REFERRAL_TO_SOCIAL_PRESCRIBING]
        if ep.agency_type is AgencyType.SELF_REFERRAL:
            concepts.append(SELF_REFERRAL)
        return RecordEntry(
            WritebackFact.ACCEPTED,
            tuple(concepts),
            f"{_opening(ep)} First contact with a link worker of PCN {ep.pcn} on "
            f"{_day(contact.occurred_at)} ({_label(contact.mode.value)}): "
            "the person accepted support.",
            contact.occurred_at,
        )
    if contact is not None:
        return RecordEntry(
            WritebackFact.DECLINED,
            (SOCIAL_PRESCRIBING_DECLINED,),
            f"{_opening(ep)} Contacted by a link worker of PCN {ep.pcn} on "
            f"{_day(contact.occurred_at)} ({_label(contact.mode.value)}): "
            "the person declined social prescribing.",
            contact.occurred_at,
        )
    if ep.closure is not None and ep.closure.reason is ClosureReason.DECLINED:
        return RecordEntry(
            WritebackFact.DECLINED,
            (SOCIAL_PRESCRIBING_DECLINED,),
            f"{_opening(ep)} The person declined social prescribing "
            f"({_day(ep.closure.closed_at)}).",
            ep.closure.closed_at,
        )
    return None


def plan_entry(plan: Plan, revision: int) -> RecordEntry:
    goals = "; ".join(f"{text} (review by {on.isoformat()})" for text, on in plan.goals)
    connected = "; ".join(
        f"{name} ({_label(category)}{', introduced in person' if in_person else ''})"
        for name, category, in_person in plan.connections
    )
    parts = [
        f"Personalised care and support plan agreed on {_day(plan.agreed_at)}"
        + (f" (revision {revision}, superseding the earlier plan)." if revision > 1 else "."),
        f"What matters to the person: {plan.what_matters}",
    ]
    if goals:
        parts.append(f"Goals: {goals}.")
    if connected:
        parts.append(f"Connected to: {connected}.")
    return RecordEntry(WritebackFact.PLAN, (), cut(" ".join(parts)), plan.agreed_at, key=plan.key)


def note_entry(note: Note) -> RecordEntry:
    text = f"Note from the link worker ({_day(note.shared_at)}): {note.text}"
    if note.attachments:
        held = "; ".join(f"{t} ({m}, {size} bytes)" for t, m, size in note.attachments)
        text += f" Documents held by the link worker team: {held}."
    return RecordEntry(WritebackFact.NOTE, (), cut(text), note.shared_at, key=note.key)


def measurement_entry(m: Measurement) -> RecordEntry:
    summary = f"{m.instrument.value.upper()} at {m.point.value} on {_day(m.taken_at)}: "
    summary += m.describe() + "."
    if m.instrument is Instrument.SWEMWBS:
        assert m.metric is not None
        observed = (Observed("SWEMWBS metric score", m.metric, SWEMWBS_SCORE),)
        return RecordEntry(
            WritebackFact.WELLBEING,
            (SWEMWBS_SCORE,),
            summary,
            m.taken_at,
            key=m.key,
            observations=observed,
        )
    observed = tuple(
        Observed(f"ONS4 {name}", value, None, m.bands[name])
        for name, value in zip(ONS4_ITEMS, m.items, strict=True)
    )
    return RecordEntry(
        WritebackFact.WELLBEING, (), summary, m.taken_at, key=m.key, observations=observed
    )


def closing_entry(ep: Episode) -> RecordEntry:
    assert ep.closure is not None
    closure = ep.closure
    if closure.reason is None:
        by = closure.withdrawn_by.value if closure.withdrawn_by else "referrer"
        text = f"Social prescribing referral withdrawn on {_day(closure.closed_at)} (by the {by})"
        text += f": {closure.why}." if closure.why else "."
    else:
        text = (
            f"Social prescribing episode closed on {_day(closure.closed_at)}: "
            f"{_label(closure.reason.value)}."
        )
    reached = [c for c in ep.contacts if c.outcome is not ContactOutcome.NOT_REACHED]
    if reached:
        first = _day(min(c.occurred_at for c in reached))
        last = _day(max(c.occurred_at for c in reached))
        text += f" {len(reached)} contact(s) with the person between {first} and {last}."
    attempts = len(ep.contacts) - len(reached)
    if attempts:
        text += f" {attempts} attempt(s) did not reach the person."
    if ep.plans:
        connected = {name for p in ep.plans for name, _, _ in p.connections}
        if connected:
            text += f" Connected to: {', '.join(sorted(connected))}."
    changes = [
        change(*pair)
        for i in (Instrument.SWEMWBS, Instrument.ONS4)
        if (pair := paired(ep.measurements, i))
    ]
    if changes:
        text += f" Wellbeing: {'; '.join(changes)}."
    return RecordEntry(WritebackFact.CLOSED, (), cut(text), closure.closed_at)


def due_entries(ep: Episode, written: Written) -> list[RecordEntry]:
    """The entries this episode calls for that have not been written yet, as the person's
    sharing choice allows. None while the person's NHS number is not known: nothing goes to
    a GP record until the team confirms who the person is (then all that is due, once)."""
    if ep.nhs_number is None:
        return []
    done = {w if isinstance(w, tuple) else (w, "") for w in written}
    facts = {fact for fact, _ in done}
    candidates: list[RecordEntry] = []
    if not facts & DECISIONS:
        decision = _decision(ep)
        if decision is not None:
            candidates.append(decision)
    ordered = sorted(ep.plans, key=lambda p: p.agreed_at)
    candidates += [plan_entry(p, i + 1) for i, p in enumerate(ordered)]
    candidates += [measurement_entry(m) for m in ep.measurements]
    candidates += [note_entry(n) for n in ep.notes]
    if ep.closure is not None:
        candidates.append(closing_entry(ep))
    out = []
    for entry in candidates:
        if (entry.fact, entry.key) in done:
            continue
        allowed = _coded(ep, entry)
        if allowed is not None:
            out.append(allowed)
    return out


# ------------------------------------------------------------------ the referrer's view

CLOSURE_TASK = {
    ClosureReason.COMPLETED: TaskStatus.COMPLETED,
    ClosureReason.UNABLE_TO_CONTACT: TaskStatus.FAILED,
}


def written_back(codes: Iterable[str]) -> tuple[Concept, ...]:
    """The codes written back to the GP record, as the referrer is told them on the
    closure: each once, in order, only those of the registry (``contracts/snomed.py``)."""
    seen: dict[str, Concept] = {}
    for code in codes:
        if code in REGISTRY and code not in seen:
            seen[code] = REGISTRY[code]
    return tuple(seen.values())


def closure_task(reason: ClosureReason | None) -> TaskStatus:
    """The task status an ending leaves the referral in: completed when support was
    completed, failed when the person could not be reached, cancelled otherwise (declined,
    moved away, referred elsewhere, not eligible, deceased, withdrawn...)."""
    if reason is None:
        return TaskStatus.CANCELLED
    return CLOSURE_TASK.get(reason, TaskStatus.CANCELLED)


STEP_TASK = {
    ReferralStatusValue.IN_PROGRESS: TaskStatus.IN_PROGRESS,
    ReferralStatusValue.ON_HOLD: TaskStatus.ON_HOLD,
    ReferralStatusValue.RESUMED: TaskStatus.IN_PROGRESS,
    ReferralStatusValue.WITHDRAWN: TaskStatus.CANCELLED,
}
