"""Retention against PostgreSQL and RabbitMQ: rows past their limit go (or keep only a
redacted copy) when a sweep runs at a later clock, rows within it stay; dead-letter and
unrouted queues carry a message TTL, and a dead letter past it is gone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aio_pika

from services.gateway.app import SERVICE as GATEWAY
from services.gateway.settings import GatewaySettings
from services.notify.app import SERVICE as NOTIFY
from services.notify.settings import NotifySettings
from services.ops import access
from services.runtime import db, retention, topology
from services.runtime.retention import RUNTIME_RULES, sweep
from tests.conftest import management

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


async def _pool(settings, service):
    schema = settings.names.schema(service.name)
    await db.migrate(settings.database_url, schema, service.migrations())
    return await db.create_pool(settings.database_url, schema, service.name, 2)


def _removed(service: str, store: str, action: str) -> float:
    value = retention.REMOVED.labels(service, store, action)._value.get()
    return float(value)


async def test_runtime_stores_expire_and_unpublished_rows_stay(settings):
    pool = await _pool(settings, NOTIFY)
    try:
        async with pool.acquire() as conn:
            for i, (created, published) in enumerate(
                [
                    (NOW - timedelta(days=30), NOW - timedelta(days=8)),  # published long ago
                    (NOW - timedelta(days=2), NOW - timedelta(days=1)),  # published lately
                    (NOW - timedelta(days=400), None),  # never published: kept
                ]
            ):
                await conn.execute(
                    "INSERT INTO outbox (event_id, event_type, exchange, routing_key, body,"
                    " created_at, published_at) VALUES ($1, 't', 'x', 'k', '\\x7b7d', $2, $3)",
                    f"e{i}",
                    created,
                    published,
                )
            await conn.executemany(
                "INSERT INTO inbox (source, event_id, event_type, handled_at)"
                " VALUES ('s', $1, 't', $2)",
                [("old", NOW - timedelta(days=91)), ("new", NOW - timedelta(days=89))],
            )
            await conn.executemany(
                "INSERT INTO early_event (source, event_id, referral_id, event_type, body,"
                " received_at) VALUES ('s', $1, gen_random_uuid(), 't', '\\x7b7d', $2)",
                [("old", NOW - timedelta(days=31)), ("new", NOW - timedelta(days=29))],
            )
        before = _removed("notify", "outbox_published", "delete")
        removed = await sweep(pool, "notify", RUNTIME_RULES, settings, NOW, batch=1)
        assert removed == {"outbox_published": 1, "inbox": 1, "early_event": 1}
        assert _removed("notify", "outbox_published", "delete") == before + 1
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT array_agg(event_id ORDER BY id) FROM outbox") == [
                "e1",
                "e2",
            ]
            assert await conn.fetchval("SELECT array_agg(event_id) FROM inbox") == ["new"]
            assert await conn.fetchval("SELECT array_agg(event_id) FROM early_event") == ["new"]
        # a year on, the lately published row has gone too; the unpublished one never goes
        later = await sweep(pool, "notify", RUNTIME_RULES, settings, NOW + timedelta(days=365))
        assert later["outbox_published"] == 1
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT array_agg(event_id) FROM outbox") == ["e2"]
    finally:
        await pool.close()


async def test_notify_keeps_only_a_redacted_copy_of_a_sent_message(settings):
    pool = await _pool(settings, NOTIFY)
    own = NotifySettings()
    try:
        async with pool.acquire() as conn:
            rows = [
                ("sent-old", NOW - timedelta(days=31), None),
                ("sent-new", NOW - timedelta(days=29), None),
                ("failed-old", None, NOW - timedelta(days=40)),
                ("pending", None, None),
            ]
            for key, sent, failed in rows:
                await conn.execute(
                    "INSERT INTO notification (key, referral_id, audience, medium, address,"
                    " subject, body, created_at, sent_at, failed_at)"
                    " VALUES ($1, gen_random_uuid(), 'person', 'sms', '07700900123', 'Hello',"
                    " 'A link worker will call', $2, $3, $4)",
                    key,
                    NOW - timedelta(days=60),
                    sent,
                    failed,
                )
        removed = await sweep(pool, "notify", NOTIFY.retention, settings, NOW, own=own)
        assert removed == {
            "notification_sent": 1,
            "notification_given_up": 1,
            "referral_contact": 0,
        }
        async with pool.acquire() as conn:
            got = {
                r["key"]: (r["address"], r["body"])
                for r in await conn.fetch("SELECT key, address, body FROM notification")
            }
        assert got["sent-old"] == ("", "") and got["failed-old"] == ("", "")
        assert got["sent-new"] == ("07700900123", "A link worker will call")
        assert got["pending"] == ("07700900123", "A link worker will call")
        # the key stays, so a redelivered event still finds its message sent; nothing twice
        again = await sweep(pool, "notify", NOTIFY.retention, settings, NOW, own=own)
        assert again == {
            "notification_sent": 0,
            "notification_given_up": 0,
            "referral_contact": 0,
        }
    finally:
        await pool.close()


async def test_gateway_drafts_sessions_and_sign_ins_expire(settings):
    pool = await _pool(settings, GATEWAY)
    own = GatewaySettings()
    try:
        async with pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO draft (token_digest, form_key, created_at, expires_at)"
                " VALUES ($1, $2, $3, $4)",
                [
                    (b"old", "f-old", NOW - timedelta(hours=2), NOW - timedelta(hours=1)),
                    (b"new", "f-new", NOW - timedelta(minutes=5), NOW + timedelta(minutes=25)),
                ],
            )
            await conn.execute(
                "INSERT INTO organisation (code, name, agency_type)"
                " VALUES ('A81001', 'Practice', 'gp_practice')"
            )
            account = await conn.fetchval(
                "INSERT INTO account (id, organisation, email)"
                " VALUES (gen_random_uuid(), 'A81001', 'a@example.invalid') RETURNING id"
            )
            await conn.executemany(
                "INSERT INTO session (token_digest, account_id, created_at, seen_at)"
                " VALUES ($1, $2, $3, $3)",
                [(b"s-old", account, NOW - timedelta(hours=9)), (b"s-new", account, NOW)],
            )
            await conn.executemany(
                "INSERT INTO sign_in (account_id, at) VALUES ($1, $2)",
                [(account, NOW - timedelta(days=91)), (account, NOW - timedelta(days=1))],
            )
            # steps pushed to a BaRS sender: kept 30 days from queuing, sent or not
            await conn.execute(
                "INSERT INTO submission (reference, form_key, event_id, organisation,"
                " check_digest) VALUES ('LW-1', 'fhir:A81001:x', 'e-1', 'A81001', '')"
            )
            client = await conn.fetchval(
                "INSERT INTO api_client (id, organisation, name, secret_digest)"
                " VALUES (gen_random_uuid(), 'A81001', 'EHR', 'd') RETURNING id"
            )
            await conn.executemany(
                "INSERT INTO fhir_delivery (reference, client_id, endpoint, status, at,"
                " state, created_at) VALUES ('LW-1', $1, 'https://e.example', $2, $3, $4, $3)",
                [
                    (client, "accepted", NOW - timedelta(days=31), "sent"),
                    (client, "completed", NOW - timedelta(days=29), "given_up"),
                ],
            )
        removed = await sweep(pool, "gateway", GATEWAY.retention, settings, NOW, own=own)
        assert removed == {
            "draft": 1,
            "session": 1,
            "sign_in": 1,
            "fhir_step_ended": 0,
            "submission_ended": 0,
            "fhir_delivery": 1,
        }
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT array_agg(form_key) FROM draft") == ["f-new"]
            assert await conn.fetchval("SELECT count(*) FROM session") == 1
            assert await conn.fetchval("SELECT count(*) FROM sign_in") == 1
            assert await conn.fetchval("SELECT array_agg(status) FROM fhir_delivery") == [
                "completed"
            ]
    finally:
        await pool.close()


async def test_dead_letter_and_unrouted_queues_carry_a_message_ttl(settings):
    short = settings.model_copy(update={"retain_dead_letter_days": 1.5 / 86_400})
    policies = retention.queue_policies(short)
    vhost = access.vhost_of(settings.amqp_url)
    from services.registry import SERVICE_DEFS

    await topology.declare(settings, [s.topology for s in SERVICE_DEFS.values()])
    with management(settings.amqp_url) as api:
        for policy in policies:
            api.put_policy(vhost, policy)
    try:
        names = settings.names
        dlq = names.dead_letter_queue("intake")

        async def effective(queue: str) -> dict:
            with management(settings.amqp_url) as api:
                for _ in range(150):  # the management API shows a policy within its stats interval
                    got = api.http.get(f"/queues/{access._q(vhost)}/{access._q(queue)}").json()
                    if got.get("effective_policy_definition"):
                        return got["effective_policy_definition"]
                    await asyncio.sleep(0.1)
            return {}

        assert (await effective(dlq)) == {"message-ttl": 1500}
        assert (await effective(names.events_unrouted)) == {
            "message-ttl": round(settings.retain_unrouted_days * 86_400_000)
        }
        assert (await effective(names.queue("intake"))) == {}  # work queues: no limit
        connection = await aio_pika.connect(settings.amqp_url)
        try:
            channel = await connection.channel()
            exchange = await channel.get_exchange(names.dead_letter)
            await exchange.publish(aio_pika.Message(b'{"refused": true}'), routing_key="intake")
            queue = await channel.declare_queue(dlq, passive=True)
            assert queue.declaration_result.message_count == 1
            for _ in range(60):  # the broker drops it once its TTL has passed
                await asyncio.sleep(0.1)
                queue = await channel.declare_queue(dlq, passive=True)
                if queue.declaration_result.message_count == 0:
                    break
            assert queue.declaration_result.message_count == 0
        finally:
            await connection.close()
    finally:
        with management(settings.amqp_url) as api:
            for policy in policies:
                api.http.delete(f"/policies/{access._q(vhost)}/{access._q(policy['name'])}")


async def test_intake_empties_a_full_submission_past_its_limit(settings):
    from services.intake.app import SERVICE as INTAKE

    pool = await _pool(settings, INTAKE)
    try:
        async with pool.acquire() as conn:
            for ref, accepted in (("old", NOW - timedelta(days=31)), ("new", NOW)):
                await conn.execute(
                    "INSERT INTO referral (referral_id, sender, sender_reference,"
                    " submission_event_id, agency_type, registered_practice, pcn, pathway,"
                    " needs, submission, accepted_at) VALUES (gen_random_uuid(), 'A81001', $1,"
                    " $1, 'gp_practice', 'A81001', 'U1', 'community', '{loneliness}', $2, $3)",
                    ref,
                    {"person": {"given_name": "Ada", "phone": "07700900123"}},
                    accepted,
                )
        removed = await sweep(pool, "intake", INTAKE.retention, settings, NOW)
        assert removed == {"referral_submission": 1, "referral_ended": 0, "person": 0}
        async with pool.acquire() as conn:
            got = {
                r["sender_reference"]: r["submission"]
                for r in await conn.fetch("SELECT sender_reference, submission FROM referral")
            }
        assert got["old"] == {}
        assert got["new"]["person"]["given_name"] == "Ada"
    finally:
        await pool.close()
