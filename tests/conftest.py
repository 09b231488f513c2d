"""Where the real RabbitMQ and PostgreSQL come from.

AMQP_URL and DATABASE_URL name running servers (the README's test command sets them
to this machine's). Where they are unset and a Docker engine answers, testcontainers
starts both. Otherwise every test that needs them fails, loudly: never skipped.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

import aio_pika
import asyncpg
import pytest

from services.runtime import topology
from services.runtime.db import drop_schema
from services.runtime.settings import Settings

from .support import test_settings

SERVICES = ("intake", "triage", "notify", "outcomes")


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
    return amqp, database


@pytest.fixture
async def settings(reachable: tuple[str, str]) -> AsyncIterator[Settings]:
    """A namespace of its own for each test: its exchanges, queues and schemas are removed
    afterwards, so tests and parallel runs never see each other's messages."""
    value = test_settings(*reachable)
    yield value
    from services.cli import SERVICE_DEFS

    await topology.delete(value, [s.topology for s in SERVICE_DEFS.values()])
    for name in SERVICES:
        await drop_schema(value.database_url, value.names.schema(name))
