"""The people's door against the real database (and broker): a referral made on its pages
is in the gateway's outbox exactly once, for <ns>.inbound, as its organisation; a double
click or a resubmission sends nothing more; every abuse control answers with a clear page
and stores nothing; and, with intake running, the answer comes back to the status page."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from contracts import parse_event
from contracts.events import ReferralSubmitted
from services.gateway.app import SERVICE as GATEWAY
from services.gateway.ratelimit import Limits
from services.gateway.settings import GatewaySettings
from services.gateway.web import Gateway, create_app
from services.intake.app import SERVICE as INTAKE
from services.runtime import topology
from services.runtime.db import create_pool
from services.runtime.runner import Runner, migrate
from services.triage.app import SERVICE as TRIAGE

from ..browser.test_dashboard import free_port
from ..support import Tap, publish, worker
from .conftest import asyncpg_connect, running

pytestmark = pytest.mark.integration

PERSON = {
    "given_name": "Alex",
    "family_name": "Zephyrine",
    "dob_day": "7",
    "dob_month": "11",
    "dob_year": "1961",
    "nhs_number": "943 476 5919",
}


@dataclasses.dataclass
class Door:
    gateway: Gateway
    client: httpx.AsyncClient

    async def csrf(self, path: str = "/refer") -> str:
        page = await self.client.get(path)
        return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)

    async def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any):
        return await self.client.post(path, data={"csrf": await self.csrf(), **(data or {})}, **kw)

    async def answer_all(self, **over: Any) -> str:
        """Start a form and answer every question; returns the check page's form key."""
        assert (await self.post("/refer")).headers["location"] == "/refer/crisis"
        answers = [
            ("crisis", {"crisis": "no"}),
            ("who", {"who": over.get("who", "myself")}),
            ("name", {k: PERSON[k] for k in ("given_name", "family_name")}),
            ("date-of-birth", {k: PERSON[k] for k in ("dob_day", "dob_month", "dob_year")}),
            ("nhs-number", {"nhs_number": over.get("nhs_number", PERSON["nhs_number"])}),
            ("gp", {"practice": "A81001"}),
            ("needs", {"needs": ["loneliness", "bereavement"]}),
            ("contact", {"preferred": "phone", "phone": "07700 900123", "email": ""}),
            ("adjustments", {"adjustments": over.get("adjustments", "")}),
            ("consent", {"consent": "yes"}),
        ]
        for slug, data in answers:
            response = await self.post(f"/refer/{slug}", data)
            assert response.status_code == 303, (slug, response.text[:2000])
        check = await self.client.get("/refer/check")
        assert check.status_code == 200
        return re.search(r'name="key" value="([^"]+)"', check.text).group(1)

    async def send(self, key: str) -> httpx.Response:
        return await self.post("/refer/send", {"key": key})


@pytest.fixture
async def door(settings, tmp_path) -> AsyncIterator[Door]:
    await migrate(settings, GATEWAY)
    pool = await create_pool(settings.database_url, settings.names.schema("gateway"), "t", 4)
    # limits of their own in the tests of them: these walk the form, and poll status pages
    gateway = Gateway(
        pool, settings.names, GatewaySettings(gateway_port=0), limits=Limits.of(999, 999, 999)
    )
    transport = httpx.ASGITransport(app=create_app(gateway), client=("192.0.2.10", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://door") as client:
        try:
            yield Door(gateway, client)
        finally:
            await pool.close()


async def outbox(settings) -> list[Any]:
    async with asyncpg_connect(settings) as conn:
        schema = settings.names.schema("gateway")
        return await conn.fetch(
            f'SELECT exchange, routing_key, body FROM "{schema}".outbox'
            " WHERE event_type <> 'audit.recorded.v1' ORDER BY id"
        )


async def stored(settings) -> tuple[int, int, list[dict[str, Any]]]:
    """Submissions, drafts, and the drafts' answers."""
    async with asyncpg_connect(settings) as conn:
        schema = settings.names.schema("gateway")
        subs = await conn.fetchval(f'SELECT count(*) FROM "{schema}".submission')
        answers = await conn.fetch(f'SELECT answers FROM "{schema}".draft')
    return subs, len(answers), [json.loads(r["answers"]) for r in answers]


async def test_a_person_refers_themself_and_it_is_in_the_outbox_once(door, settings, capsys):
    key = await door.answer_all()
    sent = await door.send(key)
    assert (sent.status_code, sent.headers["location"]) == (303, "/refer/sent")
    page = await door.client.get("/refer/sent")
    reference = re.search(r"LW-[A-Z0-9]{4}-[A-Z0-9]{4}", page.text).group(0)
    assert "waiting list" in page.text
    main = page.text[page.text.index("<main") : page.text.index("</main>")]
    assert not re.search(r"\b(days?|weeks?|months?)\b", main)  # never a waiting time
    rows = await outbox(settings)
    assert [(r["exchange"], r["routing_key"]) for r in rows] == [
        (settings.names.inbound, "referral.submitted.v1")
    ]
    event = parse_event(ReferralSubmitted, bytes(rows[0]["body"]))
    assert event.source == "urn:linkwell:org:SELF-WEB"
    assert event.data.sender_reference == reference
    assert event.data.referrer.agency_type == "self_referral"
    assert (event.data.registered_practice, event.data.pcn) == ("A81001", "U12345")
    assert event.data.person.nhs_number == "9434765919"
    assert event.data.consent.given and not event.data.in_crisis
    # the answers are gone from the server once sent; the reference stays for the page
    subs, drafts, answers = await stored(settings)
    assert (subs, drafts, answers) == (1, 1, [{"who": "myself"}])
    out = capsys.readouterr().out
    for personal in ("Zephyrine", "9434765919", "943 476 5919", "1961", "07700", reference):
        assert personal not in out


async def test_a_blank_nhs_number_is_accepted_and_adjustments_reach_the_referral(door, settings):
    key = await door.answer_all(nhs_number="", adjustments="Call, don't text. Large print.")
    page = await door.client.get("/refer/nhs-number")
    assert "If you do not know it, leave this blank" in page.text and "(optional)" in page.text
    check = await door.client.get("/refer/check")
    assert "Not known" in check.text and "Large print." in check.text
    assert 'href="/refer/adjustments?change=1"' in check.text
    assert (await door.send(key)).headers["location"] == "/refer/sent"
    [row] = await outbox(settings)
    event = parse_event(ReferralSubmitted, bytes(row["body"]))
    assert event.data.person.nhs_number is None
    assert "nhs_number" not in json.loads(bytes(row["body"]))["data"]["person"]
    assert event.data.person.contact.adjustments == "Call, don't text. Large print."


async def test_the_adjustments_page_is_one_optional_question_with_its_own_limit(door, settings):
    await door.post("/refer")
    page = await door.client.get("/refer/adjustments")
    assert page.status_code == 200
    assert page.text.count("<h1") == 1 and 'maxlength="500"' in page.text
    assert "interpreter" in page.text
    refused = await door.post("/refer/adjustments", {"adjustments": "x" * 501})
    assert refused.status_code == 413  # longer than the page takes: nothing stored
    odd = await door.post("/refer/adjustments", {"adjustments": "large\x01print"})
    assert odd.status_code == 400 and "nhsuk-error-summary" in odd.text


async def test_someone_caring_for_a_person_refers_them_as_family_or_carer(door, settings):
    await door.send(await door.answer_all(who="someone_else"))
    assert "A link worker will contact them" in (await door.client.get("/refer/sent")).text
    event = parse_event(ReferralSubmitted, bytes((await outbox(settings))[0]["body"]))
    assert event.data.referrer.agency_type == "family_or_carer"


async def test_a_double_click_and_a_resubmission_make_one_referral(door, settings):
    key = await door.answer_all()
    first, second = await asyncio.gather(door.send(key), door.send(key))
    again = await door.send(key)  # the browser's back button, and send again
    for response in (first, second, again):
        assert (response.status_code, response.headers["location"]) == (303, "/refer/sent")
    assert len(await outbox(settings)) == 1
    assert (await stored(settings))[0] == 1


async def test_the_practice_is_found_by_name_or_postcode_and_the_pcn_follows(door, settings):
    await door.answer_all()
    found = await door.post("/refer/gp", {"action": "search", "query": "springwood"})
    assert found.status_code == 200
    assert "Springwood Surgery, TS14 7DJ" in found.text and "Riverside Surgery" not in found.text
    none = await door.post("/refer/gp", {"action": "search", "query": "Nowhere Lane"})
    assert "No practice in this scheme matches" in none.text
    chosen = await door.post("/refer/gp", {"practice": "A81005", "change": "1"})
    assert chosen.headers["location"] == "/refer/check"
    assert "Springwood Surgery" in (await door.client.get("/refer/check")).text
    unknown = await door.post("/refer/gp", {"practice": "B99999"})
    assert unknown.status_code == 400 and "Select a GP practice" in unknown.text
    key = re.search(r'name="key" value="([^"]+)"', (await door.client.get("/refer/check")).text)
    await door.send(key.group(1))
    event = parse_event(ReferralSubmitted, bytes((await outbox(settings))[0]["body"]))
    assert (event.data.registered_practice, event.data.pcn) == ("A81005", "U12346")


async def test_someone_in_crisis_is_shown_urgent_help_and_nothing_is_kept(door, settings):
    assert (await door.post("/refer")).status_code == 303
    response = await door.post("/refer/crisis", {"crisis": "yes"})
    assert response.headers["location"] == "/refer/urgent-help"
    page = await door.client.get("/refer/urgent-help")
    for number in ("999", "111", "option 2", "116 123"):
        assert number in page.text
    assert await outbox(settings) == []
    assert (await stored(settings))[:2] == (0, 0)  # the draft is deleted
    # and the form cannot be carried on
    assert (await door.client.get("/refer/who")).status_code == 410


async def test_a_post_without_the_pages_token_is_refused_and_stores_nothing(door, settings):
    await door.client.get("/refer")
    response = await door.client.post("/refer", data={"csrf": "forged" * 8})
    assert response.status_code == 403
    assert "This page has expired" in response.text and "Nothing was sent" in response.text
    response = await door.client.post("/refer", data={})
    assert response.status_code == 403
    assert (await stored(settings))[:2] == (0, 0)


async def test_a_filled_honeypot_is_refused_and_stores_nothing(door, settings):
    response = await door.post("/refer", {"website": "http://spam.example"})
    assert response.status_code == 400 and "could not accept" in response.text
    assert (await stored(settings))[:2] == (0, 0)
    await door.answer_all()
    response = await door.post(
        "/refer/name", {"given_name": "Bot", "family_name": "Bot", "website": "x"}
    )
    assert response.status_code == 400
    assert (await stored(settings))[2][0]["given_name"] == "Alex"  # unchanged


async def test_oversized_fields_and_bodies_are_refused_and_store_nothing(door, settings):
    await door.answer_all()
    before = await stored(settings)
    long_name = await door.post("/refer/name", {"given_name": "A" * 300, "family_name": "B"})
    assert long_name.status_code == 413 and "too long" in long_name.text
    huge = await door.post("/refer/name", {"given_name": "A" * 20_000, "family_name": "B"})
    assert huge.status_code == 413
    many = await door.post("/refer/needs", {f"f{i}": "x" for i in range(60)})
    assert many.status_code == 413
    assert await stored(settings) == before
    assert await outbox(settings) == []


async def test_hostile_answers_get_the_question_again_with_an_error_summary(door, settings):
    await door.answer_all()
    for data in (
        {"given_name": "<script>alert(1)</script>", "family_name": "X"},
        {"given_name": "Al\x00ex", "family_name": "X"},
    ):
        response = await door.post("/refer/name", data)
        assert response.status_code == 400
        assert "There is a problem" in response.text
        assert "<script>alert" not in response.text  # escaped, never markup
    assert (await stored(settings))[2][0]["given_name"] == "Alex"


async def test_too_many_posts_get_a_page_saying_when_to_try_again(door, settings):
    door.gateway.limits = Limits.of(3, 100, 100)
    codes = [(await door.post("/refer")).status_code for _ in range(4)]
    assert codes == [303, 303, 303, 429]
    response = await door.post("/refer")
    assert "Too many attempts" in response.text and int(response.headers["retry-after"]) > 0
    assert (await stored(settings))[1] == 3  # the refused ones made no draft
    door.gateway.limits = Limits.of(100, 2, 100)  # everyone together
    codes = [(await door.post("/refer")).status_code for _ in range(3)]
    assert codes == [303, 303, 429]


async def test_sends_are_limited_per_client_but_a_double_click_is_not_counted(door, settings):
    door.gateway.limits = Limits.of(100, 100, 1)
    key = await door.answer_all()
    assert (await door.send(key)).status_code == 303
    assert (await door.send(key)).status_code == 303  # the same form: not another send
    other = await door.answer_all()
    assert (await door.send(other)).status_code == 429
    assert len(await outbox(settings)) == 1


async def test_the_answers_come_back_to_the_status_page(door, settings):
    """The gateway's outbox publishes as its broker user to <ns>.inbound; intake accepts
    it and answers the gateway's organisation; the gateway's consumer moves the step."""
    async with running(INTAKE, settings), running(GATEWAY, settings.model_copy()) as gw:
        async with Tap(settings, "referral.accepted.v1.SELF-WEB") as tap:
            await door.send(await door.answer_all())
            gw.pollers[0].wake()  # the page's own relay is not this runner's
            await tap.wait_for(lambda t: t.events("referral.accepted.v1"), 20, "accepted")
        reference = re.search(
            r"LW-[A-Z0-9]{4}-[A-Z0-9]{4}", (await door.client.get("/refer/sent")).text
        ).group(0)
        for _ in range(100):
            page = await door.post(
                "/status",
                {
                    "reference": reference.lower().replace("-", " "),
                    "dob_day": "7",
                    "dob_month": "11",
                    "dob_year": "1961",
                },
            )
            if "Accepted" in page.text:
                break
            await asyncio.sleep(0.1)
        assert "Accepted" in page.text and reference in page.text
        wrong = await door.post(
            "/status",
            {"reference": reference, "dob_day": "8", "dob_month": "11", "dob_year": "1961"},
        )
        assert wrong.status_code == 404 and "could not find" in wrong.text
        assert "Accepted" not in wrong.text


async def test_the_gateway_queue_takes_only_its_organisations_answers(settings):
    await topology.declare(settings, [GATEWAY.topology])
    bindings = topology.bindings_for(settings.names, GATEWAY.consumes, GATEWAY.topology.words)
    assert {b.routing_key for b in bindings} == {
        "referral.accepted.v2.SELF-WEB",
        "referral.rejected.v1.SELF-WEB",
        "referral.duplicate.v1.SELF-WEB",
        "referral.status.v1.SELF-WEB",
    }


DOB = {"dob_day": "7", "dob_month": "11", "dob_year": "1961"}


async def test_a_person_withdraws_their_referral_once_from_its_status_page(door, settings):
    """Accepted by intake and placed by triage; withdrawn from the status page (a question
    first, then the confirmation): one referral.withdrawn.v1 in the outbox, as the
    organisation that sent it, however often it is asked; triage ends the placement."""
    async with running(INTAKE, settings), running(TRIAGE, settings), running(GATEWAY, settings):
        await publish(settings, worker("U12345", "lw-w1", 2))
        await door.send(await door.answer_all())
        page = await door.client.get("/refer/sent")
        reference = re.search(r"LW-[A-Z0-9]{4}-[A-Z0-9]{4}", page.text).group(0)
        for _ in range(100):
            status = await door.post("/status", {"reference": reference, **DOB})
            if "Withdraw the referral" in status.text:
                break
            await asyncio.sleep(0.1)
        assert "Withdraw the referral" in status.text  # once accepted: a referral id to name
        ask = await door.post("/status/withdraw", {"reference": reference, **DOB})
        assert ask.status_code == 200 and "Are you sure" in ask.text
        assert [r["routing_key"] for r in await outbox(settings)] == ["referral.submitted.v1"]
        wrong = await door.post(
            "/status/withdraw", {"reference": reference, **DOB, "dob_day": "8", "confirm": "yes"}
        )
        assert wrong.status_code == 409
        for _ in range(2):  # and a second time: still one
            done = await door.post(
                "/status/withdraw", {"reference": reference, **DOB, "confirm": "yes"}
            )
            assert done.status_code == 200 and "being withdrawn" in done.text
        rows = await outbox(settings)
        assert [r["routing_key"] for r in rows] == [
            "referral.submitted.v1",
            "referral.withdrawn.v1",
        ]
        withdrawn = json.loads(bytes(rows[1]["body"]))
        submitted = json.loads(bytes(rows[0]["body"]))
        assert withdrawn["source"] == submitted["source"] == "urn:linkwell:org:SELF-WEB"
        assert withdrawn["data"]["by"] == "referrer"
        schema = settings.names.schema("triage")
        for _ in range(100):
            async with asyncpg_connect(settings) as conn:
                state = await conn.fetchval(
                    f'SELECT status FROM "{schema}".referral WHERE referral_id = $1',
                    withdrawn["data"]["referral_id"],
                )
            if state == "withdrawn":
                break
            await asyncio.sleep(0.1)
        assert state == "withdrawn"
        status = await door.post("/status", {"reference": reference, **DOB})
        assert "You asked to withdraw" in status.text
        assert "Withdraw the referral" not in status.text


async def test_a_failure_is_a_page_and_logs_no_answer(door, settings, capsys, caplog):
    await door.answer_all()

    def broken(query: str) -> list:
        raise ValueError(f"cannot search for {query} near Zephyrine")

    door.gateway.practices = dataclasses.replace(door.gateway.practices)
    object.__setattr__(door.gateway.practices, "search", broken)
    response = await door.post("/refer/gp", {"action": "search", "query": "TS18 1HU"})
    assert response.status_code == 500
    assert "there is a problem with the service" in response.text
    logged = capsys.readouterr().out + caplog.text
    assert "page_failed" in logged and "ValueError" in logged
    assert "Zephyrine" not in logged and "TS18" not in logged


async def test_the_gateway_is_ready_only_once_its_pages_answer(settings):
    port = free_port()
    runner = Runner(GATEWAY, settings, GatewaySettings(gateway_port=port))
    assert (await runner.ready())["pages"] is False
    try:
        await runner.start()
        assert await runner.ready() == {k: True for k in await runner.ready()}
        async with httpx.AsyncClient() as client:
            page = await client.get(f"http://127.0.0.1:{port}/refer")
        assert page.status_code == 200 and "Refer yourself" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        assert page.headers["cache-control"] == "no-store"
    finally:
        await runner.stop()
    assert (await runner.ready())["running"] is False
