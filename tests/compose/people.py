"""A person at the people's door, as the compose tests play them: a browser-like httpx
client on the gateway's published port, walking the pages (each form with the CSRF token
the page gave it), then checking the referral's status page."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx

from contracts.nhs import unique_synthetic_nhs_number

DOB = {"dob_day": "7", "dob_month": "11", "dob_year": "1961"}
REFERENCE = re.compile(r"LW-[A-Z0-9]{4}-[A-Z0-9]{4}")


def field(page: httpx.Response, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', page.text)
    assert found, f"no {name} field on {page.url}: {page.status_code} {page.text[:500]}"
    return found.group(1)


class Person:
    def __init__(self, client: httpx.AsyncClient):
        self.client = client

    async def post(self, page: httpx.Response, path: str, data: dict[str, Any]) -> httpx.Response:
        """Post ``data`` to ``path`` with the CSRF token from the form on ``page``."""
        return await self.client.post(path, data={"csrf": field(page, "csrf"), **data})

    async def answer(self, slug: str, data: dict[str, Any]) -> httpx.Response:
        page = await self.client.get(f"/refer/{slug}")
        assert page.status_code == 200, (slug, page.status_code)
        response = await self.post(page, f"/refer/{slug}", data)
        assert response.status_code == 303, (slug, response.status_code, response.text[:1000])
        return response

    async def refer_myself(self) -> str:
        """Every page from the start page to the confirmation; returns the reference."""
        start = await self.client.get("/refer")
        assert start.status_code == 200 and "Start now" in start.text, start.text[:500]
        begun = await self.post(start, "/refer", {})
        assert begun.headers.get("location") == "/refer/crisis", begun.text[:500]
        for slug, data in (
            ("crisis", {"crisis": "no"}),
            ("who", {"who": "myself"}),
            ("name", {"given_name": "Compose", "family_name": "Tester"}),
            ("date-of-birth", DOB),
            ("nhs-number", {"nhs_number": unique_synthetic_nhs_number()}),
            ("gp", {"practice": "A81001"}),
            ("needs", {"needs": ["loneliness"]}),
            ("contact", {"preferred": "phone", "phone": "07700 900123", "email": ""}),
            ("adjustments", {"adjustments": "Please call, do not text"}),
            ("consent", {"consent": "yes"}),
        ):
            await self.answer(slug, data)
        check = await self.client.get("/refer/check")
        assert check.status_code == 200 and "Riverside Surgery" in check.text
        sent = await self.post(check, "/refer/send", {"key": field(check, "key")})
        assert sent.headers.get("location") == "/refer/sent", (sent.status_code, sent.text[:500])
        confirmation = await self.client.get("/refer/sent")
        assert confirmation.status_code == 200
        return REFERENCE.search(confirmation.text).group(0)

    async def status(self, reference: str) -> str:
        """The status page's heading for this referral."""
        form = await self.client.get("/status")
        page = await self.post(form, "/status", {"reference": reference, **DOB})
        assert page.status_code == 200, (page.status_code, page.text[:1000])
        main = page.text[page.text.index("<main") :]
        return re.search(r"<h2[^>]*>\s*([^<]+?)\s*</h2>", main).group(1)

    async def wait_status(self, reference: str, wanted: set[str], within: float = 90) -> str:
        deadline = time.monotonic() + within
        while True:
            heading = await self.status(reference)
            if heading in wanted:
                return heading
            assert time.monotonic() < deadline, f"{reference} still {heading!r} after {within}s"
            await asyncio.sleep(2)
