"""notify's handlers on a real database: what the referrer, the person and the team are
told, and never out of order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

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


async def test_the_team_is_told_the_adjustments_and_the_person_never_is(harness):
    notify = await harness("notify")
    adjustments = "Call, don't text. An interpreter (Polish)."
    ref = accepted(
        contact={"preferred": "phone", "phone": "07700 900123", "adjustments": adjustments}
    )
    del ref["data"]["nhs_number"]  # a referral without one is told like any other
    rid = ref["data"]["referral_id"]
    await notify.send(ref)
    await notify.send(internal("referral.assigned.v1", producer="triage", referral_id=rid))
    rows = await notify.rows("SELECT audience, body FROM notification ORDER BY id")
    team = [r["body"] for r in rows if r["audience"] == "team"]
    person = [r["body"] for r in rows if r["audience"] == "person"]
    assert len(team) == 1 and f"Reasonable adjustments: {adjustments}" in team[0]
    assert person and not any("Polish" in body for body in person)


def told(harness) -> list[tuple[str, str]]:
    return [
        (e.data.status.value, e.data.task_status.value) for e in harness.of("referral.status.v1")
    ]


def step(rid: str, name: str, task: str, at: datetime) -> dict:
    return internal(
        "referral.updated.v1",
        producer="outcomes",
        referral_id=rid,
        step=name,
        task_status=task,
        at=at.isoformat(),
    )


async def test_a_waitlisting_after_the_assignment_is_told_late_and_tells_the_person_nothing(
    harness,
):
    notify = await harness("notify")
    ref = accepted()
    rid = ref["data"]["referral_id"]
    waitlisted = internal("referral.waitlisted.v1", producer="triage", referral_id=rid)
    assigned = internal("referral.assigned.v1", producer="triage", referral_id=rid)
    await notify.send(ref)
    await notify.send(assigned)
    await notify.send(waitlisted)  # it happened first, but came late
    # told once, with where the referral stands now: its task status never goes back
    assert told(notify) == [
        ("accepted", "received"),
        ("assigned", "accepted"),
        ("waitlisted", "accepted"),
    ]
    late = notify.of("referral.status.v1")[-1].data
    assert late.step_at.isoformat() == waitlisted["data"]["waitlisted_at"]
    assert await notify.value("SELECT count(*) FROM notification WHERE audience = 'person'") == 1
    assert await notify.value("SELECT step FROM referral") == "assigned"


async def test_steps_out_of_order_are_each_told_once_and_the_task_status_never_goes_back(
    harness,
):
    """A crash redelivers: the first contact's in_progress reaches notify before the
    assignment, a pause comes after its resumption. Every step is still told, once."""
    notify = await harness("notify")
    t0 = datetime.now(UTC)
    ref = accepted(at=t0)
    rid = ref["data"]["referral_id"]
    at = {
        name: t0 + timedelta(minutes=i)
        for i, name in enumerate(["assigned", "in_progress", "on_hold", "resumed", "closed"], 1)
    }
    await notify.send(ref)
    await notify.send(step(rid, "in_progress", "in-progress", at["in_progress"]))
    await notify.send(
        internal(
            "referral.assigned.v1",
            producer="triage",
            referral_id=rid,
            assigned_at=at["assigned"].isoformat(),
        )
    )
    await notify.send(step(rid, "resumed", "in-progress", at["resumed"]))
    await notify.send(step(rid, "on_hold", "on-hold", at["on_hold"]))
    await notify.send(step(rid, "closed", "completed", at["closed"]))
    assert told(notify) == [
        ("accepted", "received"),
        ("in_progress", "in-progress"),
        ("assigned", "in-progress"),  # late: the current task status, not "accepted"
        ("resumed", "in-progress"),
        ("on_hold", "in-progress"),  # late: support had already resumed
        ("closed", "completed"),
    ]
    statuses_told = notify.of("referral.status.v1")
    assert [s.data.step_at for s in statuses_told] == [
        t0,
        at["in_progress"],
        at["assigned"],
        at["resumed"],
        at["on_hold"],
        at["closed"],
    ]
    # nobody is messaged for a late assignment: the team already met the person
    assert await notify.value("SELECT count(*) FROM notification") == 0


async def test_a_newer_waitlisting_keeps_the_task_accepted(harness):
    """A person whose worker left is waitlisted again: still accepted by the service."""
    notify = await harness("notify")
    ref = accepted()
    rid = ref["data"]["referral_id"]
    await notify.send(ref)
    await notify.send(internal("referral.assigned.v1", producer="triage", referral_id=rid))
    await notify.send(
        internal(
            "referral.waitlisted.v1",
            producer="triage",
            referral_id=rid,
            reason="the link worker left",
        )
    )
    assert told(notify)[-1] == ("waitlisted", "accepted")


async def test_steps_before_the_acceptance_are_held_then_told_in_turn(harness):
    """A crash can delay referral.accepted.v1 for as long as an outage lasts: what comes
    before it is held (no retry budget to run out of) and told once it arrives."""
    notify = await harness("notify")
    ref = accepted()
    rid = ref["data"]["referral_id"]
    assert (
        await notify.send(internal("referral.assigned.v1", producer="triage", referral_id=rid))
        == []
    )
    assert await notify.value("SELECT count(*) FROM notification") == 0
    assert await notify.value("SELECT count(*) FROM early_event") == 1
    await notify.send(ref)
    assert told(notify) == [("accepted", "received"), ("assigned", "accepted")]
    assert await notify.value("SELECT count(*) FROM early_event") == 0
    assert [r["audience"] for r in await notify.rows("SELECT audience FROM notification")] == [
        "person",
        "team",
    ]


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


@pytest.mark.parametrize(
    ("worker", "step", "task"), [("lw-1", "assigned", "accepted"), (None, "waitlisted", "received")]
)
async def test_a_referral_that_joined_an_open_episode_is_answered_like_any_other(
    harness, worker, step, task
):
    """A second agency learns nothing from Linkwell of the person's existing support: its
    referral is told assigned (or waitlisted) in the words any placement gets."""
    notify = await harness("notify")
    first, second = accepted(sender="A81001"), accepted(sender="B82005")
    for ref in (first, second):
        await notify.send(ref)
    await notify.send(
        internal(
            "referral.assigned.v1", producer="triage", referral_id=first["data"]["referral_id"]
        )
    )
    placed = "referral.assigned.v1" if worker else "referral.waitlisted.v1"
    plain = accepted(sender="C83001")
    await notify.send(plain)
    await notify.send(internal(placed, producer="triage", referral_id=plain["data"]["referral_id"]))
    await notify.send(
        internal(
            "referral.joined.v1",
            producer="triage",
            referral_id=second["data"]["referral_id"],
            episode_referral_id=first["data"]["referral_id"],
            link_worker_id=worker,
        )
    )
    by_sender = {}
    for s in notify.of("referral.status.v1"):
        by_sender.setdefault(s.data.sender, []).append(s.data)
    joined, ordinary = by_sender["B82005"][-1], by_sender["C83001"][-1]
    assert (joined.status.value, joined.task_status.value) == (step, task)
    assert (joined.message, joined.reason) == (ordinary.message, ordinary.reason)
    assert "already" not in joined.message and first["data"]["sender"] not in joined.message


async def test_a_referrals_end_starts_the_clock_of_its_contact_details(harness):
    notify = await harness("notify")
    t0 = datetime.now(UTC)
    ref = accepted(at=t0)
    rid = ref["data"]["referral_id"]
    await notify.send(ref)
    await notify.send(step(rid, "on_hold", "on-hold", t0 + timedelta(minutes=1)))
    assert await notify.value("SELECT ended_at FROM referral") is None
    await notify.send(step(rid, "withdrawn", "cancelled", t0 + timedelta(minutes=2)))
    assert await notify.value("SELECT ended_at FROM referral") == t0 + timedelta(minutes=2)


async def test_a_batch_reads_where_its_referrals_stand_at_once_and_tells_each_as_alone(harness):
    """A batch of the pipeline's events: its standings read, and its acceptances locked,
    at its start, in one statement each; every step told, and every held event released,
    as if each had come alone."""
    notify = await harness("notify")
    x, y, z = (accepted(contact={"preferred": "email", "email": f"{n}@example.org"}) for n in "xyz")
    rx, ry, rz = (e["data"]["referral_id"] for e in (x, y, z))
    await notify.send(x)
    await notify.send(internal("referral.assigned.v1", producer="triage", referral_id=ry))
    assert await notify.value("SELECT count(*) FROM early_event") == 1  # y's, held
    at = datetime.now(UTC) + timedelta(seconds=1)  # after the assignment
    sent: list[str] = []

    def note(query) -> None:
        sent.append(" ".join(query.query.split()))

    notify.conn.add_query_logger(note)
    await notify.send_batch(
        [
            internal("referral.assigned.v1", producer="triage", referral_id=rx),
            step(rx, "in_progress", "in-progress", at),
            y,
            z,
            internal("referral.waitlisted.v1", producer="triage", referral_id=rz),
        ]
    )
    await asyncio.sleep(0)  # the query loggers are called soon after, not at once
    notify.conn.remove_query_logger(note)

    by_referral: dict[str, list[str]] = {}
    for e in notify.of("referral.status.v1"):
        by_referral.setdefault(str(e.data.referral_id), []).append(e.data.status.value)
    assert by_referral == {
        rx: ["accepted", "assigned", "in_progress"],
        ry: ["accepted", "assigned"],  # y's held assignment, released by its acceptance
        rz: ["accepted", "waitlisted"],
    }
    assert await notify.value("SELECT count(*) FROM early_event") == 0
    audiences = await notify.rows(
        "SELECT r.sender_reference, n.audience FROM notification n JOIN referral r"
        " USING (referral_id) ORDER BY n.id"
    )
    assert sorted((r["sender_reference"], r["audience"]) for r in audiences) == sorted(
        [
            (x["data"]["sender_reference"], "person"),
            (x["data"]["sender_reference"], "team"),
            (y["data"]["sender_reference"], "person"),
            (y["data"]["sender_reference"], "team"),
            (z["data"]["sender_reference"], "person"),
        ]
    )
    read_ahead = [q for q in sent if q.startswith("SELECT * FROM referral WHERE referral_id = ANY")]
    one_by_one = [q for q in sent if q.startswith("SELECT * FROM referral WHERE referral_id = $1")]
    released_apart = [q for q in sent if q.startswith("DELETE FROM early_event")]
    assert len(read_ahead) == 1
    # x's second step reads what its first changed; y's released step and z's waitlisting
    # read referrals not known when the batch began
    assert len(one_by_one) == 3
    assert released_apart == []  # y's held event was taken by the statement that added y
