"""Starting and recovering without a supervisor's help: a service started before its broker
and database waits for them, not ready, and starts when they come; a database that
crashes under load costs no message its retry budget, and loses or repeats nothing."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from yarl import URL

from services.intake.app import SERVICE as INTAKE
from services.runtime.runner import Runner

from ..support import Tap, TcpProxy, drain, publish, submission

pytestmark = pytest.mark.integration

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_service_started_before_its_broker_and_database_waits_then_starts(settings):
    amqp, db = URL(settings.amqp_url), URL(settings.database_url)
    broker = await TcpProxy(amqp.host or "127.0.0.1", amqp.port or 5672).start()
    database = await TcpProxy(db.host or "127.0.0.1", db.port or 5432).start()
    await broker.cut()
    await database.cut()  # both away: connections refused
    port = free_port()
    away = settings.model_copy(
        update={
            "amqp_url": broker.url(settings.amqp_url),
            "database_url": database.url(settings.database_url),
            "http_port": port,
        }
    )
    runner = Runner(INTAKE, away)
    starting = asyncio.create_task(runner.start())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await asyncio.sleep(2.5)
            assert not starting.done(), "the service gave up instead of waiting"
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert (await client.get("/livez")).status_code == 200
            await database.restore()
            await asyncio.sleep(1.5)
            assert not starting.done()  # still waiting for the broker
            await broker.restore()
            await asyncio.wait_for(starting, 30)
            for _ in range(50):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.2)
            assert (await client.get("/readyz")).status_code == 200
        async with Tap(settings, "referral.accepted.v1.*") as tap:
            await publish(settings, submission())
            await tap.wait_count("referral.accepted.v1", 1)
    finally:
        if not starting.done():
            starting.cancel()
        await runner.stop()
        await broker.cut()
        await database.cut()


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own, so that it can be crashed (``pg_ctl stop -m
    immediate``: no shutdown checkpoint, as after a power cut) without touching the server
    every other test uses."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="linkwell-pg-"))
        self.port = free_port()
        shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.dir / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, argv: list[str]) -> None:
        runner = [] if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--"]
        subprocess.run([*runner, *argv], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.dir / "data"),
                "-o",
                options,
                "-l",
                str(self.dir / "log"),
                "-w",
                "start",
            ]
        )

    def crash(self) -> None:
        self._as_postgres(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop"]
        )

    def remove(self) -> None:
        try:
            self.crash()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres():
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL server binaries not found in {PG_BIN}", pytrace=False)
    pg = PrivatePostgres()
    pg.start()
    try:
        yield pg
    finally:
        pg.remove()


async def test_a_database_crash_under_load_loses_nothing_and_spends_no_budget(
    settings, private_postgres
):
    own = settings.model_copy(update={"database_url": private_postgres.url, "prefetch": 8})
    runner = Runner(INTAKE, own)
    await runner.start()
    referrals = [submission() for _ in range(60)]
    try:
        async with Tap(settings, "referral.accepted.v1.*") as tap:

            async def stream() -> None:
                for referral in referrals:
                    await publish(settings, referral)
                    await asyncio.sleep(0.02)

            async def crash() -> None:
                await tap.wait_for(lambda t: len(t.messages) >= 15, 30, "15 accepted")
                private_postgres.crash()
                await asyncio.sleep(2.0)
                private_postgres.start()

            started = time.monotonic()
            await asyncio.gather(stream(), crash())
            await tap.wait_count("referral.accepted.v1", 60, within=90)
            await asyncio.sleep(1.0)
    finally:
        await runner.stop()
    # each referral accepted once: an event the relay published just before the crash may
    # be published again, but only ever with the same id, which consumers drop
    ids: dict[str, set[str]] = {}
    for event in tap.events("referral.accepted.v1"):
        ids.setdefault(event["data"]["sender_reference"], set()).add(event["id"])
    assert set(ids) == {r["data"]["sender_reference"] for r in referrals}
    assert all(len(one) == 1 for one in ids.values()), "a referral was accepted twice"
    dead = await drain(settings, settings.names.dead_letter_queue("intake"), within=1.0, count=0)
    assert dead == [], [m.headers.get("x-linkwell-detail") for m in dead]
    assert time.monotonic() - started < 90
