"""Crashes mid-stream: every referral still reaches exactly one outcome, no capacity is
exceeded, and no GP writeback is sent twice.

Each assigned person's journey goes on through the crashes: a first contact, a plan, a
baseline SWEMWBS, and for every third an episode closed.

Two ways to crash: ``kill -9`` at arbitrary moments, and failpoints that kill a process at
exact boundaries (after the inbox claim, before commit, after commit but before the ack,
after publishing the outbox but before marking it, after notify's dispatcher sent a batch
but before marking it, after parking a retry).

Notifications are counted too: once the run is over every queued one has gone, and a
crash repeated at most the batch that was in flight (an email over SMTP, up to 50 spool
lines), each copy with the key of the first."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime
from email import message_from_bytes
from pathlib import Path

import asyncpg
import pytest
from aiosmtpd.controller import Controller

from services.notify.channels import KEY_HEADER, FileChannel
from services.runtime.failpoints import POINTS

from ..stack import ProcessStack
from ..support import Tap, accepted, emit, inbound, internal, publish, submission, worker

pytestmark = pytest.mark.e2e

# LINKWELL_CRASH_REFERRALS=10000 makes the kill -9 scenario a long chaos run: a round of
# six kills for every thousand referrals, spread over the stream (not for CI: minutes).
N = int(os.environ.get("LINKWELL_CRASH_REFERRALS", "60"))
PCNS = ("U41001", "U41002")
WORKERS = max(1, -(-N // 1200))  # link workers per PCN: at most 400 places each
PLACES = max(20, N // 3 // WORKERS)  # per worker
CAPACITY = PLACES * WORKERS  # per PCN: 40 places for 60 referrals, about two thirds
WAIT = 120 + N * 0.05  # seconds for each stage of the scenario to settle

Disrupt = Callable[[], Awaitable[None]]


async def nothing() -> None:
    return None


async def run_scenario(
    settings, stack: ProcessStack, during_referrals: Disrupt, during_contacts: Disrupt
) -> tuple[Tap, dict[str, str]]:
    """Returns the tap and the episodes closed (referral id -> its worker)."""
    async with Tap(settings) as tap:
        for pcn in PCNS:
            for w in range(WORKERS):
                name = f"lw-{pcn}" if WORKERS == 1 else f"lw-{pcn}-{w}"
                await publish(settings, worker(pcn, name, PLACES))
        await asyncio.sleep(0.5)
        refs = [submission(pcn=PCNS[i % 2]) for i in range(N)]

        async def stream() -> None:
            for i, ref in enumerate(refs):
                await publish(settings, ref)
                if i % 3 == 0:
                    await publish(settings, ref)  # and some redeliveries
                await asyncio.sleep(0.01)

        await asyncio.gather(stream(), during_referrals())

        def placed(t: Tap) -> int:
            ids = {e["data"]["referral_id"] for e in t.events("referral.assigned.v1")}
            ids |= {e["data"]["referral_id"] for e in t.events("referral.waitlisted.v1")}
            return len(ids)

        await tap.wait_for(lambda t: placed(t) >= N, WAIT, f"{N} referrals placed")
        assigned = {e["data"]["referral_id"]: e for e in tap.events("referral.assigned.v1")}

        def written(t: Tap) -> int:
            return len(
                {(w["data"]["referral_id"], w["data"]["fact"]) for w in t.events("gp.writeback.v1")}
            )

        async def journey() -> None:
            """Each assigned person: a first contact, a plan and a baseline measure."""
            for rid, event in assigned.items():
                pcn = event["data"]["pcn"]
                for event_type, data in [
                    ("contact.recorded.v1", {"outcome": "engaged"}),
                    ("plan.agreed.v1", {}),
                    (
                        "wellbeing.measured.v1",
                        {"instrument": "swemwbs", "point": "baseline", "items": [3] * 7},
                    ),
                ]:
                    await publish(settings, inbound(event_type, pcn, referral_id=rid, **data))
                await asyncio.sleep(0.01)

        await asyncio.gather(journey(), during_contacts())
        await tap.wait_for(
            lambda t: written(t) >= 3 * len(assigned), WAIT + 60, "3 writebacks each"
        )
        closing = list(assigned.items())[::3]  # weeks later: every third episode ends
        for rid, event in closing:
            closure = inbound(
                "referral.closed.v1", event["data"]["pcn"], referral_id=rid, reason="completed"
            )
            await publish(settings, closure)
        await tap.wait_for(
            lambda t: written(t) >= 3 * len(assigned) + len(closing), WAIT, "closing summaries"
        )

        def placed_from_waitlist(t: Tap) -> int:
            ids = {e["data"]["referral_id"] for e in t.events("referral.assigned.v1")}
            return len(ids - set(assigned))

        def told(t: Tap, status: str) -> int:
            return len(
                {s["data"]["referral_id"] for s in t.events("referral.status.v1", status=status)}
            )

        def placements(t: Tap, event_type: str) -> int:
            return len({e["data"]["referral_id"] for e in t.events(event_type)})

        await tap.wait_for(
            lambda t: (
                told(t, "in_progress") >= len(assigned)
                and told(t, "closed") >= len(closing)
                # each closure frees a place that the head of the waitlist takes
                and placements(t, "referral.assigned.v1") >= 2 * CAPACITY + len(closing)
                and told(t, "assigned") >= placements(t, "referral.assigned.v1")
                and told(t, "waitlisted") >= placements(t, "referral.waitlisted.v1")
            ),
            WAIT,
            "every referrer told of every placement, take-up and closure",
        )
        # each closure frees a place for the head of its PCN's waitlist: triage's own
        # decision, which a crash of triage can delay past the referrers' news
        await tap.wait_for(
            lambda t: placed_from_waitlist(t) >= len(closing),
            WAIT,
            "a waiting referral placed for each closure",
        )
        await asyncio.sleep(1.5)  # anything sent twice would have arrived by now
    return tap, {rid: event["data"]["link_worker_id"] for rid, event in closing}


def assert_exactly_once(tap: Tap, closed: dict[str, str]) -> None:
    def distinct(event_type: str, key) -> dict:
        seen: dict = defaultdict(set)
        for e in tap.events(event_type):
            seen[key(e["data"])].add(e["id"])  # a re-published event keeps its id
        return seen

    accepted = distinct("referral.accepted.v1", lambda d: d["sender_reference"])
    assert len(accepted) == N
    assert all(len(ids) == 1 for ids in accepted.values()), "a referral was accepted twice"

    assignments = distinct("referral.assigned.v1", lambda d: d["referral_id"])
    waitlistings = distinct("referral.waitlisted.v1", lambda d: d["referral_id"])
    assert all(len(ids) == 1 for ids in assignments.values()), "assigned twice"
    assert all(len(ids) == 1 for ids in waitlistings.values()), "waitlisted twice"
    # each closed episode freed a place for the head of its PCN's waitlist
    assert len(assignments) == 2 * CAPACITY + len(closed)
    # every referral reached a decision; those still waiting are exactly the rest (a
    # referral that came before its PCN's roster was waitlisted, then placed: fine)
    assert len(set(assignments) | set(waitlistings)) == N
    assert len(set(waitlistings) - set(assignments)) == N - len(assignments)

    workers = {
        e["data"]["referral_id"]: e["data"]["link_worker_id"]
        for e in tap.events("referral.assigned.v1")
    }
    per_worker: dict[str, int] = defaultdict(int)
    for worker_id in workers.values():
        per_worker[worker_id] += 1
    freed: dict[str, int] = defaultdict(int)
    for worker_id in closed.values():
        freed[worker_id] += 1
    assert all(n <= PLACES + freed[w] for w, n in per_worker.items()), per_worker

    writebacks = distinct("gp.writeback.v1", lambda d: (d["referral_id"], d["fact"]))
    facts = defaultdict(int)
    for _referral, fact in writebacks:
        facts[fact] += 1
    journeys = 2 * CAPACITY  # the people assigned before the closures
    assert facts == {
        "accepted": journeys,
        "plan": journeys,
        "wellbeing": journeys,
        "closed": len(closed),
    }, facts
    assert all(len(ids) == 1 for ids in writebacks.values()), "a GP writeback was sent twice"
    # every referrer heard of each step of its referral once
    steps = distinct("referral.status.v1", lambda d: (d["referral_id"], d["status"]))
    twice = {k: ids for k, ids in steps.items() if len(ids) > 1 and k[1] != "duplicate"}
    assert not twice, f"a referrer was told a step twice: {twice}"  # (each resend is answered)
    assert sum(1 for _rid, status in steps if status == "in_progress") == journeys
    assert {rid for rid, status in steps if status == "closed"} == set(closed)
    assert_every_step_told_in_order(tap, set(assignments), set(waitlistings), closed)


async def assert_every_disclosure_on_the_trail_once(settings, tap: Tap) -> None:
    """Each event published to an organisation has exactly one record on the audit trail
    (however often the outbox published it, whatever the crashes), and the chain holds."""
    import asyncpg

    from services.audit import domain
    from services.audit.store import chain
    from services.runtime.audit import DISCLOSED

    disclosed = {e["id"] for t in DISCLOSED for e in tap.events(t)}
    conn = await asyncpg.connect(settings.database_url)
    try:
        schema = settings.names.schema("audit")
        for _ in range(300):
            rows = await chain(conn, schema)
            told = [r.detail.get("event_id") for r, _, _ in rows if "type" in r.detail]
            if set(told) >= disclosed:
                break
            await asyncio.sleep(0.1)
        assert disclosed, "nothing was disclosed"
        missing = disclosed - set(told)
        assert not missing, f"{len(missing)} disclosures not on the trail"
        assert len(told) == len(set(told)), "a disclosure was recorded twice"
        assert domain.verify(rows)[1] is None
    finally:
        await conn.close()


# the Gravity task lifecycle: a referrer's task status never goes back down it
_RANK = {"received": 0, "accepted": 1, "in-progress": 2, "on-hold": 2, "completed": 3}


def assert_every_step_told_in_order(
    tap: Tap, assigned: set[str], waitlisted: set[str], closed: dict[str, str]
) -> None:
    """Each referrer was told every step of its referral (however the crashes reordered
    the events that carried them), and in the order it was told, the task status never
    went backwards."""
    journeyed = {
        e["data"]["referral_id"]
        for e in tap.events("referral.updated.v1")
        if e["data"]["step"] == "in_progress"
    }
    told: dict[str, list[dict]] = defaultdict(list)
    seen: set[str] = set()
    for s in tap.events("referral.status.v1"):
        if s["data"]["status"] != "duplicate" and s["id"] not in seen:
            seen.add(s["id"])  # the outbox may publish an event again: with the same id
            told[s["data"]["referral_id"]].append(s["data"])
    for rid in assigned | waitlisted:
        expected = {"accepted"}
        expected |= {"assigned"} if rid in assigned else set()
        expected |= {"waitlisted"} if rid in waitlisted else set()
        expected |= {"in_progress"} if rid in journeyed else set()
        expected |= {"closed"} if rid in closed else set()
        steps = [d["status"] for d in told[rid]]
        assert sorted(steps) == sorted(expected), f"{rid}: told {steps}, happened {expected}"
        in_telling_order = sorted(told[rid], key=lambda d: datetime.fromisoformat(d["at"]))
        ranks = [_RANK[d["task_status"]] for d in in_telling_order]
        assert ranks == sorted(ranks), f"{rid}: task status went back: {in_telling_order}"


async def test_kill_9_mid_stream_loses_nothing_and_duplicates_nothing(settings, stack):
    rounds = max(1, N // 1000)  # 60 referrals: one round; 10,000: ten, 60 kills

    async def havoc() -> None:
        for r in range(rounds):
            if r:
                await asyncio.sleep(N * 0.012 / rounds)  # spread over the stream
            for name in ("triage", "intake", "outcomes", "audit", "notify", "triage"):
                await asyncio.sleep(0.25)
                stack.kill(name)
                await asyncio.sleep(0.2)
                stack.start(name)
            await stack.wait_ready()

    async def more_havoc() -> None:
        await asyncio.sleep(0.2)
        stack.kill("outcomes")
        await asyncio.sleep(0.3)
        stack.start("outcomes")

    tap, closed = await run_scenario(settings, stack, havoc, more_havoc)
    assert_exactly_once(tap, closed)
    await assert_notifications_settled(settings, stack, lambda: 1)
    await assert_every_disclosure_on_the_trail_once(settings, tap)


async def test_crashes_at_every_commit_boundary_lose_nothing(settings, tmp_path: Path):
    stack = ProcessStack(settings, tmp_path)
    stack.env["LINKWELL_FAILPOINTS"] = ",".join(f"{point}=0.02" for point in POINTS)
    await stack.start_all()
    supervisor = asyncio.create_task(stack.supervise())
    try:
        tap, closed = await run_scenario(settings, stack, nothing, nothing)
        await assert_notifications_settled(settings, stack, lambda: stack.restarts.get("notify", 0))
        await assert_every_disclosure_on_the_trail_once(settings, tap)  # audit crashes too
    finally:
        supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervisor
        stack.stop_all()
    assert sum(stack.restarts.values()) >= 3, f"too few crashes to mean much: {stack.restarts}"
    assert_exactly_once(tap, closed)


async def test_a_crash_in_the_middle_of_a_batch_loses_and_duplicates_nothing(
    settings, tmp_path: Path
):
    """Referrals that queued up while intake was away are handled in batches; intake dies
    half-way through its first batch of several (failpoint ``mid_batch``, certain), with
    some of the batch's handlers run and nothing committed. Started again without the
    failpoint, it accepts every referral exactly once."""
    n = 40
    stack = ProcessStack(settings, tmp_path, services=("intake",))
    await stack.start_all()  # its schema and queues
    assert stack.terminate("intake") == 0
    async with Tap(settings, "referral.accepted.v1.#") as tap:
        refs = [submission() for _ in range(n)]
        for ref in refs:
            await publish(settings, ref)
        stack.env["LINKWELL_FAILPOINTS"] = "mid_batch=1"
        stack.start("intake")
        crashed = stack.procs["intake"].wait(60)
        assert crashed == 137, stack.tail("intake")
        assert '"point": "mid_batch"' in stack.tail("intake")
        before = len(tap.events("referral.accepted.v1"))
        assert before < n  # the batch's referrals were not accepted before the crash

        stack.env.pop("LINKWELL_FAILPOINTS")
        stack.start("intake")
        try:
            await tap.wait_for(
                lambda t: len(t.events("referral.accepted.v1")) >= n, 60, "every referral"
            )
            await asyncio.sleep(1.0)  # time for a duplicate to show
        finally:
            stack.stop_all()
    accepted = defaultdict(set)
    for event in tap.events("referral.accepted.v1"):
        accepted[event["data"]["sender_reference"]].add(event["data"]["referral_id"])
    assert set(accepted) == {r["data"]["sender_reference"] for r in refs}
    assert all(len(ids) == 1 for ids in accepted.values()), "a referral was accepted twice"


async def pending_notifications(settings) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await conn.fetch(
            "SELECT key, sent_at, attempts, held_by_outage, last_error,"
            " next_attempt_at - now() AS due_in"
            f' FROM "{settings.names.schema("notify")}".notification'
            " WHERE failed_at IS NULL AND cancelled_at IS NULL ORDER BY id"
        )
    finally:
        await conn.close()


def spooled(stack: ProcessStack, settings) -> list[dict]:
    lines = []
    for path in sorted((stack.log_dir / "spool" / settings.namespace).glob("*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines()]
    return lines


async def assert_notifications_settled(
    settings, stack: ProcessStack, crashes: Callable[[], int]
) -> None:
    """Every queued notification goes within seconds of the run's end (none waits),
    and what went twice is at most a spool batch for each crash of notify, each copy as
    the first."""
    for _ in range(100):
        rows = await pending_notifications(settings)
        if all(r["sent_at"] is not None for r in rows):
            break
        await asyncio.sleep(0.1)
    unsent = [dict(r) for r in rows if r["sent_at"] is None]
    assert not unsent, f"{len(unsent)} notifications still unsent: {unsent}"
    lines = spooled(stack, settings)
    assert {r["key"] for r in rows} == {line["key"] for line in lines}
    copies: dict[str, set[str]] = defaultdict(set)
    for line in lines:
        copies[line["key"]].add(json.dumps({**line, "queued_at": None}, sort_keys=True))
    assert all(len(texts) == 1 for texts in copies.values()), "a repeat differs from its first"
    repeats = len(lines) - len(copies)
    assert repeats <= crashes() * FileChannel.batch, (repeats, crashes())


class Mailbox:
    """An SMTP server's handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


async def crash_after_the_first_send(settings, stack: ProcessStack, referrals: int) -> None:
    """notify is started (its queue and bindings), stopped, sent ``referrals`` assigned
    referrals, and started again to die at its first ``after_send``."""
    await stack.start_all()
    assert stack.terminate("notify") == 0
    for _ in range(referrals):
        ref = accepted(contact={"preferred": "email", "email": "sam@example.org"})
        rid = ref["data"]["referral_id"]
        await emit(settings, ref)
        await emit(settings, internal("referral.assigned.v1", producer="triage", referral_id=rid))
    stack.env["LINKWELL_FAILPOINTS"] = "after_send=1"
    stack.start("notify")
    assert stack.procs["notify"].wait(60) == 137, stack.tail("notify")
    assert '"point": "after_send"' in stack.tail("notify")
    stack.env.pop("LINKWELL_FAILPOINTS")


async def until_sent(settings, n: int, within: float = 60.0) -> list[asyncpg.Record]:
    for _ in range(int(within / 0.2)):
        rows = await pending_notifications(settings)
        if len(rows) == n and all(r["sent_at"] is not None for r in rows):
            return rows
        await asyncio.sleep(0.2)
    raise AssertionError(f"not all {n} notifications sent: {rows}")


async def test_a_crash_between_an_email_and_its_mark_repeats_that_email_alone(
    settings, tmp_path: Path, unused_tcp_port: int
):
    """notify dies right after the relay accepted its first email (failpoint
    ``after_send``), before marking it. Started again, it sends every email; the one in
    flight goes a second time, with the same Message-ID and X-Linkwell-Key, and no other
    goes twice."""
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=unused_tcp_port)
    smtp.start()
    stack = ProcessStack(settings, tmp_path, services=("notify",))
    stack.env |= {"LINKWELL_NOTIFY_CHANNEL": "smtp", "LINKWELL_SMTP_PORT": str(unused_tcp_port)}
    try:
        await crash_after_the_first_send(settings, stack, referrals=4)
        assert len(mailbox.messages) == 1  # sent, then the process died
        [in_flight] = mailbox.messages
        stack.start("notify")
        rows = await until_sent(settings, 8)
        await asyncio.sleep(1.0)  # time for anything else to go twice
    finally:
        stack.stop_all()
        smtp.stop()
    keys = Counter(m[KEY_HEADER] for m in mailbox.messages)
    assert set(keys) == {r["key"] for r in rows}
    assert {k for k, n in keys.items() if n > 1} == {in_flight[KEY_HEADER]}
    assert keys[in_flight[KEY_HEADER]] == 2
    again = [m for m in mailbox.messages[1:] if m[KEY_HEADER] == in_flight[KEY_HEADER]]
    assert [m["Message-ID"] for m in again] == [in_flight["Message-ID"]]
    assert in_flight["Message-ID"] == f"<{in_flight[KEY_HEADER]}@linkwell>"


async def test_a_crash_between_a_spool_write_and_its_mark_repeats_that_batch_alone(
    settings, tmp_path: Path
):
    """The same for the spool: the lines written by the batch in flight are written
    again, each identical but for ``queued_at``; nothing else is."""
    stack = ProcessStack(settings, tmp_path, services=("notify",))
    try:
        await crash_after_the_first_send(settings, stack, referrals=4)
        in_flight = [line["key"] for line in spooled(stack, settings)]
        assert 1 <= len(in_flight) <= FileChannel.batch
        stack.start("notify")
        rows = await until_sent(settings, 8)
        await asyncio.sleep(1.0)
    finally:
        stack.stop_all()
    lines = spooled(stack, settings)
    keys = Counter(line["key"] for line in lines)
    assert set(keys) == {r["key"] for r in rows}
    assert {k for k, n in keys.items() if n > 1} == set(in_flight)
    assert all(keys[k] == 2 for k in in_flight)
