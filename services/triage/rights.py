"""triage and the person's rights: it holds which team and link worker each referral is
with, the needs it was placed by, and nothing that names the person (no name, contact
details, NHS number or date of birth). That is kept on erasure: it is the record of who
was responsible for the person's care."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from contracts import CloudEvent
from contracts.events import SubjectAction, SubjectItem, SubjectRequested
from services.runtime.handling import UnitOfWork
from services.runtime.subject import HEALTH_RECORD, Holding, answer, erasure, respond, restriction

from .store import TriageStore

SERVICE = "triage"

PLACEMENT = Holding(
    what="Which link worker team and link worker your referral is with, and the needs it "
    "was placed by",
    source="your referral, and your link worker team's roster",
    kept="as long as the NHS Records Management Code of Practice sets for this health record",
    erase=False,
    ground=HEALTH_RECORD,
)
HOLDINGS = (PLACEMENT,)


def export(referrals: list[dict[str, Any]]) -> list[SubjectItem]:
    items = []
    for r in referrals:
        content = {
            k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in r.items()
            if k != "referral_id" and v is not None
        }
        items.append(PLACEMENT.item(r["referral_id"], content))
    return items


async def on_subject(
    uow: UnitOfWork[TriageStore], event: CloudEvent[Any], request: SubjectRequested
) -> None:
    now = datetime.now(UTC)
    ids = list(request.referral_ids)
    items: list[SubjectItem] = []
    done: list[str] = []
    kept: list[Any] = []
    match request.action:
        case SubjectAction.FIND:
            ids = []
        case SubjectAction.ACCESS:
            items = export(await uow.store.subjects.referrals(ids))
            ids = sorted({i.referral_id for i in items if i.referral_id}, key=str)
        case SubjectAction.RECTIFY:
            done = ["holds no NHS number or date of birth: nothing to correct"]
        case SubjectAction.ERASE:
            done, kept = erasure(HOLDINGS)
            done.append("nothing erased: triage holds nothing that names you")
        case _:
            done = await restriction(uow.conn, request) or []
    answered = answer(request, SERVICE, now, referral_ids=ids, items=items, done=done, kept=kept)
    await respond(uow, event, request, answered)
