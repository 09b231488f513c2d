"""The reporting model, fed by outcomes' handlers, and rebuilt from outcomes' own tables
with the same result."""

from __future__ import annotations

import asyncio

from services.outcomes.reporting.store import Projection
from services.readside.store import load

from ..support import accepted, inbound, internal

PCN = "U12345"


def team(event_type: str, rid: str, **data) -> dict:
    return inbound(event_type, PCN, referral_id=rid, **data)


async def test_a_journey_is_in_the_model_and_a_rebuild_gives_the_same(harness):
    outcomes = await harness("outcomes")
    schema = outcomes.names.schema("reporting")
    await outcomes.send(
        internal(
            "roster.changed.v1", producer="triage", link_worker_id="lw-1", capacity=5, active=True
        )
    )
    ref = accepted(agency_type="police", needs=["loneliness", "housing"])
    rid = ref["data"]["referral_id"]
    await outcomes.send(ref)
    await outcomes.send(internal("referral.waitlisted.v1", producer="triage", referral_id=rid))
    await outcomes.send(
        internal("referral.assigned.v1", producer="triage", referral_id=rid, link_worker_id="lw-1")
    )
    await outcomes.send(team("contact.recorded.v1", rid, outcome="not_reached"))
    await outcomes.send(team("contact.recorded.v1", rid, outcome="engaged"))
    await outcomes.send(team("contact.recorded.v1", rid, outcome="engaged"))
    await outcomes.send(
        team(
            "wellbeing.measured.v1",
            rid,
            instrument="swemwbs",
            point="baseline",
            items=[2, 2, 3, 2, 3, 3, 3],
        )
    )
    await outcomes.send(
        team(
            "wellbeing.measured.v1",
            rid,
            instrument="swemwbs",
            point="end",
            items=[4, 3, 4, 3, 4, 4, 3],
        )
    )
    await outcomes.send(team("referral.closed.v1", rid, reason="completed"))
    declined = accepted(agency_type="self_referral")
    await outcomes.send(declined)
    await outcomes.send(
        team("contact.recorded.v1", declined["data"]["referral_id"], outcome="declined")
    )
    await outcomes.send(
        internal(
            "referral.rejected.v1", agency_type="job_centre", pcn=PCN, registered_practice="A81001"
        )
    )

    referrals, rejections, roster = await load(outcomes.conn, schema)
    by_id = {r.referral_id: r for r in referrals}
    row = by_id[rid]
    assert (row.agency_type, row.pcn, row.needs) == ("police", PCN, ("loneliness", "housing"))
    assert row.waitlisted_at is not None and row.assigned_at is not None
    assert row.contacts == 2  # the attempt that did not reach the person does not count
    assert row.first_contact_at is not None and row.coded_at == row.first_contact_at
    assert (row.closed_at is not None, row.close_reason, row.completed) == (True, "completed", True)
    assert (row.swemwbs_baseline, row.swemwbs_end) == (17.43, 22.35)
    other = by_id[declined["data"]["referral_id"]]
    assert other.declined_at is not None and other.coded_at is None
    assert [(r.agency_type, r.reasons) for r in rejections] == [
        ("job_centre", ("consent_missing",))
    ]
    assert [(r.link_worker_id, r.capacity, r.caseload) for r in roster] == [("lw-1", 5, 0)]

    rebuilt = await Projection(outcomes.conn, schema).rebuild()
    assert rebuilt == {"referrals": 2, "rejections": 1, "link workers": 1}
    assert await load(outcomes.conn, schema) == (referrals, rejections, roster)


async def test_a_batch_projects_its_referrals_once_at_its_end_as_if_each_came_alone(harness):
    outcomes = await harness("outcomes")
    schema = outcomes.names.schema("reporting")
    first, second, joining = accepted(), accepted(), accepted()
    a, b, c = (e["data"]["referral_id"] for e in (first, second, joining))
    assign = {"producer": "triage", "link_worker_id": "lw-1"}
    batch = [
        first,
        second,
        internal("referral.assigned.v1", referral_id=a, **assign),
        joining,
        internal("referral.joined.v1", producer="triage", referral_id=c, episode_referral_id=a),
        team("contact.recorded.v1", a, outcome="engaged"),
        team("contact.recorded.v1", b, outcome="not_reached"),
    ]
    sent: list[str] = []

    def note(query) -> None:
        sent.append(" ".join(query.query.split()))

    outcomes.conn.add_query_logger(note)
    await outcomes.send_batch(batch)
    await asyncio.sleep(0)  # the query loggers are called soon after, not at once
    outcomes.conn.remove_query_logger(note)
    projections = [q for q in sent if q.startswith(f'INSERT INTO "{schema}".referral_fact')]
    assert len(projections) == 1  # every referral of the batch, in one statement, at its end

    referrals, _, _ = await load(outcomes.conn, schema)
    by_id = {r.referral_id: r for r in referrals}
    assert set(by_id) == {a, b, c}
    assert by_id[a].assigned_at is not None and by_id[a].contacts == 1
    assert by_id[b].contacts == 0 and by_id[b].first_contact_at is None
    assert by_id[c].joined and not by_id[a].joined
    # what the batch left is what projecting each on its own gives (a rebuild)
    await Projection(outcomes.conn, schema).rebuild()
    assert (await load(outcomes.conn, schema))[0] == referrals

    # a later event alone, about the joined referral, projects its episode too (the
    # contact is the episode's)
    await outcomes.send(team("contact.recorded.v1", c, outcome="engaged"))
    after = (await load(outcomes.conn, schema))[0]
    assert {r.referral_id: r for r in after}[a].contacts == 2
    await Projection(outcomes.conn, schema).rebuild()
    assert (await load(outcomes.conn, schema))[0] == after
