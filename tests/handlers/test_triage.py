"""triage's handlers on a real database: placement, the waitlist, rosters, closures, and
events that arrive before their referral."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.runtime.errors import BadMessage

from ..support import accepted, inbound, internal, worker

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def placed(harness) -> dict[str, str | None]:
    """referral id -> worker (assigned) or None (waitlisted), from what was emitted."""
    out: dict[str, str | None] = {}
    for e in harness.emitted:
        if e.type == "referral.assigned.v1":
            out[str(e.data.referral_id)] = e.data.link_worker_id
        elif e.type == "referral.waitlisted.v1":
            out.setdefault(str(e.data.referral_id), None)
    return out


def closed(referral_id: str, pcn: str = "U12345", reason: str = "completed") -> dict:
    return inbound("referral.closed.v1", pcn, referral_id=referral_id, reason=reason)


async def test_places_with_the_lightest_worker_then_waitlists_in_order(harness):
    triage = await harness("triage")
    await triage.send(worker("U12345", "lw-a", 2))
    await triage.send(worker("U12345", "lw-b", 1))
    refs = [accepted(at=T0 + timedelta(minutes=i)) for i in range(5)]
    for ref in refs:
        await triage.send(ref)
    ids = [r["data"]["referral_id"] for r in refs]
    assert placed(triage) == {
        ids[0]: "lw-a",
        ids[1]: "lw-b",
        ids[2]: "lw-a",
        ids[3]: None,
        ids[4]: None,
    }
    assert {e.subject for e in triage.of("referral.waitlisted.v1")} == {ids[3], ids[4]}

    # a place frees up: the longest waiting gets it, from the waitlist
    await triage.send(closed(ids[1]))
    [moved] = triage.of("referral.assigned.v1")[3:]
    assert str(moved.data.referral_id) == ids[3]
    assert moved.data.from_waitlist and moved.data.link_worker_id == "lw-b"

    # more capacity: the next in line is placed at once
    await triage.send(worker("U12345", "lw-b", 2))
    assert str(triage.of("referral.assigned.v1")[4].data.referral_id) == ids[4]
    over = await triage.value(
        "SELECT count(*) FROM link_worker w WHERE w.capacity < (SELECT count(*) FROM referral r"
        " WHERE r.link_worker_id = w.link_worker_id AND r.status = 'assigned')"
    )
    assert over == 0


async def test_a_resent_acceptance_places_nothing_twice(harness):
    triage = await harness("triage")
    await triage.send(worker("U12345", "lw-a", 5))
    ref = accepted()
    await triage.send(ref)
    assert await triage.send(ref) == []  # the same event again: the inbox drops it
    again = dict(ref, id=str(uuid.uuid4()))
    assert await triage.send(again) == []  # the same referral in a new event
    assert len(triage.of("referral.assigned.v1")) == 1


async def test_a_team_may_not_touch_another_pcns_roster_or_referral(harness):
    triage = await harness("triage")
    await triage.send(worker("U12345", "lw-a", 1))
    ref = accepted()
    await triage.send(ref)
    with pytest.raises(BadMessage) as roster:
        await triage.send(worker("U12345", "lw-x", 9) | {"source": "urn:linkwell:org:U99999"})
    assert roster.value.reason == "not_permitted"
    with pytest.raises(BadMessage) as closure:
        await triage.send(closed(ref["data"]["referral_id"], pcn="U99999"))
    assert closure.value.reason == "not_permitted"
    assert await triage.value("SELECT count(*) FROM link_worker") == 1
    assert await triage.value("SELECT status FROM referral") == "assigned"


async def test_an_early_closure_from_its_own_team_means_the_referral_is_never_placed(harness):
    triage = await harness("triage")
    await triage.send(worker("U12345", "lw-a", 3))
    ref = accepted()
    rid = ref["data"]["referral_id"]
    assert await triage.send(closed(rid, reason="moved_away")) == []  # held, nothing decided
    assert await triage.value("SELECT count(*) FROM early_event") == 1
    await triage.send(ref)
    assert placed(triage) == {}
    assert (
        await triage.value("SELECT status FROM referral WHERE referral_id = $1", uuid.UUID(rid))
        == "closed"
    )
    assert await triage.value("SELECT count(*) FROM early_event") == 0


async def test_an_early_closure_from_another_pcn_is_refused_once_the_referral_is_known(harness):
    triage = await harness("triage")
    await triage.send(worker("U12345", "lw-a", 3))
    ref = accepted(pcn="U12345")
    rid = ref["data"]["referral_id"]
    early = closed(rid, pcn="U99999")
    await triage.send(early)  # another PCN guessed the id: kept, not acted on
    emitted = await triage.send(ref)
    # the referral is placed as if the closure had never come...
    assert placed(triage) == {rid: "lw-a"}
    # ...and the other PCN is told why, and the closure is dead-lettered with the reason
    [refusal] = [e for e in emitted if e.type == "event.rejected.v1"]
    assert refusal.data.sender == "U99999"
    assert refusal.data.rejected_event_id == early["id"]
    assert [r.code.value for r in refusal.data.reasons] == ["not_permitted"]
    [letter] = await triage.rows(
        "SELECT body, headers FROM outbox WHERE exchange = $1", triage.names.dead_letter
    )
    assert letter["headers"]["x-linkwell-reason"] == "not_permitted"
    assert letter["headers"]["x-linkwell-user-id"] == "U99999"
    assert bytes(letter["body"]).find(early["id"].encode()) >= 0


async def test_internal_types_only_from_the_events_exchange(harness):
    triage = await harness("triage")
    forged = internal("referral.accepted.v1") | {"source": "urn:linkwell:org:U12345"}
    with pytest.raises(BadMessage) as refused:  # a team publishing intake's announcement
        await triage.send(forged, inbound=True)
    assert refused.value.reason == "unsupported_type"
    with pytest.raises(BadMessage) as own:  # nor its own assignments, from anywhere
        await triage.send(internal("referral.assigned.v1", producer="triage"))
    assert own.value.reason == "unsupported_type"
    assert await triage.value("SELECT count(*) FROM referral") == 0


async def test_an_older_registration_changes_nothing_and_announces_nothing(harness):
    """Registrations can arrive out of order: the later one wins, and one older than the
    roster's is not announced to outcomes as if it had changed the roster."""
    triage = await harness("triage")
    newer = worker("U12345", "lw-a", 3)
    older = worker("U12345", "lw-a", 1)
    newer["data"]["registered_at"] = (T0 + timedelta(days=1)).isoformat()
    older["data"]["registered_at"] = T0.isoformat()
    await triage.send(newer)
    await triage.send(older)
    assert await triage.value("SELECT capacity FROM link_worker") == 3
    assert [e.data.capacity for e in triage.of("roster.changed.v1")] == [3]


# ---------------------------------------------------------------- times nobody could have meant

HOUR = timedelta(hours=1)


def received(ref: dict) -> datetime:
    return datetime.fromisoformat(ref["data"]["accepted_at"])


def time_refusal(refused: pytest.ExceptionInfo[BadMessage], field: str) -> None:
    assert refused.value.reason == "time_implausible"
    assert [(r.code.value, r.field) for r in refused.value.reasons] == [("time_implausible", field)]


async def test_a_registration_from_an_hour_ahead_is_refused_and_cannot_block_later_ones(harness):
    """A later registration wins: one dated ahead would win over every correction until
    then. It is refused instead, and the roster keeps what it had."""
    triage = await harness("triage")
    await triage.send(worker("U12345", "lw-a", 3))
    ahead = worker("U12345", "lw-a", 0)
    ahead["data"]["registered_at"] = (datetime.now(UTC) + HOUR).isoformat()
    with pytest.raises(BadMessage) as refused:
        await triage.send(ahead)
    time_refusal(refused, "data.registered_at")
    assert "5 minutes" in refused.value.reasons[0].message
    assert await triage.value("SELECT capacity FROM link_worker") == 3
    await triage.send(worker("U12345", "lw-a", 5))  # a correction, dated now, still wins
    assert await triage.value("SELECT capacity FROM link_worker") == 5
    assert [e.data.capacity for e in triage.of("roster.changed.v1")] == [3, 5]


async def test_a_capacity_change_from_an_hour_ahead_is_refused(harness):
    triage = await harness("triage")
    await triage.send(worker("U12345", "lw-a", 3))
    change = inbound(
        "linkworker.updated.v1",
        "U12345",
        link_worker_id="lw-a",
        pcn="U12345",
        capacity=1,
        updated_at=(datetime.now(UTC) + HOUR).isoformat(),
    )
    with pytest.raises(BadMessage) as refused:
        await triage.send(change)
    time_refusal(refused, "data.updated_at")
    assert await triage.value("SELECT capacity FROM link_worker") == 3


@pytest.mark.parametrize(
    ("event_type", "field", "data"),
    [
        ("referral.closed.v1", "closed_at", {"reason": "completed"}),
        ("referral.withdrawn.v1", "withdrawn_at", {"by": "person"}),
        ("referral.transferred.v1", "transferred_at", {"to_link_worker_id": "lw-b"}),
    ],
)
@pytest.mark.parametrize("when", ["before the referral", "an hour ahead"])
async def test_a_closure_withdrawal_or_transfer_badly_dated_changes_nothing(
    harness, event_type, field, data, when
):
    triage = await harness("triage")
    await triage.send(worker("U12345", "lw-a", 1))
    await triage.send(worker("U12345", "lw-b", 1))
    ref = accepted()
    rid = ref["data"]["referral_id"]
    await triage.send(ref)
    worker_before = placed(triage)[rid]
    data = data | {"to_link_worker_id": "lw-b" if worker_before == "lw-a" else "lw-a"}
    if event_type != "referral.transferred.v1":
        data.pop("to_link_worker_id")
    at = received(ref) - timedelta(days=3) if when == "before the referral" else None
    at = at or datetime.now(UTC) + HOUR
    event = inbound(event_type, "U12345", referral_id=rid, **{field: at.isoformat()}, **data)
    with pytest.raises(BadMessage) as refused:
        await triage.send(event)
    time_refusal(refused, f"data.{field}")
    row = await triage.rows(
        "SELECT status, link_worker_id FROM referral WHERE referral_id = $1", uuid.UUID(rid)
    )
    assert tuple(row[0]) == ("assigned", worker_before)


async def test_an_early_closure_dated_before_the_referral_is_refused_once_known(harness):
    """Held while the referral is unknown, judged against its receipt once it arrives:
    refused, answered and dead-lettered; the referral is placed as if it had never come."""
    triage = await harness("triage")
    await triage.send(worker("U12345", "lw-a", 3))
    ref = accepted()
    rid = ref["data"]["referral_id"]
    early = inbound(
        "referral.closed.v1",
        "U12345",
        referral_id=rid,
        reason="moved_away",
        closed_at=(received(ref) - timedelta(days=1)).isoformat(),
    )
    assert await triage.send(early) == []
    assert await triage.value("SELECT count(*) FROM early_event") == 1
    emitted = await triage.send(ref)
    assert placed(triage) == {rid: "lw-a"}
    [refusal] = [e for e in emitted if e.type == "event.rejected.v1"]
    assert (refusal.data.sender, refusal.data.rejected_event_id) == ("U12345", early["id"])
    assert [(r.code.value, r.field) for r in refusal.data.reasons] == [
        ("time_implausible", "data.closed_at")
    ]
    [letter] = await triage.rows(
        "SELECT headers FROM outbox WHERE exchange = $1", triage.names.dead_letter
    )
    assert letter["headers"]["x-linkwell-reason"] == "time_implausible"


async def test_an_early_closure_from_the_future_is_refused_at_once_never_held(harness):
    triage = await harness("triage")
    rid = accepted()["data"]["referral_id"]
    ahead = closed(rid) | {"time": (datetime.now(UTC) + HOUR).isoformat()}
    with pytest.raises(BadMessage) as refused:
        await triage.send(ahead)
    time_refusal(refused, "time")
    assert await triage.value("SELECT count(*) FROM early_event") == 0


@pytest.mark.parametrize("free", [1, 2])
async def test_an_arrival_with_places_free_and_people_waiting_comes_in_waitlist_order(
    harness, free
):
    """Places freed by a change no handler made (here, a capacity raised in the database)
    go to the waitlist's head, in its order, when the next referral arrives: people whose
    worker left first, then by receipt, the arriving referral among them."""
    triage = await harness("triage")
    await triage.send(worker("U12345", "lw-a", 1))
    refs = [accepted(at=T0 + timedelta(minutes=i)) for i in (1, 2, 3)]
    for ref in refs:
        await triage.send(ref)
    first, later, left = (uuid.UUID(r["data"]["referral_id"]) for r in refs)
    await triage.value("UPDATE referral SET priority = 1 WHERE referral_id = $1", left)
    await triage.value("UPDATE link_worker SET capacity = $1", 1 + free)
    early = accepted(at=T0)  # received before those waiting, delivered after them
    emitted = await triage.send(early)
    placed_now = [
        (str(e.data.referral_id), e.data.from_waitlist)
        for e in emitted
        if e.type == "referral.assigned.v1"
    ]
    arriving = early["data"]["referral_id"]
    if free == 1:
        assert placed_now == [(str(left), True)]
        assert [str(e.subject) for e in triage.of("referral.waitlisted.v1")][-1] == arriving
    else:
        assert placed_now == [(str(left), True), (arriving, False)]
    statuses = dict(await triage.rows("SELECT referral_id, status FROM referral"))
    assert statuses[first] == "assigned" and statuses[later] == "waiting"
    assert await triage.value("SELECT count(*) FROM referral WHERE status = 'assigned'") == (
        1 + free
    )


async def test_a_batch_of_placements_takes_its_locks_at_its_start_and_places_each_as_alone(
    harness,
):
    """The referrals' locks, then the PCNs', each in one statement at the batch's start;
    each placement (and a closure held for one of them) then decided as if it came alone."""
    triage = await harness("triage")
    await triage.send(worker("U12345", "lw-a", 2))
    await triage.send(worker("U99999", "lw-c", 1))
    a, b, d, e = (accepted(at=T0 + timedelta(minutes=i)) for i in range(4))
    c = accepted(pcn="U99999", at=T0)
    ra, rb, rc, rd, re_ = (x["data"]["referral_id"] for x in (a, b, c, d, e))
    await triage.send(closed(rd))  # before its referral: held
    assert await triage.value("SELECT count(*) FROM early_event") == 1
    sent: list[str] = []

    def note(query) -> None:
        sent.append(" ".join(query.query.split()))

    triage.conn.add_query_logger(note)
    await triage.send_batch([a, b, c, d, e])
    await asyncio.sleep(0)  # the query loggers are called soon after, not at once
    triage.conn.remove_query_logger(note)

    # d was closed before it could be placed: never placed, and e takes the place after b
    assert placed(triage) == {ra: "lw-a", rb: "lw-a", rc: "lw-c", re_: None}
    assert await triage.value("SELECT count(*) FROM early_event") == 0
    assert await triage.value("SELECT status FROM referral WHERE referral_id = $1", rd) != "waiting"
    at_start = [q for q in sent if q.startswith("SELECT count(pg_advisory_xact_lock")]
    pcns_at_start = [q for q in sent if q.startswith("INSERT INTO pcn (pcn) SELECT")]
    one_referral = [q for q in sent if q == "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"]
    one_pcn = [q for q in sent if q.startswith("INSERT INTO pcn (pcn) VALUES")]
    assert (len(at_start), len(pcns_at_start)) == (1, 1)
    # only d's held closure, released as it would be alone, locks on its own
    assert (len(one_referral), len(one_pcn)) == (1, 1), (one_referral, one_pcn)
