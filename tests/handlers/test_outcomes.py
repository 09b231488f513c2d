"""outcomes' handlers on a real database: the GP record gets each fact once, whatever the
order events arrive in, and never from another PCN's team."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from services.runtime.errors import BadMessage

from ..support import accepted, inbound, internal


def contact(rid: str, outcome: str = "engaged", pcn: str = "U12345", **data) -> dict:
    return inbound("contact.recorded.v1", pcn, referral_id=rid, outcome=outcome, **data)


def closed(rid: str, reason: str = "completed", pcn: str = "U12345") -> dict:
    return inbound("referral.closed.v1", pcn, referral_id=rid, reason=reason)


def writebacks(events: list) -> list:
    return [e for e in events if e.type == "gp.writeback.v1"]


def facts(harness) -> Counter:
    return Counter(e.data.fact.value for e in harness.of("gp.writeback.v1"))


async def test_acceptance_is_coded_once_at_the_first_engaged_contact(harness):
    outcomes = await harness("outcomes")
    ref = accepted(agency_type="self_referral")
    rid = ref["data"]["referral_id"]
    await outcomes.send(ref)
    await outcomes.send(contact(rid, "not_reached"))
    assert facts(outcomes) == {}  # an attempt decides nothing
    [wb] = writebacks(await outcomes.send(contact(rid)))
    assert [c.code for c in wb.data.codes] == ["871731000000106", "306098008"]
    assert wb.data.registered_practice == ref["data"]["registered_practice"]
    assert wb.data.nhs_number == ref["data"]["nhs_number"]
    assert wb.data.routing_key() == f"gp.writeback.v1.{ref['data']['registered_practice']}"
    await outcomes.send(contact(rid, "declined"))  # later: decides nothing
    [summary] = writebacks(await outcomes.send(closed(rid)))
    assert summary.data.fact.value == "closed" and summary.data.codes == []
    assert "1 attempt(s) did not reach the person" in summary.data.summary
    assert facts(outcomes) == {"accepted": 1, "closed": 1}


async def test_a_contact_before_the_referral_is_held_then_coded(harness):
    outcomes = await harness("outcomes")
    ref = accepted()
    rid = ref["data"]["referral_id"]
    assert await outcomes.send(contact(rid)) == []  # intake's announcement is still on its way
    assert await outcomes.value("SELECT count(*) FROM early_event") == 1
    emitted = await outcomes.send(ref)
    assert [e.data.fact.value for e in emitted if e.type == "gp.writeback.v1"] == ["accepted"]
    assert await outcomes.value("SELECT count(*) FROM early_event") == 0


async def test_a_batchs_acceptances_are_locked_at_its_start_and_release_what_was_held(harness):
    """A batch's acceptances: their rows locked in one statement at its start; each then
    recorded, and what was held for it taken, in one statement, and told as if alone."""
    outcomes = await harness("outcomes")
    early, plain = accepted(), accepted()
    rid = early["data"]["referral_id"]
    await outcomes.send(contact(rid))  # intake's announcement is still on its way
    assert await outcomes.value("SELECT count(*) FROM early_event") == 1
    sent: list[str] = []

    def note(query) -> None:
        sent.append(" ".join(query.query.split()))

    outcomes.conn.add_query_logger(note)
    emitted = await outcomes.send_batch([early, plain, contact(plain["data"]["referral_id"])])
    await asyncio.sleep(0)  # the query loggers are called soon after, not at once
    outcomes.conn.remove_query_logger(note)
    coded = Counter(str(e.data.referral_id) for e in writebacks(emitted))
    assert coded == {rid: 1, plain["data"]["referral_id"]: 1}  # each coded once, as alone
    assert await outcomes.value("SELECT count(*) FROM early_event") == 0
    assert len([q for q in sent if q.startswith("INSERT INTO referral (referral_id) SELECT")]) == 1
    assert not [q for q in sent if q.startswith("DELETE FROM early_event")]


async def test_another_pcns_early_contact_is_refused_and_never_reaches_the_gp(harness):
    outcomes = await harness("outcomes")
    ref = accepted(pcn="U12345")
    rid = ref["data"]["referral_id"]
    intruder = contact(rid, pcn="U99999")
    await outcomes.send(intruder)
    await outcomes.send(closed(rid, pcn="U99999"))
    emitted = await outcomes.send(ref)
    assert facts(outcomes) == {}
    refusals = [e for e in emitted if e.type == "event.rejected.v1"]
    assert [(r.data.sender, r.data.reasons[0].code.value) for r in refusals] == [
        ("U99999", "not_permitted"),
        ("U99999", "not_permitted"),
    ]
    assert refusals[0].data.rejected_event_id == intruder["id"]
    letters = await outcomes.rows(
        "SELECT headers FROM outbox WHERE exchange = $1", outcomes.names.dead_letter
    )
    assert [h["headers"]["x-linkwell-reason"] for h in letters] == ["not_permitted"] * 2
    assert (
        await outcomes.value(
            "SELECT count(*) FROM timeline WHERE event_type <> $1", "referral.recorded.v1"
        )
        == 0
    )
    assert await outcomes.value("SELECT closed_at FROM referral") is None
    # the referral's own team still codes it
    await outcomes.send(contact(rid))
    assert facts(outcomes) == {"accepted": 1}


async def test_a_known_referral_refuses_another_pcn_at_once(harness):
    outcomes = await harness("outcomes")
    ref = accepted(pcn="U12345")
    await outcomes.send(ref)
    with pytest.raises(BadMessage) as refused:
        await outcomes.send(contact(ref["data"]["referral_id"], pcn="U99999"))
    assert refused.value.reason == "not_permitted"
    assert facts(outcomes) == {}


async def test_declined_at_first_contact_or_closed_declined(harness):
    outcomes = await harness("outcomes")
    first, second = accepted(), accepted()
    await outcomes.send(first)
    await outcomes.send(second)
    [wb] = writebacks(await outcomes.send(contact(first["data"]["referral_id"], "declined")))
    assert [c.code for c in wb.data.codes] == ["871711000000103"]
    emitted = writebacks(await outcomes.send(closed(second["data"]["referral_id"], "declined")))
    assert sorted(e.data.fact.value for e in emitted) == ["closed", "declined"]


async def test_placements_join_the_timeline(harness):
    outcomes = await harness("outcomes")
    ref = accepted()
    rid = ref["data"]["referral_id"]
    await outcomes.send(ref)
    await outcomes.send(internal("referral.waitlisted.v1", producer="triage", referral_id=rid))
    await outcomes.send(internal("referral.assigned.v1", producer="triage", referral_id=rid))
    types = [
        r["event_type"] for r in await outcomes.rows("SELECT event_type FROM timeline ORDER BY id")
    ]
    assert types == ["referral.recorded.v1", "referral.waitlisted.v1", "referral.assigned.v1"]


# ---------------------------------------------------------------- times nobody could have meant

HOUR = timedelta(hours=1)
TEAM_EVENTS = [  # every team event outcomes acts on, with the time it states
    ("contact.recorded.v1", "occurred_at", {"outcome": "engaged"}),
    ("plan.agreed.v1", "agreed_at", {}),
    ("wellbeing.measured.v1", "taken_at", {}),
    ("note.shared.v1", "shared_at", {}),
    ("referral.held.v1", "held_at", {}),
    ("referral.resumed.v1", "resumed_at", {}),
    ("referral.closed.v1", "closed_at", {}),
    ("referral.withdrawn.v1", "withdrawn_at", {}),
]


def dated(event_type: str, rid: str, field: str, at: datetime, **data) -> dict:
    return inbound(event_type, "U12345", referral_id=rid, **{field: at.isoformat()}, **data)


async def nothing_acted_on(outcomes, rid: str) -> None:
    assert facts(outcomes) == {}  # never written to the GP record
    assert outcomes.of("referral.updated.v1") == []  # nor told to the referrer
    steps = await outcomes.rows(
        "SELECT event_type FROM timeline WHERE referral_id = $1", uuid.UUID(rid)
    )
    assert [s["event_type"] for s in steps] == ["referral.recorded.v1"]
    row = await outcomes.rows(
        "SELECT in_progress_at, held_at, closed_at FROM referral WHERE referral_id = $1",
        uuid.UUID(rid),
    )
    assert tuple(row[0]) == (None, None, None)


def time_refusal(refused: pytest.ExceptionInfo[BadMessage], field: str) -> None:
    assert refused.value.reason == "time_implausible"
    assert [(r.code.value, r.field) for r in refused.value.reasons] == [("time_implausible", field)]


@pytest.mark.parametrize(("event_type", "field", "data"), TEAM_EVENTS)
async def test_a_team_event_dated_before_the_referral_was_received_is_refused(
    harness, event_type, field, data
):
    outcomes = await harness("outcomes")
    ref = accepted()
    rid = ref["data"]["referral_id"]
    await outcomes.send(ref)
    received = datetime.fromisoformat(ref["data"]["accepted_at"])
    with pytest.raises(BadMessage) as refused:
        await outcomes.send(dated(event_type, rid, field, received - timedelta(days=3), **data))
    time_refusal(refused, f"data.{field}")
    assert "before Linkwell received this referral" in refused.value.reasons[0].message
    await nothing_acted_on(outcomes, rid)


@pytest.mark.parametrize(("event_type", "field", "data"), TEAM_EVENTS)
async def test_a_team_event_an_hour_in_the_future_is_refused(harness, event_type, field, data):
    outcomes = await harness("outcomes")
    ref = accepted()
    rid = ref["data"]["referral_id"]
    await outcomes.send(ref)
    with pytest.raises(BadMessage) as refused:
        await outcomes.send(dated(event_type, rid, field, datetime.now(UTC) + HOUR, **data))
    time_refusal(refused, f"data.{field}")
    assert "5 minutes" in refused.value.reasons[0].message
    await nothing_acted_on(outcomes, rid)


async def test_an_envelope_sent_from_an_hour_ahead_is_refused(harness):
    outcomes = await harness("outcomes")
    ref = accepted()
    rid = ref["data"]["referral_id"]
    await outcomes.send(ref)
    ahead = contact(rid) | {"time": (datetime.now(UTC) + HOUR).isoformat()}
    with pytest.raises(BadMessage) as refused:
        await outcomes.send(ahead)
    time_refusal(refused, "time")
    await nothing_acted_on(outcomes, rid)


async def test_within_the_clock_skew_a_contact_is_believed_and_coded(harness):
    outcomes = await harness("outcomes")
    ref = accepted()
    rid = ref["data"]["referral_id"]
    await outcomes.send(ref)
    received = datetime.fromisoformat(ref["data"]["accepted_at"])
    await outcomes.send(contact(rid, occurred_at=(received - timedelta(minutes=4)).isoformat()))
    await outcomes.send(
        dated("note.shared.v1", rid, "shared_at", datetime.now(UTC) + timedelta(minutes=4))
    )
    assert facts(outcomes) == {"accepted": 1, "note": 1}


async def test_an_early_contact_dated_before_the_referral_is_refused_once_it_is_known(harness):
    """Held while the referral is unknown (its receipt is not known either), then judged
    against the receipt: answered to the team, dead-lettered, never coded."""
    outcomes = await harness("outcomes")
    ref = accepted()
    rid = ref["data"]["referral_id"]
    received = datetime.fromisoformat(ref["data"]["accepted_at"])
    early = contact(rid, occurred_at=(received - timedelta(days=2)).isoformat())
    assert await outcomes.send(early) == []
    assert await outcomes.value("SELECT count(*) FROM early_event") == 1
    emitted = await outcomes.send(ref)
    assert writebacks(emitted) == []
    [refusal] = [e for e in emitted if e.type == "event.rejected.v1"]
    assert refusal.data.sender == "U12345" and refusal.data.rejected_event_id == early["id"]
    assert [(r.code.value, r.field) for r in refusal.data.reasons] == [
        ("time_implausible", "data.occurred_at")
    ]
    letters = await outcomes.rows(
        "SELECT headers FROM outbox WHERE exchange = $1", outcomes.names.dead_letter
    )
    assert [h["headers"]["x-linkwell-reason"] for h in letters] == ["time_implausible"]
    await nothing_acted_on(outcomes, rid)
    await outcomes.send(contact(rid))  # dated now: coded
    assert facts(outcomes) == {"accepted": 1}


async def test_an_early_contact_from_the_future_is_refused_at_once_never_held(harness):
    outcomes = await harness("outcomes")
    rid = accepted()["data"]["referral_id"]
    with pytest.raises(BadMessage) as refused:
        await outcomes.send(contact(rid, occurred_at=(datetime.now(UTC) + HOUR).isoformat()))
    time_refusal(refused, "data.occurred_at")
    assert await outcomes.value("SELECT count(*) FROM early_event") == 0


def unidentified(**data) -> dict:
    ref = accepted(**data)
    del ref["data"]["nhs_number"]  # the referrer did not know it
    return ref


def confirmed(rid: str, pcn: str = "U12345", nhs_number: str = "9434765919") -> dict:
    return inbound("referral.identity_confirmed.v1", pcn, referral_id=rid, nhs_number=nhs_number)


async def test_without_an_nhs_number_writebacks_wait_for_the_team_then_go_once(harness):
    outcomes = await harness("outcomes")
    ref = unidentified(pcn="U12345")
    rid = ref["data"]["referral_id"]
    await outcomes.send(ref)
    await outcomes.send(contact(rid))
    await outcomes.send(
        inbound("note.shared.v1", "U12345", referral_id=rid, text="Joined the walking group.")
    )
    await outcomes.send(closed(rid))
    assert facts(outcomes) == {}  # nothing reaches a GP record without the NHS number
    schema = outcomes.names.schema("reporting")
    fact = f'SELECT awaiting_nhs_number, nhs_number_confirmed_at FROM "{schema}".referral_fact'
    assert [tuple(r) for r in await outcomes.rows(fact)] == [(True, None)]
    # another PCN's team may not say who the person is
    with pytest.raises(BadMessage) as refused:
        await outcomes.send(confirmed(rid, pcn="U99999"))
    assert refused.value.reason == "not_permitted"
    assert facts(outcomes) == {}
    emitted = await outcomes.send(confirmed(rid))
    sent = writebacks(emitted)
    assert Counter(w.data.fact.value for w in sent) == {"accepted": 1, "note": 1, "closed": 1}
    assert {w.data.nhs_number for w in sent} == {"9434765919"}
    [(awaiting, confirmed_at)] = [tuple(r) for r in await outcomes.rows(fact)]
    assert awaiting is False and confirmed_at is not None
    # the same confirmation again, or anything later, writes nothing twice
    assert writebacks(await outcomes.send(confirmed(rid))) == []
    await outcomes.send(contact(rid, "declined"))
    assert facts(outcomes) == {"accepted": 1, "note": 1, "closed": 1}
    # a number once known is not replaced
    with pytest.raises(BadMessage) as other:
        await outcomes.send(confirmed(rid, nhs_number="9990000018"))
    assert other.value.reason == "not_permitted"


async def test_a_confirmation_before_the_referral_is_held_then_applied(harness):
    outcomes = await harness("outcomes")
    ref = unidentified()
    rid = ref["data"]["referral_id"]
    assert await outcomes.send(confirmed(rid)) == []
    await outcomes.send(ref)
    [wb] = writebacks(await outcomes.send(contact(rid)))
    assert wb.data.fact.value == "accepted" and wb.data.nhs_number == "9434765919"
