"""Broker access per organisation, on the real broker: users made by ``linkwell access``'s
plan and applied through the management API, then each refusal shown with plain
aio-pika, and intake taking the sender from the broker-checked ``user_id``."""

from __future__ import annotations

import asyncio
import json

import aio_pika
import aiormq
import pytest

from contracts import org_source
from services.intake.app import SERVICE as INTAKE
from services.triage.app import SERVICE as TRIAGE

from ..support import Tap, drain, submission, worker
from .conftest import asyncpg_connect, running

pytestmark = pytest.mark.integration


async def attempt(url: str, action) -> Exception | None:
    """Run ``action(channel)`` on a fresh connection; return the broker's refusal, if any."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await action(channel)
        await asyncio.sleep(0.05)  # a refusal closes the channel asynchronously
        if channel.is_closed:
            return RuntimeError("channel closed")
        return None
    except aiormq.exceptions.AMQPError as exc:
        return exc
    finally:
        await connection.close()


def refused(result: Exception | None) -> bool:
    return isinstance(result, aiormq.exceptions.ChannelAccessRefused)


def publish_to(exchange: str, key: str, body: bytes = b"{}", **props):
    async def action(channel: aio_pika.abc.AbstractChannel) -> None:
        target = (
            channel.default_exchange
            if exchange == ""
            else await channel.get_exchange(exchange, ensure=False)
        )
        await target.publish(aio_pika.Message(body, **props), routing_key=key)

    return action


def bind(queue: str, exchange: str, key: str):
    async def action(channel: aio_pika.abc.AbstractChannel) -> None:
        q = await channel.get_queue(queue, ensure=False)
        await q.bind(exchange, key)

    return action


def consume(queue: str):
    async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        return None

    async def action(channel: aio_pika.abc.AbstractChannel) -> None:
        q = await channel.get_queue(queue, ensure=False)
        await q.consume(ignore)

    return action


def declare(queue: str, **arguments):
    async def action(channel: aio_pika.abc.AbstractChannel) -> None:
        await channel.declare_queue(queue, durable=True, arguments=arguments or None)

    return action


def declare_exchange(name: str):
    async def action(channel: aio_pika.abc.AbstractChannel) -> None:
        await channel.declare_exchange(name, aio_pika.ExchangeType.FANOUT, durable=True)

    return action


async def test_an_agency_may_publish_only_referrals_to_inbound(settings, orgs):
    n, url = settings.names, orgs.url(settings, orgs.agency)
    assert await attempt(url, publish_to(n.inbound, "referral.submitted.v1")) is None
    assert refused(await attempt(url, publish_to(n.inbound, "linkworker.registered.v1")))
    assert refused(await attempt(url, publish_to(n.inbound, "contact.recorded.v1")))
    assert refused(await attempt(url, publish_to(n.events, "referral.accepted.v1.X")))
    # nor straight into a service's queue through the default exchange
    assert refused(await attempt(url, publish_to("", n.queue("intake"))))


async def test_an_agency_declares_nothing_so_it_cannot_route_around_its_permissions(settings, orgs):
    """A queue of its own could dead-letter into linkwell.inbound with any routing key,
    past the topic permissions; so an organisation may declare no queue or exchange."""
    n, url = settings.names, orgs.url(settings, orgs.agency)
    own = n.organisation_queue(orgs.agency)
    forward = {"x-dead-letter-exchange": n.inbound, "x-dead-letter-routing-key": "x"}
    assert refused(await attempt(url, declare(f"{own}.mine", **forward)))
    assert refused(await attempt(url, declare("")))  # not even a server-named one
    assert refused(await attempt(url, declare_exchange(f"{own}.x")))
    assert refused(await attempt(url, bind(own, n.events, f"referral.accepted.v1.{orgs.agency}")))


async def test_an_agency_reads_only_its_own_queue(settings, orgs):
    n, url = settings.names, orgs.url(settings, orgs.agency)
    assert await attempt(url, consume(n.organisation_queue(orgs.agency))) is None
    for queue in (
        n.organisation_queue(orgs.other_agency),
        n.organisation_queue(orgs.team),
        n.queue("intake"),
        n.dead_letter_queue("intake"),
        n.events_unrouted,
    ):
        assert refused(await attempt(url, consume(queue))), queue


async def test_the_broker_refuses_a_forged_user_id(settings, orgs):
    url = orgs.url(settings, orgs.agency)
    result = await attempt(
        url,
        publish_to(settings.names.inbound, "referral.submitted.v1", user_id=orgs.other_agency),
    )
    assert isinstance(result, aiormq.exceptions.ChannelPreconditionFailed), result


async def test_a_team_reads_only_its_pcn_and_publishes_only_link_worker_events(settings, orgs):
    n, url = settings.names, orgs.url(settings, orgs.team)
    for key in ("linkworker.registered.v1", "contact.recorded.v1", "referral.closed.v1"):
        assert await attempt(url, publish_to(n.inbound, key)) is None, key
    assert refused(await attempt(url, publish_to(n.inbound, "referral.submitted.v1")))
    assert await attempt(url, consume(n.organisation_queue(orgs.team))) is None
    assert refused(await attempt(url, consume(n.organisation_queue(orgs.other_team))))
    assert refused(await attempt(url, consume(n.organisation_queue(orgs.agency))))


async def test_a_gp_integrator_reads_only_writebacks(settings, orgs):
    n, url = settings.names, orgs.url(settings, orgs.integrator)
    assert await attempt(url, consume(n.organisation_queue(orgs.integrator))) is None
    assert refused(await attempt(url, consume(n.organisation_queue(orgs.team))))
    for key in ("referral.submitted.v1", "contact.recorded.v1"):
        assert refused(await attempt(url, publish_to(n.inbound, key)))


async def test_a_service_user_can_only_do_its_own_job(settings, orgs):
    n, url = settings.names, orgs.url(settings, orgs.intake_user)
    assert await attempt(url, consume(n.queue("intake"))) is None
    assert await attempt(url, publish_to(n.events, "referral.accepted.v1.X")) is None
    assert refused(await attempt(url, publish_to(n.events, "referral.assigned.v1.X")))
    assert refused(await attempt(url, publish_to("", n.queue("triage"))))  # no default exchange
    assert refused(await attempt(url, consume(n.queue("triage"))))
    assert refused(await attempt(url, consume(n.dead_letter_queue("intake"))))
    assert refused(await attempt(url, consume(n.organisation_queue(orgs.agency))))
    assert refused(await attempt(url, declare(n.queue("intake"))))  # not even its own


async def test_intake_takes_the_sender_from_the_broker_not_the_envelope(settings, orgs):
    """Intake runs as its own least-privilege service user. Agency A submits once as
    itself, once claiming to be agency B, and once without user_id."""
    n = settings.names
    intake_settings = settings.model_copy(
        update={
            "amqp_url": orgs.url(settings, orgs.intake_user),
            "trusted_users": frozenset(),
            "declare_topology": False,  # as in production: the administrator declared it
        }
    )
    answers: list[tuple[str, dict]] = []
    connection = await aio_pika.connect(orgs.url(settings, orgs.agency))
    async with (
        connection,
        Tap(settings, f"*.*.*.{orgs.other_agency}") as victim,
        running(INTAKE, intake_settings),
    ):
        channel = await connection.channel()
        queue = await channel.get_queue(n.organisation_queue(orgs.agency), ensure=False)
        inbound = await channel.get_exchange(n.inbound, ensure=False)

        async def send(envelope: dict, **props) -> None:
            await inbound.publish(
                aio_pika.Message(
                    json.dumps(envelope).encode(),
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    **props,
                ),
                routing_key="referral.submitted.v1",
            )

        honest = submission(org=orgs.agency)
        spoofed = submission(org=orgs.other_agency)
        unsigned = submission(org=orgs.agency)
        unsigned_spoof = submission(org=orgs.other_agency)  # names a victim, unattested
        await send(unsigned)
        await send(unsigned_spoof)
        await send(honest, user_id=orgs.agency)
        await send(spoofed, user_id=orgs.agency)

        async with queue.iterator() as messages:
            async for message in messages:
                await message.ack()
                answers.append((message.routing_key, json.loads(message.body)))
                if len(answers) == 3:  # the honest one's v1 and v2, the spoof's refusal
                    break
        dead = await drain(settings, n.dead_letter_queue("intake"), within=10, count=3)

        by_event: dict[str, list[tuple[str, dict]]] = {}
        for key, body in answers:
            by_event.setdefault(body["data"].get("submission_event_id"), []).append((key, body))
        assert sorted(key for key, _ in by_event[honest["id"]]) == [
            f"referral.accepted.v1.{orgs.agency}",
            f"referral.accepted.v2.{orgs.agency}",
        ]
        [(key, body)] = by_event[spoofed["id"]]
        assert key == f"referral.rejected.v1.{orgs.agency}"  # told to the real sender
        assert [r["code"] for r in body["data"]["reasons"]] == ["source_mismatch"]
        # without user_id the broker names nobody: answered to nobody, only dead-lettered
        assert unsigned["id"] not in by_event and unsigned_spoof["id"] not in by_event
        assert sorted(m.headers["x-linkwell-reason"] for m in dead) == [
            "sender_unverified",
            "sender_unverified",
            "source_mismatch",
        ]
        await asyncio.sleep(0.5)
        assert victim.messages == []  # the organisation named in a forgery hears nothing
        assert await queue.get(fail=False) is None  # and the unsigned got no answer


async def test_a_team_cannot_act_on_another_pcn(settings, orgs):
    """Team U registers a worker in PCN V's roster, under its own (true) source: triage
    refuses it (not_permitted) and tells team U; V's roster is untouched."""
    n = settings.names
    triage_settings = settings.model_copy(update={"trusted_users": frozenset()})
    forged = worker(orgs.other_team, "lw-forged", 5)
    forged["source"] = org_source(orgs.team)
    async with (
        Tap(settings, "event.rejected.v1.*") as rejections,
        Tap(settings, "triage", exchange=n.dead_letter) as dead,
        running(TRIAGE, triage_settings),
    ):
        result = await attempt(
            orgs.url(settings, orgs.team),
            publish_to(
                n.inbound,
                "linkworker.registered.v1",
                json.dumps(forged).encode(),
                user_id=orgs.team,
            ),
        )
        assert result is None  # the broker lets the type through; triage refuses the PCN
        [answer] = await rejections.wait_count("event.rejected.v1", 1)
        assert answer["data"]["sender"] == orgs.team
        assert [r["code"] for r in answer["data"]["reasons"]] == ["not_permitted"]
        await dead.wait_for(lambda t: len(t.messages) == 1, what="dead letter")
        assert dead.messages[0][2]["x-linkwell-reason"] == "not_permitted"
    async with asyncpg_connect(settings) as conn:
        workers = await conn.fetchval(f"SELECT count(*) FROM {n.schema('triage')}.link_worker")
    assert workers == 0
