"""Published snapshots: a commissioner's figures for a month are frozen once published.
Referrals that arrive (or move on) afterwards change the PCN's live view, never the
snapshot; a snapshot cannot be updated or deleted; a month is published once."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.ops import publishing
from services.outcomes.app import SERVICE as OUTCOMES
from services.readside import store as readside
from services.readside.web import commissioner_view
from services.runtime.db import init_connection
from services.runtime.runner import migrate

PCNS = ("U71001", "U71002", "U71003")


async def referral(conn, schema, pcn, received, assigned=False) -> None:
    await conn.execute(
        f'INSERT INTO "{schema}".referral_fact (referral_id, sender, agency_type,'
        " registered_practice, pcn, needs, pathway, received_at, assigned_at, contacts)"
        " VALUES ($1, 'A81001', 'general_practice', 'A81001', $2, '{loneliness}', 'adult',"
        " $3, $4, 0)",
        uuid.uuid4(),
        pcn,
        received,
        received + timedelta(days=2) if assigned else None,
    )


async def test_a_commissioners_figures_do_not_change_between_snapshots(settings):
    await migrate(settings, OUTCOMES)
    schema = settings.names.schema("reporting")
    conn = await asyncpg.connect(settings.database_url)
    await init_connection(conn)
    try:
        november = datetime(2026, 11, 10, 12, tzinfo=UTC)
        for pcn, n in zip(PCNS, (7, 20, 31), strict=True):
            for i in range(n):
                await referral(conn, schema, pcn, november + timedelta(hours=i), i % 2 == 0)
        after = datetime(2026, 12, 1, 9, tzinfo=UTC)

        with pytest.raises(ValueError, match="has not ended"):
            await publishing.publish(conn, schema, "2026-11", "schedule", november)
        async with conn.transaction():
            first = await publishing.publish(conn, schema, "2026-11", "schedule", after)
        assert first is not None
        published = await readside.snapshot(conn, schema, "2026-11")
        assert published is not None
        rows = {r["group"]: r for r in published["figures"]}
        assert rows["U71001"]["received"] == "*"  # 7: primary
        assert rows["U71002"]["received"] == "*"  # 20: would give the 7 away by subtraction
        assert rows["U71003"]["received"] == 30 and rows["total"]["received"] == 60
        view = commissioner_view(await readside.snapshot_periods(conn, schema), published)

        # the 8th referral of U71001 arrives late, others move on: the live model changes
        await referral(conn, schema, "U71001", november + timedelta(days=3))
        await conn.execute(
            f"UPDATE \"{schema}\".referral_fact SET assigned_at = received_at + interval '1 day'"
            " WHERE assigned_at IS NULL"
        )
        async with conn.transaction():  # published again (by an operator, the schedule)
            assert await publishing.publish(conn, schema, "2026-11", "ops", after) is None
        again = await readside.snapshot(conn, schema, "2026-11")
        assert again == published
        later = commissioner_view(await readside.snapshot_periods(conn, schema), again)
        assert later == view

        for statement in (
            f"UPDATE \"{schema}\".figures_snapshot SET figures = '[]'",
            f'DELETE FROM "{schema}".figures_snapshot',
            f'TRUNCATE "{schema}".figures_snapshot',
        ):
            with pytest.raises(asyncpg.RestrictViolationError, match="frozen"):
                await conn.execute(statement)
        assert await readside.snapshot(conn, schema, "2026-11") == published
    finally:
        await conn.close()


async def test_the_export_of_a_snapshot_is_what_was_published(settings, monkeypatch):
    """``linkwell report published --format csv`` prints the frozen figures, not the live
    model's; ``publish`` refuses a month that has not ended."""
    from typer.testing import CliRunner

    from services.ops.cli import app

    await migrate(settings, OUTCOMES)
    schema = settings.names.schema("reporting")
    conn = await asyncpg.connect(settings.database_url)
    await init_connection(conn)
    try:
        for i in range(12):
            await referral(
                conn, schema, "U71009", datetime(2026, 10, 5, tzinfo=UTC) + timedelta(hours=i)
            )
        async with conn.transaction():
            await publishing.publish(
                conn, schema, "2026-10", "schedule", datetime(2026, 11, 2, tzinfo=UTC)
            )
        for _ in range(9):  # live, U71009 would now show 20
            await referral(conn, schema, "U71009", datetime(2026, 10, 6, tzinfo=UTC))
    finally:
        await conn.close()
    monkeypatch.setenv("LINKWELL_NAMESPACE", settings.namespace)
    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, app, ["report", "published", "--period", "2026-10", "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("data,period,published_at,group,received,accepted,rejected")
    assert lines[1].split(",")[3:5] == ["U71009", "10"] and lines[2].split(",")[3:5] == [
        "total",
        "10",
    ]
    refused = await asyncio.to_thread(
        runner.invoke, app, ["report", "publish", "--period", "2999-01"]
    )
    assert refused.exit_code == 2 and "has not ended" in refused.output


async def test_the_schedule_publishes_each_ended_month_once_on_the_audit_trail(
    settings, monkeypatch
):
    """``linkwell report publish --due`` (what the schedule runs): every ended month not yet
    published, each with its record confirmed on the audit trail; run again, nothing."""
    import aio_pika
    from typer.testing import CliRunner

    from services.ops.cli import app
    from services.registry import SERVICE_DEFS
    from services.runtime import topology

    await topology.declare(settings, [s.topology for s in SERVICE_DEFS.values()])
    await migrate(settings, OUTCOMES)
    schema = settings.names.schema("reporting")
    conn = await asyncpg.connect(settings.database_url)
    await init_connection(conn)
    try:
        now = datetime.now(UTC)
        two_months_ago = (now.replace(day=1) - timedelta(days=40)).replace(day=10)
        await referral(conn, schema, "U71010", two_months_ago)
    finally:
        await conn.close()
    monkeypatch.setenv("LINKWELL_NAMESPACE", settings.namespace)
    run = CliRunner().invoke
    done = await asyncio.to_thread(run, app, ["report", "publish", "--due"])
    assert done.exit_code == 0, done.output
    assert done.output.count("published ") == 2  # two ended months; this one is not over
    again = await asyncio.to_thread(run, app, ["report", "publish", "--due"])
    assert again.exit_code == 0 and "nothing due" in again.output

    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(settings.names.queue("audit"), ensure=False)
        periods = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            data = json.loads(message.body)["data"]
            if data["action"] == "publication":
                periods.append(data["detail"]["period"])
                assert data["detail"]["published_by"] == "schedule"
        assert sorted(periods) == [
            two_months_ago.strftime("%Y-%m"),
            (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m"),
        ]
    finally:
        await connection.close()
