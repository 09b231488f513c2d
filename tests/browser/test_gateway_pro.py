"""The professional door in a real headless Chromium, with intake, triage, notify and the
gateway running as processes: a professional invited by the administrator sets a
password, signs in, refers in four pages, and sees the referral's step and its Gravity
task status change in their organisation's list once intake and triage have run; then
signs out. axe-core finds no violation on any page; a screenshot of each is kept in
var/test-artefacts/gateway-pro-*.png."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.gateway import pro_actions
from services.runtime.db import create_pool

from ..stack import ProcessStack
from ..support import publish, worker
from .test_dashboard import ARTEFACTS, AXE, chromium, free_port
from .test_gateway import browser, pages_up

pytestmark = pytest.mark.e2e


@pytest.fixture
async def door(settings, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    chromium()
    port = free_port()
    stack = ProcessStack(settings, tmp_path, ("intake", "triage", "notify", "gateway"))
    stack.env["LINKWELL_GATEWAY_PORT"] = str(port)
    stack.env["LINKWELL_GATEWAY_ORGANISATIONS"] = "A81001"
    await stack.start_all()
    try:
        await publish(settings, worker("U12345", "lw-pro-door-1", 3))  # A81001's PCN
        url = f"http://127.0.0.1:{port}"
        await pages_up(url)
        pool = await create_pool(settings.database_url, settings.names.schema("gateway"), "t", 1)
        try:
            _, token = await pro_actions.invite(
                pool,
                organisation="A81001",
                email="sam.lee@example.org",
                serves=("A81001",),
                hours=72,
                organisation_name="Riverside Surgery",
                agency_type="general_practice",
                role="Practice nurse",
            )
        finally:
            await pool.close()
        yield url, f"{url}/pro/invitation/{token}"
    finally:
        codes = stack.stop_all()
        print({n: stack.tail(n, 10) for n in codes if codes[n] != 0})


class Shots:
    def __init__(self, page) -> None:
        self.page = page
        self.count = 0

    async def check(self, name: str) -> str:
        """axe-core on the page as it is, and a screenshot; returns the main text."""
        self.count += 1
        path = ARTEFACTS / f"gateway-pro-{self.count:02d}-{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        await self.page.add_script_tag(path=str(AXE))
        result = await self.page.evaluate(
            "async () => await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a',"
            " 'wcag21aa', 'wcag22aa', 'best-practice']})"
        )
        violations = [f"{v['id']} ({v['impact']}): {v['help']}" for v in result["violations"]]
        assert violations == [], (name, violations)
        return await self.page.inner_text("main")

    async def submit(self, button: str = "main button.nhsuk-button") -> None:
        async with self.page.expect_navigation():
            await self.page.click(button)


async def test_a_professional_signs_in_refers_and_sees_the_status_change(door):
    url, link = door
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    async with browser() as page:
        me = Shots(page)
        await page.goto(link)
        assert "sam.lee@example.org" in await me.check("set-password")
        await page.fill("#password", "correct horse battery")
        await page.fill("#again", "correct horse battery")
        await me.submit()

        assert "Your password is set" in await me.check("sign-in")
        await page.fill("#email", "sam.lee@example.org")
        await page.fill("#password", "correct horse battery")
        await me.submit()

        text = await me.check("referrals-empty")
        assert "has not made a referral here yet" in text
        await me.submit()  # Make a referral

        await me.submit()  # nothing filled in: the error summary
        assert "There is a problem" in await me.check("person-error")
        await page.fill("#given_name", "Robin")
        await page.fill("#family_name", "Quillfeather")
        await page.fill("#dob_day", "2")
        await page.fill("#dob_month", "5")
        await page.fill("#dob_year", "1948")
        await page.fill("#nhs_number", "943 476 5919")
        await page.select_option("#practice", "A81001")
        await me.check("person")
        await me.submit()

        await page.check("#needs")
        await page.check("#preferred")  # a phone call
        await page.fill("#phone", "07700 900456")
        await me.check("support")
        await me.submit()

        await page.check("#consent_method")
        await page.check("#consent")
        await me.check("consent")
        await me.submit()

        text = await me.check("check")
        assert "Quillfeather" in text and "Riverside Surgery" in text
        await me.submit()

        text = await me.check("sent")
        assert "Referral sent" in text
        reference = await page.inner_text("#reference")
        await me.submit("main a:has-text('Your organisation')")
        text = await me.check("referrals-sent")
        assert reference in text

        for _ in range(80):
            await page.goto(f"{url}/pro/referrals")
            text = await page.inner_text("main")
            if "A link worker has been found" in text and "Accepted" in text:
                break
            await asyncio.sleep(0.5)
        text = await me.check("referrals-assigned")
        assert "A link worker has been found" in text
        row = await page.inner_text("#referrals tbody tr")
        assert reference in row and "Accepted" in row  # the Gravity task status notify gave

        await me.submit("button:has-text('Sign out')")
        assert "You have signed out" in await me.check("signed-out")
        await page.goto(f"{url}/pro/referrals")
        assert page.url.endswith("/pro/sign-in")  # the session is over
