"""notify's dispatcher on a real database, with channels of the test's own: an outage
charges only the message that met it and holds the rest untried, everything held goes
as soon as the channel answers, a refused message backs off alone, and a crash between
a send and its mark repeats exactly the batch that was in flight, with the same keys.

The harness's transaction is never committed, so ``now()`` stands still: a message that
backs off is never due again by itself in these tests, only when it is released."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from services.notify import dispatcher as dispatching
from services.notify.channels import NotTried, Outgoing, Router
from services.notify.dispatcher import Dispatcher
from services.notify.domain import Medium

from ..support import accepted, internal


class Refused(Exception):
    """The relay answered no to this message (not an outage)."""


class Relay:
    """A channel: ``up`` or unreachable (refusing connections); refuses the keys in
    ``refuse`` one by one; keeps every key it delivered, in order."""

    def __init__(self, name: str, batch: int):
        self.name, self.batch = name, batch
        self.up = True
        self.refuse: set[str] = set()
        self.delivered: list[str] = []
        self.tries = 0
        self.probes = 0
        self.all_or_nothing = False

    def outage(self, error: Exception) -> bool:
        return isinstance(error, OSError)

    async def probe(self) -> None:
        self.probes += 1
        if not self.up:
            raise ConnectionRefusedError("relay down")

    async def send_many(self, messages: list[Outgoing]) -> list[Exception | None]:
        if self.all_or_nothing and not self.up:  # as the spool: one write for the batch
            self.tries += len(messages)
            return [OSError(28, "No space left on device")] * len(messages)
        out: list[Exception | None] = []
        for message in messages:
            self.tries += 1
            if not self.up:
                out.append(ConnectionRefusedError("relay down"))
                break
            if message.key in self.refuse:
                out.append(Refused("550 mailbox unavailable"))
                continue
            self.delivered.append(message.key)
            out.append(None)
        return out + [NotTried()] * (len(messages) - len(out))


class OnePool:
    """The harness's connection as a pool: each transaction of the dispatcher becomes a
    savepoint of the test's (rolled back, as its own transaction would be, if it fails)."""

    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        yield self.conn


def dispatcher_for(notify, email: Relay, sms: Relay | None = None, **kwargs: Any) -> Dispatcher:
    router = Router({Medium.EMAIL: email, Medium.SMS: sms or email})
    return Dispatcher(
        router,
        lambda conn, cid: notify.service.unit_of_work(conn, notify.names, cid, notify.settings),
        kwargs.pop("max_attempts", 15),
        dsn="unused",
        pool=OnePool(notify.conn),
        channel="unused",
        interval=1.0,
        batch=50,
    )


async def drain(d: Dispatcher, passes: int = 50) -> None:
    for _ in range(passes):
        if not await d.work():
            return
    raise AssertionError("the dispatcher never ran dry")


async def assign(notify, n: int) -> list[str]:
    """``n`` referrals assigned: two emails each (the person's, the team's). Their keys."""
    for _ in range(n):
        ref = accepted(contact={"preferred": "email", "email": "sam@example.org"})
        rid = ref["data"]["referral_id"]
        await notify.send(ref)
        await notify.send(internal("referral.assigned.v1", producer="triage", referral_id=rid))
    return [r["key"] for r in await notify.rows("SELECT key FROM notification ORDER BY id")]


async def state(notify) -> dict[str, tuple[int, bool, bool]]:
    """key -> (attempts, sent, held by an outage)."""
    rows = await notify.rows(
        "SELECT key, attempts, sent_at IS NOT NULL AS sent, held_by_outage FROM notification"
    )
    return {r["key"]: (r["attempts"], r["sent"], r["held_by_outage"]) for r in rows}


async def test_an_outage_charges_one_message_and_everything_goes_once_the_relay_answers(
    harness,
):
    notify = await harness("notify")
    relay = Relay("smtp", batch=1)
    d = dispatcher_for(notify, relay)
    await drain(d)  # probed first: the relay answers
    assert (relay.tries, relay.probes) == (0, 1)
    keys = await assign(notify, 2)
    relay.up = False

    await drain(d)
    first, *rest = keys
    assert await state(notify) == {first: (1, False, True)} | {k: (0, False, False) for k in rest}
    assert relay.tries == 1  # the rest were not tried: the relay is down

    await drain(d)  # before its probe is due: nothing tried, nothing probed
    assert (relay.tries, relay.probes) == (1, 1)

    d.states[id(relay)].probe_at = 0.0  # the probe is due; still down
    await drain(d)
    assert (relay.tries, relay.probes) == (1, 2)

    relay.up = True
    d.states[id(relay)].probe_at = 0.0
    await drain(d)
    # the held message went too, though its own backoff (1 s of a clock that stands
    # still) had not run out: the outage held it, not a refusal
    assert relay.probes == 3
    assert sorted(relay.delivered) == sorted(keys)
    assert await state(notify) == {first: (2, True, False)} | {k: (1, True, False) for k in rest}


async def test_a_spool_write_that_fails_charges_only_its_first_message(harness):
    """A spool's write fails for its whole batch (a full disk): the channel is down, the
    first message is charged and held, the others of the batch are not charged."""
    notify = await harness("notify")
    spool = Relay("spool", batch=50)
    d = dispatcher_for(notify, spool)
    await drain(d)  # probed: writable
    keys = await assign(notify, 2)
    spool.up, spool.all_or_nothing = False, True
    await drain(d)
    assert spool.tries == 4
    first, *rest = keys
    assert await state(notify) == {first: (1, False, True)} | {k: (0, False, False) for k in rest}
    assert d.states[id(spool)].down


async def test_a_dispatcher_started_during_an_outage_charges_nothing(harness):
    notify = await harness("notify")
    relay = Relay("smtp", batch=1)
    relay.up = False
    keys = await assign(notify, 1)
    for _ in range(3):  # three restarts, each probing first
        await drain(dispatcher_for(notify, relay))
    assert (relay.tries, relay.probes) == (0, 3)
    assert await state(notify) == {k: (0, False, False) for k in keys}


async def test_a_refused_message_backs_off_alone_and_the_channel_stays_up(harness):
    notify = await harness("notify")
    relay = Relay("smtp", batch=1)
    d = dispatcher_for(notify, relay)
    keys = await assign(notify, 2)
    relay.refuse = {keys[0]}

    await drain(d)
    assert relay.delivered == keys[1:]
    assert await state(notify) == {keys[0]: (1, False, False)} | {
        k: (1, True, False) for k in keys[1:]
    }
    assert not d.states[id(relay)].down and relay.probes == 1  # the first, at start
    relay.refuse = set()
    await drain(d)  # a refusal is not an outage: nothing releases it before its backoff
    assert relay.delivered == keys[1:]


class Crash(BaseException):
    """Stands for the process dying at a failpoint (which would ``os._exit``)."""


@pytest.mark.parametrize(("name", "batch"), [("smtp", 1), ("spool", 50)])
async def test_a_crash_between_a_send_and_its_mark_repeats_only_the_batch_in_flight(
    harness, monkeypatch, name, batch
):
    notify = await harness("notify")
    relay = Relay(name, batch=batch)
    d = dispatcher_for(notify, relay)
    keys = await assign(notify, 3)
    crashes = []

    def failpoint(point: str) -> None:
        if point == "after_send" and not crashes:
            crashes.append(list(relay.delivered))
            raise Crash

    monkeypatch.setattr(dispatching, "failpoint", failpoint)
    with pytest.raises(Crash):
        await drain(d)
    in_flight = crashes[0]
    assert in_flight == keys[:batch]  # one email, or the spool's whole batch

    restarted = dispatcher_for(notify, relay)  # a new process: what was not marked is due
    await drain(restarted)
    assert sorted(relay.delivered) == sorted(keys + in_flight)  # each repeat once
    assert {k for k in relay.delivered if relay.delivered.count(k) > 1} == set(in_flight)
    assert await state(notify) == {k: (1, True, False) for k in keys}


async def test_each_message_sent_is_on_the_audit_trail_and_one_not_sent_is_not(harness):
    notify = await harness("notify")
    relay = Relay("smtp", batch=10)
    d = dispatcher_for(notify, relay)
    await drain(d)
    keys = await assign(notify, 1)
    relay.up = False
    await drain(d)
    assert await audited_notifications(notify) == []  # nothing left: nothing recorded
    relay.up = True
    d.states[id(relay)].probe_at = 0.0
    await drain(d)
    assert sorted(relay.delivered) == sorted(keys)
    assert sorted(await audited_notifications(notify)) == [
        ("person", None, "email"),
        ("team", "U12345", "email"),
    ]


async def audited_notifications(notify) -> list[tuple[str, str | None, str]]:
    import json

    rows = await notify.rows("SELECT body FROM outbox WHERE event_type = 'audit.recorded.v1'")
    found = [json.loads(r["body"])["data"] for r in rows]
    return [
        (d["recipient_kind"], d.get("recipient_org"), d["detail"]["medium"])
        for d in found
        if d["action"] == "notification"
    ]
