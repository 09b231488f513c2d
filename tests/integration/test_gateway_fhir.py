"""The FHIR door against the real database: the public BaRS and Gravity examples posted
(adapted for social prescribing only where tests/fhir_examples/README.md says), each
refusal the answer its guide gives, a referral in the outbox once, as the caller's
organisation; a cancellation withdraws; the Task tells what the answers said; hostile
HTTP refused with an OperationOutcome and nothing stored."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts import parse_event
from contracts.enums import ReferralStatusValue, TaskStatus
from contracts.events import GpCoding, ReferralStatus, ReferralSubmitted, ReferralWithdrawn
from contracts.snomed import REFERRAL_TO_SOCIAL_PRESCRIBING, SWEMWBS_SCORE
from services.gateway.app import SERVICE as GATEWAY
from services.gateway.ratelimit import Limits
from services.gateway.settings import GatewaySettings
from services.gateway.store import GatewayStore
from services.gateway.web import Gateway, create_app
from services.runtime.db import create_pool
from services.runtime.runner import migrate

from .conftest import asyncpg_connect

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).parents[1] / "fhir_examples"
FHIR = "application/fhir+json"


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())


class ClientRefused(Exception):
    """Stands for services.gateway.clients.ClientRefused (status, code, detail)."""

    def __init__(self, status: int, code: str, detail: str):
        self.status, self.code, self.detail = status, code, detail


class ApiClient:
    def __init__(self, org: str, name: str, agency_type: str):
        self.client_id, self.org, self.name, self.agency_type = f"c-{org}", org, name, agency_type


CLIENTS = {
    "rnd-key": ApiClient("RND", "Emergency service", "hospital_discharge"),
    "food-key": ApiClient("Y02345", "Eastfield Food Bank", "vcse"),
    "other-key": ApiClient("Z99999", "Not served", "vcse"),
}


async def authenticate(request: Any) -> ApiClient:
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    if token not in CLIENTS:
        raise ClientRefused(401, "unauthenticated", "no such client")
    return CLIENTS[token]


def headers(key: str = "rnd-key", **extra: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {key}",
        "Content-Type": FHIR,
        "X-Request-Id": str(uuid.uuid4()),
        "X-Correlation-Id": str(uuid.uuid4()),
        **extra,
    }


@pytest.fixture
async def door(settings, monkeypatch) -> AsyncIterator[Any]:
    monkeypatch.setenv("LINKWELL_GATEWAY_ORGANISATIONS", "A81001,Y02345,RND")
    await migrate(settings, GATEWAY)
    pool = await create_pool(settings.database_url, settings.names.schema("gateway"), "t", 4)
    own = GatewaySettings(gateway_port=0)
    gateway = Gateway(
        pool, settings.names, own, limits=Limits.of(999, 999, 999), authenticate=authenticate
    )
    transport = httpx.ASGITransport(app=create_app(gateway), client=("192.0.2.30", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://door") as client:
        client.pool = pool  # type: ignore[attr-defined]
        yield client
    await pool.close()


async def outbox(settings, audit: bool = False) -> list[Any]:
    """The gateway's outbox: its referrals and withdrawals (``audit``: its audit records)."""
    async with asyncpg_connect(settings) as conn:
        schema = settings.names.schema("gateway")
        return await conn.fetch(
            f'SELECT routing_key, body FROM "{schema}".outbox'
            f" WHERE (event_type = 'audit.recorded.v1') = $1 ORDER BY id",
            audit,
        )


def issue(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return body["issue"][0]


def rec(response: httpx.Response) -> str:
    return issue(response)["details"]["coding"][0]["code"]


def guide(name: str) -> tuple[int, str, str]:
    """The status, REC code and issue type a BaRS OperationOutcome example gives."""
    found = example(f"bars/OperationOutcome/{name}.json")["issue"][0]
    return int(name[:3]), found["details"]["coding"][0]["code"], found["code"]


async def test_the_bars_example_referral_lands_in_the_outbox_once(door, settings):
    body = example("bars/servicerequest-request-social-prescribing.json")
    sent = headers()
    answer = await door.post("/$process-message", json=body, headers=sent)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith(FHIR)
    assert answer.headers["x-request-id"] == sent["X-Request-Id"]
    assert answer.headers["x-correlation-id"] == sent["X-Correlation-Id"]
    message = answer.json()
    assert message["entry"][0]["resource"]["eventCoding"]["code"] == "servicerequest-response"
    sr_id = message["entry"][1]["resource"]["id"]
    rows = await outbox(settings)
    assert len(rows) == 1
    event = parse_event(ReferralSubmitted, bytes(rows[0]["body"]))
    assert isinstance(event.data, ReferralSubmitted)
    assert event.source == "urn:linkwell:org:RND"
    assert event.data.sender_reference == "RND-SP-0001"
    assert event.data.person.nhs_number == "9434765919"
    assert event.data.registered_practice == "A81001" and event.data.pcn == "U12345"
    assert [n.value for n in event.data.needs] == ["loneliness", "money_and_debt"]

    # the same message again (a replay, or a resend): 409 REC_CONFLICT, nothing more
    again = await door.post("/$process-message", json=body, headers=headers())
    status, code, kind = guide("409-REC_CONFLICT-duplicate")
    assert (again.status_code, rec(again), issue(again)["code"]) == (status, code, kind)
    assert len(await outbox(settings)) == 1

    read = await door.get(f"/ServiceRequest/{sr_id}", headers=headers())
    assert read.status_code == 200 and read.json()["status"] == "active"
    found = await door.get(
        "/ServiceRequest",
        params={"patient:identifier": "https://fhir.nhs.uk/Id/nhs-number|9434765919"},
        headers=headers(),
    )
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [sr_id]
    # another organisation sees nothing of it
    other = await door.get(f"/ServiceRequest/{sr_id}", headers=headers("food-key"))
    assert other.status_code == 404 and rec(other) == "REC_NOT_FOUND"
    none = await door.get(
        "/ServiceRequest",
        params={"patient:identifier": "https://fhir.nhs.uk/Id/nhs-number|9434765919"},
        headers=headers("food-key"),
    )
    assert none.json()["total"] == 0
    # what each read showed is on the audit trail, by the client, in the read's own
    # transaction; the reads that showed nothing are not
    records = [json.loads(bytes(row["body"]))["data"] for row in await outbox(settings, True)]
    shown = [(r["recipient_org"], r["detail"]["read"], r["detail"]["client_id"]) for r in records]
    assert shown == [("RND", "ServiceRequest", "c-RND"), ("RND", "ServiceRequest", "c-RND")]
    assert {r["action"] for r in records} == {"status"}
    assert "9434765919" not in json.dumps(records)


async def test_the_published_examples_get_their_guides_answers(door, settings):
    # BaRS' own validation example carries an NHS number that fails the modulus 11 check
    original = await door.post(
        "/$process-message", json=example("bars/servicerequest-request.json"), headers=headers()
    )
    assert original.status_code == 422 and rec(original) == "REC_UNPROCESSABLE_ENTITY"
    assert "nhs-number" in issue(original)["expression"][0]
    # a booking is not a referral: this receiver does not support it
    booking = await door.post(
        "/$process-message", json=example("bars/booking-request.json"), headers=headers()
    )
    status, code, kind = guide("422-REC_UNPROCESSABLE_ENTITY-not-supported")
    assert (booking.status_code, rec(booking), issue(booking)["code"]) == (status, code, kind)
    assert issue(booking)["expression"] == ["Bundle.entry[0].resource.eventCoding.code"]
    # a required element missing: the header's focus
    body = example("bars/servicerequest-request-social-prescribing.json")
    body["entry"][0]["resource"]["focus"] = []
    missing = await door.post("/$process-message", json=body, headers=headers())
    status, code, kind = guide("400-REC_BAD_REQUEST-required")
    assert (missing.status_code, rec(missing), issue(missing)["code"]) == (status, code, kind)
    # not a message bundle: an invariant
    body = example("bars/servicerequest-request-social-prescribing.json")
    body["type"] = "collection"
    wrong = await door.post("/$process-message", json=body, headers=headers())
    status, code, kind = guide("400-REC_BAD_REQUEST-invariant")
    assert (wrong.status_code, rec(wrong), issue(wrong)["code"]) == (status, code, kind)
    assert issue(wrong)["expression"] == ["Bundle.type"]
    # a cancellation of a referral never sent
    gone = await door.post(
        "/$process-message",
        json=example("bars/servicerequest-request-revoked.json"),
        headers=headers(),
    )
    status, code, kind = guide("404-REC_NOT_FOUND-not-found")
    assert (gone.status_code, rec(gone), issue(gone)["code"]) == (status, code, kind)
    # an identifier in the incorrect format (a search by an NHS number of 9 digits)
    status, code, kind = guide("400-REC_BAD_REQUEST-value")
    malformed = await door.get(
        "/ServiceRequest",
        params={"patient:identifier": "https://fhir.nhs.uk/Id/nhs-number|943476591"},
        headers=headers(),
    )
    assert (malformed.status_code, rec(malformed), issue(malformed)["code"]) == (status, code, kind)
    # a parameter value invalid in its format
    status, code, kind = guide("400-REC_BAD_REQUEST-invalid")
    when = await door.get(
        "/Task",
        params={"requester": "Organization/Y02345", "_lastUpdated": "gtyesterday"},
        headers=headers("food-key"),
    )
    assert (when.status_code, rec(when), issue(when)["code"]) == (status, code, kind)
    # a caller this receiver does not serve
    status, code, kind = guide("403-REC_FORBIDDEN-forbidden")
    stranger = await door.post(
        "/$process-message",
        json=example("bars/servicerequest-request-social-prescribing.json"),
        headers=headers("other-key"),
    )
    assert (stranger.status_code, rec(stranger), issue(stranger)["code"]) == (status, code, kind)
    # a Gravity example already accepted is not a new Task
    accepted = await door.post(
        "/Task", json=example("gravity/Task-accepted.json"), headers=headers("food-key")
    )
    assert accepted.status_code == 422 and issue(accepted)["expression"] == ["Task.status"]
    assert await outbox(settings) == []


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"Content-Type": "application/json"}, 415, "REC_BAD_REQUEST"),
        ({"X-Request-Id": ""}, 400, "REC_BAD_REQUEST"),
        ({"X-Correlation-Id": "bad id with spaces"}, 400, "REC_BAD_REQUEST"),
        ({"Authorization": "Bearer nobody"}, 401, "REC_UNAUTHORIZED"),
        ({"Authorization": "Bearer other-key"}, 403, "REC_FORBIDDEN"),
        ({"Authorization": "Bearer food-key"}, 403, "REC_FORBIDDEN"),  # another org's sender
    ],
)
async def test_hostile_headers_are_refused_and_nothing_stored(door, settings, change, status, code):
    sent = headers(**change)
    sent = {k: v for k, v in sent.items() if v != ""}
    answer = await door.post(
        "/$process-message",
        json=example("bars/servicerequest-request-social-prescribing.json"),
        headers=sent,
    )
    assert (answer.status_code, rec(answer)) == (status, code), answer.text
    assert await outbox(settings) == []


@pytest.mark.parametrize(
    ("content", "status", "issue_code"),
    [
        (b"{not json", 400, "structure"),
        (b"[" * 5000 + b"]" * 5000, 400, "structure"),
        (
            json.dumps(
                {
                    "resourceType": "Bundle",
                    "type": "message",
                    "entry": [{"resource": {"resourceType": "Spaceship"}}],
                }
            ).encode(),
            400,
            "not-supported",
        ),
        (json.dumps({"resourceType": "Patient"}).encode(), 400, "not-supported"),
        (
            json.dumps(
                {
                    "resourceType": "Bundle",
                    "type": "message",
                    "entry": [{"resource": {"resourceType": "MessageHeader", "eventCoding": 7}}],
                }
            ).encode(),
            400,
            "structure",
        ),
        (b"x" * (600 * 1024), 413, "too-costly"),
        (
            (
                '{"resourceType": "Bundle", "type": "message", "entry": [{"resource": '
                '{"resourceType": "MessageHeader", "extension": ['
                + '{"url": "x", "extension": [' * 300
                + '{"url": "x", "valueString": "y"}'
                + "]}" * 300
                + "]}}]}"
            ).encode(),
            400,
            "too-costly",
        ),
    ],
)
async def test_hostile_bodies_are_refused_and_nothing_stored(
    door, settings, content, status, issue_code
):
    answer = await door.post("/$process-message", content=content, headers=headers())
    assert answer.status_code == status, answer.text
    assert issue(answer)["code"] == issue_code
    assert await outbox(settings) == []


async def test_unknown_resources_and_methods_answer_an_operation_outcome(door):
    unknown = await door.get("/Task/not-a-uuid", headers=headers())
    assert unknown.status_code == 404 and rec(unknown) == "REC_NOT_FOUND"
    for path in ("/Patient/1", "/Spaceship", "/$everything"):
        other = await door.get(path, headers=headers())
        assert other.status_code == 404 and rec(other) == "REC_NOT_FOUND", path
    posted = await door.post("/$validate", json={}, headers=headers())
    assert posted.status_code == 404 and issue(posted)["code"] == "not-supported"
    assert (await door.get("/refer")).headers["content-type"].startswith("text/html")
    method = await door.delete("/Task", headers=headers())
    assert method.status_code == 405 and issue(method)["code"] == "not-supported"
    meta = await door.get("/metadata")
    assert meta.json()["resourceType"] == "CapabilityStatement"
    assert meta.json()["fhirVersion"] == "4.0.1"


async def answer(
    door,
    settings,
    event_id: str,
    status: ReferralStatusValue,
    task: TaskStatus,
    at: datetime,
    referral_id: uuid.UUID,
    **kw: Any,
) -> None:
    """What triage's referral.status.v1 would tell, handled as the gateway's consumer does."""
    from services.gateway import handlers

    data = ReferralStatus(
        referral_id=referral_id,
        sender=kw.pop("sender", "Y02345"),
        sender_reference=kw.pop("sender_reference", "Y02345-T-0001"),
        status=status,
        message=kw.pop("message", status.value),
        at=at,
        task_status=task,
        submission_event_id=event_id,
        **kw,
    )

    class Uow:
        def __init__(self, conn: Any):
            self.store = GatewayStore(conn)

    async with door.pool.acquire() as conn, conn.transaction():
        await handlers.on_status(Uow(conn), data.envelope(source="urn:linkwell:svc:triage"), data)


async def test_a_bars_cancellation_withdraws_the_referral_it_names_once_accepted(door, settings):
    sent = await door.post(
        "/$process-message",
        json=example("bars/servicerequest-request-social-prescribing.json"),
        headers=headers(),
    )
    assert sent.status_code == 200, sent.text
    submitted = parse_event(ReferralSubmitted, bytes((await outbox(settings))[0]["body"]))
    revoked = example("bars/servicerequest-request-revoked.json")
    # not yet accepted: nothing to withdraw yet, and the sender is told so
    early = await door.post("/$process-message", json=revoked, headers=headers())
    assert (early.status_code, rec(early), issue(early)["code"]) == (
        409,
        "REC_CONFLICT",
        "conflict",
    )
    referral_id = uuid.uuid4()
    accepted_at = datetime.now(UTC) - timedelta(minutes=1)
    await answer(
        door,
        settings,
        submitted.id,
        ReferralStatusValue.ACCEPTED,
        TaskStatus.ACCEPTED,
        accepted_at,
        referral_id,
        sender="RND",
        sender_reference="RND-SP-0001",
    )
    done = await door.post("/$process-message", json=revoked, headers=headers())
    assert done.status_code == 200, done.text
    withdrawals = [
        parse_event(ReferralWithdrawn, bytes(r["body"])) for r in (await outbox(settings))[1:]
    ]
    assert len(withdrawals) == 1 and withdrawals[0].data.referral_id == referral_id
    assert withdrawals[0].source == "urn:linkwell:org:RND"
    # another organisation's system cannot cancel it: it may not send for RND at all
    theirs = await door.post("/$process-message", json=revoked, headers=headers("food-key"))
    assert (theirs.status_code, rec(theirs)) == (403, "REC_FORBIDDEN")
    assert len(await outbox(settings)) == 2


async def test_a_gravity_task_tells_each_status_in_order_and_a_cancel_withdraws(door, settings):
    posted = await door.post(
        "/Task",
        json=example("gravity/Task-requested-social-prescribing.json"),
        headers=headers("food-key"),
    )
    assert posted.status_code == 201, posted.text
    task = posted.json()
    assert (task["status"], task["intent"], task["code"]["coding"][0]["code"]) == (
        "received",
        "order",
        "fulfill",
    )
    task_id = task["id"]
    rows = await outbox(settings)
    event = parse_event(ReferralSubmitted, bytes(rows[0]["body"]))
    assert event.source == "urn:linkwell:org:Y02345"
    assert event.data.referrer.agency_type.value == "vcse"
    referral_id = uuid.uuid4()
    start = datetime.now(UTC) - timedelta(minutes=5)
    polled_from = (start - timedelta(seconds=1)).isoformat()
    steps = [
        (ReferralStatusValue.ACCEPTED, TaskStatus.ACCEPTED, {}),
        (ReferralStatusValue.ON_HOLD, TaskStatus.ON_HOLD, {"reason": "person in hospital"}),
    ]
    seen = []
    for n, (status, task_status, kw) in enumerate(steps):
        await answer(
            door,
            settings,
            event.id,
            status,
            task_status,
            start + timedelta(minutes=n),
            referral_id,
            **kw,
        )
        read = (await door.get(f"/Task/{task_id}", headers=headers("food-key"))).json()
        seen.append(read["status"])
    assert seen == ["accepted", "on-hold"]
    assert read["statusReason"]["text"] == "person in hospital"
    polled = await door.get(
        "/Task",
        params={"requester": "Organization/Y02345", "_lastUpdated": f"gt{polled_from}"},
        headers=headers("food-key"),
    )
    assert [e["resource"]["id"] for e in polled.json()["entry"]] == [task_id]
    # polling another organisation's tasks is refused
    theirs = await door.get(
        "/Task", params={"requester": "Organization/RND"}, headers=headers("food-key")
    )
    assert theirs.status_code == 403
    # the requester cancels: one withdrawal, in the outbox
    cancel = await door.patch(
        f"/Task/{task_id}",
        content=json.dumps([{"op": "replace", "path": "/status", "value": "cancelled"}]),
        headers=headers("food-key", **{"Content-Type": "application/json-patch+json"}),
    )
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
    again = await door.put(
        f"/Task/{task_id}", json=dict(task, status="cancelled"), headers=headers("food-key")
    )
    assert again.status_code == 200
    withdrawals = [
        parse_event(ReferralWithdrawn, bytes(r["body"])) for r in (await outbox(settings))[1:]
    ]
    assert len(withdrawals) == 1 and isinstance(withdrawals[0].data, ReferralWithdrawn)
    assert withdrawals[0].data.referral_id == referral_id
    # another organisation cannot cancel it
    stranger = await door.put(
        f"/Task/{task_id}", json=dict(task, status="cancelled"), headers=headers("rnd-key")
    )
    assert stranger.status_code == 404


async def test_a_completed_task_names_what_was_done_in_its_outputs(door, settings):
    posted = await door.post(
        "/Task",
        json=example("gravity/Task-requested-social-prescribing.json"),
        headers=headers("food-key"),
    )
    task_id = posted.json()["id"]
    event = parse_event(ReferralSubmitted, bytes((await outbox(settings))[0]["body"]))
    referral_id = uuid.uuid4()
    start = datetime.now(UTC) - timedelta(minutes=5)
    for n, (status, task_status, message) in enumerate(
        [
            (ReferralStatusValue.ACCEPTED, TaskStatus.ACCEPTED, "accepted by the PCN"),
            (ReferralStatusValue.IN_PROGRESS, TaskStatus.IN_PROGRESS, "first contact made"),
            (ReferralStatusValue.CLOSED, TaskStatus.COMPLETED, "closed: goals met"),
        ]
    ):
        codes = (
            [GpCoding.of(REFERRAL_TO_SOCIAL_PRESCRIBING), GpCoding.of(SWEMWBS_SCORE)]
            if status is ReferralStatusValue.CLOSED
            else []
        )
        await answer(
            door,
            settings,
            event.id,
            status,
            task_status,
            start + timedelta(minutes=n),
            referral_id,
            message=message,
            codes=codes,
        )
    read = (await door.get(f"/Task/{task_id}", headers=headers("food-key"))).json()
    assert read["status"] == "completed"
    assert [o["valueString"] for o in read["output"] if "valueString" in o] == [
        "accepted by the PCN",
        "first contact made",
        "closed: goals met",
    ]
    # the codes written back: the procedure as the profile's PerformedActivityCode, the
    # observable entity beside it
    coded = [
        (o["type"]["coding"][0]["code"], o["valueCodeableConcept"]["coding"][0]["code"])
        for o in read["output"]
        if "valueCodeableConcept" in o
    ]
    assert coded == [
        ("resulting-activity", REFERRAL_TO_SOCIAL_PRESCRIBING.code),
        ("gp-record-code", SWEMWBS_SCORE.code),
    ]
    sr = (await door.get(f"/ServiceRequest/{task_id}", headers=headers("food-key"))).json()
    assert sr["status"] == "completed"
    # a cancellation of a completed referral is refused as a conflict, nothing sent
    body = copy.deepcopy(posted.json())
    late = await door.put(
        f"/Task/{task_id}", json=dict(body, status="cancelled"), headers=headers("food-key")
    )
    assert late.status_code == 409 and rec(late) == "REC_CONFLICT"
    assert len(await outbox(settings)) == 1


async def test_a_fhir_referral_followed_through_the_pipeline_to_completed(door, settings):
    """Posted as a Gravity Task; intake, triage, outcomes, notify and the gateway running
    (in process, on the real broker and database); the team's steps published as the
    PCN's system would. The Task, polled, goes through Linkwell's statuses in order and
    ends completed with its outputs, the code written back to the GP record among them;
    the ServiceRequest reads completed."""
    from services.intake.app import SERVICE as INTAKE
    from services.notify.app import SERVICE as NOTIFY
    from services.outcomes.app import SERVICE as OUTCOMES
    from services.triage.app import SERVICE as TRIAGE

    from ..support import inbound, publish, worker
    from .conftest import running

    posted = await door.post(
        "/Task",
        json=example("gravity/Task-requested-social-prescribing.json"),
        headers=headers("food-key"),
    )
    assert posted.status_code == 201, posted.text
    task_id = posted.json()["id"]
    seen: list[str] = []

    async def poll_until(status: str, gw: Any) -> dict[str, Any]:
        for _ in range(300):
            for poller in gw.pollers:
                wake = getattr(poller, "wake", None)
                if wake:
                    wake()
            read = (await door.get(f"/Task/{task_id}", headers=headers("food-key"))).json()
            if not seen or seen[-1] != read["status"]:
                seen.append(read["status"])
            if read["status"] == status:
                return read
            await asyncio.sleep(0.1)
        raise AssertionError(f"never {status}: {seen}")

    async with (
        running(INTAKE, settings),
        running(TRIAGE, settings),
        running(NOTIFY, settings),
        running(OUTCOMES, settings),
        running(GATEWAY, settings) as gw,
    ):
        await publish(settings, worker("U12345", "lw-fhir-1", 2))
        await asyncio.sleep(0.5)
        await poll_until("accepted", gw)
        async with door.pool.acquire() as conn:
            rid = await conn.fetchval(
                "SELECT referral_id FROM submission WHERE fhir_id = $1", uuid.UUID(task_id)
            )
        assert rid is not None
        await publish(
            settings,
            inbound(
                "contact.recorded.v1",
                "U12345",
                referral_id=str(rid),
                link_worker_id="lw-fhir-1",
                outcome="engaged",
            ),
        )
        await poll_until("in-progress", gw)
        await publish(
            settings,
            inbound("referral.closed.v1", "U12345", referral_id=str(rid), reason="completed"),
        )
        done = await poll_until("completed", gw)

    assert [s for s in seen if s != "received"] == ["accepted", "in-progress", "completed"]
    assert done["output"] and all(
        o["type"]["coding"][0]["code"] == "resulting-activity" for o in done["output"]
    )
    # the code outcomes wrote back to the GP record when the person took up support
    # (an agency's referral: no self-referral code), as the profile's PerformedActivityCode
    coded = [o["valueCodeableConcept"] for o in done["output"] if "valueCodeableConcept" in o]
    assert coded == [
        {
            "coding": [
                {
                    "system": "http://snomed.info/sct",
                    "code": REFERRAL_TO_SOCIAL_PRESCRIBING.code,
                    "display": REFERRAL_TO_SOCIAL_PRESCRIBING.display,
                }
            ],
            "text": REFERRAL_TO_SOCIAL_PRESCRIBING.display,
        }
    ]
    sr = (await door.get(f"/ServiceRequest/{task_id}", headers=headers("food-key"))).json()
    assert sr["status"] == "completed"
    polled = await door.get(
        "/Task", params={"requester": "Organization/Y02345"}, headers=headers("food-key")
    )
    assert polled.json()["entry"][0]["resource"]["status"] == "completed"


async def test_with_issued_credentials_each_organisation_acts_only_for_itself(
    settings, monkeypatch
):
    """The real API clients (services.gateway.clients): a credential issued to RND sends
    the BaRS example; Y02345's credential cannot read, cancel or search it; a revoked
    credential is refused 401; nothing is stored for a refused request."""
    from services.gateway import clients

    monkeypatch.setenv("LINKWELL_GATEWAY_ORGANISATIONS", "A81001,Y02345,RND")
    monkeypatch.setenv("LINKWELL_GATEWAY_CLIENT_PEPPER", "pepper-for-tests")
    await migrate(settings, GATEWAY)
    pool = await create_pool(settings.database_url, settings.names.schema("gateway"), "t", 4)
    own = GatewaySettings(gateway_port=0)
    try:
        rnd = await clients.issue(
            pool,
            organisation="RND",
            name="RND system",
            serves=own.serves,
            pepper="pepper-for-tests",
            organisation_name="Emergency service",
            agency_type="hospital_discharge",
        )
        food = await clients.issue(
            pool,
            organisation="Y02345",
            name="Food bank system",
            serves=own.serves,
            pepper="pepper-for-tests",
            organisation_name="Eastfield Food Bank",
            agency_type="vcse",
        )
        gateway = Gateway(pool, settings.names, own, limits=Limits.of(999, 999, 999))
        transport = httpx.ASGITransport(app=create_app(gateway), client=("192.0.2.31", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://door") as client:

            def as_(issued: Any) -> dict[str, str]:
                return {**headers(), "Authorization": f"Bearer {issued.token}"}

            body = example("bars/servicerequest-request-social-prescribing.json")
            none = await client.post("/$process-message", json=body, headers=headers())
            assert none.status_code == 401 and rec(none) == "REC_UNAUTHORIZED"
            theirs = await client.post("/$process-message", json=body, headers=as_(food))
            assert theirs.status_code == 403 and rec(theirs) == "REC_FORBIDDEN"
            assert await outbox(settings) == []
            sent = await client.post("/$process-message", json=body, headers=as_(rnd))
            assert sent.status_code == 200, sent.text
            sr_id = sent.json()["entry"][1]["resource"]["id"]
            event = parse_event(ReferralSubmitted, bytes((await outbox(settings))[0]["body"]))
            assert event.source == "urn:linkwell:org:RND"  # the credential's organisation
            replay = await client.post("/$process-message", json=body, headers=as_(rnd))
            assert replay.status_code == 409 and rec(replay) == "REC_CONFLICT"
            read = await client.get(f"/ServiceRequest/{sr_id}", headers=as_(food))
            assert read.status_code == 404
            cancel = await client.post(
                "/$process-message",
                json=example("bars/servicerequest-request-revoked.json"),
                headers=as_(food),
            )
            assert cancel.status_code == 403  # the message names RND as its sender
            assert len(await outbox(settings)) == 1
            assert await clients.revoke(pool, rnd.client_id)
            revoked = await client.get(f"/ServiceRequest/{sr_id}", headers=as_(rnd))
            assert revoked.status_code == 401 and rec(revoked) == "REC_UNAUTHORIZED"
    finally:
        await pool.close()
