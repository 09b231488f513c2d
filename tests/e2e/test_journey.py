"""One person's whole journey through the four services as processes: submitted, accepted,
assigned, first contact, plan, baseline SWEMWBS and ONS4, a shared note, on hold and
resumed, end measures, closed as completed. The sender hears each task status in order;
the practice gets each writeback exactly once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from ..support import Tap, inbound, publish, submission, worker

pytestmark = pytest.mark.e2e

AGENCY, PCN, PRACTICE = "A81001", "U45678", "A81001"


async def test_one_person_from_referral_to_closing_summary(settings, stack):
    async with (
        Tap(settings, f"referral.status.v1.{AGENCY}") as sender,
        Tap(settings, f"gp.writeback.v1.{PRACTICE}") as practice,
        Tap(settings, f"referral.assigned.v1.{PCN}") as team,
    ):
        await publish(settings, worker(PCN, "lw-journey", 3))
        await asyncio.sleep(0.5)
        referral = submission(org=AGENCY, pcn=PCN, practice=PRACTICE)
        await publish(settings, referral)
        [assigned] = await team.wait_count("referral.assigned.v1", 1)
        rid = assigned["data"]["referral_id"]

        async def step(event_type: str, status_count: int | None = None, **data) -> None:
            await publish(settings, inbound(event_type, PCN, referral_id=rid, **data))
            if status_count is not None:  # wait until the sender has heard, to keep order
                await sender.wait_count("referral.status.v1", status_count, referral_id=rid)

        await sender.wait_count("referral.status.v1", 2, referral_id=rid)
        await step("contact.recorded.v1", 3, outcome="engaged", link_worker_id="lw-journey")
        await step("plan.agreed.v1", link_worker_id="lw-journey")
        await step(
            "wellbeing.measured.v1",
            instrument="swemwbs",
            point="baseline",
            items=[2, 2, 3, 2, 3, 3, 3],
        )
        await step("wellbeing.measured.v1", instrument="ons4", point="baseline", items=[4, 5, 3, 7])
        await step("note.shared.v1", text="Walking group twice a week.", attachments=[])
        await step("referral.held.v1", 4, reason="In hospital for two weeks")
        await step("referral.resumed.v1", 5, reason="Home again")
        await step(
            "wellbeing.measured.v1", instrument="swemwbs", point="end", items=[4, 3, 4, 3, 4, 4, 3]
        )
        await step("wellbeing.measured.v1", instrument="ons4", point="end", items=[8, 7, 8, 3])
        await practice.wait_count("gp.writeback.v1", 7, referral_id=rid)
        await step("referral.closed.v1", 6, reason="completed")
        await practice.wait_count("gp.writeback.v1", 8, referral_id=rid)
        await asyncio.sleep(1.5)  # anything sent twice would have arrived by now

    statuses = sender.events("referral.status.v1", referral_id=rid)
    assert [s["data"]["task_status"] for s in statuses] == [
        "received",
        "accepted",
        "in-progress",
        "on-hold",
        "in-progress",
        "completed",
    ]
    assert {s["data"]["submission_event_id"] for s in statuses} == {referral["id"]}
    assert {s["data"]["sender_reference"] for s in statuses} == {
        referral["data"]["sender_reference"]
    }
    # the team's own words stay with the team: the referrer hears Linkwell's
    assert statuses[3]["data"]["reason"] == "paused by the link worker team"
    assert not any("hospital" in json.dumps(s) for s in statuses)

    sent = practice.events("gp.writeback.v1", referral_id=rid)
    assert len({w["id"] for w in sent}) == len(sent) == 8, "a writeback was sent twice"
    facts = Counter(w["data"]["fact"] for w in sent)
    assert facts == {"accepted": 1, "plan": 1, "wellbeing": 4, "note": 1, "closed": 1}
    [accepted] = [w for w in sent if w["data"]["fact"] == "accepted"]
    assert [c["code"] for c in accepted["data"]["codes"]] == ["871731000000106"]
    swemwbs = [w for w in sent if [c["code"] for c in w["data"]["codes"]] == ["718466001"]]
    assert [w["data"]["observations"][0]["value"] for w in swemwbs] == [17.43, 22.35]
    [closing] = [w for w in sent if w["data"]["fact"] == "closed"]
    assert (
        "SWEMWBS metric score 17.43 at baseline, 22.35 at the end: +4.92"
        in (closing["data"]["summary"])
    )
    assert {w["data"]["nhs_number"] for w in sent} == {referral["data"]["person"]["nhs_number"]}


async def test_times_nobody_could_have_meant_change_nothing_across_the_services(settings, stack):
    """A contact dated before the referral reached Linkwell, and a closure dated an hour
    ahead, are answered to the team as ``time_implausible`` and change nothing: the GP
    record gets only the believable contact, the referrer never hears of a closure."""
    pcn = "U45679"
    async with (
        Tap(settings, f"referral.status.v1.{AGENCY}") as sender,
        Tap(settings, f"gp.writeback.v1.{PRACTICE}") as practice,
        Tap(settings, f"referral.assigned.v1.{pcn}") as team,
        Tap(settings, f"event.rejected.v1.{pcn}") as refusals,
    ):
        await publish(settings, worker(pcn, "lw-times", 3))
        await asyncio.sleep(0.5)
        await publish(settings, submission(org=AGENCY, pcn=pcn, practice=PRACTICE))
        [assigned] = await team.wait_count("referral.assigned.v1", 1)
        rid = assigned["data"]["referral_id"]
        now = datetime.now(UTC)
        before = inbound(
            "contact.recorded.v1",
            pcn,
            referral_id=rid,
            outcome="engaged",
            occurred_at=(now - timedelta(days=1)).isoformat(),
        )
        ahead = inbound(
            "referral.closed.v1",
            pcn,
            referral_id=rid,
            reason="completed",
            closed_at=(now + timedelta(hours=1)).isoformat(),
        )
        good = inbound("contact.recorded.v1", pcn, referral_id=rid, outcome="engaged")
        for env in (before, ahead, good):
            await publish(settings, env)
        # the contact: outcomes; the closure: triage and outcomes, each answering
        answers = await refusals.wait_count("event.rejected.v1", 3)
        await practice.wait_count("gp.writeback.v1", 1, referral_id=rid)
        await sender.wait_count("referral.status.v1", 3, referral_id=rid)
        await asyncio.sleep(1.5)  # anything else would have arrived by now

    assert sorted(
        (a["data"]["rejected_event_id"], r["code"], r["field"])
        for a in answers
        for r in a["data"]["reasons"]
    ) == sorted(
        [
            (before["id"], "time_implausible", "data.occurred_at"),
            (ahead["id"], "time_implausible", "data.closed_at"),
            (ahead["id"], "time_implausible", "data.closed_at"),
        ]
    )
    [written] = practice.events("gp.writeback.v1", referral_id=rid)
    assert written["data"]["fact"] == "accepted"
    assert written["data"]["effective_at"] == good["data"]["occurred_at"].replace("+00:00", "Z")
    statuses = sender.events("referral.status.v1", referral_id=rid)
    assert [s["data"]["task_status"] for s in statuses] == ["received", "accepted", "in-progress"]


async def test_without_an_nhs_number_the_gp_record_waits_for_the_team_then_gets_each_fact_once(
    settings, stack
):
    """Two referrals of one person who does not know their NHS number: each is accepted
    and placed (never joined), the team is asked who the person is, nothing reaches the
    GP record; another PCN's team may not confirm it; the person's own team does, and
    what was due goes, once."""
    pcn, other = "U45680", "U45681"
    async with (
        Tap(settings, f"gp.writeback.v1.{PRACTICE}") as practice,
        Tap(settings, f"referral.assigned.v1.{pcn}") as team,
        Tap(settings, f"referral.joined.v1.{pcn}") as joins,
        Tap(settings, f"referral.identity_conflict.v1.{pcn}") as asked,
        Tap(settings, f"event.rejected.v1.{other}") as refusals,
    ):
        await publish(settings, worker(pcn, "lw-unknown", 3))
        await asyncio.sleep(0.5)
        first = submission(org=AGENCY, pcn=pcn, practice=PRACTICE)
        del first["data"]["person"]["nhs_number"]
        second = submission(org=AGENCY, pcn=pcn, practice=PRACTICE)
        second["data"]["person"] = first["data"]["person"]
        await publish(settings, first)
        await publish(settings, second)
        placed = await team.wait_count("referral.assigned.v1", 2)
        flags = await asked.wait_count("referral.identity_conflict.v1", 2)
        assert all(f["data"]["nhs_number_missing"] for f in flags)
        rid = placed[0]["data"]["referral_id"]
        for event_type, data in (
            ("contact.recorded.v1", {"outcome": "engaged", "link_worker_id": "lw-unknown"}),
            ("referral.closed.v1", {"reason": "completed"}),
        ):
            await publish(settings, inbound(event_type, pcn, referral_id=rid, **data))
        confirm = {"referral_id": rid, "nhs_number": "9434765919"}
        await publish(settings, inbound("referral.identity_confirmed.v1", other, **confirm))
        [refused] = await refusals.wait_count("event.rejected.v1", 1)
        assert refused["data"]["reasons"][0]["code"] == "not_permitted"
        await asyncio.sleep(1.5)
        assert practice.events("gp.writeback.v1", referral_id=rid) == []  # it waits
        await publish(settings, inbound("referral.identity_confirmed.v1", pcn, **confirm))
        await practice.wait_count("gp.writeback.v1", 2, referral_id=rid)
        await publish(settings, inbound("referral.identity_confirmed.v1", pcn, **confirm))
        await asyncio.sleep(1.5)  # anything sent twice would have arrived by now

    assert joins.events("referral.joined.v1") == []
    assert len({p["data"]["referral_id"] for p in placed}) == 2
    sent = practice.events("gp.writeback.v1", referral_id=rid)
    assert Counter(w["data"]["fact"] for w in sent) == {"accepted": 1, "closed": 1}
    assert {w["data"]["nhs_number"] for w in sent} == {"9434765919"}
