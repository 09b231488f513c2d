"""notify's deliveries against a real SMTP server that refuses: a refused send is retried,
backing off, until it succeeds; one refused every time is given up after
LINKWELL_NOTIFY_MAX_ATTEMPTS, counted, and the team told by notification.failed.v1."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from prometheus_client import REGISTRY
from yarl import URL

from contracts import CloudEvent
from services.notify.app import SERVICE as NOTIFY
from services.notify.settings import NotifySettings
from services.runtime import db
from services.runtime.handling import handle
from services.runtime.runner import Runner

from ..support import Tap, TcpProxy, accepted, announced_to, emit, internal

pytestmark = pytest.mark.integration


class Refusing:
    """An SMTP server's handler: refuses the first ``refusals`` messages (each recipient
    with 550), then accepts."""

    def __init__(self, refusals: int):
        self.refusals = refusals
        self.tries = 0
        self.delivered: list[list[str]] = []

    async def handle_RCPT(self, server, session, envelope, address, options):
        self.tries += 1
        if self.tries <= self.refusals:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.delivered.append(list(envelope.rcpt_tos))
        return "250 OK"


async def rows(settings) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await conn.fetch(
            f"SELECT audience, attempts, sent_at, failed_at, last_error FROM "
            f'"{settings.names.schema("notify")}".notification ORDER BY id'
        )
    finally:
        await conn.close()


async def until(predicate, within: float = 20.0) -> None:
    for _ in range(int(within / 0.1)):
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


def given_up_count(audience: str) -> float:
    value = REGISTRY.get_sample_value(
        "linkwell_notifications_given_up_total", {"audience": audience, "medium": "email"}
    )
    return value or 0.0


async def assign_one(settings, deliver: bool = True) -> str:
    """A referral accepted and assigned: two emails queued (the person's, the team's).
    Without ``deliver``, they are written to notify's tables directly, as another
    replica would, without any running notify's consumer or database connection."""
    ref = accepted(contact={"preferred": "email", "email": "sam@example.org"})
    rid = ref["data"]["referral_id"]
    assigned = internal("referral.assigned.v1", producer="triage", referral_id=rid)
    if deliver:
        await emit(settings, ref)
        await emit(settings, assigned)
        return rid
    conn = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": settings.names.schema("notify")}
    )
    try:
        await db.init_connection(conn)
        uow = NOTIFY.unit_of_work(conn, settings.names, None, NotifySettings())
        for envelope in (announced_to(ref, "referral.contact.v1"), assigned):
            event = CloudEvent[Any].model_validate(envelope)
            route = NOTIFY.routes[envelope["type"]]
            async with conn.transaction():
                await handle(uow, route, event, route.model.model_validate(envelope["data"]))
                await uow.flush()
    finally:
        await conn.close()
    return rid


async def test_a_refused_send_is_retried_until_it_goes(settings, unused_tcp_port):
    handler = Refusing(refusals=2)
    smtp = Controller(handler, hostname="127.0.0.1", port=unused_tcp_port)
    smtp.start()
    own = NotifySettings(notify_channel="smtp", smtp_port=unused_tcp_port, notify_max_attempts=5)
    runner = Runner(NOTIFY, settings, own)
    await runner.start()
    try:
        async with Tap(settings, "notification.failed.v1.*") as failures:
            await assign_one(settings)
            await until(lambda: _all_sent(settings))
            await asyncio.sleep(0.3)
        assert failures.messages == []
    finally:
        await runner.stop()
        smtp.stop()
    sent = await rows(settings)
    assert [r["audience"] for r in sent] == ["person", "team"]
    assert sum(r["attempts"] for r in sent) == 4  # two refusals, two deliveries
    assert all(r["failed_at"] is None for r in sent)
    assert "550" in "".join(r["last_error"] or "" for r in sent)
    assert sorted(r for rcpts in handler.delivered for r in rcpts) == [
        "sam@example.org",
        "social-prescribing-U12345@linkwell.invalid",
    ]


async def _all_sent(settings) -> bool:
    current = await rows(settings)
    return len(current) == 2 and all(r["sent_at"] is not None for r in current)


async def test_a_send_refused_every_time_is_given_up_and_the_team_told(settings, unused_tcp_port):
    smtp = Controller(Refusing(refusals=10_000), hostname="127.0.0.1", port=unused_tcp_port)
    smtp.start()
    own = NotifySettings(notify_channel="smtp", smtp_port=unused_tcp_port, notify_max_attempts=3)
    before = given_up_count("person"), given_up_count("team")
    runner = Runner(NOTIFY, settings, own)
    await runner.start()
    try:
        async with Tap(settings, "notification.failed.v1.*") as failures:
            rid = await assign_one(settings)
            told = await failures.wait_count("notification.failed.v1", 2, within=30)
    finally:
        await runner.stop()
        smtp.stop()
    assert {(t["data"]["audience"], t["data"]["attempts"]) for t in told} == {
        ("person", 3),
        ("team", 3),
    }
    assert {t["data"]["referral_id"] for t in told} == {rid}
    assert failures.keys("notification.failed.v1") == ["notification.failed.v1.U12345"] * 2
    assert "sam@example.org" not in str(told)  # no address travels
    given_up = await rows(settings)
    assert all(r["failed_at"] is not None and r["sent_at"] is None for r in given_up)
    assert all(r["attempts"] == 3 for r in given_up)
    assert (given_up_count("person"), given_up_count("team")) == (before[0] + 1, before[1] + 1)


class Recording:
    """An SMTP server's handler that accepts everything and keeps each message."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, object]] = []

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes

        self.messages.append((time.monotonic(), message_from_bytes(envelope.content)))
        return "250 OK"


async def test_mail_queued_while_the_relay_was_down_goes_within_seconds_of_its_return(
    settings, unused_tcp_port
):
    """The relay goes away (it refuses connections) and six messages are queued; 20 s
    later it is back, and every one of them is delivered within a few seconds, not after
    a backoff that grew through the outage; only the message that met the outage was
    charged an attempt."""
    own = NotifySettings(notify_channel="smtp", smtp_port=unused_tcp_port, notify_max_attempts=15)
    handler = Recording()
    before = Controller(handler, hostname="127.0.0.1", port=unused_tcp_port)
    before.start()
    runner = Runner(NOTIFY, settings, own)
    await runner.start()
    smtp = Controller(handler, hostname="127.0.0.1", port=unused_tcp_port)
    try:
        await asyncio.sleep(1.0)  # the dispatcher has found the relay
        before.stop()
        for _ in range(3):
            await assign_one(settings)
        await until(lambda: _queued(settings, 6))
        await asyncio.sleep(20.0)  # the relay is away
        assert handler.messages == []
        smtp.start()
        back = time.monotonic()
        await until(lambda: _sent(settings, 6), within=30.0)
        took = time.monotonic() - back
    finally:
        await runner.stop()
        smtp.stop()
    assert took < 5.0, f"the last message went {took:.1f} s after the relay returned"
    assert len(handler.messages) == 6
    current = await rows(settings)
    # the relay's outage charged the one message that met it, no other
    assert sorted(r["attempts"] for r in current) == [1, 1, 1, 1, 1, 2]
    assert all(r["failed_at"] is None for r in current)


async def _queued(settings, n: int) -> bool:
    return len(await rows(settings)) == n


async def _sent(settings, n: int) -> bool:
    current = await rows(settings)
    return len(current) == n and all(r["sent_at"] is not None for r in current)


async def test_a_dispatcher_whose_listening_connection_was_lost_still_sends_at_once(
    settings, tmp_path
):
    """The dispatcher's LISTEN connection is terminated (as a database restart would):
    the next message queued still goes at once, not at the next safety poll (30 s
    here)."""
    slow_poll = settings.model_copy(update={"poll_interval": 30.0})
    runner = Runner(NOTIFY, slow_poll, NotifySettings(notify_spool_dir=tmp_path))
    await runner.start()
    channel = f"{settings.names.schema('notify')}_dispatch"
    conn = await asyncpg.connect(settings.database_url)
    try:
        listening = "SELECT pid FROM pg_stat_activity WHERE query = $1"
        await until(lambda: _one(conn, listening, f'LISTEN "{channel}"'))
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1",
            f'LISTEN "{channel}"',
        )
        await asyncio.sleep(1.0)  # the dispatcher has been idle since, waiting
        await assign_one(settings)
        queued = time.monotonic()
        await until(lambda: _sent(settings, 2), within=20.0)
        took = time.monotonic() - queued
    finally:
        await conn.close()
        await runner.stop()
    assert took < 5.0, f"sent {took:.1f} s after it was queued"
    spooled = (tmp_path / settings.namespace / "email.jsonl").read_text().splitlines()
    assert len(spooled) == 2


async def _one(conn: asyncpg.Connection, sql: str, *args) -> bool:
    return len(await conn.fetch(sql, *args)) == 1


async def test_messages_queued_while_notify_lost_its_database_go_within_seconds_of_its_return(
    settings, tmp_path
):
    """notify loses its database for 15 s (its connections cut, new ones refused) while
    two messages are queued (by another replica, say): they are spooled within a few
    seconds of the database's return, not after a wait that grew through the outage."""
    db = URL(settings.database_url)
    proxy = await TcpProxy(db.host or "127.0.0.1", db.port or 5432).start()
    away = settings.model_copy(update={"database_url": proxy.url(settings.database_url)})
    runner = Runner(NOTIFY, away, NotifySettings(notify_spool_dir=tmp_path))
    await runner.start()
    try:
        await proxy.cut()
        await assign_one(settings, deliver=False)
        await asyncio.sleep(15.0)
        assert not (tmp_path / settings.namespace / "email.jsonl").exists()
        await proxy.restore()
        back = time.monotonic()
        await until(lambda: _sent(settings, 2), within=30.0)
        took = time.monotonic() - back
    finally:
        await runner.stop()
        await proxy.cut()
    assert took < 4.0, f"sent {took:.1f} s after the database returned"
