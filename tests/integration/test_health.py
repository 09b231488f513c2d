"""Health and metrics over HTTP: readiness follows the broker and the database, and the
service recovers by itself when they return. Each dependency is reached through a TCP
proxy the test cuts and restores, so the shared servers stay up for everyone else."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import generate_latest
from yarl import URL

from services.intake.app import SERVICE as INTAKE
from services.runtime import topology
from services.runtime.runner import Runner
from services.runtime.settings import Settings
from services.triage.app import SERVICE as TRIAGE

from ..support import Tap, TcpProxy, publish, submission, worker

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def proxied(settings: Settings) -> AsyncIterator[tuple[Settings, TcpProxy, TcpProxy]]:
    amqp, db = URL(settings.amqp_url), URL(settings.database_url)
    broker = await TcpProxy(amqp.host or "127.0.0.1", amqp.port or 5672).start()
    database = await TcpProxy(db.host or "127.0.0.1", db.port or 5432).start()
    try:
        yield (
            settings.model_copy(
                update={
                    "amqp_url": broker.url(settings.amqp_url),
                    "database_url": database.url(settings.database_url),
                    "http_port": free_port(),
                    "metrics_interval": 0.2,
                }
            ),
            broker,
            database,
        )
    finally:
        await broker.cut()
        await database.cut()


async def readiness(client: httpx.AsyncClient) -> tuple[int, dict]:
    response = await client.get("/readyz")
    return response.status_code, response.json()


async def until(client: httpx.AsyncClient, status: int, within: float = 30.0) -> dict:
    deadline = time.monotonic() + within
    while True:
        code, body = await readiness(client)
        if code == status:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"/readyz stayed {code}: {body}")
        await asyncio.sleep(0.2)


def sample(text: str, name: str, **labels: str) -> float:
    """The one sample of ``name`` with exactly these labels (fails if there is none)."""
    wanted = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "} "
    [line] = [line for line in text.splitlines() if line.startswith(wanted)]
    return float(line.rsplit(" ", 1)[1])


def handled_by_intake(text: str) -> float:
    return metric(
        text,
        "linkwell_messages_handled_total",
        service="intake",
        type="referral.submitted.v1",
        outcome="handled",
    )


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_readiness_follows_the_database_and_the_broker_and_recovers(settings):
    await topology.declare(settings, [INTAKE.topology])
    async with proxied(settings) as (cut_settings, broker, database):
        runner = Runner(INTAKE, cut_settings)
        base = f"http://127.0.0.1:{cut_settings.http_port}"
        async with (
            Tap(settings, "referral.accepted.v1.*") as tap,
            httpx.AsyncClient(base_url=base, timeout=5) as client,
        ):
            before = handled_by_intake(generate_latest().decode())
            await runner.start()
            try:
                assert (await client.get("/livez")).status_code == 200
                body = await until(client, 200)
                assert body["checks"] == {
                    "database": True,
                    "broker": True,
                    "publisher": True,
                    "topology": True,
                    "running": True,
                }

                # The database goes away: not ready, but alive; a referral sent meanwhile waits.
                await database.cut()
                body = await until(client, 503)
                assert body["checks"]["database"] is False and body["checks"]["broker"] is True
                assert (await client.get("/livez")).status_code == 200
                first = submission()
                await publish(settings, first)
                await asyncio.sleep(1.0)
                assert tap.events("referral.accepted.v1") == []
                await database.restore()
                await until(client, 200)
                await tap.wait_count("referral.accepted.v1", 1, within=30)

                # The broker goes away: not ready; it comes back and consuming resumes.
                await broker.cut()
                body = await until(client, 503)
                assert body["checks"]["broker"] is False or body["checks"]["publisher"] is False
                await broker.restore()
                await until(client, 200, within=60)
                await publish(settings, submission())
                await tap.wait_count("referral.accepted.v1", 2, within=30)

                await asyncio.sleep(0.5)  # a gauge refresh
                text = (await client.get("/metrics")).text
                assert handled_by_intake(text) - before == 2
                assert sample(text, "linkwell_outbox_backlog", service="intake") == 0
                assert sample(text, "linkwell_ready", service="intake") == 1
            finally:
                await runner.stop()
        assert (await asyncio.to_thread(_refused, base)) is True  # stopped: port closed


def _refused(base: str) -> bool:
    try:
        httpx.get(base + "/livez", timeout=1)
    except httpx.ConnectError:
        return True
    return False


def triage_handled(text: str) -> float:
    return metric(
        text, "linkwell_messages_handled_total", service="triage", type="referral.placement.v1"
    )


async def test_triage_metrics_count_assignments_and_waitlist_per_pcn(settings):
    port = free_port()
    pcn = f"U{uuid.uuid4().int % 100_000:05d}"  # labels are process-wide: a PCN of our own
    tuned = settings.model_copy(update={"http_port": port, "metrics_interval": 0.2})
    await topology.declare(settings, [INTAKE.topology, TRIAGE.topology])
    runner = Runner(TRIAGE, tuned)
    intake = Runner(INTAKE, settings)
    await intake.start()
    await runner.start()
    try:
        async with (
            Tap(settings, f"referral.*.v1.{pcn}") as tap,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
        ):
            before = triage_handled(generate_latest().decode())
            await publish(settings, worker(pcn, "lw-m", 1))
            await asyncio.sleep(0.5)
            for _ in range(3):
                await publish(settings, submission(pcn=pcn))
            await tap.wait_count("referral.waitlisted.v1", 2, within=30)
            await tap.wait_count("referral.assigned.v1", 1, within=30)
            deadline = time.monotonic() + 10
            while True:
                text = (await client.get("/metrics")).text
                if metric(text, "linkwell_triage_waitlist_length", pcn=pcn) == 2:
                    break
                assert time.monotonic() < deadline, text
                await asyncio.sleep(0.2)
            assert metric(text, "linkwell_triage_assignments_total", pcn=pcn) == 1
            assert metric(text, "linkwell_triage_active_assignments", pcn=pcn) == 1
            assert metric(text, "linkwell_triage_capacity", pcn=pcn) == 1
            assert triage_handled(text) - before == 3
    finally:
        await runner.stop()
        await intake.stop()


async def test_a_taken_port_fails_the_start_clearly_and_stops_cleanly(settings):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runner = Runner(INTAKE, settings.model_copy(update={"http_port": port}))
        with pytest.raises(RuntimeError, match=f"cannot serve health on 127.0.0.1:{port}"):
            await runner.start()
        await runner.stop()  # nothing half-open is left behind, and nothing escapes
