"""The professional door against the real database (and broker): an administrator's
invitation sets a password; a sign-in makes a server-side session; four pages send a
referral that lands in the outbox once, as the professional's organisation, like one sent
over AMQP; the list shows only that organisation's referrals, with the step the answers
give; a withdrawal goes out once; signing out, idling and age end a session; sign-ins are
throttled per account and per client; a post without the page's token is refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from contracts import parse_event
from contracts.events import ReferralSubmitted
from services.gateway import pro_actions
from services.gateway.app import SERVICE as GATEWAY
from services.gateway.ratelimit import Limits
from services.gateway.settings import GatewaySettings
from services.gateway.web import Gateway, create_app
from services.intake.app import SERVICE as INTAKE
from services.runtime.db import create_pool
from services.runtime.runner import migrate
from services.triage.app import SERVICE as TRIAGE

from ..support import publish, worker
from .conftest import asyncpg_connect, running

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
PERSON = {
    "given_name": "Robin",
    "family_name": "Quillfeather",
    "dob_day": "2",
    "dob_month": "5",
    "dob_year": "1948",
    "nhs_number": "943 476 5919",
    "practice": "A81001",
}
SUPPORT = {"needs": ["loneliness"], "preferred": "phone", "phone": "07700 900456", "email": ""}
CONSENT = {"consent": "yes", "consent_method": "verbal"}


class Pro:
    def __init__(self, client: httpx.AsyncClient):
        self.client = client

    async def csrf(self, path: str = "/pro/sign-in") -> str:
        page = await self.client.get(path)
        return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)

    async def post(self, path: str, data: dict[str, Any] | None = None) -> httpx.Response:
        return await self.client.post(path, data={"csrf": await self.csrf(), **(data or {})})

    async def set_password(self, link: str, password: str = PASSWORD) -> httpx.Response:
        path = link[link.index("/pro/invitation/") :]
        return await self.post(path, {"password": password, "again": password})

    async def sign_in(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return await self.post("/pro/sign-in", {"email": email, "password": password})

    async def refer(self) -> str:
        """The four pages; returns the reference the confirmation gives."""
        assert (await self.post("/pro/refer")).headers["location"] == "/pro/refer/person"
        for slug, data in (("person", PERSON), ("support", SUPPORT), ("consent", CONSENT)):
            response = await self.post(f"/pro/refer/{slug}", data)
            assert response.status_code == 303, (slug, response.text[:3000])
        check = await self.client.get("/pro/refer/check")
        assert check.status_code == 200 and "Quillfeather" in check.text
        key = re.search(r'name="key" value="([^"]+)"', check.text).group(1)
        sent = await self.post("/pro/refer/send", {"key": key})
        assert sent.headers["location"] == "/pro/refer/sent"
        page = await self.client.get("/pro/refer/sent")
        return re.search(r"LW-[A-Z0-9]{4}-[A-Z0-9]{4}", page.text).group(0)


@pytest.fixture
async def door(settings, monkeypatch) -> AsyncIterator[Any]:
    monkeypatch.setenv("LINKWELL_GATEWAY_ORGANISATIONS", "A81001,Y02345")
    await migrate(settings, GATEWAY)
    pool = await create_pool(settings.database_url, settings.names.schema("gateway"), "t", 4)

    @contextlib.asynccontextmanager
    async def open_door(client_ip: str = "192.0.2.20", **over: Any) -> AsyncIterator[Pro]:
        own = GatewaySettings(gateway_port=0, **over)
        gateway = Gateway(pool, settings.names, own, limits=Limits.of(999, 999, 999))
        transport = httpx.ASGITransport(app=create_app(gateway), client=(client_ip, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://door") as client:
            yield Pro(client)

    async def invite(email: str, org: str = "A81001", **kw: Any) -> str:
        names = {"A81001": "Riverside Surgery", "Y02345": "Eastfield Food Bank"}
        kinds = {"A81001": "general_practice", "Y02345": "vcse"}
        _, token = await pro_actions.invite(
            pool,
            organisation=org,
            email=email,
            serves=("A81001", "Y02345"),
            hours=kw.pop("hours", 72),
            organisation_name=names[org],
            agency_type=kinds[org],
            role=kw.pop("role", "Practice nurse"),
        )
        return f"http://door/pro/invitation/{token}"

    try:
        yield open_door, invite
    finally:
        await pool.close()


async def outbox(settings) -> list[Any]:
    async with asyncpg_connect(settings) as conn:
        schema = settings.names.schema("gateway")
        return await conn.fetch(
            f'SELECT exchange, routing_key, body FROM "{schema}".outbox'
            " WHERE event_type <> 'audit.recorded.v1' ORDER BY id"
        )


async def gateway_rows(settings, query: str) -> list[Any]:
    async with asyncpg_connect(settings) as conn:
        await conn.execute(f'SET search_path = "{settings.names.schema("gateway")}"')
        return await conn.fetch(query)


async def test_the_invite_command_prints_a_one_time_link_kept_only_as_a_digest(
    settings, monkeypatch
):
    from services.ops.cli import app
    from services.registry import SERVICE_DEFS
    from services.runtime import topology

    # the audit service's queue, which must confirm the operator's record of the invitation
    await topology.declare(settings, [s.topology for s in SERVICE_DEFS.values()])
    monkeypatch.setenv("LINKWELL_NAMESPACE", settings.namespace)
    monkeypatch.setenv("LINKWELL_GATEWAY_ORGANISATIONS", "A81001")
    monkeypatch.setenv("LINKWELL_GATEWAY_PUBLIC_URL", "https://refer.example.org")
    args = ["gateway", "invite", "--org", "A81001", "--email", "Sam.Lee@Example.org"]
    first = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert first.exit_code == 2 and "name and type" in first.output  # first: who they are
    done = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        [*args, "--org-name", "Riverside Surgery", "--agency-type", "general_practice"],
    )
    assert done.exit_code == 0, done.output
    token = re.search(r"https://refer\.example\.org/pro/invitation/(\S+)", done.output).group(1)
    rows = await gateway_rows(settings, "SELECT token_digest FROM invitation")
    assert len(rows) == 1 and token.encode() not in bytes(rows[0]["token_digest"])
    accounts = await gateway_rows(settings, "SELECT email, password_hash FROM account")
    assert [(a["email"], a["password_hash"]) for a in accounts] == [("sam.lee@example.org", None)]
    other = await asyncio.to_thread(
        CliRunner().invoke, app, ["gateway", "invite", "--org", "B99999", "--email", "a@b.org"]
    )
    assert other.exit_code == 2 and "LINKWELL_GATEWAY_ORGANISATIONS" in other.output


async def test_a_professional_refers_sees_their_organisations_referrals_and_withdraws_one(
    door, settings, capsys
):
    open_door, invite = door
    link = await invite("sam.lee@example.org")
    async with open_door() as pro, open_door("192.0.2.21") as other:
        assert (await pro.set_password(link, "short")).status_code == 400
        set_ = await pro.set_password(link)
        assert set_.headers["location"] == "/pro/sign-in?ready=1"
        assert (await pro.client.get(link)).status_code == 410  # one time only
        hashes = await gateway_rows(settings, "SELECT password_hash FROM account")
        assert hashes[0]["password_hash"].startswith("$argon2id$")
        assert (await pro.client.get("/pro/referrals")).headers["location"] == "/pro/sign-in"
        wrong = await pro.sign_in("sam.lee@example.org", "not the password")
        assert wrong.status_code == 401 and "Enter a correct email address" in wrong.text
        signed = await pro.sign_in("Sam.Lee@example.org ")
        assert signed.headers["location"] == "/pro/referrals"
        assert "httponly" in signed.headers["set-cookie"].lower()
        assert "samesite=lax" in signed.headers["set-cookie"].lower()
        reference = await pro.refer()

        rows = await outbox(settings)
        assert [(r["exchange"], r["routing_key"]) for r in rows] == [
            (settings.names.inbound, "referral.submitted.v1")
        ]
        event = parse_event(ReferralSubmitted, bytes(rows[0]["body"]))
        # as the organisation's own system would send it over AMQP: nothing names the door
        assert event.source == "urn:linkwell:org:A81001"
        assert event.data.sender_reference == reference
        referrer = event.data.referrer
        assert (referrer.agency_type, referrer.organisation_name, referrer.professional_role) == (
            "general_practice",
            "Riverside Surgery",
            "Practice nurse",
        )
        assert event.data.consent.method == "verbal" and event.data.person.nhs_number
        assert "gateway" not in bytes(rows[0]["body"]).decode().lower()
        assert "sam.lee" not in bytes(rows[0]["body"]).decode().lower()

        # a colleague at another organisation never sees it
        await other.set_password(await invite("jo@eastfield.example", "Y02345"))
        await other.sign_in("jo@eastfield.example")
        theirs = await other.client.get("/pro/referrals")
        assert theirs.status_code == 200 and reference not in theirs.text
        refused = await other.post("/pro/withdraw", {"reference": reference, "confirm": "yes"})
        assert refused.status_code == 409

        listing = await pro.client.get("/pro/referrals")
        assert reference in listing.text and "Received" in listing.text
        assert "Not told yet" in listing.text and "Quillfeather" not in listing.text
        # each sign-in and each view of the list is on the audit trail, by account id
        trail = [
            json.loads(bytes(r["body"]))["data"]
            for r in await gateway_rows(
                settings,
                "SELECT body FROM outbox WHERE event_type = 'audit.recorded.v1' ORDER BY id",
            )
        ]
        seen = [(d["action"], d["recipient_org"], d["by_kind"]) for d in trail]
        assert seen.count(("sign_in", "A81001", "account")) == 1
        assert seen.count(("sign_in", "Y02345", "account")) == 1
        assert ("page_view", "Y02345", "account") in seen
        assert seen.count(("page_view", "A81001", "account")) >= 1
        assert "sam.lee" not in json.dumps(trail)

        async with (
            running(INTAKE, settings),
            running(TRIAGE, settings),
            running(GATEWAY, settings) as gw,
        ):
            await publish(settings, worker("U12345", "lw-pro-1", 2))
            for _ in range(150):
                gw.pollers[0].wake()
                listing = await pro.client.get("/pro/referrals")
                if "Withdraw" in listing.text:
                    break
                await asyncio.sleep(0.1)
            assert "Accepted" in listing.text or "link worker" in listing.text
            ask = await pro.post("/pro/withdraw", {"reference": reference})
            assert ask.status_code == 200 and "Withdraw referral" in ask.text
            assert len(await outbox(settings)) == 1  # the question first
            for _ in range(2):
                done = await pro.post("/pro/withdraw", {"reference": reference, "confirm": "yes"})
                assert done.status_code == 200 and "being withdrawn" in done.text
            rows = await outbox(settings)
            assert [r["routing_key"] for r in rows] == [
                "referral.submitted.v1",
                "referral.withdrawn.v1",
            ]
            withdrawn = json.loads(bytes(rows[1]["body"]))
            assert withdrawn["source"] == "urn:linkwell:org:A81001"
            assert withdrawn["data"]["by"] == "referrer"
        out = capsys.readouterr().out
        for personal in ("Quillfeather", "9434765919", "07700", "sam.lee", PASSWORD):
            assert personal not in out
        signs = await gateway_rows(settings, "SELECT account_id FROM sign_in")
        assert len(signs) == 2  # one each; the refused one is not a sign-in


async def test_the_list_shows_the_step_and_gravity_task_status_the_answers_give(door, settings):
    from contracts.enums import ReferralStatusValue, TaskStatus
    from contracts.events import ReferralStatus
    from services.gateway.store import GatewayStore

    open_door, invite = door
    async with open_door() as pro:
        await pro.set_password(await invite("sam.lee@example.org"))
        await pro.sign_in("sam.lee@example.org")
        reference = await pro.refer()
        event = parse_event(ReferralSubmitted, bytes((await outbox(settings))[0]["body"]))
        import uuid
        from datetime import UTC, datetime

        status = ReferralStatus(
            referral_id=uuid.uuid4(),
            sender="A81001",
            sender_reference=reference,
            status=ReferralStatusValue.ASSIGNED,
            message="assigned",
            at=datetime.now(UTC),
            task_status=TaskStatus.ACCEPTED,
            submission_event_id=event.id,
        )
        async with asyncpg_connect(settings) as conn:
            await conn.execute(f'SET search_path = "{settings.names.schema("gateway")}"')
            ours = await GatewayStore(conn).submissions.answered(
                event_id=status.submission_event_id,
                referral_id=status.referral_id,
                step=status.status.value,
                at=status.at,
                task_status=status.task_status.value,
            )
        assert ours
        listing = await pro.client.get("/pro/referrals")
        assert "A link worker has been found" in listing.text
        row = listing.text[listing.text.index(reference) :]
        assert "Task status </span>Accepted</td>" in row


async def test_signing_out_ends_the_session_and_the_old_cookie_no_longer_works(door, settings):
    open_door, invite = door
    async with open_door() as pro:
        await pro.set_password(await invite("sam.lee@example.org"))
        await pro.sign_in("sam.lee@example.org")
        cookie = pro.client.cookies.get("lw_session")
        assert (await pro.client.get("/pro/referrals")).status_code == 200
        out = await pro.post("/pro/sign-out")
        assert out.headers["location"] == "/pro/sign-in?ended=signed_out"
        pro.client.cookies.set("lw_session", cookie)  # the old cookie, kept by someone
        again = await pro.client.get("/pro/referrals")
        assert again.status_code == 303 and again.headers["location"].startswith("/pro/sign-in")
        ended = await gateway_rows(settings, "SELECT ended_at FROM session")
        assert ended[0]["ended_at"] is not None


async def test_a_session_ends_when_idle_and_when_too_old(door, settings):
    open_door, invite = door
    link = await invite("sam.lee@example.org")
    async with open_door(gateway_session_idle_seconds=1, gateway_session_max_seconds=60) as pro:
        await pro.set_password(link)
        await pro.sign_in("sam.lee@example.org")
        assert (await pro.client.get("/pro/referrals")).status_code == 200
        await asyncio.sleep(1.3)
        idle = await pro.client.get("/pro/referrals")
        assert idle.headers["location"] == "/pro/sign-in?ended=idle"
        assert "had not used the service" in (await pro.client.get(idle.headers["location"])).text
    async with open_door(gateway_session_idle_seconds=60, gateway_session_max_seconds=2) as pro:
        await pro.sign_in("sam.lee@example.org")
        seen = []
        for _ in range(6):  # busy all along: still ended by age
            response = await pro.client.get("/pro/referrals")
            seen.append(response.headers.get("location"))
            await asyncio.sleep(0.5)
        assert seen[0] is None and "/pro/sign-in?ended=expired" in seen


async def test_sign_ins_are_throttled_per_account_and_per_client(door, settings):
    open_door, invite = door
    link = await invite("sam.lee@example.org")
    async with open_door(gateway_sign_ins_per_account=3, gateway_sign_ins_per_client=5) as pro:
        await pro.set_password(link)
        for _ in range(3):
            assert (
                await pro.sign_in("sam.lee@example.org", "guess guess guess")
            ).status_code == 401
        right = await pro.sign_in("sam.lee@example.org")  # even the right one, for a while
        assert right.status_code == 429 and int(right.headers["retry-after"]) > 0
        assert "Too many attempts to sign in" in right.text
        assert await gateway_rows(settings, "SELECT * FROM sign_in") == []
        for n in range(1):  # another account from this client: its 5th attempt, then no more
            assert (await pro.sign_in(f"nobody{n}@example.org", "x" * 12)).status_code == 401
        assert (await pro.sign_in("nobody9@example.org", "x" * 12)).status_code == 429


async def test_a_post_without_the_pages_token_is_refused(door, settings):
    open_door, invite = door
    link = await invite("sam.lee@example.org")
    async with open_door() as pro:
        await pro.client.get("/pro/sign-in")
        forged = await pro.client.post(
            link[len("http://door") :],
            data={"csrf": "forged" * 8, "password": PASSWORD, "again": PASSWORD},
        )
        assert forged.status_code == 403
        hashes = await gateway_rows(settings, "SELECT password_hash FROM account")
        assert hashes[0]["password_hash"] is None
        await pro.set_password(link)
        await pro.sign_in("sam.lee@example.org")
        no_token = await pro.client.post("/pro/refer", data={})
        assert no_token.status_code == 403
        no_out = await pro.client.post("/pro/sign-out", data={"csrf": "forged" * 8})
        assert no_out.status_code == 403
        assert (await pro.client.get("/pro/referrals")).status_code == 200  # still signed in
        assert await gateway_rows(settings, "SELECT * FROM draft") == []


async def test_inviting_again_resets_the_password_and_ends_the_sessions(door, settings):
    open_door, invite = door
    async with open_door() as pro, open_door("192.0.2.22") as other:
        await pro.set_password(await invite("sam.lee@example.org"))
        await pro.sign_in("sam.lee@example.org")
        assert (await pro.client.get("/pro/referrals")).status_code == 200
        link = await invite("sam.lee@example.org")  # forgotten password, or a lost laptop
        assert (await pro.client.get("/pro/referrals")).status_code == 303
        assert (await other.sign_in("sam.lee@example.org")).status_code == 401
        await other.set_password(link, "a new long password")
        assert (
            await other.sign_in("sam.lee@example.org", "a new long password")
        ).status_code == 303
        with pytest.raises(ValueError, match="another organisation"):
            await invite("sam.lee@example.org", "Y02345")


async def test_an_expired_invitation_cannot_be_used(door, settings):
    open_door, invite = door
    link = await invite("sam.lee@example.org", hours=0)  # expired as soon as made
    async with open_door() as pro:
        page = await pro.client.get(link)
        assert page.status_code == 410 and "cannot be used" in page.text
        forced = await pro.set_password(link)
        assert forced.status_code == 410
        hashes = await gateway_rows(settings, "SELECT password_hash FROM account")
        assert hashes[0]["password_hash"] is None
