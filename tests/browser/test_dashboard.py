"""The dashboard in a real headless Chromium (Debian's), as its users sign in: a PCN's team
sees its own PCN, exact, and not another's; charts render; a commissioner sees every PCN
with small numbers suppressed; axe-core finds no serious or critical accessibility
violation. Screenshots are kept in var/test-artefacts/."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn

from services.outcomes.app import SERVICE as OUTCOMES
from services.outcomes.reporting import tokens
from services.outcomes.reporting.dashboard import Dashboard
from services.runtime.db import create_pool
from services.runtime.runner import migrate

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"  # axe-core 4.11.0, MPL-2.0
ARTEFACTS = ROOT / "var" / "test-artefacts"
CHROMIUM = Path(os.environ.get("LINKWELL_CHROMIUM", "/usr/bin/chromium"))
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OURS, THEIRS = "U61001", "U61002"


def chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    message = f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message + "; under CI this fails")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def seed(conn, schema: str) -> None:
    """12 referrals in our PCN this month (two link workers), 3 in theirs."""
    now = datetime.now(UTC)
    sources = ["general_practice"] * 7 + ["police"] * 3 + ["self_referral"] * 2
    for pcn, agencies in ((OURS, sources), (THEIRS, ["vcse"] * 3)):
        for n, agency in enumerate(agencies):
            received = now - timedelta(hours=n + 1)
            assigned = received + timedelta(days=1) if n % 4 else None
            await conn.execute(
                f'INSERT INTO "{schema}".referral_fact (referral_id, sender, agency_type,'
                " registered_practice, pcn, needs, pathway, received_at, assigned_at,"
                " link_worker_id, contacts) VALUES ($1, 'A81001', $2, 'A81001', $3,"
                " '{loneliness}', 'adult', $4, $5, $6, 0)",
                uuid.uuid4(),
                agency,
                pcn,
                received,
                assigned,
                f"lw-{pcn}-{n % 2}" if assigned else None,
            )
        for worker, capacity in ((f"lw-{pcn}-0", 10), (f"lw-{pcn}-1", 6)):
            await conn.execute(
                f'INSERT INTO "{schema}".roster_fact (pcn, link_worker_id, capacity, active)'
                " VALUES ($1, $2, $3, true)",
                pcn,
                worker,
                capacity,
            )


@pytest.fixture
async def dashboard(settings) -> AsyncIterator[tuple[str, str, str]]:
    """The dashboard on a free port, over a seeded reporting model: (url, PCN token,
    commissioner token)."""
    chromium()
    await migrate(settings, OUTCOMES)
    schema = settings.names.schema("reporting")
    pool = await create_pool(settings.database_url, settings.names.schema("outcomes"), "t", 2)
    async with pool.acquire() as conn:
        await seed(conn, schema)
        ours = await tokens.issue(conn, schema, kind="pcn", pcn=OURS, label=f"{OURS} team")
        commissioner = await tokens.issue(conn, schema, kind="commissioner", label="ICB")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            Dashboard(pool, schema),
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", ours, commissioner
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await task
        await pool.close()


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=str(chromium()), args=FLAGS)
        try:
            # the dashboard's policy forbids scripts; axe is injected by the test only
            context = await launched.new_context(
                bypass_csp=True, viewport={"width": 1200, "height": 900}
            )
            yield await context.new_page()
        finally:
            await launched.close()


async def sign_in(page, url: str, token: str) -> None:
    await page.goto(f"{url}/")
    assert page.url.endswith("/login")  # no token: sent to sign in
    await page.get_by_label("Your access token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state()


async def serious_violations(page) -> list[str]:
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("async () => await axe.run(document)")
    return [
        f"{v['id']} ({v['impact']}): {v['help']}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def test_a_pcn_team_sees_its_own_figures_and_charts(dashboard):
    url, ours, _ = dashboard
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    async with browser() as page:
        await sign_in(page, url, ours)
        text = await page.inner_text("main")
        assert f"PCN {OURS}" in text and THEIRS not in text
        assert "vcse" not in text  # another PCN's referrals never show
        # exact, its own: 12 referrals this month, 7 from general practice
        sources = await page.inner_text("#sources-h + figure table")
        assert "general practice" in sources and "7" in sources
        waiting = await page.inner_text("section[aria-labelledby=waiting]")
        assert "3 people are waiting" in waiting  # every fourth not yet assigned
        assert await page.locator("svg rect").count() >= 4  # the charts drew bars
        assert await page.locator("svg title").count() >= 2  # and name themselves
        screenshot = ARTEFACTS / "dashboard-pcn.png"
        await page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.stat().st_size > 10_000
        assert await serious_violations(page) == []
        print(f"\nscreenshot: {screenshot}")


async def test_a_commissioner_sees_every_pcn_with_small_numbers_suppressed(dashboard):
    url, _, commissioner = dashboard
    async with browser() as page:
        await sign_in(page, url, commissioner)
        table = await page.inner_text("#pcns + table")
        rows = {line.split("\t")[0]: line.split("\t")[1:] for line in table.splitlines()[2:]}
        assert rows[OURS][0] == "10"  # 12 received: rounded to the nearest 5
        assert rows[THEIRS][0] == "*"  # 3 received: 1 to 7 is never shown
        assert rows["total"][0] == "15"
        await page.screenshot(path=str(ARTEFACTS / "dashboard-commissioner.png"), full_page=True)
        assert await serious_violations(page) == []


async def test_a_bad_token_gets_nothing(dashboard):
    url, _, _ = dashboard
    async with browser() as page:
        await sign_in(page, url, "lwd_not-a-token")
        assert "not valid" in await page.inner_text("main")
        response = await page.goto(f"{url}/")
        assert page.url.endswith("/login") and response is not None


def test_axe_is_the_pinned_copy():
    assert AXE.read_text()[:20].startswith("/*! axe v4.11.0")
