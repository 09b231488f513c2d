"""Each step of a BaRS referral pushed back to its sender's registered endpoint, against
the real database and a real HTTP receiver on 127.0.0.1: the servicerequest-response
messages arrive in order, answer the request message and focus the ServiceRequest; a
receiver answering 500 then 200 is retried; one always failing is given up; a referral
from another organisation is never pushed to this endpoint; each delivery is on the
audit trail (in the gateway's outbox)."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from contracts import parse_event
from contracts.enums import ReferralStatusValue, TaskStatus
from contracts.events import AuditRecorded, ReferralStatus, ReferralSubmitted
from services.gateway import clients, handlers
from services.gateway.app import SERVICE as GATEWAY
from services.gateway.push import PushDispatcher
from services.gateway.ratelimit import Limits
from services.gateway.settings import GatewaySettings
from services.gateway.store import GatewayStore
from services.gateway.web import Gateway, create_app
from services.runtime.db import create_pool
from services.runtime.poller import notify_channel
from services.runtime.runner import migrate

from .conftest import asyncpg_connect
from .test_gateway_fhir import example, headers

pytestmark = pytest.mark.integration
PEPPER = "pepper-for-tests"


class Receiver:
    """A sender's system: takes $process-message posts, answering as told (then 200)."""

    def __init__(self, answers: list[int] | None = None, always: int | None = None):
        self.got: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.answers = list(answers or [])
        self.always = always
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/fhir/$process-message"

    async def take(self, request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        self.got.append(({k.lower(): v for k, v in request.headers.items()}, body))
        status = self.always or (self.answers.pop(0) if self.answers else 200)
        return JSONResponse({"resourceType": "OperationOutcome"}, status_code=status)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/fhir/$process-message", self.take, methods=["POST"])])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


TASKS: set[asyncio.Task[None]] = set()


async def serving(receivers: list[Receiver]) -> list[uvicorn.Server]:
    servers = []
    for r in receivers:
        server = uvicorn.Server(
            uvicorn.Config(r.app(), host="127.0.0.1", port=r.port, log_level="warning")
        )
        task = asyncio.create_task(server.serve())
        TASKS.add(task)
        task.add_done_callback(TASKS.discard)
        servers.append(server)
    for server in servers:
        while not server.started:  # noqa: ASYNC110 - uvicorn tells only by this flag
            await asyncio.sleep(0.02)
    return servers


@pytest.fixture
async def world(settings, monkeypatch) -> AsyncIterator[dict[str, Any]]:
    monkeypatch.setenv("LINKWELL_GATEWAY_ORGANISATIONS", "A81001,Y02345,RND")
    monkeypatch.setenv("LINKWELL_GATEWAY_CLIENT_PEPPER", PEPPER)
    await migrate(settings, GATEWAY)
    pool = await create_pool(settings.database_url, settings.names.schema("gateway"), "t", 4)
    own = GatewaySettings(gateway_port=0)
    gateway = Gateway(pool, settings.names, own, limits=Limits.of(999, 999, 999))
    transport = httpx.ASGITransport(app=create_app(gateway), client=("192.0.2.40", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://door") as door:
        yield {"pool": pool, "own": own, "door": door}
    await pool.close()


async def issue(pool: Any, own: GatewaySettings, org: str, kind: str) -> clients.Issued:
    return await clients.issue(
        pool,
        organisation=org,
        name=f"{org} system",
        serves=own.serves,
        pepper=PEPPER,
        organisation_name=f"{org} organisation",
        agency_type=kind,
    )


def dispatcher(world: dict[str, Any], settings: Any, **kw: Any) -> PushDispatcher:
    own = world["own"]
    return PushDispatcher(
        lambda conn, cid: GATEWAY.unit_of_work(conn, settings.names, cid, own),
        max_attempts=kw.get("max_attempts", 5),
        max_age=timedelta(hours=1),
        timeout=5.0,
        development=kw.get("development", True),  # the receiver is on 127.0.0.1
        dsn=settings.database_url,
        pool=world["pool"],
        channel=notify_channel(settings.names.schema("gateway"), "push"),
        interval=0.1,
        batch=20,
    )


async def send_bars(
    world: dict[str, Any], settings: Any, issued: clients.Issued
) -> tuple[str, str]:
    """The BaRS example sent by ``issued``: its submission event id and request message id."""
    body = example("bars/servicerequest-request-social-prescribing.json")
    sent = await world["door"].post(
        "/$process-message",
        json=body,
        headers={**headers(), "Authorization": f"Bearer {issued.token}"},
    )
    assert sent.status_code == 200, sent.text
    async with asyncpg_connect(settings) as conn:
        row = await conn.fetchrow(
            f'SELECT body FROM "{settings.names.schema("gateway")}".outbox'
            " WHERE routing_key LIKE 'referral.submitted%' ORDER BY id DESC LIMIT 1"
        )
    event = parse_event(ReferralSubmitted, bytes(row["body"]))
    return event.id, body["id"]  # BaRS' example gives its MessageHeader no id


async def step(
    world: dict[str, Any],
    event_id: str,
    task: TaskStatus,
    at: datetime,
    referral_id: uuid.UUID,
    **kw: Any,
) -> None:
    """What triage's referral.status.v1 would tell, handled as the gateway's consumer does."""
    status = {
        TaskStatus.ACCEPTED: ReferralStatusValue.ACCEPTED,
        TaskStatus.IN_PROGRESS: ReferralStatusValue.IN_PROGRESS,
        TaskStatus.COMPLETED: ReferralStatusValue.CLOSED,
    }[task]
    data = ReferralStatus(
        referral_id=referral_id,
        sender="RND",
        sender_reference="RND-SP-0001",
        status=status,
        message=status.value,
        at=at,
        task_status=task,
        submission_event_id=event_id,
        **kw,
    )
    async with world["pool"].acquire() as conn, conn.transaction():

        class Uow:
            def __init__(self, conn: Any):
                self.store = GatewayStore(conn)

            async def wake(self, what: str) -> None:
                assert what == "push"

        await handlers.on_status(Uow(conn), data.envelope(source="urn:linkwell:svc:triage"), data)


async def until(check: Any, dispatch: PushDispatcher, seconds: float = 8.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not delivered in time"
        await dispatch.work()
        await asyncio.sleep(0.1)


async def deliveries(settings: Any) -> list[Any]:
    async with asyncpg_connect(settings) as conn:
        return await conn.fetch(
            f'SELECT state, attempts, status, last_error FROM "{settings.names.schema("gateway")}"'
            ".fhir_delivery ORDER BY id"
        )


async def audit_records(settings: Any) -> list[AuditRecorded]:
    async with asyncpg_connect(settings) as conn:
        rows = await conn.fetch(
            f'SELECT body FROM "{settings.names.schema("gateway")}".outbox'
            " WHERE routing_key LIKE 'audit.recorded%' ORDER BY id"
        )
    return [parse_event(AuditRecorded, bytes(r["body"])).data for r in rows]


async def test_each_step_is_pushed_in_order_retried_and_never_to_another_org(world, settings):
    pool, own = world["pool"], world["own"]
    rnd = await issue(pool, own, "RND", "hospital_discharge")
    food = await issue(pool, own, "Y02345", "vcse")
    mine, theirs = Receiver(answers=[500]), Receiver()
    servers = await serving([mine, theirs])
    try:
        assert await clients.set_endpoint(pool, rnd.client_id, mine.url) == "RND"
        assert await clients.set_endpoint(pool, food.client_id, theirs.url) == "Y02345"
        event_id, request_id = await send_bars(world, settings, rnd)
        referral_id = uuid.uuid4()
        start = datetime.now(UTC) - timedelta(minutes=5)
        told = [TaskStatus.ACCEPTED, TaskStatus.IN_PROGRESS, TaskStatus.COMPLETED]
        for n, task in enumerate(told):
            await step(world, event_id, task, start + timedelta(minutes=n), referral_id)
        # the same step told again is pushed once
        await step(world, event_id, TaskStatus.ACCEPTED, start, referral_id)
        dispatch = dispatcher(world, settings)
        await until(lambda: len(mine.got) >= 4, dispatch)
        # the first answered 500: tried again (after its 1 s backoff), then the rest in order
        statuses = [body["entry"][1]["resource"]["status"] for _, body in mine.got]
        assert statuses == ["active", "active", "active", "completed"]
        first, retry = mine.got[0], mine.got[1]
        assert first[0]["x-request-id"] == retry[0]["x-request-id"]  # the same message again
        assert [b["entry"][0]["resource"]["id"] for _, b in mine.got[1:]] == [
            h["x-request-id"] for h, _ in mine.got[1:]
        ]
        for got_headers, body in mine.got:
            header = body["entry"][0]["resource"]
            assert header["eventCoding"]["code"] == "servicerequest-response"
            assert header["response"]["identifier"] == request_id
            assert got_headers["x-correlation-id"] == request_id
            assert got_headers["content-type"] == "application/fhir+json"
            sr = body["entry"][1]["resource"]
            assert header["focus"] == [{"reference": f"ServiceRequest/{sr['id']}"}]
        tasks = [b["entry"][2]["resource"]["status"] for _, b in mine.got]
        assert tasks == ["accepted", "accepted", "in-progress", "completed"]
        assert theirs.got == []  # another organisation's endpoint hears nothing of it
        rows = await deliveries(settings)
        assert [(r["state"], r["attempts"]) for r in rows] == [
            ("sent", 2),
            ("sent", 1),
            ("sent", 1),
        ]
        records = [r for r in await audit_records(settings) if r.detail.get("channel")]
        assert len(records) == 3
        assert {(r.action, r.recipient_kind, r.recipient_org, r.referral_id) for r in records} == {
            ("status", "referrer", "RND", referral_id)
        }
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.sleep(0.2)


async def test_an_endpoint_always_failing_is_given_up(world, settings):
    pool, own = world["pool"], world["own"]
    rnd = await issue(pool, own, "RND", "hospital_discharge")
    failing = Receiver(always=503)
    servers = await serving([failing])
    try:
        await clients.set_endpoint(pool, rnd.client_id, failing.url)
        event_id, _ = await send_bars(world, settings, rnd)
        await step(world, event_id, TaskStatus.ACCEPTED, datetime.now(UTC), uuid.uuid4())
        dispatch = dispatcher(world, settings, max_attempts=2)
        await until(lambda: len(failing.got) >= 2, dispatch)
        await dispatch.work()
        rows = await deliveries(settings)
        assert [(r["state"], r["attempts"], r["last_error"]) for r in rows] == [
            ("given_up", 2, "http_503")
        ]
        await asyncio.sleep(1.2)
        await dispatch.work()
        assert len(failing.got) == 2  # given up: never tried again
        assert not [r for r in await audit_records(settings) if r.detail.get("channel")]
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.sleep(0.2)


async def test_the_endpoint_command_registers_checks_and_is_audited(world, settings, monkeypatch):
    from typer.testing import CliRunner

    from services.ops.cli import app
    from services.registry import SERVICE_DEFS
    from services.runtime import topology

    # the audit service's queue, which must confirm the operator's record
    await topology.declare(settings, [s.topology for s in SERVICE_DEFS.values()])
    monkeypatch.setenv("LINKWELL_NAMESPACE", settings.namespace)
    rnd = await issue(world["pool"], world["own"], "RND", "hospital_discharge")
    url = "https://ehr.example.org/fhir/$process-message"

    def run(*args: str) -> Any:
        return CliRunner().invoke(app, ["gateway", "client", "endpoint", *args])

    bad = await asyncio.to_thread(run, str(rnd.client_id), "--url", "ftp://ehr.example.org/")
    assert bad.exit_code == 2 and "https://" in bad.output
    unknown = await asyncio.to_thread(run, str(uuid.uuid4()), "--url", url)
    assert unknown.exit_code == 1
    done = await asyncio.to_thread(run, str(rnd.client_id), "--url", url)
    assert done.exit_code == 0, done.output
    listed = await clients.listed(world["pool"], "RND")
    assert [c.endpoint_url for c in listed] == [url]
    removed = await asyncio.to_thread(run, str(rnd.client_id), "--remove")
    assert removed.exit_code == 0, removed.output
    assert [c.endpoint_url for c in await clients.listed(world["pool"], "RND")] == [None]
