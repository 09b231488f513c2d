"""The people's door in a real headless Chromium (Debian's), with intake, triage, notify
and the gateway running as processes: a person refers themself using the keyboard only,
a link worker is assigned, and the status page shows it. axe-core finds no violation
(of any impact) on any page; a screenshot of each page, at a phone's width, is kept in
var/test-artefacts/."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ..stack import ProcessStack
from ..support import publish, worker
from .test_dashboard import ARTEFACTS, AXE, FLAGS, chromium, free_port

pytestmark = pytest.mark.e2e
PHONE = {"width": 390, "height": 844}


async def pages_up(url: str, within: float = 30.0) -> None:
    """The gateway's consumer is up before its pages are (they start once it consumes)."""
    import httpx

    async with httpx.AsyncClient() as client:
        for _ in range(int(within / 0.1)):
            try:
                if (await client.get(f"{url}/refer")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"no pages at {url}")


@pytest.fixture
async def door(settings, tmp_path: Path) -> AsyncIterator[str]:
    chromium()
    port = free_port()
    stack = ProcessStack(settings, tmp_path, ("intake", "triage", "notify", "gateway"))
    stack.env["LINKWELL_GATEWAY_PORT"] = str(port)
    stack.env["LINKWELL_GATEWAY_CLIENT_SENDS_PER_HOUR"] = "999"  # the test polls its status
    await stack.start_all()
    try:
        await publish(settings, worker("U12345", "lw-door-1", 3))  # A81001's PCN
        await pages_up(f"http://127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        codes = stack.stop_all()
        print({n: stack.tail(n, 10) for n in codes if codes[n] != 0})


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=str(chromium()), args=FLAGS)
        try:
            # the pages' policy forbids inline scripts; axe is injected by the test only
            context = await launched.new_context(bypass_csp=True, viewport=PHONE)
            yield await context.new_page()
        finally:
            await launched.close()


class Person:
    """Uses the keyboard only: Tab to reach a control, keys to use it."""

    def __init__(self, page) -> None:
        self.page = page
        self.shots = 0

    async def tab_to(self, selector: str) -> None:
        for _ in range(60):
            await self.page.keyboard.press("Tab")
            if await self.page.evaluate(
                "s => document.activeElement && document.activeElement.matches(s)", selector
            ):
                return
        raise AssertionError(f"{selector} cannot be reached with the Tab key")

    async def type_into(self, selector: str, text: str) -> None:
        await self.tab_to(selector)
        await self.page.keyboard.type(text)

    async def press(self, selector: str, key: str = "Enter") -> None:
        await self.tab_to(selector)
        async with self.page.expect_navigation():
            await self.page.keyboard.press(key)

    async def continue_(self) -> None:
        await self.press("main button.nhsuk-button:not(.nhsuk-button--secondary)")

    async def choose(self, first_radio: str, downs: int = 0) -> None:
        await self.tab_to(first_radio)
        for _ in range(downs):
            await self.page.keyboard.press("ArrowDown")
        if downs == 0:
            await self.page.keyboard.press("Space")

    async def check_page(self, name: str) -> str:
        """axe-core on the page as it is, and a screenshot; returns the main text."""
        self.shots += 1
        path = ARTEFACTS / f"gateway-{self.shots:02d}-{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        await self.page.add_script_tag(path=str(AXE))
        result = await self.page.evaluate(
            "async () => await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a',"
            " 'wcag21aa', 'wcag22aa', 'best-practice']})"
        )
        violations = [f"{v['id']} ({v['impact']}): {v['help']}" for v in result["violations"]]
        assert violations == [], (name, violations)
        return await self.page.inner_text("main")


async def test_a_person_refers_themself_with_the_keyboard_and_sees_the_step(door):
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    async with browser() as page:
        me = Person(page)
        await page.goto(f"{door}/refer")
        text = await me.check_page("start")
        assert "999" in text and "116 123" in text
        await me.press("main button.nhsuk-button")  # Start now

        assert "need help right now" in await me.check_page("crisis")
        await me.choose("#crisis", downs=1)  # No
        await me.continue_()

        await me.check_page("who")
        await me.choose("#who")  # Myself
        await me.continue_()

        await me.type_into("#given_name", "Rowan")
        await me.continue_()  # no last name: the error summary
        assert "There is a problem" in await me.check_page("name-error")
        assert await page.title() == "Error: Name - Linkwell social prescribing"
        await me.type_into("#family_name", "Quillfeather")
        await me.continue_()

        await me.check_page("date-of-birth")
        await me.type_into("#dob_day", "14")
        await me.type_into("#dob_month", "2")
        await me.type_into("#dob_year", "1958")
        await me.continue_()

        text = await me.check_page("nhs-number")
        assert "NHS App" in text and "If you do not know it, leave this blank" in text
        await me.continue_()  # left blank: most people do not know theirs

        await me.check_page("gp")
        await me.type_into("#query", "ts18 1hu")
        await me.press("button.nhsuk-button--secondary")  # Search
        assert "Riverside Surgery" in await me.check_page("gp-results")
        await me.choose("#practice")
        await me.continue_()

        await me.check_page("needs")
        await me.tab_to("#needs")
        await page.keyboard.press("Space")  # lonely
        await me.continue_()

        await me.check_page("contact")
        await me.choose("#preferred", downs=1)  # a text message
        await me.type_into("#phone", "07700 900456")
        await me.continue_()

        assert "interpreter" in await me.check_page("adjustments")
        await me.type_into("#adjustments", "Large print, please")
        await me.continue_()

        assert "GP practice will be told" in await me.check_page("consent")
        await me.tab_to("#consent")
        await page.keyboard.press("Space")
        await me.continue_()

        text = await me.check_page("check-your-answers")
        assert "Quillfeather" in text and "Riverside Surgery" in text
        assert "Not known" in text and "Large print, please" in text
        await me.continue_()  # Send referral

        text = await me.check_page("sent")
        reference = re.search(r"LW-[A-Z0-9]{4}-[A-Z0-9]{4}", text).group(0)
        assert "waiting list" in text
        assert not re.search(r"\b\d+\s*(days?|weeks?|months?)\b", text)

        # where it stands, as the person would ask: reference and date of birth
        for _ in range(60):
            await page.goto(f"{door}/status")
            await me.type_into("#reference", reference)
            await me.type_into("#dob_day", "14")
            await me.type_into("#dob_month", "2")
            await me.type_into("#dob_year", "1958")
            await me.continue_()
            text = await page.inner_text("main")
            if "A link worker has been found" in text:
                break
            await asyncio.sleep(0.5)
        assert "A link worker has been found" in await me.check_page("status")
        # and no longer wanted: withdrawn, after a question
        await me.press("button.nhsuk-button--secondary")  # Withdraw the referral
        assert "Are you sure" in await me.check_page("withdraw")
        await me.press("button.nhsuk-button--warning")
        assert "being withdrawn" in await me.check_page("withdrawn")
        await page.goto(f"{door}/status")
        await me.check_page("status-form")


async def test_someone_in_crisis_is_shown_urgent_help_and_refusals_are_pages(door):
    async with browser() as page:
        me = Person(page)
        me.shots = 50
        await page.goto(f"{door}/refer")
        await me.press("main button.nhsuk-button")
        await me.choose("#crisis")  # Yes
        await me.continue_()
        assert page.url.endswith("/refer/urgent-help")
        text = await me.check_page("urgent-help")
        for number in ("999", "option 2", "116 123"):
            assert number in text
        response = await page.goto(f"{door}/refer/who")  # nothing was kept
        assert response.status == 410
        assert "deleted" in await me.check_page("expired")
