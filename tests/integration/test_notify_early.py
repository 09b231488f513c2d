"""notify's early events against a concurrent acceptance, on two connections that commit:
a step held while the referral's acceptance is committing, or handled while it is, is
told once, after the acceptance, whichever transaction comes first."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from services.registry import SERVICE_DEFS
from services.runtime import db
from services.runtime.names import Names

from ..handlers.conftest import Harness
from ..support import accepted, internal

NOTIFY = SERVICE_DEFS["notify"]


@pytest.fixture
async def names() -> AsyncIterator[Names]:
    names = Names(f"e{datetime.now(UTC):%y%m%d%H%M}{uuid.uuid4().hex[:5]}")
    await db.migrate(os.environ["DATABASE_URL"], names.schema("notify"), NOTIFY.migrations())
    yield names
    await db.drop_schema(os.environ["DATABASE_URL"], names.schema("notify"))


async def notify(names: Names) -> Harness:
    conn = await asyncpg.connect(
        os.environ["DATABASE_URL"], server_settings={"search_path": names.schema("notify")}
    )
    await db.init_connection(conn)
    return Harness(NOTIFY, conn, names, NOTIFY.settings())


@pytest.mark.parametrize("first", ["step", "acceptance"])
async def test_a_step_and_its_acceptance_at_the_same_time_miss_nothing(names, first):
    step_side, accept_side = await notify(names), await notify(names)
    try:
        ref = accepted(contact={"preferred": "email", "email": "sam@example.org"})
        rid = ref["data"]["referral_id"]
        step = internal("referral.assigned.v1", producer="triage", referral_id=rid)
        sides = [(step_side, step), (accept_side, ref)]
        if first == "acceptance":
            sides.reverse()
        (one, one_event), (other, other_event) = sides
        one_tx, other_tx = one.conn.transaction(), other.conn.transaction()
        await one_tx.start()
        await other_tx.start()
        await one.send(one_event)
        later = asyncio.create_task(other.send(other_event))
        await asyncio.sleep(0.5)
        assert not later.done()  # it waits for the first to commit
        await one_tx.commit()
        await asyncio.wait_for(later, 10)
        await other_tx.commit()
        told = one.of("referral.status.v1") + other.of("referral.status.v1")
        assert sorted(e.data.status.value for e in told) == ["accepted", "assigned"]
        rows = await step_side.rows("SELECT audience FROM notification ORDER BY id")
        assert [r["audience"] for r in rows] == ["person", "team"]
        assert await step_side.value("SELECT count(*) FROM early_event") == 0
    finally:
        await step_side.conn.close()
        await accept_side.conn.close()
