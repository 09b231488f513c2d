"""notify and the person's rights: it holds how to reach the person and the messages it
sent or will send them, their team and their referrer. Messages are copies, not the
record of care: an erasure deletes them and the contact details."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from contracts import CloudEvent
from contracts.events import SubjectAction, SubjectItem, SubjectRequested
from services.runtime.handling import UnitOfWork
from services.runtime.subject import (
    NO_PERSONAL_DATA,
    Holding,
    answer,
    erasure,
    respond,
    restriction,
)

from .store import NotifyStore

SERVICE = "notify"

CONTACT = Holding(
    what="How to reach you (phone, email, adjustments you asked for)",
    source="the organisation that referred you",
    kept="until you ask for it to be erased, or the retention schedule removes it",
    erase=True,
)
MESSAGES = Holding(
    what="Messages sent, or to be sent, to you and to your link worker team",
    source="made by Linkwell from your referral",
    kept="until you ask for them to be erased, or the retention schedule removes them",
    erase=True,
)
STANDING = Holding(
    what="Where your referral stands, to answer the organisation that referred you",
    source="Linkwell",
    kept="while the referrer may ask where its referral is",
    erase=False,
    ground=NO_PERSONAL_DATA,
)
HOLDINGS = (CONTACT, MESSAGES, STANDING)


def export(referrals: list[dict[str, Any]], messages: list[dict[str, Any]]) -> list[SubjectItem]:
    items = []
    for r in referrals:
        items.append(CONTACT.item(r["referral_id"], dict(r["contact"])))
        items.append(
            STANDING.item(r["referral_id"], {"referred_by": r["sender"], "step": r["step"]})
        )
    for m in messages:
        sent = m["sent_at"].isoformat() if m["sent_at"] else "not sent"
        content = {
            "to": m["audience"],
            "by": m["medium"],
            "address": m["address"],
            "subject": m["subject"],
            "text": m["body"],
            "sent": sent,
        }
        items.append(MESSAGES.item(m["referral_id"], content))
    return items


async def on_subject(
    uow: UnitOfWork[NotifyStore], event: CloudEvent[Any], request: SubjectRequested
) -> None:
    now = datetime.now(UTC)
    subjects = uow.store.subjects
    ids = list(request.referral_ids)
    items: list[SubjectItem] = []
    done: list[str] = []
    kept: list[Any] = []
    match request.action:
        case SubjectAction.FIND:
            ids = []
        case SubjectAction.ACCESS:
            items = export(await subjects.referrals(ids), await subjects.messages(ids))
            ids = sorted({i.referral_id for i in items if i.referral_id}, key=str)
        case SubjectAction.RECTIFY:
            done = ["holds no NHS number or date of birth: nothing to correct"]
        case SubjectAction.ERASE:
            messages, contacts = await subjects.erase(ids)
            done, kept = erasure(HOLDINGS)
            done.append(f"{messages} message(s) deleted; contact details of {contacts} referral(s)")
        case _:
            done = await restriction(uow.conn, request) or []
            if request.action is SubjectAction.RESTRICT:
                held = await subjects.hold_unsent(ids)
                done.append(f"no messages while restricted; {held} unsent message(s) cancelled")
    answered = answer(request, SERVICE, now, referral_ids=ids, items=items, done=done, kept=kept)
    await respond(uow, event, request, answered)
