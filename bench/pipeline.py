"""End-to-end benchmark of the Linkwell pipeline against plain aio-pika baselines.

    .venv/bin/python bench/pipeline.py --n 500

Starts intake, triage, notify and outcomes as separate processes in a fresh namespace,
registers a link-worker roster, publishes N referral.submitted.v1 to <ns>.inbound,
answers every referral.assigned.v1 with a contact.recorded.v1 ("engaged"), and times
publish -> referral.assigned.v1 and contact -> gp.writeback.v1 (fact accepted). In the
same run it times plain aio-pika messages of the same size through chains of 1..k durable
quorum queues (persistent, publisher confirms, consumer acks, one forwarding process per
hop) and reports the ratios. Results go to bench/results/<timestamp>.json and service logs
to bench/results/<timestamp>-<namespace>/. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import multiprocessing as mp
import os
import platform
import random
import resource
import shutil
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aio_pika  # noqa: E402
import asyncpg  # noqa: E402

from services.ops.client import broker_user  # noqa: E402
from services.registry import SERVICE_DEFS  # noqa: E402
from services.runtime import topology  # noqa: E402
from services.runtime.db import drop_schema  # noqa: E402
from services.runtime.settings import Settings  # noqa: E402
from tests.stack import ALL as SERVICES  # noqa: E402
from tests.stack import ProcessStack  # noqa: E402
from tests.support import inbound, submission, worker  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CONTENT_TYPE = "application/cloudevents+json"
now = time.perf_counter  # every timestamp in this file comes from this one clock


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ statistics


def percentile(sorted_values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return math.nan
    k = (len(sorted_values) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def summary(seconds: list[float]) -> dict[str, Any]:
    values = sorted(v * 1000.0 for v in seconds)
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "min_ms": round(values[0], 2),
        "p50_ms": round(percentile(values, 50), 2),
        "p95_ms": round(percentile(values, 95), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(values[-1], 2),
        "mean_ms": round(sum(values) / len(values), 2),
    }


def rate(count: int, start: float | None, end: float | None) -> float | None:
    if not count or start is None or end is None or end <= start:
        return None
    return round(count / (end - start), 1)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or (isinstance(a, float) and math.isnan(a)):
        return None
    return round(a / b, 3)


# ------------------------------------------------------------------ publishing


class Publisher:
    """One channel with publisher confirms; at most ``window`` publishes awaiting their
    confirm. The send time is taken when a publish actually leaves (slot acquired), so
    the benchmark's own client-side queueing is not counted as latency."""

    def __init__(
        self,
        channel: aio_pika.abc.AbstractChannel,
        exchange: Any,
        window: int,
        user: str | None = None,
    ):
        self.channel = channel
        self.user = user
        self.exchange = exchange
        self.slots = asyncio.Semaphore(window)
        self.tasks: set[asyncio.Task[None]] = set()
        self.errors: list[str] = []
        self.last_confirm: float | None = None

    async def publish(
        self,
        body: bytes,
        routing_key: str,
        on_sent: Callable[[float], None],
        message_id: str | None = None,
    ) -> None:
        async with self.slots:
            on_sent(now())
            try:
                await self.exchange.publish(
                    aio_pika.Message(
                        body,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        content_type=CONTENT_TYPE,
                        message_id=message_id,
                        user_id=self.user,
                    ),
                    routing_key=routing_key,
                    timeout=30,
                )
                self.last_confirm = now()
            except Exception as exc:  # recorded and reported; the waits time out
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def submit(
        self,
        body: bytes,
        routing_key: str,
        on_sent: Callable[[float], None],
        message_id: str | None = None,
    ) -> None:
        task = asyncio.create_task(self.publish(body, routing_key, on_sent, message_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, within: float) -> None:
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=within)


async def offer(
    pub: Publisher,
    items: list[tuple[bytes, str, Callable[[float], None], str | None]],
    per_second: float,
) -> None:
    """Hand every item to the publisher: all at once (per_second 0) or paced, open loop."""
    start = now()
    for i, (body, key, on_sent, mid) in enumerate(items):
        if per_second > 0:
            delay = start + i / per_second - now()
            if delay > 0:
                await asyncio.sleep(delay)
        pub.submit(body, key, on_sent, mid)
        if per_second <= 0 and i % 64 == 63:
            await asyncio.sleep(0)  # let publishes start while we build the rest


async def wait_until(
    predicate: Callable[[], bool],
    deadline: float,
    what: str,
    progress: Callable[[], int] | None = None,
    stall: float = 0.0,
) -> bool:
    """Poll ``predicate`` until true, the deadline, or no progress for ``stall`` seconds."""
    last, last_change = (progress() if progress else 0), now()
    while not predicate():
        t = now()
        if t > deadline:
            log(f"timed out waiting for {what}")
            return False
        if progress:
            current = progress()
            if current != last:
                last, last_change = current, t
            elif stall and t - last_change > stall:
                log(f"no progress for {stall:.0f}s waiting for {what}; giving up")
                return False
        await asyncio.sleep(0.05)  # times are taken in the callbacks, not here
    return True


# ------------------------------------------------------------------ baseline


def _forwarder_main(amqp_url: str, source: str, target: str, prefetch: int, ready: Any) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_forward(amqp_url, source, target, prefetch, ready))


async def _forward(amqp_url: str, source: str, target: str, prefetch: int, ready: Any) -> None:
    """One hop, done the way a service does it: consume, publish on (persistent,
    confirmed, on its own connection), then ack."""
    consume_conn = await aio_pika.connect(amqp_url)
    publish_conn = await aio_pika.connect(amqp_url)
    out = await publish_conn.channel(publisher_confirms=True)
    channel = await consume_conn.channel()
    await channel.set_qos(prefetch_count=prefetch)
    queue = await channel.get_queue(source, ensure=False)

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await out.default_exchange.publish(
            aio_pika.Message(
                message.body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type=message.content_type,
                message_id=message.message_id,
            ),
            routing_key=target,
        )
        await message.ack()

    await queue.consume(on_message)
    ready.set()
    await asyncio.Event().wait()  # until terminated


async def baseline(
    settings: Settings, hops: int, n: int, body: bytes, args: argparse.Namespace, created: list[str]
) -> dict[str, Any]:
    """n messages through ``hops`` quorum queues; latency = publish -> final consume."""
    names = [f"{settings.namespace}.bench.hop{hops}.{i}" for i in range(1, hops + 1)]
    created.extend(names)
    ctx = mp.get_context("spawn")
    children: list[Any] = []
    conn = await aio_pika.connect(settings.amqp_url)
    try:
        setup = await conn.channel()
        for name in names:
            await setup.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        for source, target in itertools.pairwise(names):
            ready = ctx.Event()
            child = ctx.Process(
                target=_forwarder_main,
                daemon=True,
                args=(settings.amqp_url, source, target, args.prefetch, ready),
            )
            child.start()
            children.append((child, ready))
        deadline = now() + 60
        for child, ready in children:
            while not ready.is_set():
                if now() > deadline or not child.is_alive():
                    raise RuntimeError(f"baseline forwarder for {hops} hops did not start")
                await asyncio.sleep(0.05)

        sent: dict[str, float] = {}
        received: dict[str, float] = {}
        consume_conn = await aio_pika.connect(settings.amqp_url)
        try:
            channel = await consume_conn.channel()
            await channel.set_qos(prefetch_count=args.prefetch)
            last = await channel.get_queue(names[-1], ensure=False)

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                received.setdefault(message.message_id or "", now())
                await message.ack()

            await last.consume(on_message)
            pub_channel = await conn.channel(publisher_confirms=True)
            pub = Publisher(pub_channel, pub_channel.default_exchange, args.window)

            async def run(count: int, tag: str) -> tuple[list[str], bool]:
                ids = [f"{tag}-{i}" for i in range(count)]
                items = [(body, names[0], (lambda t, k=k: sent.__setitem__(k, t)), k) for k in ids]
                await offer(pub, items, args.rate)
                ok = await wait_until(
                    lambda: all(k in received for k in ids),
                    now() + args.timeout,
                    f"{hops}-hop baseline",
                    progress=lambda: len(received),
                    stall=args.stall,
                )
                await pub.drain(10)
                return ids, ok

            await run(min(n, args.warmup_messages), "warm")
            ids, ok = await run(n, "run")
        finally:
            await consume_conn.close()
        lat = [received[k] - sent[k] for k in ids if k in received and k in sent]
        first = min((sent[k] for k in ids if k in sent), default=None)
        last_recv = max((received[k] for k in ids if k in received), default=None)
        return {
            "hops": hops,
            "n": n,
            "complete": ok and len(lat) == n,
            "delivered": len(lat),
            "rate_per_s": rate(len(lat), first, last_recv),
            "latency": summary(lat),
            "publish_errors": pub.errors[:5],
        }
    finally:
        for child, _ in children:
            child.terminate()
        for child, _ in children:
            child.join(5)
            if child.is_alive():
                child.kill()
                child.join(5)
        with contextlib.suppress(Exception):
            cleanup = await conn.channel()
            for name in names:
                await cleanup.queue_delete(name)
                created.remove(name)
        await conn.close()


# ------------------------------------------------------------------ pipeline


class Observer:
    """A temporary queue bound to <ns>.events with '#': every event Linkwell emits, with
    its receive time. On referral.assigned.v1 it calls ``on_assigned`` (once per referral)
    as soon as the referral's sender_reference is known from referral.accepted.v1."""

    def __init__(self, settings: Settings, on_assigned: Callable[[str, str, dict[str, Any]], None]):
        self.settings = settings
        self.on_assigned = on_assigned
        self.ref_of: dict[str, str] = {}  # referral_id -> sender_reference
        self.accepted_at: dict[str, float] = {}  # sender_reference -> time
        self.assigned_at: dict[str, float] = {}  # referral_id -> time (first)
        self.assigned_data: dict[str, dict[str, Any]] = {}
        self.writeback_at: dict[str, float] = {}  # referral_id -> time (fact accepted)
        self.waitlisted: dict[str, float] = {}
        self.rejected: dict[str, dict[str, Any]] = {}  # sender_reference -> data
        self.other_rejections: list[dict[str, Any]] = []
        self.duplicates: Counter[str] = Counter()
        self.types: Counter[str] = Counter()
        self.notified: set[str] = set()

    async def start(self, connection: aio_pika.abc.AbstractConnection) -> None:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(self.settings.names.events, "#")
        await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        t = now()
        try:
            body = json.loads(message.body)
            kind, data = body["type"], body.get("data") or {}
        except (ValueError, KeyError, TypeError):
            return  # not an event of ours
        self.types[kind] += 1
        rid = str(data.get("referral_id", ""))
        if kind == "referral.accepted.v1":
            ref = data["sender_reference"]
            if ref in self.accepted_at:
                self.duplicates[kind] += 1
                return
            self.ref_of[rid] = ref
            self.accepted_at[ref] = t
            self._maybe_assigned(rid)
        elif kind == "referral.assigned.v1":
            if rid in self.assigned_at:
                self.duplicates[kind] += 1
                return
            self.assigned_at[rid] = t
            self.assigned_data[rid] = data
            self._maybe_assigned(rid)
        elif kind == "referral.waitlisted.v1":
            self.waitlisted.setdefault(rid, t)
        elif kind == "gp.writeback.v1" and data.get("fact") == "accepted":
            if rid in self.writeback_at:
                self.duplicates[kind] += 1
                return
            self.writeback_at[rid] = t
        elif kind == "referral.rejected.v1":
            self.rejected[str(data.get("sender_reference"))] = data
        elif kind == "event.rejected.v1":
            self.other_rejections.append(data)

    def _maybe_assigned(self, rid: str) -> None:
        if rid in self.ref_of and rid in self.assigned_at and rid not in self.notified:
            self.notified.add(rid)
            self.on_assigned(self.ref_of[rid], rid, self.assigned_data[rid])


class Sampler:
    """Every ``interval`` s: ready messages in each service queue and unpublished outbox
    rows in each service schema. Shows which stage holds the backlog."""

    def __init__(self, settings: Settings, interval: float = 0.25):
        self.settings = settings
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._t0 = now()

    async def start(self, t0: float) -> None:
        self._t0 = t0
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        names = self.settings.names
        conn = await aio_pika.connect(self.settings.amqp_url)
        db = await asyncpg.connect(self.settings.database_url)
        try:
            channel = await conn.channel()
            while True:
                sample: dict[str, Any] = {"t": round(now() - self._t0, 3)}
                for service in SERVICES:
                    try:
                        q = await channel.declare_queue(names.queue(service), passive=True)
                        sample[f"{service}_queue"] = q.declaration_result.message_count
                    except Exception:
                        channel = await conn.channel()
                    with contextlib.suppress(Exception):
                        sample[f"{service}_outbox"] = await db.fetchval(
                            f'SELECT count(*) FROM "{names.schema(service)}".outbox'
                            " WHERE published_at IS NULL"
                        )
                self.samples.append(sample)
                await asyncio.sleep(self.interval)
        finally:
            await db.close()
            await conn.close()

    def peaks(self) -> dict[str, int]:
        keys = {k for s in self.samples for k in s if k != "t"}
        return {k: max(s.get(k, 0) or 0 for s in self.samples) for k in sorted(keys)}


async def pipeline(
    settings: Settings, n: int, args: argparse.Namespace, stack: ProcessStack, pcns: list[str]
) -> dict[str, Any]:
    workers_per_pcn = args.workers
    warm = len(pcns)  # one warm-up referral per PCN
    capacity = places_per_worker(n, len(pcns), workers_per_pcn)

    sent_at: dict[str, float] = {}  # sender_reference -> publish time
    contact_at: dict[str, float] = {}  # referral_id -> contact publish time
    measured: set[str] = set()

    connection = await aio_pika.connect(settings.amqp_url)
    try:
        submit_channel = await connection.channel(publisher_confirms=True)
        contact_channel = await connection.channel(publisher_confirms=True)
        inbound_x = await submit_channel.get_exchange(settings.names.inbound, ensure=False)
        contact_x = await contact_channel.get_exchange(settings.names.inbound, ensure=False)
        user = broker_user(settings.amqp_url)
        submitter = Publisher(submit_channel, inbound_x, args.window, user)
        contacts = Publisher(contact_channel, contact_x, args.window, user)

        def on_assigned(ref: str, rid: str, data: dict[str, Any]) -> None:
            envelope = inbound(
                "contact.recorded.v1",
                data["pcn"],
                referral_id=rid,
                link_worker_id=data["link_worker_id"],
                occurred_at=datetime.now(UTC).isoformat(),
                mode="phone",
                outcome="engaged",
            )
            contacts.submit(
                json.dumps(envelope).encode(),
                "contact.recorded.v1",
                lambda t: contact_at.__setitem__(rid, t),
                envelope["id"],
            )

        observer = Observer(settings, on_assigned)
        await observer.start(connection)

        # roster, then one referral per PCN all the way to its writeback (warm-up)
        roster = [
            worker(pcn, f"bench-{pcn.lower()}-{j}", capacity)
            for pcn in pcns
            for j in range(workers_per_pcn)
        ]
        for envelope in roster:
            await submitter.publish(json.dumps(envelope).encode(), envelope["type"], lambda t: None)
        log(f"roster: {len(pcns)} PCNs x {workers_per_pcn} workers, capacity {capacity} each")
        stamp = datetime.now(UTC).isoformat()
        warm_refs = []
        for pcn in pcns:
            env = submission(f"WARM-{uuid.uuid4().hex[:12]}", pcn=pcn, submitted_at=stamp)
            warm_refs.append(env["data"]["sender_reference"])
            await submitter.publish(json.dumps(env).encode(), env["type"], lambda t: None)
        warm_rids = lambda: [r for r, ref in observer.ref_of.items() if ref in warm_refs]  # noqa: E731
        ok = await wait_until(
            lambda: len([r for r in warm_rids() if r in observer.writeback_at]) == warm,
            now() + args.ready_timeout,
            "warm-up referrals to be assigned and written back",
        )
        if not ok:
            raise RuntimeError(
                f"warm-up failed: accepted {len(warm_rids())}/{warm}, assigned "
                f"{len([r for r in warm_rids() if r in observer.assigned_at])}, "
                f"rejected {[observer.rejected[r] for r in warm_refs if r in observer.rejected]}"
                f", other rejections {observer.other_rejections[:3]}"
            )
        log("warm-up done: roster taken, every stage answered")

        # the measured burst
        stamp = datetime.now(UTC).isoformat()
        items = []
        for i in range(n):
            env = submission(
                f"BENCH-{i:06d}-{uuid.uuid4().hex[:8]}", pcn=pcns[i % len(pcns)], submitted_at=stamp
            )
            ref = env["data"]["sender_reference"]
            measured.add(ref)
            items.append(
                (
                    json.dumps(env).encode(),
                    env["type"],
                    (lambda t, r=ref: sent_at.__setitem__(r, t)),
                    env["id"],
                )
            )
        sampler = Sampler(settings)
        cpu = CpuMeter(stack)
        cost = CostMeter(stack, settings)
        await asyncio.sleep(STATS_SETTLE_S)  # the broker's counts of the warm-up, settled
        await cost.mark()
        t_start = now()
        cpu.start()
        await sampler.start(t_start)
        log(f"publishing {n} referrals" + (f" at {args.rate}/s" if args.rate > 0 else " (burst)"))
        await offer(submitter, items, args.rate)

        def rids() -> list[str]:
            return [r for r, ref in observer.ref_of.items() if ref in measured]

        def assigned() -> int:
            return sum(1 for r in rids() if r in observer.assigned_at)

        def settled() -> bool:
            mine = rids()
            done = sum(1 for r in mine if r in observer.assigned_at or r in observer.waitlisted)
            return done + sum(1 for ref in observer.rejected if ref in measured) >= n

        deadline = now() + args.timeout
        ok_assigned = await wait_until(
            settled,
            deadline,
            "assignments",
            progress=lambda: sum(observer.types.values()),
            stall=args.stall,
        )
        log(f"{assigned()}/{n} assigned after {now() - t_start:.2f}s; waiting for writebacks")
        expected = lambda: sum(1 for r in rids() if r in observer.notified)  # noqa: E731
        ok_written = await wait_until(
            lambda: sum(1 for r in rids() if r in observer.writeback_at) >= expected(),
            deadline,
            "writebacks",
            progress=lambda: len(observer.writeback_at),
            stall=args.stall,
        )
        cpu_used = cpu.stop(n)
        await asyncio.sleep(STATS_SETTLE_S)
        await cost.mark()
        await asyncio.sleep(0.5)  # the services write their counters
        await submitter.drain(10)
        await contacts.drain(10)
        await asyncio.sleep(0.3)  # let stray duplicates, if any, arrive
        await sampler.stop()
        log(
            f"{sum(1 for r in rids() if r in observer.writeback_at)}/{n} written back after "
            f"{now() - t_start:.2f}s"
        )
    finally:
        await connection.close()

    mine = rids()
    ref_of = observer.ref_of
    to_assigned = [
        observer.assigned_at[r] - sent_at[ref_of[r]]
        for r in mine
        if r in observer.assigned_at and ref_of[r] in sent_at
    ]
    to_accepted = [
        observer.accepted_at[ref_of[r]] - sent_at[ref_of[r]] for r in mine if ref_of[r] in sent_at
    ]
    accepted_to_assigned = [
        observer.assigned_at[r] - observer.accepted_at[ref_of[r]]
        for r in mine
        if r in observer.assigned_at
    ]
    to_writeback = [
        observer.writeback_at[r] - contact_at[r]
        for r in mine
        if r in observer.writeback_at and r in contact_at
    ]
    first_sent = min(sent_at.values(), default=None)
    last_assigned = max(
        (observer.assigned_at[r] for r in mine if r in observer.assigned_at), default=None
    )
    last_written = max(
        (observer.writeback_at[r] for r in mine if r in observer.writeback_at), default=None
    )
    n_assigned, n_written = len(to_assigned), len(to_writeback)
    return {
        "n": n,
        "complete": ok_assigned and ok_written and n_assigned == n and n_written == n,
        "pcns": pcns,
        "workers_per_pcn": workers_per_pcn,
        "capacity_per_worker": capacity,
        "accepted": len(mine),
        "assigned": n_assigned,
        "written_back": n_written,
        "waitlisted": sum(1 for r in mine if r in observer.waitlisted),
        "rejected": sum(1 for ref in observer.rejected if ref in measured),
        "rejection_examples": [v for k, v in observer.rejected.items() if k in measured][:3],
        "event_rejections": observer.other_rejections[:5],
        "duplicate_events_seen": dict(observer.duplicates),
        "events_seen": dict(observer.types),
        "publish_errors": (submitter.errors + contacts.errors)[:5],
        "publish_rate_per_s": rate(len(sent_at), first_sent, submitter.last_confirm),
        "rate_assigned_per_s": rate(n_assigned, first_sent, last_assigned),
        "rate_writeback_per_s": rate(n_written, first_sent, last_written),
        "elapsed_to_last_assigned_s": round(last_assigned - first_sent, 3)
        if last_assigned and first_sent
        else None,
        "elapsed_to_last_writeback_s": round(last_written - first_sent, 3)
        if last_written and first_sent
        else None,
        "latency_publish_to_accepted": summary(to_accepted),
        "latency_accepted_to_assigned": summary(accepted_to_assigned),
        "latency_publish_to_assigned": summary(to_assigned),
        "latency_contact_to_writeback": summary(to_writeback),
        "cpu": cpu_used,
        "cost": cost.result(n, stack.log_dir, len(sent_at) + len(contact_at)),
        "backlog_peaks": sampler.peaks(),
        "backlog_samples": sampler.samples,
    }


# ------------------------------------------------------------------ where the time went


async def stage_times(settings: Settings) -> dict[str, Any]:
    """From the services' own tables (one database clock, transaction start times):

    - ``outbox_lag``: an event's row created (the emitting handler's transaction began)
      -> claimed by the outbox relay (its transaction began; the publish follows).
    - ``queue_wait``: claimed by the producer's relay -> the consumer's handler
      transaction began, for events produced inside the namespace: broker, queue
      backlog and prefetch buffer.
    """
    names = settings.names
    out: dict[str, Any] = {"outbox_lag": {}, "queue_wait": {}}
    db = await asyncpg.connect(settings.database_url)
    try:
        for service in SERVICES:
            rows = await db.fetch(
                "SELECT extract(epoch FROM published_at - created_at)::float8 AS s"
                f' FROM "{names.schema(service)}".outbox WHERE published_at IS NOT NULL'
            )
            out["outbox_lag"][service] = summary([r["s"] for r in rows])
        for consumer in SERVICES:
            waits: dict[str, list[float]] = {}
            for producer in SERVICES:
                if producer == consumer:
                    continue
                rows = await db.fetch(
                    "SELECT i.event_type, extract(epoch FROM i.handled_at - o.published_at)"
                    f'::float8 AS s FROM "{names.schema(consumer)}".inbox i'
                    f' JOIN "{names.schema(producer)}".outbox o USING (event_id)'
                    " WHERE o.published_at IS NOT NULL"
                )
                for r in rows:
                    waits.setdefault(r["event_type"], []).append(r["s"])
            out["queue_wait"][consumer] = {k: summary(v) for k, v in sorted(waits.items())}
    finally:
        await db.close()
    return out


# ------------------------------------------------------------------ processes and logs


def memory_of(pid: int) -> dict[str, int]:
    out = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[f"{key}_kb"] = int(value.split()[0])
    return out


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies over all CPUs, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


FOREIGN = "other linkwell/pytest"


def program_pids(
    ours: set[int], names: tuple[str, ...] = ("beam.smp", "postgres")
) -> dict[str, list[int]]:
    """Broker and database processes on this machine, and Linkwell services or test runs
    that are not this benchmark's (read only, for CPU accounting)."""
    found: dict[str, list[int]] = {name: [] for name in (*names, FOREIGN)}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in ours:
            continue
        with contextlib.suppress(OSError):
            comm = (entry / "comm").read_text().strip()
            if comm in found:
                found[comm].append(int(entry.name))
            elif comm.startswith(("python", "pytest")):
                cmdline = (entry / "cmdline").read_bytes()
                if b"services.ops.cli" in cmdline or b"pytest" in cmdline:
                    found[FOREIGN].append(int(entry.name))
    return found


class CpuMeter:
    """CPU used during a phase: each service process, the broker, the database, this
    process, and the machine as a whole (busy share of all CPUs)."""

    def __init__(self, stack: ProcessStack):
        self.pids = {name: proc.pid for name, proc in stack.procs.items()}
        self.pids["bench"] = os.getpid()

    def _read(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        ours = set(self.pids.values())
        for program, pids in program_pids(ours).items():  # database backends come and go
            out[program] = {pid: cpu_seconds(pid) or 0.0 for pid in pids}
        out["_machine"] = machine_cpu()
        out["_t"] = now()
        return out

    def start(self) -> None:
        self.before = self._read()

    def stop(self, referrals: int) -> dict[str, Any]:
        after = self._read()
        wall = after["_t"] - self.before["_t"]
        busy = after["_machine"][0] - self.before["_machine"][0]
        total = after["_machine"][1] - self.before["_machine"][1]
        seconds = {}
        for k, value in after.items():
            if k.startswith("_") or value is None:
                continue
            if isinstance(value, dict):  # per pid; a process new since start counts from 0
                was = self.before.get(k) or {}
                seconds[k] = round(sum(v - was.get(pid, 0.0) for pid, v in value.items()), 3)
            elif self.before.get(k) is not None:
                seconds[k] = round(value - self.before[k], 3)
        return {
            "foreign_processes_at_end": len(after.get(FOREIGN) or {}),
            "wall_s": round(wall, 3),
            "machine_busy_pct": round(100 * busy / total, 1) if total else None,
            "cpus": os.cpu_count(),
            "cpu_s": seconds,
            "cpu_ms_per_referral": {k: round(1000 * v / referrals, 2) for k, v in seconds.items()}
            if referrals
            else {},
        }


STATS_SETTLE_S = 6.0  # the management API's statistics are collected every 5 s


def management(amqp_url: str) -> tuple[str, tuple[str, str]]:
    """The management API beside the broker (RABBITMQ_MANAGEMENT_URL, else port 15672)."""
    from urllib.parse import unquote, urlsplit

    url = urlsplit(amqp_url)
    base = os.environ.get("RABBITMQ_MANAGEMENT_URL") or f"http://{url.hostname}:15672"
    return base.rstrip("/") + "/api", (
        unquote(url.username or "guest"),
        unquote(url.password or "guest"),
    )


def broker_counts(amqp_url: str, namespace: str) -> dict[str, int]:
    """Cumulative counts over the namespace's queues: messages routed into them and
    messages delivered from them (to the services; the benchmark's observer queue is not
    in the namespace)."""
    import httpx

    base, auth = management(amqp_url)
    response = httpx.get(
        f"{base}/queues",
        params={"columns": "name,message_stats.publish,message_stats.deliver_get"},
        auth=auth,
        timeout=10,
    )
    response.raise_for_status()
    routed = delivered = 0
    for queue in response.json():
        if not queue["name"].startswith(f"{namespace}."):
            continue
        stats = queue.get("message_stats") or {}
        routed += stats.get("publish", 0)
        delivered += stats.get("deliver_get", 0)
    return {"routed": routed, "delivered": delivered}


def cost_lines(log_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Each service's ``cost_counters`` log lines (written on SIGUSR1), oldest first."""
    found: dict[str, list[dict[str, Any]]] = {}
    for service in SERVICES:
        path = log_dir / f"{service}.log"
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if '"cost_counters"' not in line:
                continue
            with contextlib.suppress(ValueError):
                found.setdefault(service, []).append(json.loads(line))
    return found


class CostMeter:
    """What a referral costs in messages and statements over the measured phase: the
    services' own counters (SIGUSR1 makes each log them: handled, emitted, SQL
    statements) and the broker's (messages routed into and delivered from the
    namespace's queues), each differenced between the start and the end."""

    def __init__(self, stack: ProcessStack, settings: Settings):
        self.stack = stack
        self.settings = settings
        self.broker: list[dict[str, int] | None] = []

    async def mark(self) -> None:
        for proc in self.stack.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGUSR1)
        try:
            self.broker.append(
                await asyncio.to_thread(
                    broker_counts, self.settings.amqp_url, self.settings.namespace
                )
            )
        except Exception as exc:  # a diagnostic: the run's other figures stand
            log(f"broker statistics unavailable: {exc!r}")
            self.broker.append(None)

    def result(self, referrals: int, log_dir: Path, bench_published: int) -> dict[str, Any]:
        per_service: dict[str, Any] = {}
        emitted = 0.0
        for service, lines in cost_lines(log_dir).items():
            if len(lines) < 2:
                continue
            first, last = lines[-2], lines[-1]
            handled = last["handled"] - first["handled"]
            made = last["emitted"] - first["emitted"]
            emitted += made
            entry: dict[str, Any] = {
                "handled_per_referral": round(handled / referrals, 2),
                "emitted_per_referral": round(made / referrals, 2),
            }
            if last.get("statements") is not None and first.get("statements") is not None:
                statements = last["statements"] - first["statements"]
                entry["statements_per_handled"] = (
                    round(statements / handled, 2) if handled else None
                )
                entry["statements_per_referral"] = round(statements / referrals, 2)
            per_service[service] = entry
        out: dict[str, Any] = {
            "per_service": per_service,
            "published_per_referral": {
                "services": round(emitted / referrals, 2),
                "bench": round(bench_published / referrals, 2),
            },
        }
        if len(self.broker) >= 2 and self.broker[0] and self.broker[-1]:
            before, after = self.broker[0], self.broker[-1]
            out["broker_per_referral"] = {
                k: round((after[k] - before[k]) / referrals, 2) for k in ("routed", "delivered")
            }
        return out


def read_logs(log_dir: Path) -> dict[str, Any]:
    """Per service: lines by level, the warning/error events, and lines that are not JSON."""
    report: dict[str, Any] = {}
    for service in SERVICES:
        path = log_dir / f"{service}.log"
        if not path.exists():
            continue
        levels: Counter[str] = Counter()
        events: Counter[str] = Counter()
        problems: Counter[str] = Counter()
        examples: list[str] = []
        other = 0
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
                level, event = entry.get("level", "?"), entry.get("event", "?")
            except (ValueError, AttributeError):
                other += 1
                if len(examples) < 5 and line.strip():
                    examples.append(line[:300])
                continue
            levels[level] += 1
            events[event] += 1
            if level in ("warning", "error", "critical"):
                key = f"{level}:{event}"
                problems[key] += 1
                if problems[key] == 1 and len(examples) < 5:
                    examples.append(line[:600])
        report[service] = {
            "lines_by_level": dict(levels),
            "top_events": dict(events.most_common(8)),
            "warnings_and_errors": dict(problems),
            "non_json_lines": other,
            "examples": examples,
        }
    return report


async def teardown(
    settings: Settings, stack: ProcessStack | None, extra_queues: list[str]
) -> list[str]:
    """Stop the services, remove the namespace's topology and schemas; returns problems."""
    problems: list[str] = []
    if stack is not None and stack.procs:
        try:
            codes = await asyncio.wait_for(asyncio.to_thread(stack.stop_all), 120)
            log(f"services stopped: {codes}")
        except Exception as exc:
            problems.append(f"stopping services: {exc!r}")
            log(f"stopping services: {exc!r}; killing")
            for proc in stack.procs.values():
                with contextlib.suppress(Exception):
                    proc.kill()
    topologies = [s.topology for s in SERVICE_DEFS.values()]
    try:
        await asyncio.wait_for(topology.delete(settings, topologies), 30)
    except Exception as exc:
        log(f"topology.delete failed ({exc!r}); deleting one by one")
        if not await delete_each(settings, topologies):
            problems.append(f"broker topology of {settings.namespace!r} not removed: {exc!r}")
    if extra_queues:
        try:
            await asyncio.wait_for(delete_queues(settings.amqp_url, extra_queues), 30)
        except Exception as exc:
            problems.append(f"baseline queues {extra_queues} not removed: {exc!r}")
    for schema in [s for d in SERVICE_DEFS.values() for s in d.schema_names(settings.names)]:
        try:
            await asyncio.wait_for(drop_schema(settings.database_url, schema), 30)
        except Exception as exc:
            problems.append(f"schema {schema} not dropped: {exc!r}")
    if problems:
        log("cleanup incomplete: " + "; ".join(problems))
    else:
        log(f"namespace {settings.namespace!r} removed")
    return problems


async def delete_queues(amqp_url: str, queues: list[str]) -> None:
    conn = await aio_pika.connect(amqp_url)
    try:
        for queue in queues:
            channel = await conn.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(queue)
            if not channel.is_closed:
                await channel.close()
    finally:
        await conn.close()


async def delete_each(settings: Settings, topologies: list[Any]) -> bool:
    names = settings.names
    queues = [names.unrouted]
    for service in topologies:
        queues += [names.queue(service.name), names.dead_letter_queue(service.name)]
        queues += [names.retry_queue(service.name, d) for d in settings.retry_delays]
    try:
        await asyncio.wait_for(delete_queues(settings.amqp_url, queues), 30)
        conn = await aio_pika.connect(settings.amqp_url)
        try:
            for exchange in (names.inbound, names.events, names.dead_letter, names.unrouted):
                channel = await conn.channel()
                with contextlib.suppress(Exception):
                    await channel.exchange_delete(exchange)
        finally:
            await conn.close()
    except Exception:
        return False
    return True


async def environment(settings: Settings) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "aio_pika": aio_pika.__version__,
    }
    with contextlib.suppress(Exception):
        conn = await aio_pika.connect(settings.amqp_url)
        props = conn.transport.connection.server_properties  # type: ignore[union-attr]
        info["rabbitmq"] = str(props.get("version"))
        await conn.close()
    with contextlib.suppress(Exception):
        db = await asyncpg.connect(settings.database_url)
        info["postgresql"] = await db.fetchval("SHOW server_version")
        await db.close()
    return info


# ------------------------------------------------------------------ report


def fmt(value: Any, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}{unit}" if value >= 10 else f"{value:,.2f}{unit}"
    return f"{value}{unit}"


def print_report(result: dict[str, Any]) -> None:
    p = result.get("pipeline") or {}
    rows = []

    def row(name: str, lat: dict[str, Any] | None, rate_value: Any, count: Any) -> None:
        lat = lat or {}
        rows.append(
            (
                name,
                fmt(count),
                fmt(rate_value),
                fmt(lat.get("p50_ms")),
                fmt(lat.get("p95_ms")),
                fmt(lat.get("p99_ms")),
                fmt(lat.get("max_ms")),
            )
        )

    if p:
        row(
            "pipeline publish->accepted",
            p.get("latency_publish_to_accepted"),
            None,
            p.get("accepted"),
        )
        row(
            "pipeline accepted->assigned",
            p.get("latency_accepted_to_assigned"),
            None,
            p.get("assigned"),
        )
        row(
            "pipeline publish->assigned",
            p.get("latency_publish_to_assigned"),
            p.get("rate_assigned_per_s"),
            p.get("assigned"),
        )
        row(
            "pipeline contact->writeback",
            p.get("latency_contact_to_writeback"),
            p.get("rate_writeback_per_s"),
            p.get("written_back"),
        )
    for b in result.get("baselines", []):
        row(
            f"aio-pika {b['hops']} hop{'s' if b['hops'] > 1 else ''}",
            b.get("latency"),
            b.get("rate_per_s"),
            b.get("delivered"),
        )
    head = ("", "count", "msg/s", "p50 ms", "p95 ms", "p99 ms", "max ms")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    print()
    mode = f"paced at {result['args']['rate']}/s" if result["args"]["rate"] > 0 else "burst"
    print(f"Linkwell benchmark  n={result['args']['n']}  {mode}  namespace={result['namespace']}")
    for cells in [head, *rows]:
        print(
            "  ".join(
                c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells)
            )
        )
    if p:
        print(
            f"\npipeline: {p.get('assigned')}/{p['n']} assigned, "
            f"{p.get('written_back')}/{p['n']} written back, {p.get('waitlisted')} waitlisted, "
            f"{p.get('rejected')} rejected; first publish -> last assigned "
            f"{fmt(p.get('elapsed_to_last_assigned_s'), ' s')}, -> last writeback "
            f"{fmt(p.get('elapsed_to_last_writeback_s'), ' s')}; submissions published at "
            f"{fmt(p.get('publish_rate_per_s'))}/s"
        )
        if p.get("backlog_peaks"):
            peaks = ", ".join(f"{k}={v}" for k, v in p["backlog_peaks"].items() if v)
            print(f"backlog peaks (ready msgs / unpublished outbox rows): {peaks or 'none'}")
    ratios = result.get("ratios") or {}
    if ratios:
        print("\nratios, pipeline / baseline (rate < 1 or latency > 1: the pipeline is slower)")
        for name, r in ratios.items():
            print(
                f"  vs {name:<7} rate assigned {fmt(r.get('rate_assigned'))}x   rate writeback "
                f"{fmt(r.get('rate_writeback'))}x   p50 publish->assigned "
                f"{fmt(r.get('p50_assigned'))}x   p50 contact->writeback "
                f"{fmt(r.get('p50_writeback'))}x"
            )
    cpu = p.get("cpu") if p else None
    if cpu:
        per = ", ".join(f"{k} {v:.1f}" for k, v in cpu["cpu_ms_per_referral"].items())
        print(
            f"\nCPU during the measured phase ({cpu['wall_s']} s): machine "
            f"{fmt(cpu['machine_busy_pct'])}% busy of {cpu['cpus']} CPUs; "
            f"CPU ms per referral: {per}"
        )
        pipeline_ms = sum(
            v for k, v in cpu["cpu_ms_per_referral"].items() if k not in ("bench", FOREIGN)
        )
        allowed = 1000 * cpu["cpus"] / pipeline_ms if pipeline_ms else None
        achieved = p.get("rate_assigned_per_s")
        print(
            f"pipeline CPU per referral (services, broker, database): {pipeline_ms:.1f} ms; "
            f"{cpu['cpus']} CPUs allow {fmt(allowed)}/s; the run reached {fmt(achieved)}/s "
            f"to assignment ({fmt(ratio(achieved, allowed))} of what that CPU allows)"
        )
        foreign = cpu["cpu_s"].get(FOREIGN, 0.0)
        if foreign > 0.05 * cpu["wall_s"]:
            print(
                f"WARNING: other Linkwell services / pytest runs used {foreign:.1f} CPU-s "
                f"during the measured phase: figures are disturbed, run again on a quiet host"
            )
    cost = p.get("cost") if p else None
    if cost:
        pub = cost["published_per_referral"]
        line = f"\nmessages per referral: published by the services {fmt(pub['services'])}"
        line += f" (+ {fmt(pub['bench'])} by the benchmark)"
        if cost.get("broker_per_referral"):
            b = cost["broker_per_referral"]
            line += (
                f"; the broker routed {fmt(b['routed'])} into and delivered "
                f"{fmt(b['delivered'])} from Linkwell's queues"
            )
        print(line)
        for service, c in cost["per_service"].items():
            print(
                f"  {service}: handled {fmt(c['handled_per_referral'])}, emitted "
                f"{fmt(c['emitted_per_referral'])} per referral; SQL statements "
                f"{fmt(c.get('statements_per_handled'))} per handled event "
                f"({fmt(c.get('statements_per_referral'))} per referral)"
            )
    if result.get("interference_at_start"):
        print(f"WARNING: at start: {result['interference_at_start']}")
    stages = result.get("stages") or {}
    if stages.get("outbox_lag"):
        lag = ", ".join(
            f"{k} {fmt(v.get('p50_ms'))}/{fmt(v.get('p99_ms'))}"
            for k, v in stages["outbox_lag"].items()
            if v.get("count")
        )
        print(f"outbox lag, handler start -> relay claim, p50/p99 ms: {lag}")
        waits = ", ".join(
            f"{c}<-{t.split('.')[1]} {fmt(v.get('p50_ms'))}/{fmt(v.get('p99_ms'))}"
            for c, per in stages["queue_wait"].items()
            for t, v in per.items()
            if v.get("count") and t.startswith("referral.")
        )
        print(f"queue wait, relay claim -> consumer handler start, p50/p99 ms: {waits}")
    if result.get("memory"):
        mem = ", ".join(
            f"{k} {v.get('VmHWM_kb', 0) / 1024:.0f} MiB" for k, v in result["memory"].items()
        )
        print(f"\npeak RSS (VmHWM): {mem}")
    if result.get("import"):
        i = result["import"]
        print(
            f"import: {i['rows']} rows sent at {fmt(i['sent_per_s'])}/s by linkwell import; "
            f"intake accepted {i['accepted']} after {fmt(i['accepted_after_s'])} s "
            f"({fmt(i['accepted_per_s'])}/s)"
        )
    for service, info in (result.get("logs") or {}).items():
        if info["warnings_and_errors"] or info["non_json_lines"]:
            extra = f"; non-JSON lines {info['non_json_lines']}" if info["non_json_lines"] else ""
            print(f"log {service}: {info['warnings_and_errors']}{extra}")
    if result.get("error"):
        print(f"\nERROR: {result['error']}")
    print(f"\nresults: {result.get('results_file')}")


# ------------------------------------------------------------------ main


async def main(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)

    namespace = f"bench{uuid.uuid4().hex[:10]}"
    settings = Settings(
        namespace=namespace,
        amqp_url=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        database_url=os.environ.get(
            "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        poll_interval=args.poll_interval,
        http_port=0,  # four processes on one host: no health endpoints to collide on
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_dir = RESULTS / f"{stamp}-{namespace}"
    out_file = RESULTS / f"{stamp}.json"
    if out_file.exists():  # two runs in the same second
        out_file = RESULTS / f"{stamp}-{namespace}.json"
    result: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "namespace": namespace,
        "args": vars(args),
        "settings": {
            "poll_interval": settings.poll_interval,
            "prefetch": settings.prefetch,
            "db_pool_size": settings.db_pool_size,
            "outbox_batch": settings.outbox_batch,
            "retry_delays": list(settings.retry_delays),
            "log_level": os.environ.get("LINKWELL_LOG_LEVEL", "INFO"),
        },
        "log_dir": str(log_dir.relative_to(ROOT)),
        "results_file": str(out_file.relative_to(ROOT)),
    }
    stack: ProcessStack | None = None
    extra_queues: list[str] = []
    code = 1
    try:
        result["environment"] = await environment(settings)
        result["environment"]["loadavg_at_start"] = os.getloadavg()
        others = program_pids({os.getpid()})[FOREIGN]
        if others:
            result["interference_at_start"] = (
                f"{len(others)} other Linkwell service / pytest process(es) running "
                f"(pids {others[:8]}); load average {os.getloadavg()[0]:.2f}"
            )
            log(f"WARNING: {result['interference_at_start']}")
        body_size = len(json.dumps(submission()).encode())
        body = json.dumps(submission()).encode()
        result["body_bytes"] = body_size

        # baselines first, on an idle machine
        hops = sorted({int(h) for h in args.hops.split(",") if h.strip()})
        result["baselines"] = []
        for h in hops:
            log(f"baseline: {args.n} messages of {body_size} B through {h} quorum queue(s)")
            b = await baseline(settings, h, args.n, body, args, extra_queues)
            result["baselines"].append(b)
            log(
                f"  {b['delivered']}/{args.n} delivered, {fmt(b['rate_per_s'])} msg/s, "
                f"p50 {fmt(b['latency'].get('p50_ms'))} ms"
            )

        stack = ProcessStack(settings, log_dir)
        stack.env["LINKWELL_COUNT_STATEMENTS"] = "1"  # the cost of an event, in statements
        log(f"starting {', '.join(SERVICES)} in namespace {namespace!r} (logs: {log_dir})")
        t = now()
        await stack.start_all()
        result["startup_s"] = round(now() - t, 2)
        log(f"services ready in {result['startup_s']} s")
        pcns = [f"U{code}" for code in sorted(random.sample(range(10000, 100000), args.pcns))]
        p = await pipeline(settings, args.n, args, stack, pcns)
        result["pipeline"] = p
        if args.import_n:
            result["import"] = await import_phase(settings, args.import_n, log_dir, pcns)
            i = result["import"]
            log(
                f"import: {i['rows']} rows sent at {fmt(i['sent_per_s'])}/s, all accepted "
                f"after {fmt(i['accepted_after_s'])} s ({fmt(i['accepted_per_s'])}/s)"
            )
        result["memory"] = {name: memory_of(proc.pid) for name, proc in stack.procs.items()}
        result["memory"]["bench"] = {"VmHWM_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
        try:
            result["stages"] = await asyncio.wait_for(stage_times(settings), 60)
        except Exception as exc:  # a diagnostic only
            result["stages"] = {"error": repr(exc)}

        by_hops = {b["hops"]: b for b in result["baselines"]}
        ratios = {}
        for h, b in by_hops.items():
            lat = b.get("latency") or {}
            ratios[f"{h} hop{'s' if h > 1 else ''}"] = {
                "rate_assigned": ratio(p.get("rate_assigned_per_s"), b.get("rate_per_s")),
                "rate_writeback": ratio(p.get("rate_writeback_per_s"), b.get("rate_per_s")),
                "p50_assigned": ratio(
                    p["latency_publish_to_assigned"].get("p50_ms"), lat.get("p50_ms")
                ),
                "p50_writeback": ratio(
                    p["latency_contact_to_writeback"].get("p50_ms"), lat.get("p50_ms")
                ),
                "p99_assigned": ratio(
                    p["latency_publish_to_assigned"].get("p99_ms"), lat.get("p99_ms")
                ),
            }
        result["ratios"] = ratios
        code = 0 if p["complete"] and all(b["complete"] for b in result["baselines"]) else 2
    except (Exception, asyncio.CancelledError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        log(f"benchmark failed: {result['error']}")
        if stack is not None and not isinstance(exc, asyncio.CancelledError):
            for name in stack.procs:
                tail = "\n".join(line[:300] for line in stack.tail(name, 5).splitlines())
                if tail:
                    log(f"{name} log tail:\n{tail}")
    finally:
        if stack is not None and "memory" not in result:
            result["memory"] = {name: memory_of(proc.pid) for name, proc in stack.procs.items()}
        result["cleanup_problems"] = await teardown(settings, stack, extra_queues)
        if result["cleanup_problems"]:
            code = code or 1
        if stack is not None:
            result["exit_codes"] = {n: p.returncode for n, p in stack.procs.items()}
            result["logs"] = read_logs(log_dir)
        if not args.keep_spool:
            shutil.rmtree(log_dir / "spool", ignore_errors=True)
        result["finished_at"] = datetime.now(UTC).isoformat()
        out_file.write_text(json.dumps(result, indent=2, default=str))
        print_report(result)
    return code


async def import_phase(
    settings: Settings, n: int, log_dir: Path, pcns: list[str]
) -> dict[str, Any]:
    """``linkwell import`` of a file of ``n`` referrals into the running pipeline: the rate
    it publishes at, and how soon intake has accepted them all."""
    from services.ops.importer import run_import

    path = log_dir / "import.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                submission(f"IMPORT-{i:06d}", org="IMPORT-1", pcn=pcns[i % len(pcns)])["data"]
            )
            + "\n"
            for i in range(n)
        )
    )
    connection = await aio_pika.connect(settings.amqp_url)
    accepted = 0
    done = asyncio.Event()
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(settings.names.events, "referral.accepted.v1.IMPORT-1")

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal accepted
            accepted += 1
            if accepted >= n:
                done.set()

        await queue.consume(on_message, no_ack=True)
        t0 = now()
        outcome = await run_import(settings, path, "IMPORT-1", report=lambda _: None)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 300)
        accepted_after = now() - t0
    return {
        "rows": n,
        "sent_per_s": round(outcome.rate, 1),
        "accepted": accepted,
        "accepted_after_s": round(accepted_after, 2),
        "accepted_per_s": round(accepted / accepted_after, 1) if accepted_after else None,
    }


def places_per_worker(n: int, pcns: int, workers: int) -> int:
    """Room for every referral plus the warm-ups (one per PCN), with a little slack."""
    return math.ceil((n + pcns) / (pcns * workers)) + 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=500, help="referrals (and baseline messages)")
    ap.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="offered load, messages/s; 0 (default) publishes everything at once",
    )
    ap.add_argument(
        "--window",
        type=int,
        default=64,
        help="publishes awaiting a confirm at once, per publishing channel",
    )
    ap.add_argument("--hops", default="1,2,3,4", help="baseline chain lengths, comma separated")
    ap.add_argument("--pcns", type=int, default=5)
    ap.add_argument(
        "--import-n", type=int, default=0, help="also time `linkwell import` of this many rows"
    )
    ap.add_argument("--workers", type=int, default=2, help="link workers per PCN")
    ap.add_argument(
        "--prefetch",
        type=int,
        default=32,
        help="baseline consumers' prefetch (the services' default is 32)",
    )
    ap.add_argument("--poll-interval", type=float, default=0.2)
    ap.add_argument("--warmup-messages", type=int, default=50, help="baseline warm-up messages")
    ap.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds for each measured phase (default 120 + 0.3 s per referral)",
    )
    ap.add_argument(
        "--stall", type=float, default=30.0, help="give up after this many seconds without progress"
    )
    ap.add_argument("--ready-timeout", type=float, default=60.0)
    ap.add_argument(
        "--keep-spool",
        action="store_true",
        help="keep notify's spooled notifications under the log directory",
    )
    args = ap.parse_args(argv)
    if args.n < 1 or args.pcns < 1 or args.workers < 1:
        ap.error("--n, --pcns and --workers must be at least 1")
    if args.pcns > 90000:
        ap.error("--pcns: at most 90000 PCN codes exist")
    if places_per_worker(args.n, args.pcns, args.workers) > 500:  # the contract's maximum
        ap.error(
            f"--n {args.n} needs more than 500 places per link worker: raise --workers or --pcns"
        )
    if args.timeout is None:
        args.timeout = 120 + 0.3 * args.n
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
