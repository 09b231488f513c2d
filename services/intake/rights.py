"""intake and the person's rights: it holds the only full copy of each referral (the
person's name, NHS number, date of birth and contact details) and knows which referrals
are one person's. The rules (what is exported, erased, kept and why) are here; the
statements in ``store.Subjects``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from contracts import CloudEvent
from contracts.events import SubjectAction, SubjectRequested
from services.runtime.handling import UnitOfWork
from services.runtime.subject import (
    HEALTH_RECORD,
    NO_PERSONAL_DATA,
    Holding,
    answer,
    erasure,
    respond,
    restriction,
)

from .store import IntakeStore

SERVICE = "intake"
KEPT = "as long as the NHS Records Management Code of Practice sets for this health record"

REFERRAL = Holding(
    what="The referral as it was sent: your name, NHS number, date of birth, needs, consent "
    "and who referred you",
    source="the organisation that referred you",
    kept=KEPT,
    erase=False,
    ground=HEALTH_RECORD,
)
CONTACT = Holding(
    what="How to reach you (phone, email, adjustments you asked for), inside the referral",
    source="the organisation that referred you",
    kept="until you ask for it to be erased, or the retention schedule removes it",
    erase=True,
)
SUBMISSIONS = Holding(
    what="A note of each time the referral was sent and what became of it",
    source="made by Linkwell when the referral arrived",
    kept=KEPT,
    erase=False,
    ground=NO_PERSONAL_DATA,
)
HOLDINGS = (REFERRAL, CONTACT, SUBMISSIONS)


def export(referrals: list[dict[str, Any]], submissions: list[dict[str, Any]]) -> list[Any]:
    """What intake holds, item by item: each referral as sent (contact details shown as
    their own item) and each submission's outcome."""
    items = []
    for r in referrals:
        sent = dict(r["submission"])
        person = dict(sent.get("person") or {})
        contact = person.pop("contact", None)
        sent["person"] = person
        meta = {"referred_by": r["sender"], "their_reference": r["sender_reference"]}
        items.append(REFERRAL.item(r["referral_id"], {**meta, "as sent": sent}))
        if contact:
            items.append(CONTACT.item(r["referral_id"], contact))
    for s in submissions:
        content = {"from": s["sender"], "outcome": s["outcome"], "at": s["received_at"].isoformat()}
        items.append(SUBMISSIONS.item(s["referral_id"], content))
    return items


async def on_subject(
    uow: UnitOfWork[IntakeStore], event: CloudEvent[Any], request: SubjectRequested
) -> None:
    now = datetime.now(UTC)
    subjects = uow.store.subjects
    ids: list[uuid.UUID] = list(request.referral_ids)
    done: list[str] = []
    kept: list[Any] = []
    items: list[Any] = []
    match request.action:
        case SubjectAction.FIND:
            assert request.nhs_number and request.date_of_birth  # the contract checks it
            ids = await subjects.find(request.nhs_number, request.date_of_birth)
        case SubjectAction.ACCESS:
            items = export(await subjects.referrals(ids), await subjects.submissions(ids))
            ids = [i.referral_id for i in items if i.referral_id is not None]
        case SubjectAction.RECTIFY:
            corrected: set[uuid.UUID] = set()
            for rid in request.referral_ids:
                corrected |= set(
                    await subjects.rectify(rid, request.new_nhs_number, request.new_date_of_birth)
                )
            ids = sorted(corrected, key=str)
            done = [f"corrected the NHS number and date of birth in {len(ids)} referral(s)"]
        case SubjectAction.ERASE:
            found = await subjects.erase_contact(ids)
            done, kept = erasure(HOLDINGS)
            done = [f"{d} ({found} referral(s))" for d in done]
        case _:
            done = await restriction(uow.conn, request) or []
            done.append("intake sends nothing about a referral after it is accepted")
    answered = answer(request, SERVICE, now, referral_ids=ids, items=items, done=done, kept=kept)
    await respond(uow, event, request, answered)
