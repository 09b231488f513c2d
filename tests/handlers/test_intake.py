"""intake's handler on a real database: accept, refuse, deduplicate, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.runtime.errors import BadMessage

from ..support import submission


async def test_accepts_stores_and_audits_a_referral(harness):
    intake = await harness("intake")
    referral = submission(org="A81001")
    [accepted] = await intake.send(referral)
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
    [accepted] = await intake.send(referral)
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
    [accepted] = await intake.send(referral)
    assert accepted.type == "referral.accepted.v1"
