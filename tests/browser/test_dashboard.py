"""The dashboard in a real headless Chromium (Debian's), as its users sign in: a PCN's team
sees its own PCN, exact, and not another's; charts render, each worker's caseload drawn
against their own capacity; a commissioner sees every PCN with small numbers suppressed
and no raw None or bare code, from a published snapshot that does not change as referrals
arrive; a synthetic model is bannered on every page; axe-core finds no accessibility
violation; each person signs in with their own account and signs out with the page's
button, which ends the session. Screenshots are kept in var/test-artefacts/."""

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

import services.runtime.accounts as accounts
from services.outcomes.app import SERVICE as OUTCOMES
from services.readside import migrate_own
from services.readside.model import SYNTHETIC_SENDER
from services.readside.store import Accounts, read_only_pool, sessions_pool
from services.readside.web import create_app
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
SMALL = "U61003"  # two workers, 1 of 2 and 1 of 1, nobody waiting
NEW = "U61004"  # one person waiting, no roster yet
PASSWORD = "browser test password"


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


async def referral(conn, schema, pcn, agency, received, worker, sender="A81001") -> None:
    await conn.execute(
        f'INSERT INTO "{schema}".referral_fact (referral_id, sender, agency_type,'
        " registered_practice, pcn, needs, pathway, received_at, assigned_at,"
        " link_worker_id, contacts) VALUES ($1, $2, $3, 'A81001', $4,"
        " '{loneliness}', 'adult', $5, $6, $7, 0)",
        uuid.uuid4(),
        sender,
        agency,
        pcn,
        received,
        received + timedelta(days=1) if worker else None,
        worker,
    )


async def worker(conn, schema, pcn, name, capacity) -> None:
    await conn.execute(
        f'INSERT INTO "{schema}".roster_fact (pcn, link_worker_id, capacity, active)'
        " VALUES ($1, $2, $3, true)",
        pcn,
        name,
        capacity,
    )


async def seed(conn, schema: str) -> None:
    """12 referrals in our PCN this month (two link workers), 3 in theirs, 2 in a small
    PCN (1 of 2 and 1 of 1), 1 waiting in a new PCN with no roster."""
    now = datetime.now(UTC) - timedelta(minutes=5)
    sources = ["general_practice"] * 7 + ["police"] * 3 + ["self_referral"] * 2
    for pcn, agencies in ((OURS, sources), (THEIRS, ["vcse"] * 3)):
        for n, agency in enumerate(agencies):
            assigned = f"lw-{pcn}-{n % 2}" if n % 4 else None
            await referral(conn, schema, pcn, agency, now - timedelta(hours=n), assigned)
        await worker(conn, schema, pcn, f"lw-{pcn}-0", 10)
        await worker(conn, schema, pcn, f"lw-{pcn}-1", 6)
    await worker(conn, schema, SMALL, "lw-half", 2)
    await worker(conn, schema, SMALL, "lw-full", 1)
    await referral(conn, schema, SMALL, "vcse", now, "lw-half")
    await referral(conn, schema, SMALL, "vcse", now, "lw-full")
    await referral(conn, schema, NEW, "police", now, None)


async def publish_this_month(conn, schema: str) -> str:
    """The seeded month's snapshot, as outcomes will publish it once the month is over."""
    from services.ops import publishing
    from services.readside import snapshots
    from services.runtime.db import init_connection

    await init_connection(conn)
    period = datetime.now(UTC).strftime("%Y-%m")
    later = datetime.combine(
        snapshots.month(period).end + timedelta(days=2), datetime.min.time(), UTC
    )
    async with conn.transaction():
        await publishing.publish(conn, schema, period, snapshots.SCHEDULE, later)
    return period


@contextlib.asynccontextmanager
async def serving(app) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
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
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await task


@contextlib.asynccontextmanager
async def dashboard_app(settings, pool, schema: str, synthetic: bool = False):
    """The dashboard over ``schema``, its sessions in the namespace's own schema, audit
    records kept in a list (the trail's own tests cover publishing them)."""
    own = settings.names.schema("readside")
    writable = await sessions_pool(settings.database_url, own, 2)
    recorded: list = []

    async def record(data):
        recorded.append(data)

    try:
        app = create_app(
            pool,
            schema,
            sessions_pool=writable,
            sessions_schema=own,
            record=record,
            mode="development",
            synthetic=synthetic,
        )
        async with serving(app) as url:
            yield url
    finally:
        await writable.close()


@pytest.fixture
async def dashboard(settings) -> AsyncIterator[tuple[str, dict[str, tuple[str, str]]]]:
    """The dashboard on a free port, read-only, over a seeded reporting model: (url,
    account name and password by PCN and "ICB")."""
    from services.runtime.db import drop_schema

    chromium()
    await migrate(settings, OUTCOMES)
    await migrate_own(settings)
    schema = settings.names.schema("reporting")
    own = settings.names.schema("readside")
    writer = await create_pool(settings.database_url, settings.names.schema("outcomes"), "t", 2)
    hashed = accounts.hash_password(PASSWORD)
    async with writer.acquire() as conn:
        await seed(conn, schema)
        issued = {}
        for pcn in (OURS, SMALL, NEW):
            login = f"team.{pcn.lower()}"
            await Accounts(conn, own).add(login, "pcn", pcn, hashed)
            issued[pcn] = (login, PASSWORD)
        await Accounts(conn, own).add("icb.reader", "commissioner", None, hashed)
        issued["ICB"] = ("icb.reader", PASSWORD)
        await publish_this_month(conn, schema)
    await writer.close()
    pool = await read_only_pool(settings.database_url, schema, 2)
    try:
        async with dashboard_app(settings, pool, schema) as url:
            yield url, issued
    finally:
        await pool.close()
        await drop_schema(settings.database_url, own)


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


async def sign_in(page, url: str, who: tuple[str, str]) -> None:
    await page.goto(f"{url}/")
    assert page.url.endswith("/login")  # no session: sent to sign in
    await page.get_by_label("Account name").fill(who[0])
    await page.get_by_label("Password").fill(who[1])
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.wait_for_load_state()


async def violations(page) -> list[str]:
    """Every axe-core violation, whatever its impact."""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("async () => await axe.run(document)")
    return [f"{v['id']} ({v['impact']}): {v['help']}" for v in result["violations"]]


async def keep(page, name: str) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTEFACTS / f"{name}.png"
    await page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    print(f"\nscreenshot: {screenshot}")
    return screenshot


async def bar_widths(page, chart: str) -> dict[str, tuple[float, float]]:
    """Per worker of the caseload chart: (outline width, filled width)."""
    svg = f"svg[aria-labelledby^='{chart}-title']"
    names = [await t.text_content() for t in await page.locator(f"{svg} text.axis").all()]
    widths = [
        float(await r.get_attribute("width")) for r in await page.locator(f"{svg} rect").all()
    ]
    return dict(zip(names, zip(widths[::2], widths[1::2], strict=True), strict=True))


async def test_a_pcn_team_sees_its_own_figures_and_charts(dashboard):
    url, issued = dashboard
    async with browser() as page:
        await sign_in(page, url, issued[OURS])
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
        assert "None" not in text and "SYNTHETIC" not in await page.inner_text("body")
        await keep(page, "dashboard-pcn")
        assert await violations(page) == []


async def test_each_caseload_is_drawn_against_its_own_capacity(dashboard):
    """1 of 2 is half a bar and 1 of 1 a whole one (they were drawn the same length,
    scaled to the largest caseload); one person waiting is "1 person"."""
    url, issued = dashboard
    async with browser() as page:
        await sign_in(page, url, issued[SMALL])
        widths = await bar_widths(page, "caseload")
        (track, half), (track_full, full) = widths["lw-half"], widths["lw-full"]
        assert track == track_full > 0
        assert half == pytest.approx(track / 2) and full == pytest.approx(track)
        caseload = await page.inner_text("#caseload-h + figure")
        assert "1 of 2" in caseload and "1 of 1" in caseload
        assert "Nobody is waiting" in await page.inner_text("section[aria-labelledby=waiting]")
        await keep(page, "dashboard-pcn-capacity")
        assert await violations(page) == []


async def test_a_pcn_with_no_roster_is_told_why_its_caseload_is_empty(dashboard):
    url, issued = dashboard
    async with browser() as page:
        await sign_in(page, url, issued[NEW])
        waiting = await page.inner_text("section[aria-labelledby=waiting]")
        assert "1 person is waiting" in waiting and "people are" not in waiting
        caseload = await page.inner_text("section[aria-labelledby=caseload-h]")
        assert "No link workers are on this PCN's roster yet" in caseload
        assert await page.locator("section[aria-labelledby=caseload-h] table").count() == 0
        text = await page.inner_text("main")
        assert "None" not in text and "not yet" in text  # nobody placed: no median yet
        await keep(page, "dashboard-pcn-no-roster")
        assert await violations(page) == []


async def test_a_commissioner_sees_every_pcn_with_small_numbers_suppressed(settings, dashboard):
    """From the published snapshot, frozen: referrals arriving afterwards change nothing."""
    url, issued = dashboard
    async with browser() as page:
        await sign_in(page, url, issued["ICB"])
        main = await page.inner_text("main")
        period = datetime.now(UTC).strftime("%Y-%m")
        assert f"Figures for period {period}, published on" in main
        table = await page.inner_text("#pcns + table")
        head, *lines = table.splitlines()[1:]
        rows = {line.split("\t")[0]: line.split("\t")[1:] for line in lines}
        assert rows[THEIRS][0] == "*"  # 3 received: 1 to 7 is never shown
        assert rows[OURS][0] == "10"  # 12, rounded: the three stars' sum stays unknown
        assert rows["total"][0] == "20"  # 18
        assert rows[NEW][6] == "not yet"  # no median: nobody given a link worker
        assert "None" not in table
        assert "Coded in the GP record" in head and "871731000000106" not in head
        assert "871731000000106" in main  # named in the note
        await keep(page, "dashboard-commissioner")
        assert await violations(page) == []

        writer = await create_pool(settings.database_url, settings.names.schema("outcomes"), "t", 1)
        async with writer.acquire() as conn:
            for _ in range(6):  # THEIRS goes from 3 to 9: live, it would now show 10
                await referral(
                    conn,
                    settings.names.schema("reporting"),
                    THEIRS,
                    "vcse",
                    datetime.now(UTC) - timedelta(minutes=1),
                    None,
                )
        await writer.close()
        await page.reload()
        assert await page.inner_text("#pcns + table") == table
        picked = await page.goto(f"{url}/?period={period}")
        assert picked is not None and picked.status == 200
        assert await page.inner_text("#pcns + table") == table
        missing = await page.goto(f"{url}/?period=1999-01")
        assert missing is not None and missing.status == 404


async def test_the_sign_in_page_and_a_wrong_password(dashboard):
    url, issued = dashboard
    async with browser() as page:
        await page.goto(f"{url}/login")
        await keep(page, "dashboard-sign-in")
        assert await violations(page) == []
        await sign_in(page, url, (issued["ICB"][0], "not the password"))
        assert "correct account name and password" in await page.inner_text("main")
        assert (await page.title()).startswith("Error: ")
        await keep(page, "dashboard-sign-in-refused")
        assert await violations(page) == []
        response = await page.goto(f"{url}/")
        assert page.url.endswith("/login") and response is not None
        missing = await page.goto(f"{url}/no-such-page")
        assert missing is not None and missing.status == 404
        assert "no such page" in await page.inner_text("main")


async def test_signing_out_ends_the_session(dashboard):
    url, issued = dashboard
    async with browser() as page:
        await sign_in(page, url, issued["ICB"])
        [cookie] = [c for c in await page.context.cookies() if c["name"] == "lw_dashboard"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_load_state()
        assert "You have signed out" in await page.inner_text("main")
        await keep(page, "dashboard-signed-out")
        # the old cookie, put back, admits no one: the session ended on the server
        await page.context.add_cookies([cookie])
        await page.goto(f"{url}/")
        assert page.url.startswith(f"{url}/login")
        assert "Sign in" in await page.inner_text("main")


async def test_the_dashboard_cannot_write_the_model(settings, dashboard):
    """Its sessions are read-only: a write through its pool fails."""
    import asyncpg

    pool = await read_only_pool(settings.database_url, settings.names.schema("reporting"), 1)
    try:
        async with pool.acquire() as conn:
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await conn.execute("DELETE FROM roster_fact")
    finally:
        await pool.close()


async def test_a_synthetic_row_banners_every_page(settings, dashboard):
    """A model holding a synthetic row is marked synthetic on every page that shows it, even
    when the dashboard was not started on the synthetic model; a snapshot published before
    the row came is not."""
    url, issued = dashboard
    writer = await create_pool(settings.database_url, settings.names.schema("outcomes"), "t", 1)
    async with writer.acquire() as conn:
        schema = settings.names.schema("reporting")
        await referral(conn, schema, NEW, "police", datetime.now(UTC), None, SYNTHETIC_SENDER)
    await writer.close()
    async with browser() as page:
        await sign_in(page, url, issued[NEW])  # the PCN's live view holds the row
        banner = await page.inner_text("header #synthetic")
        assert "SYNTHETIC DATA" in banner and "not real" in banner
        assert (await page.title()).startswith("SYNTHETIC")
        await keep(page, "dashboard-pcn-synthetic")
        assert await violations(page) == []
        # the commissioner's snapshot was published before the row came: it holds none
        await page.context.clear_cookies()
        await sign_in(page, url, issued["ICB"])
        assert await page.locator("header #synthetic").count() == 0


async def test_a_synthetic_year_shows_real_shapes_and_says_it_is_synthetic(settings):
    """The dashboard started on the synthetic model (linkwell dashboard --synthetic), after
    linkwell synthetic: a commissioner sees every PCN's figures, none suppressed, under the
    banner; a PCN team sees its caseloads and waits."""
    from services.ops.report_cli import fill_synthetic, model_schema
    from services.runtime.db import drop_schema

    chromium()
    schema = model_schema(settings, True)
    try:
        _, issued = await fill_synthetic(settings, 1800, 1)
        credentials = dict(issued)
        pool = await read_only_pool(settings.database_url, schema, 2)
        try:
            async with dashboard_app(settings, pool, schema, synthetic=True) as url:
                async with browser() as page:
                    await page.goto(f"{url}/login")
                    assert "SYNTHETIC DATA" in await page.inner_text("header")
                    who = "synthetic-commissioner"
                    await sign_in(page, url, (who, credentials[who]))
                    assert "SYNTHETIC DATA" in await page.inner_text("header #synthetic")
                    table = await page.inner_text("#pcns + table")
                    received = [line.split("\t")[1] for line in table.splitlines()[2:]]
                    assert len(received) == 5 and "*" not in received, table
                    await keep(page, "dashboard-synthetic-commissioner")
                    assert await violations(page) == []
                    await page.context.clear_cookies()
                    team = next(t for t in issued if t[0] != "synthetic-commissioner")
                    await sign_in(page, url, team)
                    text = await page.inner_text("main")
                    assert "people are waiting" in text and "days" in text
                    assert await page.locator("#caseload-h + figure rect.track").count() == 4
                    await keep(page, "dashboard-synthetic-pcn")
                    assert await violations(page) == []
        finally:
            await pool.close()
    finally:
        await drop_schema(settings.database_url, schema)
        await drop_schema(settings.database_url, settings.names.schema("readside"))


def test_axe_is_the_pinned_copy():
    assert AXE.read_text()[:20].startswith("/*! axe v4.11.0")
