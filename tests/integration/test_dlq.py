"""``linkwell dlq`` on the real broker and database: a referral dead-lettered by a real fault
is listed without its personal data, and replayed once the fault is fixed, once."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import asyncpg
import pytest

from contracts.schema import example
from services.intake.app import SERVICE as INTAKE
from services.ops import dlq
from services.ops.client import Tap, new_envelope, publish_inbound
from services.registry import SERVICE_DEFS
from services.runtime import topology
from services.runtime.runner import Runner

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


async def linkwell(settings, *args: str) -> tuple[int, str]:
    """Run ``linkwell dlq ...`` as an operator would; returns the exit code and all output."""
    env = {
        **os.environ,
        "AMQP_URL": settings.amqp_url,
        "DATABASE_URL": settings.database_url,
        "LINKWELL_NAMESPACE": settings.namespace,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.ops.cli",
        "dlq",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def depth(settings, queue: str) -> int:
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0


async def until(predicate, within: float = 20.0, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def personal_data(envelope: dict) -> list[str]:
    person = envelope["data"]["person"]
    contact = person["contact"]
    values = [person["given_name"], person["family_name"], person["nhs_number"]]
    values += [person["date_of_birth"], contact.get("phone"), contact.get("email")]
    return [v for v in values if v]


async def test_a_dead_lettered_referral_is_listed_without_personal_data_and_replayed_once(
    settings,
):
    names = settings.names
    schema = names.schema("intake")
    dead_letters = names.dead_letter_queue("intake")
    await topology.declare(settings, [s.topology for s in SERVICE_DEFS.values()])
    runner = Runner(INTAKE, settings)
    await runner.start()
    db = await asyncpg.connect(settings.database_url)
    try:
        # A real fault: the referral store refuses every write.
        await db.execute(
            f'CREATE FUNCTION "{schema}".refuse() RETURNS trigger LANGUAGE plpgsql AS'
            " $$ BEGIN RAISE EXCEPTION 'referral store is read-only'; END $$;"
            f' CREATE TRIGGER refuse BEFORE INSERT ON "{schema}".referral'
            f' FOR EACH ROW EXECUTE FUNCTION "{schema}".refuse()'
        )
        envelope = new_envelope(
            "referral.submitted.v1", "A81001", sender_reference=f"DLQ-{uuid.uuid4().hex[:8]}"
        )
        assert envelope["data"]["person"] == example("referral.submitted.v1")["data"]["person"]
        secrets = personal_data(envelope)
        await publish_inbound(settings, json.dumps(envelope).encode(), envelope["type"])

        async def dead_lettered() -> bool:
            return await depth(settings, dead_letters) == 1

        await until(dead_lettered, what="the referral in the dead-letter queue")

        code, shown = await linkwell(settings, "list")
        assert code == 0, shown
        line = next(row for row in shown.splitlines() if envelope["id"] in row)
        for expected in (
            "intake",
            "referral.submitted.v1",
            "A81001",
            "handler_failed",
            f"{names.inbound} referral.submitted.v1",
            "referral store is read-only",
        ):
            assert expected in line, (expected, line)
        code, raw = await linkwell(settings, "list", "--service", "intake", "--json")
        assert code == 0, raw
        [listed] = json.loads(raw)
        assert listed["id"] == envelope["id"]
        assert listed["reason"] == "handler_failed"
        assert listed["attempts"] == 1 + len(settings.retry_delays)
        assert listed["original_exchange"] == names.inbound
        assert listed["original_routing_key"] == "referral.submitted.v1"
        assert listed["sender"] == "A81001"
        assert listed["replayable"] is True
        assert 0 <= listed["age_seconds"] < 60
        for secret in secrets:
            assert secret not in shown and secret not in raw, secret
        assert await depth(settings, dead_letters) == 1  # looking took nothing away

        code, out = await linkwell(settings, "replay", "-s", "intake", "--id", "no-such-id")
        assert code != 0 and "no-such-id" in out and "nothing replayed" in out
        code, out = await linkwell(settings, "replay", "-s", "intake", "--all", "--dry-run")
        assert code == 0 and envelope["id"] in out and "would replay" in out
        assert await depth(settings, dead_letters) == 1

        # The cause is fixed.
        await db.execute(f'DROP TRIGGER refuse ON "{schema}".referral')

        async with Tap(settings) as tap:
            # An earlier replay that crashed after its copy was confirmed but before the
            # dead letter was acknowledged: both copies exist.
            connection = await aio_pika.connect(settings.amqp_url)
            async with connection:
                channel = await connection.channel()
                queue = await channel.get_queue(dead_letters, ensure=False)
                held = await queue.get(no_ack=False)
                await channel.default_exchange.publish(
                    dlq.replay_message(held, datetime.now(UTC)), routing_key=names.queue("intake")
                )
                await held.nack(requeue=True)
            await tap.wait_count("referral.accepted.v1", 1)

            code, out = await linkwell(
                settings, "replay", "--service", "intake", "--id", envelope["id"]
            )
            assert code == 0, out
            assert f"replayed 1 to {names.queue('intake')}" in out and envelope["id"] in out
            for secret in secrets:
                assert secret not in out

            async def drained() -> bool:
                return await depth(settings, names.queue("intake")) == 0

            await until(drained, what="intake to take the replayed copy")
            await asyncio.sleep(1.0)  # time for a second acceptance, were there one
        assert len(tap.events("referral.accepted.v1")) == 1
        assert (
            tap.events("referral.accepted.v1")[0]["data"]["submission_event_id"] == (envelope["id"])
        )
        assert await db.fetchval(f'SELECT count(*) FROM "{schema}".referral') == 1
        assert await db.fetchval(f'SELECT count(*) FROM "{schema}".submission') == 1
        assert await depth(settings, dead_letters) == 0
        code, out = await linkwell(settings, "list", "-s", "intake")
        assert code == 0 and "no dead letters" in out
        code, out = await linkwell(settings, "replay", "-s", "intake", "--id", envelope["id"])
        assert code == 1 and "nothing replayed" in out
    finally:
        await db.close()
        await runner.stop()


def synthetic(i: int) -> tuple[bytes, dict]:
    """A dead letter as the consumer writes it (no service runs in this test)."""
    body = {
        "specversion": "1.0",
        "id": f"evt-{i:03d}",
        "source": "urn:linkwell:org:A81001",
        "type": "referral.submitted.v1",
        "data": {"person": {"given_name": "Sam"}},
    }
    headers = {
        "x-linkwell-attempt": 2,
        "x-linkwell-waits": 0,
        "x-linkwell-original-exchange": "x.inbound",
        "x-linkwell-original-routing-key": "referral.submitted.v1",
        "x-linkwell-user-id": "A81001",
        "x-linkwell-reason": "handler_failed" if i % 2 else "dependency_missing",
        "x-linkwell-detail": "RuntimeError: broken",
        "x-linkwell-service": "intake",
        "x-linkwell-attempts": 3,
        "x-linkwell-failed-at": datetime.now(UTC).isoformat(),
    }
    return json.dumps(body).encode(), headers


async def test_peeking_keeps_order_and_count_and_replay_takes_only_the_chosen(settings):
    """More dead letters than a channel may settle at once (32) on a quorum queue."""
    names = settings.names
    await topology.declare(settings, [INTAKE.topology])
    count = 50
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(names.dead_letter, ensure=False)
        for i in range(count):
            body, headers = synthetic(i)
            await exchange.publish(
                aio_pika.Message(body, headers=headers, delivery_mode=2, message_id=f"evt-{i:03d}"),
                routing_key="intake",
            )
        # One the broker dead-lettered (it kept killing intake), with forged headers.
        body, headers = synthetic(count)
        headers = {
            "x-linkwell-original-exchange": names.events,
            "x-death": [{"reason": "delivery_limit", "queue": names.queue("intake")}],
        }
        await exchange.publish(
            aio_pika.Message(body, headers=headers, delivery_mode=2), routing_key="intake"
        )

    expected = [f"evt-{i:03d}" for i in range(count + 1)]
    for _ in range(3):
        letters = (await dlq.peek(settings, ["intake"])).letters
        assert [letter.id for letter in letters] == expected
        assert [letter.position for letter in letters] == list(range(count + 1))
    assert [letter.replayable for letter in letters] == [True] * count + [False]

    chosen = ["evt-005", "evt-017", "evt-033"]
    missing = await dlq.replay(
        settings, "intake", dlq.select(["evt-005", "nope"]), requested_ids=["evt-005", "nope"]
    )
    assert missing.missing == ["nope"] and missing.replayed == [] and not missing.ok
    result = await dlq.replay(settings, "intake", dlq.select(chosen), requested_ids=chosen)
    assert [letter.id for letter in result.replayed] == chosen and result.ok
    assert result.order_kept
    left = [i for i in expected if i not in chosen]
    assert [letter.id for letter in (await dlq.peek(settings, ["intake"])).letters] == left

    # The copies went to intake's own queue, with the headers intake trusts.
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(names.queue("intake"), ensure=False)
        copies = [await queue.get(no_ack=True) for _ in chosen]
        assert await queue.get(no_ack=True, fail=False) is None
    assert [json.loads(m.body)["id"] for m in copies] == chosen
    for message in copies:
        headers = message.headers
        assert headers["x-linkwell-attempt"] == 0 and headers["x-linkwell-waits"] == 0
        assert headers["x-linkwell-original-exchange"] == "x.inbound"
        assert headers["x-linkwell-user-id"] == "A81001"
        assert "x-linkwell-replayed-at" in headers
        assert not {"x-linkwell-reason", "x-linkwell-attempts", "x-death"} & set(headers)
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.exchange == "" and message.routing_key == names.queue("intake")

    # --all replays what may be replayed; the broker's dead letter stays, reported.
    everything = await dlq.replay(settings, "intake", dlq.select(everything=True))
    assert len(everything.replayed) == count - len(chosen)
    assert [letter.id for letter in everything.not_replayable] == [f"evt-{count:03d}"]
    assert not everything.ok
    assert [letter.id for letter in (await dlq.peek(settings, ["intake"])).letters] == [
        f"evt-{count:03d}"
    ]
