"""outcomes and the person's rights: it keeps each referral's journey (the record of the
care given), the wellbeing measures and which entries were written to the GP record, with
the NHS number they were filed under. It corrects that number and tells the GP; it keeps
the journey on erasure (it is the health and care record)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from contracts import CloudEvent
from contracts.enums import WritebackFact
from contracts.events import GpWriteback, SubjectAction, SubjectItem, SubjectRequested
from services.runtime.handling import UnitOfWork
from services.runtime.subject import HEALTH_RECORD, Holding, answer, erasure, respond, restriction

from .store import OutcomesStore

SERVICE = "outcomes"
KEPT = "as long as the NHS Records Management Code of Practice sets for this health record"

EPISODE = Holding(
    what="Your referral's journey: your GP practice, NHS number, needs, link worker, and "
    "how it ended",
    source="your referral, and your link worker team",
    kept=KEPT,
    erase=False,
    ground=HEALTH_RECORD,
)
TIMELINE = Holding(
    what="Each step of the referral (accepted, assigned, contacts, plans, notes)",
    source="your link worker team and Linkwell",
    kept=KEPT,
    erase=False,
    ground=HEALTH_RECORD,
)
MEASURES = Holding(
    what="Wellbeing questionnaires you answered (SWEMWBS, ONS4)",
    source="your link worker team",
    kept=KEPT,
    erase=False,
    ground=HEALTH_RECORD,
)
GP_RECORD = Holding(
    what="Which entries were sent to your GP record, with their codes",
    source="Linkwell, when it wrote to your GP record",
    kept=KEPT,
    erase=False,
    ground=HEALTH_RECORD,
)
HOLDINGS = (EPISODE, TIMELINE, MEASURES, GP_RECORD)

# What the GP is told about a corrected NHS number. No SNOMED CT code: a correction of
# demographics is not a clinical fact, and no code for it could be traced to a source.
CORRECTION_SUMMARY = (
    "Correction from the social prescribing service: entries sent earlier about referral "
    "{referral_id} were filed under a wrong NHS number. This message carries the right one. "
    "Please move those entries to this person's record."
)


def export(
    referrals: list[dict[str, Any]],
    timeline: list[dict[str, Any]],
    measures: list[dict[str, Any]],
    writebacks: list[dict[str, Any]],
) -> list[SubjectItem]:
    items = []
    for r in referrals:
        content = {k: v for k, v in r.items() if k != "referral_id" and v is not None}
        items.append(EPISODE.item(r["referral_id"], content))
    for t in timeline:
        content = {"step": t["event_type"], "at": t["occurred_at"].isoformat(), **t["detail"]}
        items.append(TIMELINE.item(t["referral_id"], content))
    for m in measures:
        content = {
            "questionnaire": m["instrument"],
            "when": m["point"],
            "answers": m["items"],
            "at": m["taken_at"].isoformat(),
        }
        items.append(MEASURES.item(m["referral_id"], content))
    for w in writebacks:
        items.append(GP_RECORD.item(w["referral_id"], {"entry": w["fact"], "codes": w["codes"]}))
    return items


def correction(
    referral_id: uuid.UUID, practice: str, nhs_number: str, now: datetime
) -> GpWriteback:
    """The GP writeback telling the practice the NHS number it was sent was wrong."""
    return GpWriteback(
        referral_id=referral_id,
        registered_practice=practice,
        nhs_number=nhs_number,
        fact=WritebackFact.CORRECTION,
        codes=[],
        summary=CORRECTION_SUMMARY.format(referral_id=referral_id),
        effective_at=now,
    )


def gp_told(before: str | None, after: str, practice: str | None, written: bool) -> bool:
    """The GP is told when the number changed and the practice has had entries under the
    old one; otherwise the next entries simply carry the right number."""
    return before is not None and before != after and practice is not None and written


DOB_DONE = "holds no date of birth; the GP record's own comes from the national register"


async def _correct(
    uow: UnitOfWork[OutcomesStore], ids: list[uuid.UUID], right: str, now: datetime
) -> list[str]:
    """Set the right NHS number; tell each practice that had entries under the wrong one."""
    subjects = uow.store.subjects
    written = {w["referral_id"] for w in await subjects.writebacks(ids)}
    changed = await subjects.correct_nhs_number(ids, right)
    done = [f"corrected the NHS number of {len(changed)} referral(s)"]
    for rid, practice, before in changed:
        if practice is None or not gp_told(before, right, practice, rid in written):
            continue
        # on the audit trail as every writeback is (services/runtime/audit.py: DISCLOSED)
        await uow.emit(correction(rid, practice, right, now))
        done.append(f"told GP practice {practice}: a correction writeback, no code")
    return done


async def on_subject(
    uow: UnitOfWork[OutcomesStore], event: CloudEvent[Any], request: SubjectRequested
) -> None:
    now = datetime.now(UTC)
    subjects = uow.store.subjects
    ids = list(request.referral_ids)
    items: list[SubjectItem] = []
    done: list[str] = []
    kept: list[Any] = []
    match request.action:
        case SubjectAction.FIND:
            ids = []  # intake names a person's referrals (NHS number and birth date agree)
        case SubjectAction.ACCESS:
            items = export(
                await subjects.referrals(ids),
                await subjects.timeline(ids),
                await subjects.measurements(ids),
                await subjects.writebacks(ids),
            )
            ids = sorted({i.referral_id for i in items if i.referral_id}, key=str)
        case SubjectAction.RECTIFY:
            if request.new_nhs_number is not None:
                done += await _correct(uow, ids, request.new_nhs_number, now)
            if request.new_date_of_birth is not None:
                done.append(DOB_DONE)
        case SubjectAction.ERASE:
            done, kept = erasure(HOLDINGS)
            done.append("nothing erased: all outcomes holds is the record of care")
        case _:
            done = await restriction(uow.conn, request) or []
            if request.action is SubjectAction.RESTRICT:
                done.append("no GP writebacks while restricted")
    answered = answer(request, SERVICE, now, referral_ids=ids, items=items, done=done, kept=kept)
    await respond(uow, event, request, answered)
