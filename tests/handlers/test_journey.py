"""The journey after assignment, handler by handler on a real database: plans, measures,
notes, pauses, transfers, withdrawals, workers leaving, people referred twice, and what
the GP record gets under each sharing choice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.runtime.errors import BadMessage

from ..support import accepted, example, inbound, internal, worker

PCN = "U12345"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def team(event_type: str, rid: str, pcn: str = PCN, **data) -> dict:
    return inbound(event_type, pcn, referral_id=rid, **data)


def plan(rid: str, **data) -> dict:
    return team("plan.agreed.v1", rid, **data)


def measured(rid: str, instrument: str, point: str, items: list[int], **data) -> dict:
    return team(
        "wellbeing.measured.v1", rid, instrument=instrument, point=point, items=items, **data
    )


def writebacks(harness) -> list:
    return harness.of("gp.writeback.v1")


def updates(harness, rid: str | None = None) -> list[tuple[str, str]]:
    return [
        (e.data.step.value, e.data.task_status.value)
        for e in harness.of("referral.updated.v1")
        if rid is None or str(e.data.referral_id) == rid
    ]


async def started(outcomes, **data) -> str:
    ref = accepted(**data)
    rid = ref["data"]["referral_id"]
    await outcomes.send(ref)
    await outcomes.send(internal("referral.assigned.v1", producer="triage", referral_id=rid))
    await outcomes.send(team("contact.recorded.v1", rid, outcome="engaged"))
    return rid


# ---------------------------------------------------------------- outcomes


async def test_a_whole_journey_reaches_the_gp_and_the_referrer(harness):
    outcomes = await harness("outcomes")
    rid = await started(outcomes)
    await outcomes.send(plan(rid))
    await outcomes.send(measured(rid, "swemwbs", "baseline", [2, 2, 3, 2, 3, 3, 3]))  # 18
    await outcomes.send(measured(rid, "ons4", "baseline", [4, 5, 3, 7]))
    await outcomes.send(
        example("note.shared.v1") | team("note.shared.v1", rid, text="Walking group twice a week.")
    )
    await outcomes.send(team("referral.held.v1", rid, reason="In hospital"))
    await outcomes.send(team("referral.resumed.v1", rid))
    await outcomes.send(measured(rid, "swemwbs", "end", [4, 3, 4, 3, 4, 4, 3]))  # 25
    await outcomes.send(measured(rid, "ons4", "end", [8, 7, 8, 3]))
    await outcomes.send(team("referral.closed.v1", rid, reason="completed"))

    assert updates(outcomes) == [
        ("in_progress", "in-progress"),
        ("on_hold", "on-hold"),
        ("resumed", "in-progress"),
        ("closed", "completed"),
    ]
    facts = [w.data.fact.value for w in writebacks(outcomes)]
    assert facts == [
        "accepted",
        "plan",
        "wellbeing",
        "wellbeing",
        "note",
        "wellbeing",
        "wellbeing",
        "closed",
    ]
    swemwbs = [w for w in writebacks(outcomes) if [c.code for c in w.data.codes] == ["718466001"]]
    assert [w.data.observations[0].value for w in swemwbs] == [17.43, 22.35]
    assert swemwbs[0].data.observations[0].code.code == "718466001"
    ons4 = [
        w for w in writebacks(outcomes) if w.data.fact.value == "wellbeing" and not w.data.codes
    ]
    assert [o.name for o in ons4[0].data.observations] == [
        "ONS4 life satisfaction",
        "ONS4 worthwhile",
        "ONS4 happiness",
        "ONS4 anxiety",
    ]
    assert all(o.code is None for o in ons4[0].data.observations)  # no traceable code
    assert [o.interpretation for o in ons4[0].data.observations] == ["low", "medium", "low", "high"]
    closing = writebacks(outcomes)[-1].data.summary
    assert "SWEMWBS metric score 17.43 at baseline, 22.35 at the end: +4.92" in closing
    assert "life satisfaction low to high" in closing and "anxiety high to low" in closing
    plan_summary = writebacks(outcomes)[1].data.summary
    assert "What matters to the person" in plan_summary and "Riverside Health Walks" in plan_summary


async def test_a_revised_plan_is_written_again_as_a_revision(harness):
    outcomes = await harness("outcomes")
    received = datetime.now(UTC) - timedelta(days=90)  # times in the past, after the referral
    rid = await started(outcomes, at=received)
    await outcomes.send(plan(rid, agreed_at=(received + timedelta(days=30)).isoformat()))
    await outcomes.send(
        plan(
            rid,
            agreed_at=(received + timedelta(days=60)).isoformat(),
            what_matters="Back at the allotment.",
        )
    )
    plans = [w.data.summary for w in writebacks(outcomes) if w.data.fact.value == "plan"]
    assert len(plans) == 2 and "revision 2" in plans[1]


@pytest.mark.parametrize(
    ("instrument", "items", "field"),
    [
        ("swemwbs", [3, 3, 3, 3, 3, 3], "data.items"),  # six items
        ("swemwbs", [3, 3, 3, 6, 3, 3, 3], "data.items"),  # a 6
        ("ons4", [5, 5, 11, 5], "data.items.2"),  # an 11
        ("ons4", [5, 5, 5], "data.items"),
    ],
)
async def test_a_wrong_measurement_is_refused_and_nothing_stored(harness, instrument, items, field):
    outcomes = await harness("outcomes")
    rid = await started(outcomes)
    with pytest.raises(BadMessage) as refused:
        await outcomes.send(measured(rid, instrument, "baseline", items))
    assert refused.value.reasons[0].code.value == "schema_invalid"
    assert refused.value.reasons[0].field == field
    assert await outcomes.value("SELECT count(*) FROM measurement") == 0
    assert [w.data.fact.value for w in writebacks(outcomes)] == ["accepted"]


async def test_another_pcns_plan_is_refused(harness):
    outcomes = await harness("outcomes")
    rid = await started(outcomes)
    with pytest.raises(BadMessage) as refused:
        await outcomes.send(plan(rid, pcn="U99999"))
    assert refused.value.reason == "not_permitted"
    assert (
        await outcomes.value("SELECT count(*) FROM timeline WHERE event_type = 'plan.agreed.v1'")
        == 0
    )


@pytest.mark.parametrize("sharing", ["codes_only", "codes_and_summaries"])
async def test_the_persons_sharing_choice_governs_every_writeback(harness, sharing):
    outcomes = await harness("outcomes")
    rid = await started(outcomes, gp_sharing=sharing, agency_type="self_referral")
    await outcomes.send(plan(rid))
    await outcomes.send(measured(rid, "swemwbs", "baseline", [3] * 7))
    await outcomes.send(measured(rid, "ons4", "baseline", [5, 5, 5, 5]))
    await outcomes.send(team("note.shared.v1", rid, text="Doing well at the walking group."))
    await outcomes.send(team("referral.closed.v1", rid, reason="completed"))
    sent = writebacks(outcomes)
    if sharing == "codes_only":
        assert [(w.data.fact.value, [c.code for c in w.data.codes]) for w in sent] == [
            ("accepted", ["871731000000106", "306098008"]),
            ("wellbeing", ["718466001"]),
        ]
        for w in sent:
            assert w.data.summary.startswith("Codes only")
            assert "walking" not in w.data.summary.lower()
        assert [o.value for o in sent[1].data.observations] == [19.25]  # raw 21
    else:
        assert [w.data.fact.value for w in sent] == [
            "accepted",
            "plan",
            "wellbeing",
            "wellbeing",
            "note",
            "closed",
        ]
        assert "walking group" in sent[4].data.summary


async def test_a_pause_and_resume_need_an_open_paused_episode(harness):
    outcomes = await harness("outcomes")
    rid = await started(outcomes)
    with pytest.raises(BadMessage) as not_paused:
        await outcomes.send(team("referral.resumed.v1", rid))
    assert not_paused.value.reason == "not_active"
    await outcomes.send(team("referral.closed.v1", rid, reason="completed"))
    with pytest.raises(BadMessage) as ended:
        await outcomes.send(team("referral.held.v1", rid, reason="away"))
    assert ended.value.reason == "not_active"


async def test_the_referrer_may_withdraw_its_own_referral_and_nobody_else_may(harness):
    outcomes = await harness("outcomes")
    rid = await started(outcomes, sender="A81001")
    stranger = inbound("referral.withdrawn.v1", "B82005", referral_id=rid)
    with pytest.raises(BadMessage):
        await outcomes.send(stranger)
    await outcomes.send(inbound("referral.withdrawn.v1", "A81001", referral_id=rid))
    assert updates(outcomes)[-1] == ("withdrawn", "cancelled")
    closing = writebacks(outcomes)[-1]
    assert closing.data.fact.value == "closed" and "withdrawn" in closing.data.summary


async def test_a_new_episode_after_closure_is_coded_again(harness):
    outcomes = await harness("outcomes")
    person = str(uuid.uuid4())
    first = await started(outcomes, person_id=person)
    await outcomes.send(team("referral.closed.v1", first, reason="completed"))
    second = await started(outcomes, person_id=person)
    accepted_codes = [
        str(w.data.referral_id) for w in writebacks(outcomes) if w.data.fact.value == "accepted"
    ]
    assert accepted_codes == [first, second]


async def test_a_joined_referral_follows_its_episode_and_is_never_coded_itself(harness):
    outcomes = await harness("outcomes")
    rid = await started(outcomes)
    second = accepted(sender="B82005")
    sid = second["data"]["referral_id"]
    await outcomes.send(second)
    await outcomes.send(
        internal("referral.joined.v1", producer="triage", referral_id=sid, episode_referral_id=rid)
    )
    await outcomes.send(team("referral.held.v1", rid, reason="away"))
    assert updates(outcomes, sid) == [("on_hold", "on-hold")]  # the second referrer hears too
    assert {str(w.data.referral_id) for w in writebacks(outcomes)} == {rid}


async def test_the_codes_written_back_are_told_to_the_episodes_own_referrer_only(harness):
    outcomes = await harness("outcomes")
    rid = await started(outcomes)
    second = accepted(sender="B82005")
    sid = second["data"]["referral_id"]
    await outcomes.send(second)
    await outcomes.send(
        internal("referral.joined.v1", producer="triage", referral_id=sid, episode_referral_id=rid)
    )
    await outcomes.send(team("referral.closed.v1", rid, reason="completed"))
    closed = {
        str(e.data.referral_id): [c.code for c in e.data.codes]
        for e in outcomes.of("referral.updated.v1")
        if e.data.step.value == "closed"
    }
    assert closed[rid]  # what the episode's own referrer's GP record was told
    assert closed[sid] == []  # the joined referrer hears the step, not the episode's codes


async def test_a_joined_referral_is_judged_by_its_own_receipt_not_its_episodes(harness):
    """A withdrawal of the second referral dated after the episode began but before that
    referral was received is refused, and the episode goes on; one dated after is kept."""
    outcomes = await harness("outcomes")
    now = datetime.now(UTC)
    rid = await started(outcomes, at=now - timedelta(days=30))
    second = accepted(sender="B82005", at=now - timedelta(days=1))
    sid = second["data"]["referral_id"]
    await outcomes.send(second)
    await outcomes.send(
        internal("referral.joined.v1", producer="triage", referral_id=sid, episode_referral_id=rid)
    )
    before = inbound(
        "referral.withdrawn.v1",
        "B82005",
        referral_id=sid,
        withdrawn_at=(now - timedelta(days=2)).isoformat(),
    )
    with pytest.raises(BadMessage) as refused:
        await outcomes.send(before)
    assert [(r.code.value, r.field) for r in refused.value.reasons] == [
        ("time_implausible", "data.withdrawn_at")
    ]
    assert updates(outcomes, sid) == []
    # the same time on an event naming the first referral is believed
    await outcomes.send(
        team("contact.recorded.v1", rid, occurred_at=(now - timedelta(days=2)).isoformat())
    )
    await outcomes.send(inbound("referral.withdrawn.v1", "B82005", referral_id=sid))
    assert updates(outcomes, sid) == [("withdrawn", "cancelled")]


async def test_a_plan_from_an_hour_ahead_is_refused_and_never_reaches_the_gp(harness):
    outcomes = await harness("outcomes")
    rid = await started(outcomes)
    coded = len(writebacks(outcomes))
    with pytest.raises(BadMessage) as refused:
        await outcomes.send(
            plan(rid, agreed_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
        )
    assert refused.value.reasons[0].field == "data.agreed_at"
    assert refused.value.reasons[0].code.value == "time_implausible"
    assert len(writebacks(outcomes)) == coded


# ---------------------------------------------------------------- triage


async def triage_with(harness, *capacities: int):
    triage = await harness("triage")
    for i, capacity in enumerate(capacities):
        await triage.send(worker(PCN, f"lw-{i}", capacity))
    return triage


def placements(triage) -> list[tuple[str, str | None]]:
    out = []
    for e in triage.emitted:
        if e.type == "referral.assigned.v1":
            out.append((str(e.data.referral_id), e.data.link_worker_id))
        elif e.type == "referral.waitlisted.v1":
            out.append((str(e.data.referral_id), None))
    return out


async def test_a_withdrawal_frees_the_place_for_the_head_of_the_waitlist(harness):
    triage = await triage_with(harness, 1)
    first, second, third = (accepted(at=T0 + timedelta(minutes=i)) for i in range(3))
    for ref in (first, second, third):
        await triage.send(ref)
    ids = [r["data"]["referral_id"] for r in (first, second, third)]
    await triage.send(
        inbound("referral.withdrawn.v1", first["data"]["sender"], referral_id=ids[0], by="referrer")
    )
    assert placements(triage)[-1] == (ids[1], "lw-0")
    # a waitlisted referral withdrawn leaves the waitlist: the place that frees next skips it
    await triage.send(inbound("referral.withdrawn.v1", PCN, referral_id=ids[2], by="person"))
    await triage.send(team("referral.closed.v1", ids[1], reason="completed"))
    assert placements(triage)[-1] == (ids[1], "lw-0")
    assert (
        await triage.value("SELECT status FROM referral WHERE referral_id = $1", uuid.UUID(ids[2]))
        == "withdrawn"
    )


async def test_a_transfer_to_a_full_worker_is_refused(harness):
    triage = await triage_with(harness, 1, 1)
    a, b = accepted(), accepted()
    await triage.send(a)
    await triage.send(b)
    where = dict(placements(triage))
    rid = a["data"]["referral_id"]
    other = "lw-1" if where[rid] == "lw-0" else "lw-0"
    with pytest.raises(BadMessage) as full:
        await triage.send(team("referral.transferred.v1", rid, to_link_worker_id=other))
    assert full.value.reason == "at_capacity"
    with pytest.raises(BadMessage) as unknown:
        await triage.send(team("referral.transferred.v1", rid, to_link_worker_id="lw-9"))
    assert unknown.value.reason == "unknown_link_worker"
    await triage.send(worker(PCN, other, 2))
    [moved] = await triage.send(team("referral.transferred.v1", rid, to_link_worker_id=other))
    assert (moved.data.link_worker_id, moved.data.transferred_from) == (other, where[rid])


async def test_a_worker_leaving_leaves_nobody_without_a_decision(harness):
    triage = await triage_with(harness, 3, 1)
    refs = [accepted(at=T0 + timedelta(minutes=i)) for i in range(4)]
    for ref in refs:
        await triage.send(ref)
    new = accepted(at=T0 + timedelta(minutes=10))
    await triage.send(new)  # full: waits
    before = dict(placements(triage))
    leaving = "lw-0"
    theirs = [rid for rid, w in before.items() if w == leaving]
    emitted = await triage.send(
        inbound("linkworker.updated.v1", PCN, link_worker_id=leaving, leaving=True, capacity=None)
    )
    emitted = [e for e in emitted if e.type != "roster.changed.v1"]
    decided = {str(e.data.referral_id): e for e in emitted}
    assert set(decided) == set(theirs)  # each of their people got a decision
    assert all(e.type == "referral.waitlisted.v1" and e.data.reason for e in emitted)
    # they come first: the next free place goes to them, not to the newer referral
    await triage.send(worker(PCN, "lw-2", 1))
    assert placements(triage)[-1][0] in theirs


async def test_a_lower_capacity_drops_nobody(harness):
    triage = await triage_with(harness, 3)
    for _ in range(3):
        await triage.send(accepted())
    emitted = await triage.send(
        inbound("linkworker.updated.v1", PCN, link_worker_id="lw-0", capacity=1)
    )
    assert [e.type for e in emitted] == ["roster.changed.v1"]  # nobody moved
    assert await triage.value("SELECT count(*) FROM referral WHERE status = 'assigned'") == 3
    await triage.send(accepted())
    assert placements(triage)[-1][1] is None  # nobody new until below the new capacity


async def test_a_person_already_supported_takes_no_second_place(harness):
    triage = await triage_with(harness, 5)
    person = str(uuid.uuid4())
    first = accepted(person_id=person)
    await triage.send(first)
    second = accepted(person_id=person, sender="B82005")
    [joined] = await triage.send(second)
    assert joined.type == "referral.joined.v1"
    assert str(joined.data.episode_referral_id) == first["data"]["referral_id"]
    assert await triage.value("SELECT count(*) FROM referral WHERE status = 'assigned'") == 1
    # after the episode closes, the person referred again is a new episode with a place
    await triage.send(team("referral.closed.v1", first["data"]["referral_id"], reason="completed"))
    third = accepted(person_id=person)
    [assigned] = await triage.send(third)
    assert assigned.type == "referral.assigned.v1"


async def test_a_referral_without_an_nhs_number_never_joins_nor_is_joined(harness):
    """Even under one person id (a sender cannot make one person of two without an NHS
    number), each such referral takes its own place."""
    triage = await triage_with(harness, 5)
    person = str(uuid.uuid4())
    first = accepted(person_id=person)
    second = accepted(person_id=person, sender="B82005")
    del first["data"]["nhs_number"], second["data"]["nhs_number"]
    [a] = await triage.send(first)
    [b] = await triage.send(second)
    assert a.type == b.type == "referral.assigned.v1"
    with_number = accepted(person_id=person)  # and one with the number joins neither
    [c] = await triage.send(with_number)
    assert c.type == "referral.assigned.v1"
    assert await triage.value("SELECT count(*) FROM referral WHERE status = 'assigned'") == 3


# ---------------------------------------------------------------- notify


async def test_the_referrer_hears_every_step_with_its_task_status(harness):
    notify = await harness("notify")
    ref = accepted()
    rid = ref["data"]["referral_id"]
    await notify.send(ref)
    await notify.send(internal("referral.assigned.v1", producer="triage", referral_id=rid))
    for step, task in [
        ("in_progress", "in-progress"),
        ("on_hold", "on-hold"),
        ("resumed", "in-progress"),
        ("closed", "completed"),
    ]:
        await notify.send(
            internal(
                "referral.updated.v1",
                producer="outcomes",
                referral_id=rid,
                step=step,
                task_status=task,
            )
        )
    told = [
        (s.data.status.value, s.data.task_status.value, s.data.submission_event_id)
        for s in notify.of("referral.status.v1")
    ]
    assert [t for _, t, _ in told] == [
        "received",
        "accepted",
        "in-progress",
        "on-hold",
        "in-progress",
        "completed",
    ]
    assert {sid for _, _, sid in told} == {ref["data"]["submission_event_id"]}


async def test_a_withdrawal_stops_every_message_to_the_person(harness):
    notify = await harness("notify")
    ref = accepted(contact={"preferred": "sms", "phone": "07700 900123"})
    rid = ref["data"]["referral_id"]
    await notify.send(ref)
    await notify.send(internal("referral.waitlisted.v1", producer="triage", referral_id=rid))
    await notify.send(
        internal(
            "referral.updated.v1",
            producer="outcomes",
            referral_id=rid,
            step="withdrawn",
            task_status="cancelled",
        )
    )
    await notify.send(internal("referral.assigned.v1", producer="triage", referral_id=rid))
    rows = await notify.rows("SELECT audience, cancelled_at FROM notification ORDER BY id")
    person = [r for r in rows if r["audience"] == "person"]
    assert len(person) == 1 and person[0]["cancelled_at"] is not None


async def test_a_resend_is_answered_with_the_current_status(harness):
    notify = await harness("notify")
    ref = accepted()
    rid = ref["data"]["referral_id"]
    await notify.send(ref)
    await notify.send(internal("referral.assigned.v1", producer="triage", referral_id=rid))
    [status] = await notify.send(
        internal(
            "referral.duplicate.v1",
            referral_id=rid,
            submission_event_id="resend-1",
            sender=ref["data"]["sender"],
        )
    )
    assert (status.data.status.value, status.data.task_status.value) == ("duplicate", "accepted")
    assert status.data.submission_event_id == "resend-1"


async def test_no_organisations_own_words_reach_a_referrer(harness):
    """A team's reason for a pause and a referrer's reason for withdrawing stay with them
    (the timeline, the GP record as the person chose): every referrer of the episode,
    possibly another organisation, is told in Linkwell's words only."""
    outcomes = await harness("outcomes")
    rid = await started(outcomes, sender="A81001")
    secret_hold = "detained under the Mental Health Act"
    secret_withdrawal = "her partner reads her phone"
    await outcomes.send(team("referral.held.v1", rid, reason=secret_hold))
    await outcomes.send(team("referral.resumed.v1", rid, reason="home again after section"))
    await outcomes.send(
        inbound("referral.withdrawn.v1", "A81001", referral_id=rid, reason=secret_withdrawal)
    )
    told = [e for e in outcomes.of("referral.updated.v1") if str(e.data.referral_id) == rid]
    assert [e.data.step.value for e in told][-3:] == ["on_hold", "resumed", "withdrawn"]
    reasons = [e.data.reason for e in told[-3:]]
    assert reasons == ["paused by the link worker team", None, "by the referrer"]
    timeline = await outcomes.rows("SELECT detail::text AS d FROM timeline")
    assert any(secret_hold in row["d"] for row in timeline)  # kept where it belongs
