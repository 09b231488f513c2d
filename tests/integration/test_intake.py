"""intake on a real broker and database."""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg
import pytest
import structlog

from services.intake.app import SERVICE as INTAKE
from services.runtime.logs import configure
from services.runtime.runner import Runner

from ..support import Tap, drain, publish, submission

pytestmark = pytest.mark.integration


async def test_accepts_rejects_and_deduplicates(settings):
    runner = Runner(INTAKE, settings)
    await runner.start()
    try:
        async with Tap(settings) as tap:
            good = submission(org="A81001")
            await publish(settings, good)
            resend = dict(good, id=str(uuid.uuid4()))  # same sender reference, new event id
            await publish(settings, good)  # same event id again
            await publish(settings, resend)
            no_consent = submission(org="A81001")
            no_consent["data"]["consent"]["given"] = False
            await publish(settings, no_consent)
            bad_nhs = submission(org="Y02002")
            bad_nhs["data"]["person"]["nhs_number"] = "9990000019"
            await publish(settings, bad_nhs)

            accepted = await tap.wait_count("referral.accepted.v1", 1)
            rejected = await tap.wait_count("referral.rejected.v1", 2)
            await asyncio.sleep(0.5)  # let the duplicates be (not) handled

        assert len(tap.events("referral.accepted.v1")) == 1
        assert accepted[0]["data"]["sender_reference"] == good["data"]["sender_reference"]
        assert tap.keys("referral.accepted.v1") == ["referral.accepted.v1.A81001"]
        codes = {r["data"]["sender"]: r["data"]["reasons"][0]["code"] for r in rejected}
        assert codes == {"A81001": "consent_missing", "Y02002": "nhs_number_invalid"}
        assert "referral.rejected.v1.Y02002" in tap.keys("referral.rejected.v1")
    finally:
        await runner.stop()

    conn = await asyncpg.connect(settings.database_url)
    try:
        schema = settings.names.schema("intake")
        assert await conn.fetchval(f'SELECT count(*) FROM "{schema}".referral') == 1
        outcomes = await conn.fetch(f'SELECT outcome FROM "{schema}".submission ORDER BY outcome')
        assert [r["outcome"] for r in outcomes] == ["accepted", "duplicate", "rejected"]
    finally:
        await conn.close()


async def test_a_crisis_is_reported_first_even_on_a_malformed_form(settings):
    runner = Runner(INTAKE, settings)
    await runner.start()
    try:
        async with Tap(settings) as tap:
            urgent = submission(org="A81001", in_crisis=True)
            urgent["data"]["person"]["nhs_number"] = "123"
            await publish(settings, urgent)
            [rejected] = await tap.wait_count("referral.rejected.v1", 1)
    finally:
        await runner.stop()
    codes = [r["code"] for r in rejected["data"]["reasons"]]
    assert codes[0] == "crisis_redirect" and "nhs_number_invalid" in codes


async def test_a_failure_naming_the_person_is_logged_and_dead_lettered_without_them(
    settings, capsys
):
    """The database refuses the referral with an error that quotes the person's name
    and birth date: neither reaches the logs nor the dead-letter entry."""
    configure("intake", "INFO")
    schema = settings.names.schema("intake")
    runner = Runner(INTAKE, settings.model_copy(update={"retry_delays": (0.05,)}))
    await runner.start()
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            f"""CREATE FUNCTION "{schema}".refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'no room for % % born %',
                NEW.submission->'person'->>'given_name', NEW.submission->'person'->>'family_name',
                NEW.submission->'person'->>'date_of_birth';
            END $$;
            CREATE TRIGGER refuse BEFORE INSERT ON "{schema}".referral
                FOR EACH ROW EXECUTE FUNCTION "{schema}".refuse();"""
        )
        async with Tap(settings, "intake", exchange=settings.names.dead_letter) as dead:
            referral = submission(org="A81001")
            person = referral["data"]["person"]
            person.update(given_name="Ffion", family_name="Llewelyn-Jones")
            await publish(settings, referral)
            await dead.wait_for(lambda t: len(t.messages) == 1, what="a dead letter")
        headers = dead.messages[0][2]
    finally:
        await runner.stop()
        await conn.close()
        out = capsys.readouterr().out
        structlog.reset_defaults()
        logging.basicConfig(force=True)
    assert headers["x-linkwell-reason"] == "handler_failed"
    assert "no room for" in headers["x-linkwell-detail"]
    assert "no room for" in out  # the failure was logged...
    for secret in ("Ffion", "Llewelyn", person["date_of_birth"], person["nhs_number"]):
        assert secret not in headers["x-linkwell-detail"], secret
        assert secret not in out, secret  # ...without the person


async def test_a_pathologically_nested_message_is_dead_lettered_and_intake_goes_on(settings):
    runner = Runner(INTAKE, settings.model_copy(update={"prefetch": 1}))
    await runner.start()
    try:
        async with (
            Tap(settings, "intake", exchange=settings.names.dead_letter) as dead,
            Tap(settings, "referral.accepted.v1.*") as accepted,
        ):
            await publish(settings, b"[" * 100_000 + b"]" * 100_000)
            deep = submission()
            deep["data"]["person"]["contact"] = {"x": [[["Sam"] * 20_000]]}
            await publish(settings, deep)
            await publish(settings, submission())  # and the next one is still handled
            await dead.wait_for(lambda t: len(t.messages) == 2, what="two dead letters")
            await accepted.wait_count("referral.accepted.v1", 1)
        reasons = sorted(h["x-linkwell-reason"] for _, _, h in dead.messages)
        assert reasons == ["not_json", "schema_invalid"]
    finally:
        await runner.stop()


async def test_a_type_nobody_handles_is_answered_and_kept(settings):
    """An unsupported version (or a type no service takes) reaches intake, the front door,
    through the inbound exchange's alternate exchange: its sender is told, and it is kept
    in intake's dead-letter queue with the reason."""
    runner = Runner(INTAKE, settings)
    await runner.start()
    try:
        async with Tap(settings) as tap:
            newer = submission(org="B82005")
            newer["type"] = "referral.submitted.v2"
            await publish(settings, newer)
            internal = submission(org="B82005")
            internal["type"] = "referral.accepted.v1"  # an internal type, from outside
            await publish(settings, internal)
            answers = await tap.wait_count("event.rejected.v1", 2)
            dead = await drain(settings, settings.names.dead_letter_queue("intake"), count=2)
    finally:
        await runner.stop()
    assert sorted(tap.keys("event.rejected.v1")) == ["event.rejected.v1.B82005"] * 2
    assert {a["data"]["rejected_type"] for a in answers} == {
        "referral.submitted.v2",
        "referral.accepted.v1",
    }
    assert {a["data"]["reasons"][0]["code"] for a in answers} == {"unsupported_type"}
    origins = sorted(m.headers["x-linkwell-original-routing-key"] for m in dead)
    assert origins == ["referral.accepted.v1", "referral.submitted.v2"]
    assert {m.headers["x-linkwell-reason"] for m in dead} == {"unsupported_type"}


async def test_each_consumer_queue_receives_only_its_own_acceptance_event(settings):
    """On the broker as deployed: an accepted referral reaches triage's queue as
    referral.placement.v1 only, notify's as referral.contact.v1 only, outcomes' as
    referral.recorded.v1 only and the gateway's as referral.accepted.v2 only; only outcomes'
    holds the NHS number, only notify's the contact."""
    from services.gateway.app import SERVICE as GATEWAY
    from services.notify.app import SERVICE as NOTIFY
    from services.outcomes.app import SERVICE as OUTCOMES
    from services.runtime import topology
    from services.triage.app import SERVICE as TRIAGE

    consumers = (TRIAGE, NOTIFY, OUTCOMES, GATEWAY)
    await topology.declare(settings, [c.topology for c in consumers])
    runner = Runner(INTAKE, settings)
    await runner.start()
    try:
        referral = submission(org="SELF-WEB")
        person = referral["data"]["person"]
        await publish(settings, referral)
        got = {}
        for consumer in consumers:
            messages = await drain(settings, settings.names.queue(consumer.name), within=20)
            got[consumer.name] = [(m.routing_key or "").rsplit(".", 1)[0] for m in messages]
            bodies = b"".join(m.body for m in messages).decode()
            assert (person["nhs_number"] in bodies) is (consumer is OUTCOMES), consumer.name
            phone = person["contact"].get("phone") or person["contact"].get("email")
            assert (phone in bodies) is (consumer is NOTIFY), consumer.name
    finally:
        await runner.stop()
    assert got == {
        "triage": ["referral.placement.v1"],
        "notify": ["referral.contact.v1"],
        "outcomes": ["referral.recorded.v1"],
        "gateway": ["referral.accepted.v2"],
    }
