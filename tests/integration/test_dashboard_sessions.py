"""The dashboard's sessions against PostgreSQL: a person signs in with their account, the
session ends on sign-out (a POST) and on idle or absolute expiry, a cross-site post and a
post without the CSRF token are refused, pages refuse framing, sign-in throttles, and each
sign-in and page of figures is on the trail (without the name typed in) before it is
answered."""

from __future__ import annotations

import re

import asyncpg
import httpx
import pytest

import services.runtime.accounts as accounts
from services.outcomes.app import SERVICE as OUTCOMES
from services.readside import migrate_own
from services.readside.settings import DashboardSettings
from services.readside.store import Accounts, read_only_pool, sessions_pool
from services.readside.web import create_app
from services.runtime.db import drop_schema
from services.runtime.runner import migrate

pytestmark = pytest.mark.integration

BASE = "http://dash.test"
PASSWORD = "a long enough password"


@pytest.fixture
async def dashboard(settings):
    await migrate(settings, OUTCOMES)
    await migrate_own(settings)
    own = settings.names.schema("readside")
    reporting = settings.names.schema("reporting")
    pool = await read_only_pool(settings.database_url, reporting, 1)
    writable = await sessions_pool(settings.database_url, own, 2)
    async with writable.acquire() as conn:
        store = Accounts(conn, own)
        hashed = accounts.hash_password(PASSWORD)
        await store.add("jo.icb", "commissioner", None, hashed)
        await store.add("sam.u1", "pcn", "U00001", hashed)
    recorded: list = []
    failing = {"on": False}

    async def record(data):
        if failing["on"]:
            raise ConnectionError("broker away")
        recorded.append(data)

    def app(**overrides):
        return create_app(
            pool,
            reporting,
            sessions_pool=writable,
            sessions_schema=own,
            record=record,
            settings=DashboardSettings(**overrides),
            mode="development",
        )

    try:
        yield app, recorded, failing, writable, own
    finally:
        await pool.close()
        await writable.close()
        await drop_schema(settings.database_url, own)


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


async def sign_in(http: httpx.AsyncClient, login: str, password: str = PASSWORD, **headers):
    page = await http.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return await http.post(
        "/login",
        data={"login": login, "password": password, "csrf": csrf},
        headers={"origin": BASE, **headers},
    )


def csrf_of(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


async def test_a_session_ends_on_sign_out_and_every_page_refuses_framing(dashboard):
    app, recorded, _, _, _ = dashboard
    async with client(app()) as http:
        done = await sign_in(http, "jo.icb")
        assert done.status_code == 303 and done.headers["location"] == "/"
        cookie = http.cookies["lw_dashboard"]
        home = await http.get("/")
        assert home.status_code == 200 and "Social prescribing across PCNs" in home.text
        for page in (home, await http.get("/login")):
            assert page.headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert [r.action.value for r in recorded] == ["sign_in", "page_view"]
        assert recorded[1].by == recorded[0].by and recorded[1].recipient_kind == "commissioner"
        # sign-out is a post with the session's CSRF token, and it ends the server session
        assert (await http.get("/logout")).status_code == 405
        out = await http.post("/logout", data={"csrf": csrf_of(home)}, headers={"origin": BASE})
        assert out.status_code == 303 and out.headers["location"] == "/login?ended=signed_out"
    async with client(app()) as replay:  # the old cookie, kept by someone: no longer admits
        replay.cookies.set("lw_dashboard", cookie)
        again = await replay.get("/")
        assert again.status_code == 303 and again.headers["location"].startswith("/login")


@pytest.mark.parametrize("column,reason", [("seen_at", "idle"), ("created_at", "expired")])
async def test_a_session_ends_when_idle_or_too_old(dashboard, column, reason):
    app, _, _, writable, own = dashboard
    async with client(app()) as http:
        await sign_in(http, "sam.u1")
        assert (await http.get("/")).status_code == 200
        async with writable.acquire() as conn:
            await conn.execute(
                f"UPDATE \"{own}\".session SET {column} = now() - interval '9 hours'"
            )
        ended = await http.get("/")
        assert ended.status_code == 303 and ended.headers["location"] == f"/login?ended={reason}"
        assert (await http.get("/")).headers["location"] == "/login"  # cookie gone too


async def test_a_cross_site_post_and_one_without_the_csrf_token_are_refused(dashboard):
    app, recorded, _, _, _ = dashboard
    async with client(app()) as http:
        assert (await sign_in(http, "jo.icb", origin="https://evil.example")).status_code == 403
        page = await http.get("/login")
        bare = {"login": "jo.icb", "password": PASSWORD}
        refused = await http.post("/login", data=bare, headers={"origin": BASE})
        assert refused.status_code == 403  # no CSRF token
        nothing = await http.post("/login", data={**bare, "csrf": csrf_of(page)})
        assert nothing.status_code == 403  # neither Origin nor Referer
        assert "lw_dashboard" not in http.cookies and recorded == []
        referred = await http.post(
            "/login", data={**bare, "csrf": csrf_of(page)}, headers={"referer": f"{BASE}/login"}
        )
        assert referred.status_code == 303
        home = await http.get("/")
        out = await http.post(
            "/logout", data={"csrf": csrf_of(home)}, headers={"origin": "https://evil.example"}
        )
        assert out.status_code == 403
        forged = await http.post("/logout", data={"csrf": "x" * 43}, headers={"origin": BASE})
        assert forged.status_code == 403
        assert (await http.get("/")).status_code == 200  # still signed in


async def test_sign_in_throttles_per_account_and_records_failures_without_the_name(dashboard):
    app, recorded, _, _, _ = dashboard
    async with client(app(sign_ins_per_account=3)) as http:
        for _ in range(3):
            assert (await sign_in(http, "jo.icb", "wrong password!")).status_code == 401
        throttled = await sign_in(http, "jo.icb")  # the right password, too late
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
        assert "lw_dashboard" not in http.cookies
        assert (await sign_in(http, "sam.u1")).status_code == 303  # another account: not
    outcomes = [r.detail["outcome"] for r in recorded if r.action == "sign_in"]
    assert outcomes == ["refused"] * 3 + ["throttled", "ok"]
    for r in recorded:
        assert "jo.icb" not in r.model_dump_json() and r.by_service == "readside"


async def test_sign_in_throttles_per_address(dashboard):
    app, _, _, _, _ = dashboard
    async with client(app(sign_ins_per_client=2)) as http:
        assert (await sign_in(http, "nobody.one", "wrong password!")).status_code == 401
        assert (await sign_in(http, "nobody.two", "wrong password!")).status_code == 401
        assert (await sign_in(http, "jo.icb")).status_code == 429


async def test_no_figures_without_a_confirmed_record(dashboard):
    app, _, failing, _, _ = dashboard
    async with client(app()) as http:
        await sign_in(http, "jo.icb")
        failing["on"] = True
        page = await http.get("/")
        assert page.status_code == 503 and "Social prescribing across PCNs" not in page.text
        failing["on"] = False
    async with client(app()) as http:
        failing["on"] = True
        refused = await sign_in(http, "jo.icb")
        assert refused.status_code == 503 and "lw_dashboard" not in http.cookies


async def test_a_disabled_account_is_signed_out(dashboard):
    app, _, _, writable, own = dashboard
    async with client(app()) as http:
        await sign_in(http, "sam.u1")
        async with writable.acquire() as conn:
            assert await Accounts(conn, own).disable("sam.u1") is not None
        assert (await http.get("/")).headers["location"].startswith("/login")
        assert (await sign_in(http, "sam.u1")).status_code == 401


async def test_the_reporting_pool_still_cannot_write(dashboard, settings):
    pool = await read_only_pool(settings.database_url, settings.names.schema("reporting"), 1)
    try:
        async with pool.acquire() as reader:
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await reader.execute("CREATE TABLE planted (x int)")
    finally:
        await pool.close()
