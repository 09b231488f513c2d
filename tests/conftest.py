"""Where the real RabbitMQ and PostgreSQL come from.

AMQP_URL and DATABASE_URL name running servers (the README's test command sets them
to this machine's). Where they are unset and a Docker engine answers, testcontainers
starts both. Otherwise every test that needs them fails, loudly: never skipped.
"""

from __future__ import annotations

import asyncio
import os
import re
import warnings

# The tests run on a developer's servers (plain, sample passwords, guest trusted):
# development mode, which production refuses (services/runtime/secure.py). Set before any
# settings are read; tests of production mode set it themselves.
os.environ.setdefault("LINKWELL_MODE", "development")
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta

import aio_pika
import asyncpg
import httpx
import pytest
from yarl import URL

from services.ops import access
from services.runtime import topology
from services.runtime.db import drop_schema
from services.runtime.settings import Settings

from .support import CREATED_NAMESPACES, test_settings

SERVICES = ("intake", "triage", "notify", "outcomes")
TEST_NAMESPACE = re.compile(r"^t(\d{10})[0-9a-f]{5}\.")


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[tuple[str, str]]:
    amqp, database = os.environ.get("AMQP_URL"), os.environ.get("DATABASE_URL")
    if amqp and database:
        yield amqp, database
        return
    if not _docker_available():
        pytest.fail(
            "No broker or database: set AMQP_URL and DATABASE_URL (the README's test command "
            "does), or run a Docker engine so that testcontainers can start them.",
            pytrace=False,
        )
    from testcontainers.postgres import PostgresContainer
    from testcontainers.rabbitmq import RabbitMqContainer

    with RabbitMqContainer("rabbitmq:3.13") as rabbit, PostgresContainer("postgres:15") as pg:
        params = rabbit.get_connection_params()
        amqp = f"amqp://guest:guest@{params.host}:{params.port}/"
        database = pg.get_connection_url(driver=None)
        yield amqp, database


@pytest.fixture(scope="session")
async def reachable(infrastructure: tuple[str, str]) -> tuple[str, str]:
    amqp, database = infrastructure
    try:
        connection = await asyncio.wait_for(aio_pika.connect(amqp), 10)
        await connection.close()
    except Exception as exc:
        pytest.fail(f"RabbitMQ at {amqp} is not reachable: {exc!r}", pytrace=False)
    try:
        conn = await asyncio.wait_for(asyncpg.connect(database), 10)
        await conn.close()
    except Exception as exc:
        pytest.fail(f"PostgreSQL at {database} is not reachable: {exc!r}", pytrace=False)
    await asyncio.to_thread(purge_abandoned_namespaces, amqp)
    return amqp, database


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def management(amqp: str) -> access.ManagementApi:
    url = URL(amqp)
    return access.ManagementApi(
        os.environ.get("RABBITMQ_MANAGEMENT_URL", f"http://{url.host}:15672"),
        url.user or "guest",
        url.password or "guest",
        timeout=60,
    )


def broker_names(amqp: str, picked: Callable[[str], bool]) -> dict[str, list[str]]:
    """The queues and exchanges whose names ``picked`` picks."""
    with management(amqp) as api:
        vhost = access.vhost_of(amqp)
        return {
            kind: [n for n in api.names(kind, vhost) if picked(n)]
            for kind in ("queues", "exchanges")
        }


def delete_matching(amqp: str, doomed: Callable[[str], bool]) -> int:
    """Delete every queue and exchange whose name ``doomed`` picks, through the management
    API. Returns how many it deleted. If it cannot (no management plugin, an error), the
    test fails under CI: a run must never pass while leaving queues behind; elsewhere it
    warns."""
    deleted = 0
    try:
        with management(amqp) as api:
            vhost = access.vhost_of(amqp)
            for kind in ("queues", "exchanges"):
                for name in filter(doomed, api.names(kind, vhost)):
                    api.delete(kind, vhost, name)
                    deleted += 1
    except (httpx.HTTPError, RuntimeError) as exc:
        message = f"could not clean the broker through its management API: {exc!r}"
        if in_ci():
            pytest.fail(message, pytrace=False)
        warnings.warn(message, stacklevel=2)
    return deleted


@pytest.fixture(scope="session", autouse=True)
def broker_left_as_found() -> Iterator[None]:
    """At the end of the session, no queue or exchange of any namespace this session made
    may be left on the broker (each quorum queue holds broker file handles)."""
    yield
    made = sorted(CREATED_NAMESPACES)
    amqp = os.environ.get("AMQP_URL")
    if not made or not amqp:
        return
    try:
        left = broker_names(amqp, lambda n: any(n.startswith(f"{ns}.") for ns in made))
    except (httpx.HTTPError, RuntimeError) as exc:
        if in_ci():
            raise AssertionError(f"cannot check the broker was left clean: {exc!r}") from None
        return
    if left["queues"] or left["exchanges"]:
        raise AssertionError(f"the test run left these on the broker: {left}")


def purge_abandoned_namespaces(amqp: str, older_than: timedelta = timedelta(hours=1)) -> int:
    """Delete the queues and exchanges of test namespaces (``t<yymmddHHMM><hex>``, see
    ``support.test_settings``) created over an hour ago: left by a run killed before its
    teardown. Every quorum queue holds broker file handles; piled up across runs they
    exhaust the broker's limit and it stops accepting connections."""
    cutoff = datetime.now(UTC) - older_than

    def abandoned(name: str) -> bool:
        match = TEST_NAMESPACE.match(name)
        if match is None:
            return False
        return datetime.strptime(match.group(1), "%y%m%d%H%M").replace(tzinfo=UTC) < cutoff

    return delete_matching(amqp, abandoned)


@pytest.fixture
async def settings(reachable: tuple[str, str]) -> AsyncIterator[Settings]:
    """A namespace of its own for each test: its exchanges, queues and schemas are removed
    afterwards, so tests and parallel runs never see each other's messages."""
    value = test_settings(*reachable)
    yield value
    from services.registry import SERVICE_DEFS

    await topology.delete(value, [s.topology for s in SERVICE_DEFS.values()])
    # and whatever else the test made in its namespace (organisations' queues, retry
    # queues of delays it chose): nothing may be left to hold the broker's file handles
    prefix = f"{value.namespace}."
    await asyncio.to_thread(delete_matching, value.amqp_url, lambda n: n.startswith(prefix))
    for service in SERVICE_DEFS.values():
        for schema in service.schema_names(value.names):
            await drop_schema(value.database_url, schema)
    # the dashboard's own schema (accounts and sessions), where a test made it
    await drop_schema(value.database_url, value.names.schema("readside"))
