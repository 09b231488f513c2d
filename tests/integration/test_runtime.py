"""The runtime's guarantees, on the real broker and database, with a probe service whose
handler the test controls."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import pytest

from contracts.events import AuditRecorded, ContactRecorded, EventRejected, ReferralWaitlisted
from services.runtime import topology
from services.runtime.db import drop_schema
from services.runtime.runner import Runner
from services.runtime.service import ServiceDef, routes

from ..support import Tap, drain, inbound, publish, submission

pytestmark = pytest.mark.integration

REFERRAL = uuid.UUID("0b8f4a52-3c1d-4e8a-9a57-6f0c2d9e1b30")


class Probe:
    """A handler that records calls, can fail a chosen number of times, and can be slow."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_first = 0
        self.always_fail = False
        self.poison: set[str] = set()
        self.delay = 0.0
        self.started = asyncio.Event()
        self.gated: set[str] = set()  # these wait for the gate to open
        self.gate = asyncio.Event()

    async def handle(self, uow, event, data) -> None:
        self.calls.append(event.id)
        self.started.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        if event.id in self.gated:
            await self.gate.wait()
        if event.id in self.poison:
            raise RuntimeError("still broken: call 07700 900123 or mail someone@example.org")
        if self.always_fail or len(self.calls) <= self.fail_first:
            raise RuntimeError("probe failure")
        await uow.conn.execute("INSERT INTO effect (event_id) VALUES ($1)", event.id)
        await uow.emit(
            ReferralWaitlisted(
                referral_id=REFERRAL,
                pcn="U12345",
                registered_practice="A81001",
                waitlisted_at=event.time,
            )
        )


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
async def probe_service(settings, probe, tmp_path: Path) -> AsyncIterator[ServiceDef]:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_effect.sql").write_text(
        "CREATE TABLE effect (event_id text PRIMARY KEY);"
    )
    service = ServiceDef(
        name="probe",
        directory=tmp_path,
        description="a probe",
        routes=routes((ContactRecorded, probe.handle)),
        emits=(ReferralWaitlisted, EventRejected, AuditRecorded),
    )
    yield service
    await topology.delete(settings, [service.topology])
    await drop_schema(settings.database_url, settings.names.schema("probe"))


@pytest.fixture
async def runner(settings, probe_service) -> AsyncIterator[Runner]:
    runner = Runner(probe_service, settings)
    await runner.start()
    yield runner
    await runner.stop()


def contact(**data: Any) -> dict[str, Any]:
    return inbound("contact.recorded.v1", "U12345", **data)


async def effects(settings) -> list[str]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(f'SELECT event_id FROM "{settings.names.schema("probe")}".effect')
        return [r["event_id"] for r in rows]
    finally:
        await conn.close()


async def queue_depth(settings, queue_name: str) -> int:
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        return queue.declaration_result.message_count


async def test_handled_once_and_emits_through_the_outbox(settings, runner, probe):
    async with Tap(settings) as tap:
        event = contact()
        await publish(settings, event)
        await publish(settings, event)  # redelivery of the same event id
        await tap.wait_count("referral.waitlisted.v1", 1)
        await asyncio.sleep(0.5)
    assert probe.calls == [event["id"]]  # the duplicate never reached the handler
    assert await effects(settings) == [event["id"]]
    assert len(tap.events("referral.waitlisted.v1")) == 1
    emitted = tap.events("referral.waitlisted.v1")[0]
    # the chain's id is Linkwell's own, derived from (source, id): a sender's id never
    # travels on into other services' logs
    expected = uuid.uuid5(uuid.NAMESPACE_URL, f"{event['source']}#{event['id']}")
    assert emitted["correlationid"] == str(expected)
    assert emitted["source"] == f"urn:linkwell:{settings.namespace}:probe"


async def test_failures_retry_with_backoff_then_succeed(settings, runner, probe):
    probe.fail_first = 2
    event = contact()
    await publish(settings, event)
    for _ in range(100):
        if await effects(settings):
            break
        await asyncio.sleep(0.1)
    assert probe.calls == [event["id"]] * 3
    assert await effects(settings) == [event["id"]]
    assert await queue_depth(settings, settings.names.dead_letter_queue("probe")) == 0


async def test_exhausted_retries_dead_letter_with_reason_and_never_block(settings, runner, probe):
    poison = contact()
    probe.poison.add(poison["id"])
    await publish(settings, poison)
    await asyncio.wait_for(probe.started.wait(), 10)
    good = contact()
    await publish(settings, good)
    for _ in range(50):  # the good message is not stuck behind the poison
        if good["id"] in await effects(settings):
            break
        await asyncio.sleep(0.1)
    assert good["id"] in await effects(settings)

    dead = await drain(settings, settings.names.dead_letter_queue("probe"))
    assert len(dead) == 1
    headers = dead[0].headers
    assert headers["x-linkwell-reason"] == "handler_failed"
    assert headers["x-linkwell-attempts"] == 1 + len(settings.retry_delays)
    assert "still broken" in headers["x-linkwell-detail"]
    assert "07700" not in headers["x-linkwell-detail"]  # personal data redacted
    assert "example.org" not in headers["x-linkwell-detail"]
    assert json.loads(dead[0].body)["id"] == poison["id"]  # the original, for replay
    assert probe.calls.count(poison["id"]) == 1 + len(settings.retry_delays)


async def test_a_failing_delivery_in_a_batch_costs_the_others_nothing(settings, runner, probe):
    """Deliveries that queue up are handled in one transaction; when one handler fails, the
    batch rolls back and each is handled again on its own: the others commit once, the
    failing one takes the usual retries to the dead-letter queue."""
    assert runner.settings.batch_size > 1
    # two deliveries hold the batcher's two workers until the rest have queued up behind
    blockers = [contact(), contact()]
    probe.gated.update(e["id"] for e in blockers)
    burst = [contact() for _ in range(24)]
    poison = burst[12]
    probe.poison.add(poison["id"])
    async with Tap(settings) as tap:
        for n, event in enumerate(blockers, 1):  # one at a time: a worker each
            await publish(settings, event)
            for _ in range(200):
                if len(probe.calls) == n:
                    break
                await asyncio.sleep(0.05)
        assert len(probe.calls) == 2, probe.calls
        for event in burst:
            await publish(settings, event)
        for _ in range(100):  # all delivered (prefetch 32), waiting for a worker
            if await queue_depth(settings, settings.names.queue("probe")) == 0:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        probe.gate.set()
        await tap.wait_count("referral.waitlisted.v1", len(blockers) + len(burst) - 1, within=30)
    burst += blockers
    good = {e["id"] for e in burst} - {poison["id"]}
    done = await effects(settings)
    assert sorted(done) == sorted(good)  # each once (the table's key would refuse twice)
    # some were handled twice: in the batch that rolled back, then on their own
    again = {i for i in good if probe.calls.count(i) > 1}
    assert again, "no batch of several formed"
    for _ in range(100):
        dead = await drain(settings, settings.names.dead_letter_queue("probe"))
        if dead:
            break
        await asyncio.sleep(0.5)
    assert [json.loads(d.body)["id"] for d in dead] == [poison["id"]]


async def test_unreadable_messages_are_dead_lettered_at_once(settings, runner, probe):
    await publish(settings, b"\x00not json", routing_key="contact.recorded.v1")
    invalid = contact(outcome="telepathy")
    async with Tap(settings) as tap:
        await publish(settings, invalid)
        rejected = await tap.wait_count("event.rejected.v1", 1)
    assert tap.keys("event.rejected.v1") == ["event.rejected.v1.U12345"]
    assert rejected[0]["data"]["reasons"][0]["field"] == "data.outcome"
    assert rejected[0]["data"]["rejected_event_id"] == invalid["id"]

    dead = await drain(settings, settings.names.dead_letter_queue("probe"), count=2)
    reasons = sorted(m.headers["x-linkwell-reason"] for m in dead)
    assert reasons == ["not_json", "schema_invalid"]
    assert probe.calls == []  # never retried, never reached the handler
    good = contact()
    await publish(settings, good)  # and the service keeps working
    for _ in range(50):
        if await effects(settings):
            break
        await asyncio.sleep(0.1)
    assert await effects(settings) == [good["id"]]


async def test_outbox_rows_committed_before_a_crash_are_published_on_restart(
    settings, probe_service
):
    from services.runtime.db import create_pool
    from services.runtime.handling import UnitOfWork
    from services.runtime.runner import migrate

    await migrate(settings, probe_service)
    await topology.declare(settings, [probe_service.topology])
    pool = await create_pool(settings.database_url, settings.names.schema("probe"), "probe", 2)
    async with pool.acquire() as conn, conn.transaction():
        uow = UnitOfWork(
            conn,
            names=settings.names,
            service="probe",
            store=None,
            emits={"referral.waitlisted.v1"},
            correlation_id=None,
        )
        event = await uow.emit(
            ReferralWaitlisted(
                referral_id=REFERRAL,
                pcn="U12345",
                registered_practice="A81001",
                waitlisted_at="2026-11-23T10:00:00Z",
            )
        )
        await uow.flush()
    await pool.close()  # the process "dies" here, before any relay ran

    async with Tap(settings) as tap:
        runner = Runner(probe_service, settings)
        await runner.start()
        try:
            published = await tap.wait_count("referral.waitlisted.v1", 1)
        finally:
            await runner.stop()
    assert published[0]["id"] == event.id
    assert tap.keys("referral.waitlisted.v1") == ["referral.waitlisted.v1.U12345"]


async def test_graceful_stop_finishes_in_flight_work(settings, runner, probe):
    probe.delay = 1.5
    event = contact()
    await publish(settings, event)
    await asyncio.wait_for(probe.started.wait(), 10)
    await runner.stop()  # arrives mid-handler
    assert await effects(settings) == [event["id"]]
    assert await queue_depth(settings, settings.names.queue("probe")) == 0


async def test_a_second_submission_shape_error_is_answered_to_its_sender(settings):
    """Intake's own answer to unreadable referrals: referral.rejected.v1, to the sender."""
    from services.intake.app import SERVICE as INTAKE

    runner = Runner(INTAKE, settings)
    await runner.start()
    try:
        async with Tap(settings) as tap:
            broken = submission(org="B82005")
            del broken["data"]["consent"]
            broken["data"]["needs"] = []
            await publish(settings, broken)
            rejected = await tap.wait_count("referral.rejected.v1", 1)
    finally:
        await runner.stop()
    codes = {(r["code"], r["field"]) for r in rejected[0]["data"]["reasons"]}
    assert ("consent_missing", "data.consent") in codes
    assert ("schema_invalid", "data.needs") in codes
    assert rejected[0]["data"]["sender_reference"] == broken["data"]["sender_reference"]
    assert tap.keys("referral.rejected.v1") == ["referral.rejected.v1.B82005"]


async def test_internal_types_cannot_be_smuggled_through_an_inbound_binding(
    settings, runner, probe
):
    forged = contact()
    forged["type"] = "referral.accepted.v1"  # bound key says contact, body says internal event
    wrong_key = contact()
    wrong_key["type"] = "referral.closed.v1"
    async with Tap(settings) as tap:
        await publish(settings, forged, routing_key="contact.recorded.v1")
        await publish(settings, wrong_key, routing_key="contact.recorded.v1")
        rejected = await tap.wait_count("event.rejected.v1", 2)
    assert {r["data"]["reasons"][0]["code"] for r in rejected} == {"unsupported_type"}
    dead = await drain(settings, settings.names.dead_letter_queue("probe"), count=2)
    assert sorted(m.headers["x-linkwell-reason"] for m in dead) == ["unsupported_type"] * 2
    assert probe.calls == []


async def test_senders_cannot_steer_retries_with_our_headers(settings, runner, probe):
    event = contact()
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(settings.names.inbound, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                json.dumps(event).encode(),
                headers={"x-linkwell-attempt": "abc", "x-linkwell-original-exchange": "x"},
                user_id="guest",
            ),
            routing_key="contact.recorded.v1",
        )
    for _ in range(50):
        if await effects(settings):
            break
        await asyncio.sleep(0.1)
    assert await effects(settings) == [event["id"]]


async def test_an_unclaimable_id_is_dead_lettered_once_not_looped(settings, runner, probe):
    event = contact()
    event["id"] = "bad\u0000id"
    await publish(settings, event)
    dead = await drain(settings, settings.names.dead_letter_queue("probe"))
    assert [m.headers["x-linkwell-reason"] for m in dead] == ["envelope_invalid"]
    await asyncio.sleep(1.0)  # longer than every retry delay: nothing comes back
    assert await queue_depth(settings, settings.names.dead_letter_queue("probe")) == 0
    assert await queue_depth(settings, settings.names.queue("probe")) == 0


async def test_the_same_id_from_two_senders_is_two_events(settings, runner, probe):
    first, second = contact(), contact()
    second["id"] = first["id"]
    second["source"] = "urn:linkwell:org:U99999"
    await publish(settings, first)
    await publish(settings, second)
    for _ in range(50):
        if len(probe.calls) >= 2:
            break
        await asyncio.sleep(0.1)
    assert probe.calls == [first["id"], first["id"]]


async def test_one_unpublishable_row_does_not_hold_up_the_outbox(settings, probe_service):
    from services.runtime.db import create_pool
    from services.runtime.handling import UnitOfWork
    from services.runtime.outbox import OutboxRelay
    from services.runtime.runner import migrate

    class Flaky:
        def __init__(self) -> None:
            self.published: list[str] = []

        async def publish(self, exchange, routing_key, body, *, message_id, **_):
            if message_id == refused.id:
                raise RuntimeError("broker refused")
            self.published.append(message_id)

    await migrate(settings, probe_service)
    pool = await create_pool(settings.database_url, settings.names.schema("probe"), "probe", 2)
    try:
        async with pool.acquire() as conn, conn.transaction():
            uow = UnitOfWork(
                conn,
                names=settings.names,
                service="probe",
                store=None,
                emits={"referral.waitlisted.v1"},
                correlation_id=None,
            )
            events = [
                await uow.emit(
                    ReferralWaitlisted(
                        referral_id=uuid.uuid4(),
                        pcn="U12345",
                        registered_practice="A81001",
                        waitlisted_at="2026-11-23T10:00:00Z",
                    )
                )
                for _ in range(3)
            ]
            await uow.flush()
        refused = events[1]
        flaky = Flaky()
        relay = OutboxRelay(
            flaky, dsn=settings.database_url, pool=pool, channel="x", interval=1.0, batch=10
        )
        await relay.work()
        assert flaky.published == [events[0].id, events[2].id]
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT published_at, attempts, last_error, next_attempt_at > now() AS later"
                " FROM outbox WHERE event_id = $1",
                refused.id,
            )
        assert row["published_at"] is None and row["attempts"] == 1 and row["later"]
        assert "broker refused" in row["last_error"]
        await relay.work()  # backing off: not retried at once
        assert flaky.published == [events[0].id, events[2].id]
    finally:
        await pool.close()
