"""intake's handler on a real database: accept, refuse, deduplicate, audit."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta

import pytest

from services.runtime.errors import BadMessage

from ..support import submission


async def test_accepts_stores_and_audits_a_referral(harness):
    intake = await harness("intake")
    referral = submission(org="A81001")
    sent: list[str] = []

    def note(query) -> None:
        sent.append(" ".join(query.query.split()))

    intake.conn.add_query_logger(note)
    [accepted, *_] = await intake.send(referral)
    await asyncio.sleep(0)  # the query loggers are called soon after, not at once
    intake.conn.remove_query_logger(note)
    # the person, the referral and the submission's outcome: one statement
    assert len([q for q in sent if "INSERT INTO person" in q]) == 1
    assert not [q for q in sent if q.startswith(("INSERT INTO referral", "INSERT INTO submission"))]
    assert accepted.type == "referral.accepted.v1"
    assert accepted.data.sender_reference == referral["data"]["sender_reference"]
    assert accepted.data.submission_event_id == referral["id"]
    # the accepted event carries no name or birth date
    body = accepted.to_json().decode()
    assert referral["data"]["person"]["family_name"] not in body
    assert referral["data"]["person"]["date_of_birth"] not in body
    [row] = await intake.rows("SELECT referral_id, sender, pathway FROM referral")
    assert (row["sender"], row["pathway"]) == ("A81001", "adult")
    assert await intake.value("SELECT outcome FROM submission") == "accepted"


async def test_one_sender_reference_is_one_referral(harness):
    intake = await harness("intake")
    referral = submission(org="A81001")
    await intake.send(referral)
    resend = dict(referral, id="another-id")
    [duplicate] = await intake.send(resend)  # answered, never silence
    assert duplicate.type == "referral.duplicate.v1"
    assert duplicate.data.submission_event_id == "another-id"
    assert duplicate.data.original_submission_event_id == referral["id"]
    assert await intake.value("SELECT count(*) FROM referral") == 1
    outcomes = [
        r["outcome"]
        for r in await intake.rows("SELECT outcome FROM submission ORDER BY received_at")
    ]
    assert outcomes == ["accepted", "duplicate"]


async def test_the_same_event_id_from_two_senders_is_two_submissions(harness):
    intake = await harness("intake")
    first = submission(org="A81001")
    second = submission(org="B82005")
    second["id"] = first["id"]
    await intake.send(first)
    await intake.send(second)
    assert await intake.value("SELECT count(*) FROM referral") == 2


async def test_crisis_and_no_consent_are_refused_with_reasons_crisis_first(harness):
    intake = await harness("intake")
    referral = submission(org="A81001", in_crisis=True)
    referral["data"]["consent"]["given"] = False
    [rejected] = await intake.send(referral)
    assert [r.code.value for r in rejected.data.reasons] == ["crisis_redirect", "consent_missing"]
    assert await intake.value("SELECT count(*) FROM referral") == 0
    assert await intake.value("SELECT reason_codes FROM submission") == [
        "crisis_redirect",
        "consent_missing",
    ]


async def test_children_follow_their_own_pathway(harness):
    intake = await harness("intake")
    referral = submission(org="A81001")
    referral["data"]["person"]["date_of_birth"] = "2015-06-01"
    [accepted, *_] = await intake.send(referral)
    assert accepted.data.pathway.value == "children_and_young_people"


@pytest.mark.parametrize("consent", ["yes", "true", 1])
async def test_consent_must_be_an_explicit_true(harness, consent):
    intake = await harness("intake")
    referral = submission(org="A81001")
    referral["data"]["consent"]["given"] = consent
    with pytest.raises(BadMessage) as refused:
        await intake.send(referral)
    assert [r.code.value for r in refused.value.reasons] == ["consent_missing"]
    assert await intake.value("SELECT count(*) FROM submission") == 0


@pytest.mark.parametrize("field", ["data.submitted_at", "data.consent.recorded_at", "time"])
async def test_a_referral_dated_an_hour_ahead_is_refused_and_makes_no_referral(harness, field):
    intake = await harness("intake")
    referral = submission(org="A81001")
    *parents, last = field.split(".")
    node = referral
    for part in parents:
        node = node[part]
    node[last] = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    [rejected] = await intake.send(referral)
    assert rejected.type == "referral.rejected.v1"
    assert rejected.data.sender == "A81001"
    assert [(r.code.value, r.field) for r in rejected.data.reasons] == [("time_implausible", field)]
    assert await intake.value("SELECT count(*) FROM referral") == 0
    assert await intake.value("SELECT reason_codes FROM submission") == ["time_implausible"]


async def test_a_referral_dated_a_few_minutes_ahead_is_believed(harness):
    intake = await harness("intake")
    referral = submission(org="A81001")
    referral["data"]["submitted_at"] = (datetime.now(UTC) + timedelta(minutes=4)).isoformat()
    [accepted, *_] = await intake.send(referral)
    assert accepted.type == "referral.accepted.v1"


async def test_the_same_person_is_the_same_nhs_number_and_date_of_birth(harness):
    """A second referral, from another agency, for the same NHS number and date of birth
    is the same person (triage joins it to their episode); nobody is told of a conflict."""
    intake = await harness("intake")
    first = submission(org="A81001")
    second = submission(org="B82005", person=copy.deepcopy(first["data"]["person"]))
    [a, *_] = await intake.send(first)
    [b, *_] = await intake.send(second)
    assert a.data.person_id == b.data.person_id
    assert intake.of("referral.identity_conflict.v1") == []


async def test_a_date_of_birth_that_disagrees_is_never_merged_and_the_team_is_asked(harness):
    """One wrong digit must not merge two people: the same NHS number with another date
    of birth is another person, and the team of the new referral (only) is asked to
    confirm who it is. The referrer hears a plain acceptance."""
    intake = await harness("intake")
    first = submission(org="A81001", pcn="U12345")
    person = copy.deepcopy(first["data"]["person"])
    person["date_of_birth"] = "1961-02-03"
    second = submission(org="B82005", pcn="U54321", practice="B82005", person=person)
    await intake.send(first)
    emitted = await intake.send(second)
    accepted, *_, conflict = emitted
    assert accepted.type == "referral.accepted.v1"
    assert accepted.data.person_id != intake.of("referral.accepted.v1")[0].data.person_id
    assert conflict.type == "referral.identity_conflict.v1"
    assert conflict.data.referral_id == accepted.data.referral_id
    assert conflict.data.routing_key() == "referral.identity_conflict.v1.U54321"
    body = conflict.to_json().decode()
    for other in ("A81001", "U12345", first["data"]["sender_reference"], person["nhs_number"]):
        assert other not in body  # nothing of the other referral, nor the NHS number
    # a third referral agreeing with the first is the first person, still flagged
    third = submission(org="C83001", person=copy.deepcopy(first["data"]["person"]))
    again_accepted, *_, again_conflict = await intake.send(third)
    assert again_accepted.data.person_id == intake.of("referral.accepted.v1")[0].data.person_id
    assert again_conflict.type == "referral.identity_conflict.v1"


async def test_without_an_nhs_number_it_is_accepted_never_matched_and_the_team_is_asked(harness):
    """Most people do not know their NHS number: a referral without one is accepted (the
    pathway as ever), is a new person each time, and its team is asked to confirm who
    the person is; the referrer hears a plain acceptance."""
    intake = await harness("intake")
    first = submission(org="SELF-WEB", pcn="U12345")
    del first["data"]["person"]["nhs_number"]
    first["data"]["person"]["contact"]["adjustments"] = "Call, don't text"
    second = submission(org="SELF-WEB", pcn="U12345", person=copy.deepcopy(first["data"]["person"]))
    a, *_, flag = await intake.send(first)
    b, *_ = await intake.send(second)
    assert a.type == b.type == "referral.accepted.v1"
    assert a.data.nhs_number is None and "nhs_number" not in a.to_json().decode()
    assert a.data.pathway.value == "adult"
    assert a.data.contact.adjustments == "Call, don't text"  # for notify, to the team
    assert a.data.person_id != b.data.person_id  # the same name and birth: never matched
    assert flag.type == "referral.identity_conflict.v1" and flag.data.nhs_number_missing
    assert flag.data.routing_key() == "referral.identity_conflict.v1.U12345"
    assert "without an NHS number" in flag.data.message
    people = await intake.value("SELECT count(*) FROM person WHERE nhs_number IS NULL")
    assert people == 2


async def test_the_end_outcomes_tells_starts_the_referrals_retention_clock(harness):
    from ..support import internal

    intake = await harness("intake")
    [accepted, *_] = await intake.send(submission(org="A81001"))
    rid = str(accepted.data.referral_id)
    ended = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)

    def step(name: str, task: str, at: datetime) -> dict:
        return internal(
            "referral.updated.v1",
            producer="outcomes",
            referral_id=rid,
            step=name,
            task_status=task,
            at=at.isoformat(),
        )

    assert await intake.send(step("in_progress", "in-progress", ended)) == []
    assert await intake.value("SELECT ended_at FROM referral") is None  # not an end
    assert await intake.send(step("closed", "completed", ended)) == []
    assert await intake.value("SELECT ended_at FROM referral") == ended
    # a later end told again (a withdrawal after the closure) does not move the clock
    await intake.send(step("withdrawn", "cancelled", ended + timedelta(days=1)))
    assert await intake.value("SELECT ended_at FROM referral") == ended
    # a referral intake does not know: nothing to time, and no refusal
    other = step("closed", "completed", ended)
    other["data"]["referral_id"] = other["subject"] = "00000000-0000-4000-8000-000000000001"
    assert await intake.send(other) == []
