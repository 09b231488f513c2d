"""The gateway killed between a page saying "sent" and its outbox publishing the referral
(failpoint ``before_publish``, which dies as abruptly as kill -9), and killed after
publishing but before marking it published (``after_publish``): started again, the
referral arrives exactly once and its answer reaches the status page."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from ..browser.test_dashboard import free_port
from ..browser.test_gateway import pages_up
from ..integration.conftest import asyncpg_connect
from ..integration.test_gateway import Door
from ..stack import ProcessStack
from ..support import Tap

pytestmark = pytest.mark.e2e


async def unpublished(settings) -> int:
    async with asyncpg_connect(settings) as conn:
        return await conn.fetchval(
            f'SELECT count(*) FROM "{settings.names.schema("gateway")}".outbox'
            " WHERE published_at IS NULL"
        )


async def accepted_in_intake(settings, reference: str) -> int:
    async with asyncpg_connect(settings) as conn:
        return await conn.fetchval(
            f'SELECT count(*) FROM "{settings.names.schema("intake")}".referral'
            " WHERE sender_reference = $1",
            reference,
        )


@pytest.mark.parametrize("point", ["before_publish", "after_publish"])
async def test_a_referral_the_page_said_was_sent_arrives_once_after_a_crash(
    settings, tmp_path: Path, point: str
):
    port = free_port()
    stack = ProcessStack(settings, tmp_path, ("intake", "gateway"))
    stack.env["LINKWELL_GATEWAY_PORT"] = str(port)
    stack.env["LINKWELL_GATEWAY_CLIENT_SENDS_PER_HOUR"] = "999"  # the test polls its status
    # only the page's own wake-up moves the relay: the crash comes after the page is sent
    stack.env["LINKWELL_POLL_INTERVAL"] = "3600"  # (a relay still makes a pass at start)
    stack.start("intake")
    stack.env["LINKWELL_FAILPOINTS"] = f"{point}=1"
    stack.start("gateway")
    try:
        await stack.wait_ready()
        await pages_up(f"http://127.0.0.1:{port}")
        async with (
            Tap(settings, "referral.submitted.v1", exchange=settings.names.inbound) as wire,
            Tap(settings, "referral.*.v1.SELF-WEB") as answers,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
        ):
            door = Door(None, client)  # type: ignore[arg-type]
            sent = await door.send(await door.answer_all())
            assert (sent.status_code, sent.headers["location"]) == (303, "/refer/sent")
            page = await client.get("/refer/sent")  # the page says sent; then it dies
            reference = re.search(r"LW-[A-Z0-9]{4}-[A-Z0-9]{4}", page.text).group(0)
            assert stack.procs["gateway"].wait(30) == 137, stack.tail("gateway")
            assert f'"point": "{point}"' in stack.tail("gateway")
            assert await unpublished(settings) == 1  # not marked: it will be (re)published
            if point == "before_publish":
                assert wire.events() == []

            stack.env.pop("LINKWELL_FAILPOINTS")
            stack.start("gateway")
            await answers.wait_for(
                lambda t: t.events("referral.accepted.v1", sender_reference=reference),
                60,
                "the referral accepted",
            )
            copies = 2 if point == "after_publish" else 1  # once before the crash, once after
            await wire.wait_for(lambda t: len(t.events()) >= copies, 10, f"{copies} published")
            assert len({e["id"] for e in wire.events()}) == 1  # however often: one event
            for _ in range(50):  # marked once the broker confirmed it (just after)
                if await unpublished(settings) == 0:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)  # time for intake to answer a second copy, if it would
            assert len(answers.events("referral.accepted.v1")) == 1
            assert await accepted_in_intake(settings, reference) == 1
            assert await unpublished(settings) == 0
            await pages_up(f"http://127.0.0.1:{port}")
            for _ in range(50):  # and the restarted gateway took the answer to its page
                status = await door.post(
                    "/status",
                    {"reference": reference, "dob_day": "7", "dob_month": "11", "dob_year": "1961"},
                )
                if "Accepted" in status.text:
                    break
                await asyncio.sleep(0.2)
            assert "Accepted" in status.text
    finally:
        codes = stack.stop_all()
        print({n: stack.tail(n, 10) for n in codes if codes[n] not in (0, 137)})
