"""The JSON API for an organisation's own system: ``POST /v1/referrals`` sends the
contract's ``referral.submitted.v1`` data as the client's organisation (never one a body
names), answered 202 only once the submission and its event are committed in the
gateway's outbox, under the request's Idempotency-Key (the same key and body: the same
answer; the same key and another body: 409). ``GET /v1/referrals/{id}`` says where it
stands, for the client's own organisation only (another's id is 404, as an unknown one).

Every refusal is ``application/problem+json`` (RFC 9457) with a ``code``: the client
authentication's, the request's, or the AMQP contract's reason codes with ``reasons`` as
``referral.rejected.v1`` gives them. Nothing is stored for a refused request."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import asyncpg
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contracts.api import ReferralLinks, ReferralReceived
from contracts.envelope import org_source
from services.runtime.logs import get_logger
from services.runtime.names import Names
from services.runtime.outbox import enqueue

from . import api_domain, domain
from .api_domain import PROBLEM, Problem
from .clients import ApiClient, ClientRefused, authenticate, www_authenticate
from .store import GatewayStore
from .submit import event_id_for

if TYPE_CHECKING:
    from .web import Gateway

log = get_logger(__name__)
PREFIX = "/v1"


def problem(exc: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(exc.body(), exc.status, headers=headers, media_type=PROBLEM)


def refused(exc: ClientRefused) -> JSONResponse:
    return problem(Problem(exc.status, exc.code, exc.detail), www_authenticate(exc))


async def send_referral(
    pool: asyncpg.Pool, names: Names, client: ApiClient, key: str, body: bytes
) -> tuple[str, bool]:
    """The submission's id, and whether it is new (False: a retry of the same request).
    Raises Problem 409 for the same key with another body, 422 for a body the contract
    refuses; either way nothing is stored."""
    form_key = api_domain.form_key(client.org, key)
    digest = api_domain.request_digest(body)
    async with pool.acquire() as conn:
        before = await GatewayStore(conn).submissions.api_request(form_key)
    if before is not None:
        return _repeat(before, digest)
    data = api_domain.referral(body)
    event = data.envelope(source=org_source(client.org), event_id=event_id_for(form_key))
    async with pool.acquire() as conn, conn.transaction():
        store = GatewayStore(conn).submissions
        added = await store.add_api(
            reference=domain.new_reference(),
            form_key=form_key,
            event_id=event.id,
            organisation=client.org,
            client=None if client.via_proxy else uuid.UUID(client.client_id),
            request=digest,
        )
        if added:
            await enqueue(conn, event, names.inbound, data.routing_key())
    if not added:  # the same key's other request committed first
        async with pool.acquire() as conn:
            before = await GatewayStore(conn).submissions.api_request(form_key)
        assert before is not None
        return _repeat(before, digest)
    log.info("api_referral_sent", event_id=event.id, organisation=client.org)
    return event.id, True


def _repeat(before: tuple[str, bytes | None], digest: bytes) -> tuple[str, bool]:
    event_id, was = before
    if was != digest:
        raise Problem(
            409,
            "idempotency_key_reused",
            "This Idempotency-Key was used for another request body: use a new key for a "
            "new referral.",
        )
    return event_id, False


def api_routes(gw: Gateway) -> list[Route]:
    async def create(request: Request) -> Response:
        try:
            client = await authenticate(request)
            key = api_domain.idempotency_key(request.headers.get("idempotency-key"))
            if not api_domain.json_content_type(request.headers.get("content-type")):
                raise Problem(415, "unsupported_media_type", "Send Content-Type: application/json.")
            body = await request.body()
            event_id, new = await send_referral(gw.pool, gw.names, client, key, body)
        except ClientRefused as exc:
            return refused(exc)
        except Problem as exc:
            log.info("api_refused", code=exc.code, status=exc.status)
            return problem(exc)
        where = f"{PREFIX}/referrals/{event_id}"
        received = ReferralReceived(id=event_id, links=ReferralLinks(self=where))
        answer = JSONResponse(
            received.model_dump(mode="json"),
            202,
            headers={"Location": where, "Idempotent-Replay": "false" if new else "true"},
        )
        if new:
            answer.background = BackgroundTask(gw.wake)
        return answer

    async def show(request: Request) -> Response:
        try:
            client = await authenticate(request)
        except ClientRefused as exc:
            return refused(exc)
        event_id = api_domain.event_id(request.path_params["id"])
        standing = None
        if event_id is not None:
            async with gw.pool.acquire() as conn, conn.transaction():
                standing = await GatewayStore(conn).submissions.by_event(event_id, client.org)
                if standing is not None:  # what it is shown, on the trail as it is read
                    await gw.audit_reads(conn, client.org, client.client_id, "referral", [standing])
        if standing is None:
            return problem(Problem(404, "not_found", "No referral of yours has this id."))
        gw.wake()
        return JSONResponse(api_domain.standing_view(standing))

    async def unknown(request: Request) -> Response:
        return problem(Problem(404, "not_found", "Not a path of this API."))

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return [
        Route(f"{PREFIX}/referrals", create, methods=["POST"]),
        Route(f"{PREFIX}/referrals/{{id}}", show, methods=["GET"]),
        Route(f"{PREFIX}/{{rest:path}}", unknown, methods=methods),
    ]


def too_large() -> JSONResponse:
    return problem(Problem(413, "too_large", "The body is larger than the API takes."))


def failed() -> JSONResponse:
    return problem(Problem(500, "internal_error", "Try again later with the same Idempotency-Key."))


def is_api(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")
