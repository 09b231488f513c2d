"""Each service's handler of subject.requested.v1 on a real database: what it answers,
what it changes, what a restriction withholds."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from contracts.nhs import unique_synthetic_nhs_number

from ..support import accepted, inbound, internal, submission


def ask(action: str, **data) -> dict:
    data.setdefault("request_id", str(uuid.uuid4()))
    data = {k: [str(i) for i in v] if k == "referral_ids" else v for k, v in data.items()}
    env = inbound("subject.requested.v1", "LINKWELL-OPS", action=action, **data)
    env["data"]["reply_by"] = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    if "referral_ids" not in data:
        env["data"]["referral_ids"] = []
    return env


def answer_of(events):
    [a] = [e for e in events if e.type == "subject.answered.v1"]
    return a.data


async def test_intake_finds_by_nhs_number_and_birth_date_corrects_and_erases(harness):
    intake = await harness("intake")
    referral = submission(org="A81001")
    person = referral["data"]["person"]
    [ok, *_] = await intake.send(referral)
    rid = ok.data.referral_id

    found = answer_of(
        await intake.send(
            ask("find", nhs_number=person["nhs_number"], date_of_birth=person["date_of_birth"])
        )
    )
    assert found.referral_ids == [rid]
    wrong_birth = answer_of(
        await intake.send(ask("find", nhs_number=person["nhs_number"], date_of_birth="1901-02-03"))
    )
    assert wrong_birth.referral_ids == []

    exported = answer_of(await intake.send(ask("access", referral_ids=[rid])))
    assert person["family_name"] in str(exported.items)
    trail = [
        json.loads(r["body"])["data"]
        for r in await intake.rows(
            "SELECT body FROM outbox WHERE event_type = 'audit.recorded.v1' ORDER BY id"
        )
    ]
    exports = [(a["action"], a.get("referral_id")) for a in trail if a["by_kind"] == "operator"]
    # found, found nobody (no referral named), exported
    assert exports == [("export", str(rid)), ("export", None), ("export", str(rid))]
    assert person["nhs_number"] not in str(trail)

    right = unique_synthetic_nhs_number()
    fixed = answer_of(await intake.send(ask("rectify", referral_ids=[rid], new_nhs_number=right)))
    assert fixed.referral_ids == [rid]
    assert await intake.value("SELECT nhs_number FROM person") == right
    stored = await intake.value("SELECT submission FROM referral")
    assert stored["person"]["nhs_number"] == right
    assert stored["person"]["date_of_birth"] == person["date_of_birth"]

    erased = answer_of(await intake.send(ask("erase", referral_ids=[rid])))
    assert "contact" not in (await intake.value("SELECT submission FROM referral"))["person"]
    assert await intake.value("SELECT count(*) FROM referral") == 1  # kept: the record
    assert erased.kept[0].what.startswith("The referral as it was sent")


async def test_a_restricted_referral_gets_no_gp_writeback_until_lifted(harness):
    outcomes = await harness("outcomes")
    ref = accepted()
    rid = ref["data"]["referral_id"]
    await outcomes.send(ref)
    await outcomes.send(ask("restrict", referral_ids=[rid]))
    events = await outcomes.send(
        inbound("contact.recorded.v1", "U12345", referral_id=rid, outcome="engaged")
    )
    assert not [e for e in events if e.type == "gp.writeback.v1"]
    await outcomes.send(ask("lift", referral_ids=[rid]))
    events = await outcomes.send(
        inbound("contact.recorded.v1", "U12345", referral_id=rid, outcome="engaged")
    )
    assert [e.data.fact.value for e in events if e.type == "gp.writeback.v1"] == ["accepted"]

    right = unique_synthetic_nhs_number()
    events = await outcomes.send(ask("rectify", referral_ids=[rid], new_nhs_number=right))
    [told] = [e.data for e in events if e.type == "gp.writeback.v1"]
    assert told.fact.value == "correction" and told.nhs_number == right and told.codes == []
    assert ref["data"]["nhs_number"] not in told.summary
    assert await outcomes.value("SELECT nhs_number FROM referral") == right


async def test_notify_sends_nothing_while_restricted_and_erases_messages_and_contact(harness):
    notify = await harness("notify")
    ref = accepted(contact={"preferred": "email", "email": "sam@example.org"})
    rid = ref["data"]["referral_id"]
    await notify.send(ref)
    before = await notify.value("SELECT count(*) FROM notification")
    await notify.send(ask("restrict", referral_ids=[rid]))
    await notify.send(internal("referral.assigned.v1", producer="triage", referral_id=rid))
    assert await notify.value("SELECT count(*) FROM notification") == before
    assert await notify.value("SELECT count(*) FROM notification WHERE cancelled_at IS NULL"
                              " AND sent_at IS NULL") == 0  # fmt: skip

    exported = answer_of(await notify.send(ask("access", referral_ids=[rid])))
    assert "sam@example.org" in str(exported.items)
    erased = answer_of(await notify.send(ask("erase", referral_ids=[rid])))
    assert any("deleted" in d for d in erased.done)
    assert await notify.value("SELECT count(*) FROM notification") == 0
    assert "sam@example.org" not in str(await notify.value("SELECT contact FROM referral"))
    after = answer_of(await notify.send(ask("access", referral_ids=[rid])))
    assert "sam@example.org" not in str(after.items)


async def test_a_late_request_is_answered_without_personal_data(harness):
    notify = await harness("notify")
    ref = accepted(contact={"preferred": "email", "email": "sam@example.org"})
    rid = ref["data"]["referral_id"]
    await notify.send(ref)
    late = ask("access", referral_ids=[rid])
    late["data"]["reply_by"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    a = answer_of(await notify.send(late))
    assert a.late and a.items == [] and "sam@example.org" not in a.model_dump_json()
