"""The FHIR door over HTTP (docs/architecture/fhir.md): the BaRS receiver
(``POST /$process-message``, ``GET /ServiceRequest``, ``GET /metadata``) and the HL7
Gravity Task interface (``POST /Task``, ``GET /Task``, cancel by ``PUT``/``PATCH``).

A referral is answered 200 only once it is committed to the gateway's outbox, in the same
transaction as its submission row (as the people's door does, ``submit``); the same
sender's reference again is a 409 ``REC_CONFLICT``, nothing stored twice. Every refusal is
an OperationOutcome (``mapping.operation_outcome``), never a 500 for bad input. Callers are
API clients (``services.gateway.clients.authenticate``): each acts for its organisation
only, and only for an organisation the gateway sends for."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contracts.envelope import org_source
from services.runtime.logs import get_logger
from services.runtime.outbox import enqueue

from .. import domain, guard
from ..store import GatewayStore, check_digest
from ..withdraw import send_withdrawal
from . import mapping, push
from .mapping import Refusal, Sender

if TYPE_CHECKING:
    from ..web import Gateway

log = get_logger(__name__)

FHIR_JSON = "application/fhir+json"
MAX_BODY = 512 * 1024  # bytes; BaRS' own example message is under 40 kB
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")

Authenticate = Callable[[Request], Awaitable[Any]]


_RESOURCE_PATH = re.compile(
    r"^/[A-Z][A-Za-z]{1,63}(/|$)"
)  # FHIR resource types; pages are lower case


def is_fhir_path(path: str) -> bool:
    """Paths the FHIR door answers: its own, and any other resource type's (refused there
    with an OperationOutcome, not the people's HTML page)."""
    return path.startswith("/$") or path == "/metadata" or bool(_RESOURCE_PATH.match(path))


def _default_authenticate() -> Authenticate:
    """API client credentials (``services.gateway.clients``, docs/architecture/api-clients.md)."""
    from ..clients import authenticate

    return authenticate


def _ids(request: Request) -> dict[str, str]:
    out = {}
    for name in ("x-request-id", "x-correlation-id"):
        value = request.headers.get(name, "")
        if _REQUEST_ID.match(value):
            out[name.title()] = value
    return out


def outcome(request: Request | None, refusal: Refusal) -> JSONResponse:
    headers = _ids(request) if request is not None else {}
    return JSONResponse(
        mapping.operation_outcome(refusal),
        status_code=refusal.status,
        media_type=FHIR_JSON,
        headers=headers,
    )


def fhir(request: Request, body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON, headers=_ids(request))


def form_key(org: str, sender_reference: str) -> str:
    return f"fhir:{org}:{sender_reference}"


def event_id_for(key: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"linkwell:gateway:fhir:{key}"))


def capability_statement() -> dict[str, Any]:
    read = [{"code": "read"}, {"code": "search-type"}]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-02",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON],
        "implementation": {"description": "Linkwell social prescribing referrals"},
        "rest": [
            {
                "mode": "server",
                "security": {"description": "API client credentials; one organisation each"},
                "resource": [
                    {
                        "type": "ServiceRequest",
                        "interaction": read,
                        "searchParam": [{"name": "patient:identifier", "type": "token"}],
                    },
                    {
                        "type": "Task",
                        "supportedProfile": [mapping.TASK_PROFILE],
                        "interaction": [
                            {"code": "create"},
                            {"code": "update"},
                            {"code": "patch"},
                            *read,
                        ],
                        "searchParam": [
                            {"name": "requester", "type": "reference"},
                            {"name": "_lastUpdated", "type": "date"},
                        ],
                    },
                ],
                "operation": [
                    {
                        "name": "process-message",
                        "definition": "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message",
                    }
                ],
            }
        ],
        "messaging": [
            {
                "supportedMessage": [
                    {
                        "mode": "receiver",
                        "definition": "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request",
                    }
                ]
            }
        ],
    }


def routes(gw: Gateway, authenticate: Authenticate | None = None) -> Starlette:
    auth = authenticate or _default_authenticate()

    async def caller(request: Request) -> Sender:
        try:
            client = await auth(request)
        except Refusal:
            raise
        except Exception as error:
            status = getattr(error, "status", None)
            code = getattr(error, "code", None)
            if not isinstance(status, int) or not isinstance(code, str):
                raise
            rec = {401: "REC_UNAUTHORIZED", 403: "REC_FORBIDDEN"}.get(status, "REC_FORBIDDEN")
            issue = "login" if status == 401 else "forbidden"
            detail = f"{code}: {getattr(error, 'detail', '')}"[:300]
            raise Refusal(status, rec, issue, detail) from None
        if client.org not in gw.settings.serves:
            raise Refusal(
                403, "REC_FORBIDDEN", "forbidden", "not an organisation this gateway sends for"
            )
        name = getattr(client, "organisation_name", "") or client.name
        return Sender(client.org, name, str(client.agency_type), str(client.client_id))

    def need_ids(request: Request) -> None:
        for name in ("X-Request-Id", "X-Correlation-Id"):
            value = request.headers.get(name)
            if value is None:
                raise mapping.bad("required", f"the {name} header is required")
            if not _REQUEST_ID.match(value):
                raise mapping.bad("value", f"the {name} header: up to 128 letters, digits, ._:-")

    async def json_body(request: Request) -> Any:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != FHIR_JSON:
            raise Refusal(415, "REC_BAD_REQUEST", "not-supported", f"send {FHIR_JSON}")
        raw = await request.body()
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            raise mapping.bad("structure", "the body is not JSON") from None

    def fenced(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except Refusal as refusal:
                log.info("fhir_refused", code=refusal.rec, status=refusal.status)
                return outcome(request, refusal)

        return run

    async def commit(
        sender: Sender, inbound: mapping.Inbound, message_id: str | None = None
    ) -> tuple[str, uuid.UUID]:
        assert inbound.referral is not None
        key = form_key(sender.org, inbound.sender_reference)
        async with gw.pool.acquire() as conn, conn.transaction():
            store = GatewayStore(conn)
            if await store.submissions.reference_of(key) is not None:
                raise Refusal(
                    409,
                    "REC_CONFLICT",
                    "duplicate",
                    "the message has been identified as having already been processed.",
                    "ServiceRequest.identifier",
                )
            reference = domain.new_reference()
            event = inbound.referral.envelope(
                source=org_source(sender.org), event_id=event_id_for(key)
            )
            check = check_digest(reference, inbound.date_of_birth or "")
            if not await store.submissions.add(reference, key, event.id, sender.org, check):
                raise Refusal(409, "REC_CONFLICT", "duplicate", "sent concurrently")
            fhir_id = uuid.uuid5(uuid.NAMESPACE_URL, f"linkwell:gateway:fhir-id:{key}")
            patient = (
                mapping.patient_digest(sender.org, inbound.nhs_number)
                if inbound.nhs_number
                else None
            )
            await store.fhir.mark(reference, fhir_id, inbound.sender_reference, patient, message_id)
            await enqueue(conn, event, gw.names.inbound, inbound.referral.routing_key())
        gw.wake()
        log.info("fhir_referral_sent", event_id=event.id, organisation=sender.org)
        return reference, fhir_id

    async def cancel(sender: Sender, held_lookup: Callable[[GatewayStore], Awaitable[Any]]) -> Any:
        async with gw.pool.acquire() as conn, conn.transaction():
            store = GatewayStore(conn)
            held = await held_lookup(store)
            if held is None:
                raise Refusal(404, "REC_NOT_FOUND", "not-found", "no such referral of yours")
            done, event_id = await send_withdrawal(
                conn,
                held.standing,
                held.standing.reference,
                gw.names,
                "cancelled by the referrer's system",
            )
            if not done:
                raise Refusal(
                    409,
                    "REC_CONFLICT",
                    "conflict",
                    "the referral cannot be cancelled now (not yet accepted, or finished)",
                )
        if event_id is not None:
            gw.wake()
            log.info("fhir_withdrawal_sent", event_id=event_id)
        return held

    @fenced
    async def process_message(request: Request) -> Response:
        need_ids(request)
        sender = await caller(request)
        body = await json_body(request)
        inbound = mapping.from_message(body, sender, gw.practices.get)
        if inbound.cancel:
            held = await cancel(
                sender,
                lambda s: s.fhir.by_sender_reference(
                    sender.org, inbound.sender_reference, lock=True
                ),
            )
            return fhir(
                request,
                mapping.accepted_message(
                    request.headers["X-Request-Id"],
                    held.standing.reference,
                    str(held.fhir_id),
                    mapping.header_id(body),
                ),
            )
        # the request message's id: what each pushed response answers (fhir/push.py)
        message_id = push.request_message_id(body, request.headers["X-Request-Id"])
        reference, fhir_id = await commit(sender, inbound, message_id)
        return fhir(
            request,
            mapping.accepted_message(
                request.headers["X-Request-Id"], reference, str(fhir_id), mapping.header_id(body)
            ),
        )

    async def metadata(request: Request) -> Response:
        return fhir(request, capability_statement())

    def _uuid(value: str, what: str) -> uuid.UUID:
        try:
            return uuid.UUID(value)
        except ValueError:
            raise Refusal(404, "REC_NOT_FOUND", "not-found", f"no such {what}") from None

    async def shown(conn: Any, sender: Sender, what: str, found: list[Any]) -> None:
        """What a client is shown of its referrals, on the audit trail in the read's own
        transaction (the relay is woken once the caller has committed it)."""
        await gw.audit_reads(conn, sender.org, sender.client_id, what, [h.standing for h in found])

    async def _one(request: Request, sender: Sender, what: str) -> Any:
        fhir_id = _uuid(request.path_params["id"], what)
        async with gw.pool.acquire() as conn, conn.transaction():
            held = await GatewayStore(conn).fhir.by_id(fhir_id, sender.org)
            steps = await GatewayStore(conn).fhir.steps(held.standing.reference) if held else []
            if held is not None:
                await shown(conn, sender, what, [held])
        if held is None:
            raise Refusal(404, "REC_NOT_FOUND", "not-found", f"no such {what} of yours")
        gw.wake()
        return held, steps

    def _sr(held: Any) -> dict[str, Any]:
        return mapping.service_request_resource(
            str(held.fhir_id),
            held.standing.reference,
            held.sender_reference,
            held.standing.organisation,
            held.task_status or "received",
            held.standing.submitted_at,
        )

    def _task(held: Any, steps: list[mapping.Step]) -> dict[str, Any]:
        return mapping.task_resource(
            str(held.fhir_id),
            held.standing.reference,
            held.sender_reference,
            held.standing.organisation,
            held.standing.submitted_at,
            steps,
        )

    @fenced
    async def service_request(request: Request) -> Response:
        sender = await caller(request)
        held, _ = await _one(request, sender, "ServiceRequest")
        return fhir(request, _sr(held))

    @fenced
    async def search_service_requests(request: Request) -> Response:
        sender = await caller(request)
        token = request.query_params.get("patient:identifier", "")
        system, _, value = token.rpartition("|")
        if not value or system not in ("", mapping.NHS_NUMBER):
            raise mapping.bad(
                "required", f"search by patient:identifier={mapping.NHS_NUMBER}|<NHS number>"
            )
        value = value.replace(" ", "")
        if not (len(value) == 10 and value.isascii() and value.isdigit()):
            # BaRS: an identifier in the incorrect format is 400 REC_BAD_REQUEST, value
            raise mapping.bad("value", "patient:identifier: an NHS number is 10 digits")
        async with gw.pool.acquire() as conn, conn.transaction():
            found = await GatewayStore(conn).fhir.by_patient(
                sender.org, mapping.patient_digest(sender.org, value)
            )
            await shown(conn, sender, "ServiceRequest", found)
        if found:
            gw.wake()
        return fhir(request, mapping.searchset([_sr(h) for h in found]))

    @fenced
    async def create_task(request: Request) -> Response:
        sender = await caller(request)
        body = await json_body(request)
        inbound = mapping.from_task(body, sender, gw.practices.get)
        if inbound.cancel:
            raise mapping.unprocessable(
                "value", "a new Task's ServiceRequest is active", "Task.focus.resolve().status"
            )
        _, fhir_id = await commit(sender, inbound)
        async with gw.pool.acquire() as conn:
            held = await GatewayStore(conn).fhir.by_id(fhir_id, sender.org)
        response = fhir(request, _task(held, []), 201)
        response.headers["Location"] = f"Task/{fhir_id}"
        return response

    @fenced
    async def read_task(request: Request) -> Response:
        sender = await caller(request)
        held, steps = await _one(request, sender, "Task")
        return fhir(request, _task(held, steps))

    @fenced
    async def change_task(request: Request) -> Response:
        sender = await caller(request)
        fhir_id = _uuid(request.path_params["id"], "Task")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.method == "PATCH" and kind == "application/json-patch+json":
            try:
                body = json.loads(await request.body())
            except (ValueError, RecursionError):
                raise mapping.bad("structure", "the body is not JSON") from None
        else:
            body = await json_body(request)
        mapping.task_cancel(body)
        held = await cancel(sender, lambda s: s.fhir.by_id(fhir_id, sender.org, lock=True))
        async with gw.pool.acquire() as conn:
            steps = await GatewayStore(conn).fhir.steps(held.standing.reference)
        task = _task(held, steps)
        if task["status"] not in ("completed", "failed", "rejected"):
            task["status"] = "cancelled"  # the requester's cancel, until the answer comes
        return fhir(request, task)

    @fenced
    async def search_tasks(request: Request) -> Response:
        sender = await caller(request)
        requester = request.query_params.get("requester", "")
        code = requester.rpartition("|")[2].rpartition("/")[2].strip().upper()
        if code != sender.org:
            raise Refusal(
                403,
                "REC_FORBIDDEN",
                "forbidden",
                "requester: your own organisation only",
                "Task.requester",
            )
        since = None
        last = request.query_params.get("_lastUpdated")
        if last is not None:
            if not last.startswith("gt"):
                raise mapping.bad("not-supported", "_lastUpdated=gt<instant> only")
            try:
                since = datetime.fromisoformat(last[2:].replace("Z", "+00:00"))
            except ValueError:
                # BaRS: a parameter value invalid in its format is 400, invalid
                raise mapping.bad("invalid", "_lastUpdated: an instant") from None
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
        async with gw.pool.acquire() as conn, conn.transaction():
            store = GatewayStore(conn)
            found = await store.fhir.changed_since(sender.org, since)
            tasks = [_task(h, await store.fhir.steps(h.standing.reference)) for h in found]
            await shown(conn, sender, "Task", found)
        if found:
            gw.wake()
        return fhir(request, mapping.searchset(tasks))

    async def not_found(request: Request, exc: Exception) -> Response:
        return outcome(request, Refusal(404, "REC_NOT_FOUND", "not-supported", "no such resource"))

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return outcome(
            request, Refusal(405, "REC_METHOD_NOT_ALLOWED", "not-supported", "not allowed here")
        )

    async def failed(request: Request, exc: Exception) -> Response:
        log.error("fhir_failed", error=type(exc).__name__)
        return outcome(request, Refusal(500, "REC_SERVER_ERROR", "exception", "try again later"))

    app = Starlette(
        exception_handlers={404: not_found, 405: not_allowed, 500: failed},
        routes=[
            Route("/$process-message", process_message, methods=["POST"]),
            Route("/metadata", metadata),
            Route("/ServiceRequest", search_service_requests),
            Route("/ServiceRequest/{id}", service_request),
            Route("/Task", create_task, methods=["POST"]),
            Route("/Task", search_tasks, methods=["GET"]),
            Route("/Task/{id}", read_task, methods=["GET"]),
            Route("/Task/{id}", change_task, methods=["PUT", "PATCH"]),
        ],
    )

    if authenticate is None:
        from ..clients import ClientAuth

        ClientAuth(gw.pool, gw.settings).install(app)

    async def too_large(scope: dict[str, Any], receive: Any, send: Any) -> None:
        refusal = Refusal(413, "REC_BAD_REQUEST", "too-costly", f"at most {MAX_BODY} bytes")
        await outcome(Request(scope), refusal)(scope, receive, send)

    return guard.Guard(app, too_large, limit=MAX_BODY)  # type: ignore[return-value]
