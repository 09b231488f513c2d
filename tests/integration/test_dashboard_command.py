"""``linkwell dashboard`` says where it is as it starts (it printed nothing), then serves
the sign-in page there."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import httpx
import pytest

from services.outcomes.app import SERVICE as OUTCOMES
from services.runtime.runner import migrate

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_the_dashboard_prints_its_address_and_serves_there(settings):
    await migrate(settings, OUTCOMES)
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.ops.cli",
        "dashboard",
        "--port",
        str(port),
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "LINKWELL_NAMESPACE": settings.namespace,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert first.strip() == f"Dashboard: http://127.0.0.1:{port}/", first
        said = (await asyncio.wait_for(process.stdout.readline(), 5)).decode()
        assert settings.names.schema("reporting") in said and "read-only" in said
        async with httpx.AsyncClient() as http:
            for _ in range(100):
                try:
                    page = await http.get(f"http://127.0.0.1:{port}/login")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.1)
            assert page.status_code == 200 and "Your access token" in page.text
            home = await http.get(f"http://127.0.0.1:{port}/")
            assert home.status_code == 303 and home.headers["location"] == "/login"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 20)


async def test_the_dashboard_works_as_a_role_that_can_only_read_the_model(settings):
    """deploy/README.md's read-only role: SELECT on the reporting schema is all the
    dashboard needs, and that role cannot change a figure."""
    from urllib.parse import urlsplit, urlunsplit

    import asyncpg

    from services.readside import tokens
    from services.readside.store import read_only_pool
    from services.readside.web import create_app

    await migrate(settings, OUTCOMES)
    schema = settings.names.schema("reporting")
    role = f"{settings.namespace}_dashboard"
    conn = await asyncpg.connect(settings.database_url)
    try:
        token = await tokens.issue(conn, schema, kind="commissioner", label="ICB")
        await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'read-only'")
        await conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
        await conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO {role}')
        parts = urlsplit(settings.database_url)
        host = parts.netloc.rpartition("@")[2]
        dsn = urlunsplit(parts._replace(netloc=f"{role}:read-only@{host}"))
        pool = await read_only_pool(dsn, schema, 1)
        try:
            app = create_app(pool, schema)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://dash") as http:
                page = await http.get("/", headers={"authorization": f"Bearer {token}"})
                assert page.status_code == 200 and "Social prescribing across PCNs" in page.text
            async with pool.acquire() as reader:
                await reader.execute("SET default_transaction_read_only = off")
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await reader.execute("DELETE FROM dashboard_token")
        finally:
            await pool.close()
    finally:
        await conn.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA "{schema}" FROM {role}')
        await conn.execute(f'REVOKE ALL ON SCHEMA "{schema}" FROM {role}')
        await conn.execute(f"DROP ROLE IF EXISTS {role}")
        await conn.close()
