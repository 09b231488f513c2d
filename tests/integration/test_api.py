"""The JSON API against the real database: a referral posted with a credential and an
Idempotency-Key is in the outbox once, as the client's organisation; a retry gets the same
answer and sends nothing more; the same key with another body is refused; the answers
that come back show on GET, for the client's organisation only. Every hostile request is
a JSON problem and stores nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from contracts import parse_event
from contracts.events import Reason, ReferralAccepted, ReferralRejected, ReferralSubmitted
from contracts.schema import example
from services.gateway import clients, handlers
from services.gateway.app import SERVICE as GATEWAY
from services.gateway.ratelimit import Limits
from services.gateway.settings import GatewaySettings
from services.gateway.store import GatewayStore
from services.gateway.web import Gateway, create_app
from services.runtime.db import create_pool
from services.runtime.runner import migrate

from .conftest import asyncpg_connect

pytestmark = pytest.mark.integration

PEPPER = "pepper-for-tests"


def referral(**over: Any) -> dict[str, Any]:
    data = example("referral.submitted.v1")["data"]
    data.update(over)
    return data


class Api:
    def __init__(self, http: httpx.AsyncClient, token: str):
        self.http = http
        self.token = token

    async def post(self, body: Any, key: str | None = "key-1", **headers: str) -> httpx.Response:
        sent = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        if key is not None:
            sent["Idempotency-Key"] = key
        sent.update(headers)
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.http.post("/v1/referrals", content=content, headers=sent)

    async def get(self, event_id: str) -> httpx.Response:
        return await self.http.get(
            f"/v1/referrals/{event_id}", headers={"Authorization": f"Bearer {self.token}"}
        )


@pytest.fixture
async def api(settings, monkeypatch) -> AsyncIterator[Any]:
    monkeypatch.setenv("LINKWELL_GATEWAY_ORGANISATIONS", "A81001,Y02345")
    await migrate(settings, GATEWAY)
    pool = await create_pool(settings.database_url, settings.names.schema("gateway"), "t", 4)
    own = GatewaySettings(gateway_port=0, gateway_client_pepper=PEPPER)
    tokens = {}
    for org, name, kind in (
        ("A81001", "Riverside Surgery", "general_practice"),
        ("Y02345", "Eastfield Food Bank", "vcse"),
    ):
        issued = await clients.issue(
            pool,
            organisation=org,
            name=f"{name} system",
            serves=own.serves,
            pepper=PEPPER,
            organisation_name=name,
            agency_type=kind,
        )
        tokens[org] = issued.token
    gateway = Gateway(pool, settings.names, own, limits=Limits.of(999, 999, 999))
    transport = httpx.ASGITransport(app=create_app(gateway), client=("192.0.2.30", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield {org: Api(http, token) for org, token in tokens.items()}, pool
    await pool.close()


async def stored(settings) -> tuple[list[Any], list[Any]]:
    async with asyncpg_connect(settings) as conn:
        schema = settings.names.schema("gateway")
        outbox = await conn.fetch(f'SELECT routing_key, body FROM "{schema}".outbox ORDER BY id')
        rows = await conn.fetch(f'SELECT event_id, organisation FROM "{schema}".submission')
    return outbox, rows


class Uow:
    def __init__(self, conn: Any):
        self.store = GatewayStore(conn)


async def answer(pool: Any, handler: Any, event_type: type, data: Any) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await handler(Uow(conn), data.envelope(source="urn:linkwell:svc:intake"), data)


async def test_a_referral_is_sent_once_as_the_clients_organisation_and_its_answer_shows(
    api, settings
):
    doors, pool = api
    gp = doors["A81001"]
    first = await gp.post(referral())
    assert first.status_code == 202, first.text
    event_id = first.json()["id"]
    assert first.headers["location"] == f"/v1/referrals/{event_id}"
    assert first.headers["idempotent-replay"] == "false"
    again = await gp.post(referral())
    assert again.status_code == 202 and again.json() == first.json()
    assert again.headers["idempotent-replay"] == "true"
    outbox, rows = await stored(settings)
    assert len(outbox) == 1 and len(rows) == 1
    event = parse_event(ReferralSubmitted, bytes(outbox[0]["body"]))
    assert event.id == event_id and event.source == "urn:linkwell:org:A81001"
    assert event.data == ReferralSubmitted.model_validate(referral())

    # the same key, another body: refused, nothing more stored
    other = await gp.post(referral(sender_reference="EMIS-2026-000999"))
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["code"] == "idempotency_key_reused"
    # the same key at another organisation is that organisation's own referral
    bank = doors["Y02345"]
    theirs = await bank.post(referral())
    assert theirs.status_code == 202 and theirs.json()["id"] != event_id
    outbox, rows = await stored(settings)
    assert len(outbox) == 2 and len(rows) == 2
    assert parse_event(ReferralSubmitted, bytes(outbox[1]["body"])).source == (
        "urn:linkwell:org:Y02345"
    )

    waiting = await gp.get(event_id)
    assert waiting.status_code == 200
    assert (waiting.json()["answer"], waiting.json()["status"]) == (None, "received")
    # another organisation's id: as if there were none
    hidden = await bank.get(event_id)
    assert hidden.status_code == 404 and hidden.json()["code"] == "not_found"
    assert (await gp.get(str(uuid.uuid4()))).status_code == 404
    assert (await gp.get("not-an-id")).status_code == 404

    referral_id = uuid.uuid4()
    now = datetime.now(UTC)
    await answer(
        pool,
        handlers.on_accepted,
        ReferralAccepted,
        ReferralAccepted.model_validate(
            {
                **example("referral.accepted.v1")["data"],
                "submission_event_id": event_id,
                "referral_id": str(referral_id),
                "accepted_at": now.isoformat(),
            }
        ),
    )
    shown = (await gp.get(event_id)).json()
    assert shown["answer"] == "accepted" and shown["status"] == "accepted"
    assert shown["referral_id"] == str(referral_id)

    rejected_id = theirs.json()["id"]
    await answer(
        pool,
        handlers.on_rejected,
        ReferralRejected,
        ReferralRejected(
            submission_event_id=rejected_id,
            sender="Y02345",
            reasons=[
                Reason(code="consent_missing", message="consent is required", field="consent")
            ],
            rejected_at=now,
        ),
    )
    shown = (await bank.get(rejected_id)).json()
    assert shown["answer"] == "rejected" and shown["referral_id"] is None
    assert shown["reasons"] == [
        {"code": "consent_missing", "message": "consent is required", "field": "consent"}
    ]
    # each answer that showed a referral is on the audit trail, in its read's transaction,
    # by the client's id; the refused reads (404) are not, for they showed nothing
    outbox, _ = await stored(settings)
    records = [
        json.loads(bytes(row["body"]))["data"]
        for row in outbox
        if json.loads(bytes(row["body"]))["type"] == "audit.recorded.v1"
    ]
    assert [(r["action"], r["recipient_org"], r.get("referral_id")) for r in records] == [
        ("status", "A81001", None),
        ("status", "A81001", str(referral_id)),
        ("status", "Y02345", None),
    ]
    assert {r["detail"]["read"] for r in records} == {"referral"}
    assert all(r["detail"]["client_id"] for r in records)
    assert [r["detail"]["event_id"] for r in records] == [event_id, event_id, rejected_id]


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"headers": {"Authorization": ""}}, 401, "missing_credential"),
        ({"headers": {"Authorization": "Bearer lwk_" + "A" * 43}}, 401, "invalid_credential"),
        ({"key": None}, 400, "idempotency_key_missing"),
        ({"key": "has space"}, 400, "idempotency_key_invalid"),
        ({"key": "k" * 129}, 400, "idempotency_key_invalid"),
        ({"headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type"),
        ({"headers": {"Content-Type": "application/x-www-form-urlencoded"}}, 415, None),
        ({"body": b"{not json"}, 400, "schema_invalid"),
        ({"body": b"[1, 2]"}, 400, "schema_invalid"),
        ({"body": b"\xff\xfe"}, 400, "schema_invalid"),
        ({"body": b'{"a": "' + b"x" * 20000 + b'"}'}, 413, "too_large"),
        ({"body": {**referral(), "consent": None}}, 422, "schema_invalid"),
        ({"body": {k: v for k, v in referral().items() if k != "consent"}}, 422, "consent_missing"),
        ({"body": {**referral(), "surprise": 1}}, 422, "schema_invalid"),
    ],
)
async def test_a_hostile_request_is_a_json_problem_and_stores_nothing(
    api, settings, change, status, code
):
    doors, _ = api
    response = await doors["A81001"].post(
        change.get("body", referral()), change.get("key", "key-1"), **change.get("headers", {})
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["type"].startswith("urn:linkwell:problem:")
    if code:
        assert problem["code"] == code
    outbox, rows = await stored(settings)
    assert outbox == [] and rows == []


async def test_the_contracts_reasons_come_back_without_the_values(api):
    doors, _ = api
    body = referral()
    body["person"] = {**body["person"], "nhs_number": "1234567890"}
    response = await doors["A81001"].post(body)
    assert response.status_code == 422
    reasons = response.json()["reasons"]
    assert [(r["code"], r["field"]) for r in reasons] == [
        ("nhs_number_invalid", "person.nhs_number")
    ]
    assert response.json()["code"] == "nhs_number_invalid"
    assert "1234567890" not in response.text


async def test_a_revoked_credential_sends_nothing(api, settings):
    doors, pool = api
    listed = await clients.listed(pool, "A81001")
    await clients.revoke(pool, listed[0].id)
    response = await doors["A81001"].post(referral())
    assert response.status_code == 401 and response.json()["code"] == "credential_revoked"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert await stored(settings) == ([], [])


async def test_racing_copies_of_one_request_send_one_referral(api, settings):
    doors, _ = api
    answers = await asyncio.gather(*(doors["A81001"].post(referral(), "race") for _ in range(6)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    assert sorted(a.headers["idempotent-replay"] for a in answers).count("false") == 1
    outbox, rows = await stored(settings)
    assert len(outbox) == 1 and len(rows) == 1


async def test_a_failure_before_the_commit_answers_500_and_stores_nothing(
    api, settings, monkeypatch
):
    from services.gateway import api as api_module

    doors, _ = api

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the outbox insert failed")

    monkeypatch.setattr(api_module, "enqueue", broken)
    failed = await doors["A81001"].post(referral(), "fails")
    assert failed.status_code == 500
    assert failed.headers["content-type"] == "application/problem+json"
    assert failed.json()["code"] == "internal_error"
    assert await stored(settings) == ([], [])
    monkeypatch.undo()
    retried = await doors["A81001"].post(referral(), "fails")
    assert retried.status_code == 202 and retried.headers["idempotent-replay"] == "false"
    outbox, rows = await stored(settings)
    assert len(outbox) == 1 and len(rows) == 1


async def test_intakes_answers_reach_get_through_the_broker(api, settings):
    """The real path: the relay publishes, intake answers over AMQP, the gateway's
    consumers record it; GET shows accepted with the referral's id, and a referral in
    crisis rejected with intake's reason."""
    from services.intake.app import SERVICE as INTAKE

    from .conftest import running

    doors, _ = api
    gp = doors["A81001"]
    ok = (await gp.post(referral(), "through-1")).json()["id"]
    crisis = (
        await gp.post(referral(sender_reference="EMIS-2026-000777", in_crisis=True), "through-2")
    ).json()["id"]
    async with running(INTAKE, settings), running(GATEWAY, settings) as gw:
        for _ in range(150):
            for poller in gw.pollers:  # the outbox relay: publish now
                getattr(poller, "wake", lambda: None)()
            shown = [(await gp.get(i)).json() for i in (ok, crisis)]
            if all(s["answer"] for s in shown):
                break
            await asyncio.sleep(0.1)
    accepted, rejected = shown
    assert accepted["answer"] == "accepted" and accepted["referral_id"], shown
    assert rejected["answer"] == "rejected" and rejected["referral_id"] is None
    assert [r["code"] for r in rejected["reasons"]] == ["crisis_redirect"]
