"""The benchmark's cost counters: SQL statements counted per service only when asked, and
a service's running totals logged on SIGUSR1."""

from __future__ import annotations

import asyncio
import os

import pytest

from services.runtime import db, metrics

pytestmark = pytest.mark.integration


async def test_statements_are_counted_per_service_only_when_asked(monkeypatch):
    dsn = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    monkeypatch.setenv("LINKWELL_COUNT_STATEMENTS", "1")
    pool = await db.create_pool(dsn, "public", "costprobe", 1)
    try:
        async with pool.acquire() as conn:
            before = metrics.total(metrics.STATEMENTS, "costprobe")
            await conn.execute("SELECT 1")
            await conn.fetchval("SELECT $1::int", 2)
            await asyncio.sleep(0.05)  # the query logger is called soon after, not during
            assert metrics.total(metrics.STATEMENTS, "costprobe") - before == 2
            async with conn.transaction():  # BEGIN and COMMIT are round trips too
                await conn.fetch("SELECT 3")
            await asyncio.sleep(0.05)
            assert metrics.total(metrics.STATEMENTS, "costprobe") - before == 5
    finally:
        await pool.close()

    monkeypatch.delenv("LINKWELL_COUNT_STATEMENTS")
    pool = await db.create_pool(dsn, "public", "costquiet", 1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SELECT 1")
            await asyncio.sleep(0.05)
        assert metrics.total(metrics.STATEMENTS, "costquiet") == 0
    finally:
        await pool.close()
