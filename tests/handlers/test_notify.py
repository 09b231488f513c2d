"""notify's handlers on a real database: what the referrer, the person and the team are
told, and never out of order."""

from __future__ import annotations

import pytest

from services.runtime.errors import Deferred

from ..support import accepted, internal


def statuses(harness) -> list[str]:
    return [e.data.status.value for e in harness.of("referral.status.v1")]


async def queued(harness) -> list[tuple[str, str, str]]:
    rows = await harness.rows("SELECT audience, medium, address FROM notification ORDER BY id")
    return [(r["audience"], r["medium"], r["address"]) for r in rows]


async def test_referrer_person_and_team_are_told_in_order(harness):
    notify = await harness("notify")
    ref = accepted(contact={"preferred": "email", "email": "sam@example.org"})
    rid = ref["data"]["referral_id"]
    await notify.send(ref)
    await notify.send(internal("referral.waitlisted.v1", producer="triage", referral_id=rid))
    await notify.send(internal("referral.assigned.v1", producer="triage", referral_id=rid))
    assert statuses(notify) == ["accepted", "waitlisted", "assigned"]
    keys = {e.data.routing_key() for e in notify.of("referral.status.v1")}
    assert keys == {f"referral.status.v1.{ref['data']['sender']}"}
    assert await queued(notify) == [
        ("person", "email", "sam@example.org"),
        ("person", "email", "sam@example.org"),
        ("team", "email", "social-prescribing-U12345@linkwell.invalid"),
    ]
    bodies = [r["body"] for r in await notify.rows("SELECT body FROM notification ORDER BY id")]
    assert "waiting list" in bodies[0] and "will contact you" in bodies[1]


async def test_a_waitlisting_after_the_assignment_tells_nobody(harness):
    notify = await harness("notify")
    ref = accepted()
    rid = ref["data"]["referral_id"]
    waitlisted = internal("referral.waitlisted.v1", producer="triage", referral_id=rid)
    assigned = internal("referral.assigned.v1", producer="triage", referral_id=rid)
    await notify.send(ref)
    await notify.send(assigned)
    assert await notify.send(waitlisted) == []  # it happened first, but came late
    assert statuses(notify) == ["accepted", "assigned"]
    assert await notify.value("SELECT count(*) FROM notification WHERE audience = 'person'") == 1


async def test_an_assignment_before_the_acceptance_waits(harness):
    notify = await harness("notify")
    with pytest.raises(Deferred):
        await notify.send(internal("referral.assigned.v1", producer="triage"))
    assert await notify.value("SELECT count(*) FROM notification") == 0


async def test_a_person_who_asked_for_letters_is_not_texted(harness):
    notify = await harness("notify")
    ref = accepted(contact={"preferred": "letter", "phone": "07700 900123"})
    await notify.send(ref)
    await notify.send(
        internal("referral.assigned.v1", producer="triage", referral_id=ref["data"]["referral_id"])
    )
    assert [a for a, _, _ in await queued(notify)] == ["team"]


async def test_a_rejection_tells_the_referrer(harness):
    notify = await harness("notify")
    [status] = await notify.send(internal("referral.rejected.v1"))
    assert status.data.status.value == "rejected" and status.data.referral_id is None
