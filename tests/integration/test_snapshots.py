"""Published snapshots: a commissioner's figures for a month are frozen once published.
Referrals that arrive (or move on) afterwards change the PCN's live view, never the
snapshot; a snapshot cannot be updated or deleted; a month is published once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.outcomes.app import SERVICE as OUTCOMES
from services.outcomes.reporting import snapshots
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
            await snapshots.publish(conn, schema, "2026-11", "schedule", november)
        async with conn.transaction():
            first = await snapshots.publish(conn, schema, "2026-11", "schedule", after)
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
            f'UPDATE "{schema}".referral_fact SET assigned_at = received_at + interval \'1 day\''
            " WHERE assigned_at IS NULL"
        )
        async with conn.transaction():  # published again (by an operator, the schedule)
            assert await snapshots.publish(conn, schema, "2026-11", "ops", after) is None
        again = await readside.snapshot(conn, schema, "2026-11")
        assert again == published
        later = commissioner_view(await readside.snapshot_periods(conn, schema), again)
        assert later == view

        for statement in (
            f'UPDATE "{schema}".figures_snapshot SET figures = \'[]\'',
            f'DELETE FROM "{schema}".figures_snapshot',
            f'TRUNCATE "{schema}".figures_snapshot',
        ):
            with pytest.raises(asyncpg.RestrictViolationError, match="frozen"):
                await conn.execute(statement)
        assert await readside.snapshot(conn, schema, "2026-11") == published
    finally:
        await conn.close()
