"""A batch's records are stored in one statement with no ``ON CONFLICT``: a record whose
event id is on the trail already (sent by another service, so the inbox let it in) fails
the batch, which is then handled event by event, where it is kept once and the chain
stays whole, with no gap."""

from __future__ import annotations

import asyncio

import pytest

from services.audit import domain
from services.audit.app import SERVICE as AUDIT
from services.audit.store import chain

from .conftest import asyncpg_connect, running
from .test_audit_batches import publish_batch, record, until

pytestmark = pytest.mark.integration


async def test_a_record_already_on_the_trail_fails_the_batch_and_is_kept_once(settings):
    first = record(settings, "A81001")
    async with running(AUDIT, settings):
        await publish_batch(settings, [first])
        await until(settings, 1)
        copy = dict(first, source=settings.names.source("notify"))  # the same id, elsewhere
        await publish_batch(
            settings, [record(settings, "B82005"), copy, record(settings, "C83001")]
        )
        rows = await until(settings, 3)
        await asyncio.sleep(0.5)
        async with asyncpg_connect(settings) as conn:
            stored = await chain(conn, settings.names.schema("audit"))
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert [r.event_id for r, _, _ in stored].count(first["id"]) == 1
    assert [r.recipient_org for r, _, _ in stored] == ["A81001", "B82005", "C83001"]
    assert domain.verify(stored) == (3, None)
