"""Each step of a BaRS referral, pushed back to the sender's registered endpoint as a
``servicerequest-response`` message (docs/architecture/fhir.md, "Pushing each step
back"). Pure: the backoff schedule, when a delivery is given up, the endpoint rule and
the message Bundle. The dispatcher (``services/gateway/push.py``) does the I/O."""

from __future__ import annotations

import ipaddress
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from .mapping import (
    BARS_EVENTS,
    ODS,
    Coded,
    Step,
    _stamp,
    service_request_resource,
    task_resource,
)

SERVICEREQUEST_RESPONSE = "servicerequest-response"
MAX_BACKOFF = 3600.0  # seconds: as notify's refused messages (services/notify/domain.py)
MAX_URL = 500
# The profiles BaRS' own response message names (NHSDigital/booking-and-referral-fhir-api,
# specification/examples/process_message/request/ValidationResponse (POST) .json)
HEADER_PROFILE = "https://fhir.nhs.uk/StructureDefinition/BARSMessageHeader-servicerequest-response"
BUNDLE_PROFILE = "https://fhir.nhs.uk/StructureDefinition/BARSBundleMessage"


FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # FHIR's id datatype


def backoff(attempts_made: int) -> float:
    """Seconds before a refused delivery is tried again: 1, 2, 4... at most an hour, the
    schedule notify keeps for a message its channel refused."""
    return min(2.0 ** min(max(attempts_made, 1) - 1, 20), MAX_BACKOFF)


def give_up(
    attempts_made: int,
    created_at: datetime,
    now: datetime,
    *,
    max_attempts: int,
    max_age: timedelta,
) -> bool:
    """After this failure, stop? After ``max_attempts`` tries, or once the step is older
    than ``max_age`` (a step days late tells the sender nothing it cannot poll for)."""
    return attempts_made >= max_attempts or now - created_at >= max_age


def check_endpoint(url: str, *, development: bool) -> str:
    """The address a sender's system takes messages at: https (http only in development
    mode), a host, no credentials in it, no fragment. Raises ValueError saying why."""
    url = url.strip()
    if not url or len(url) > MAX_URL:
        raise ValueError(f"give an address of 1 to {MAX_URL} characters")
    parts = urlsplit(url)
    allowed = ("https", "http") if development else ("https",)
    if parts.scheme not in allowed:
        raise ValueError(
            "the endpoint must be https://"
            + (" (or http:// in development)" if development else "")
        )
    if not parts.hostname:
        raise ValueError("the endpoint needs a host")
    if parts.username or parts.password:
        raise ValueError("no credentials in the endpoint address")
    if parts.fragment:
        raise ValueError("no fragment (#...) in the endpoint address")
    try:
        httpx.URL(url)  # what the dispatcher will send to: refused now, never at send time
    except (httpx.InvalidURL, ValueError, UnicodeError):
        raise ValueError("that is not an address the gateway can send to") from None
    if not development and not public_host(parts.hostname):
        raise ValueError("the endpoint must be a public address, not one inside this network")
    return url


def public_host(host: str) -> bool:
    """False for an IP address that is not globally routable (loopback, private,
    link-local, the cloud metadata address...); a name is judged when it is resolved, at
    each send (``public_addresses``)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_global
    except ValueError:
        return True  # a name


def public_addresses(addresses: list[str]) -> bool:
    """Whether every address a name resolved to is globally routable: a push never goes to
    an address inside the network, whatever name it was registered under (SSRF)."""
    try:
        return bool(addresses) and all(ipaddress.ip_address(a).is_global for a in addresses)
    except ValueError:
        return False


def request_message_id(body: Any, request_id: str) -> str:
    """The id of the request message a response answers: its MessageHeader's id (FHIR's
    MessageHeader.response.identifier), else the Bundle's id (BaRS' request examples give
    their MessageHeader none, and its ValidationResponse example answers the request
    Bundle's id), else the ``urn:uuid:`` of the MessageHeader's entry, else the request's
    X-Request-Id."""
    try:
        entry = body["entry"][0]
        found = entry["resource"].get("id") or body.get("id") or str(entry.get("fullUrl") or "")
    except (KeyError, IndexError, TypeError, AttributeError):
        found = ""
    if not isinstance(found, str):
        found = ""
    found = found.removeprefix("urn:uuid:")
    # only a FHIR id goes back in a header and a body: anything else the sender wrote is
    # replaced by the (checked) X-Request-Id
    return found if FHIR_ID.fullmatch(found) else request_id[:128]


@dataclass(frozen=True)
class Delivery:
    """One queued push, with what its message says (ids and status only)."""

    id: int
    reference: str
    client_id: uuid.UUID
    endpoint: str
    status: str  # the Gravity task status of the step
    reason: str | None
    at: datetime
    attempts: int
    created_at: datetime
    fhir_id: uuid.UUID
    sender_reference: str
    organisation: str
    submitted_at: datetime
    request_message_id: str
    referral_id: uuid.UUID | None
    codes: tuple[Coded, ...] = ()  # the closure's codes written back (the Task's outputs)


def message_id(delivery_id: int, reference: str) -> str:
    """The response message's id: the same on every attempt, for the receiver to drop a
    repeat (a retry, or a send a crash repeats)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"linkwell:fhir:push:{reference}:{delivery_id}"))


def headers(d: Delivery) -> dict[str, str]:
    """X-Request-Id: this message's id (the same on a retry); X-Correlation-Id: the
    request message's id, tying the response to the referral's conversation."""
    return {
        "Content-Type": "application/fhir+json",
        "Accept": "application/fhir+json",
        "X-Request-Id": message_id(d.id, d.reference),
        "X-Correlation-Id": d.request_message_id,
    }


def response_message(d: Delivery, now: datetime | None = None) -> dict[str, Any]:
    """A BaRS message Bundle: MessageHeader (event ``servicerequest-response``, response
    to the request message, focus the ServiceRequest), the ServiceRequest with the status
    the step gives it, and the SDOHCC Task with the step's Gravity status (what
    ``GET /Task/{id}`` answers). No personal data: ids, statuses and the step's reason."""
    mid = message_id(d.id, d.reference)
    sr_id = str(d.fhir_id)
    service_request = service_request_resource(
        sr_id, d.reference, d.sender_reference, d.organisation, d.status, d.submitted_at
    )
    service_request["meta"] = {"lastUpdated": _stamp(d.at)}
    # subject is required (1..1); the gateway keeps no Patient: as the synchronous answer
    # (mapping.accepted_message), it names the patient of the request message
    service_request["subject"] = {"display": "as sent"}
    if d.reason:
        service_request["note"] = [{"text": d.reason[:500]}]
    task = task_resource(
        sr_id,
        d.reference,
        d.sender_reference,
        d.organisation,
        d.submitted_at,
        [Step(d.status, d.at, d.reason, None, d.codes)],
    )
    header = {
        "resourceType": "MessageHeader",
        "id": mid,
        "meta": {"profile": [HEADER_PROFILE]},
        "eventCoding": {"system": BARS_EVENTS, "code": SERVICEREQUEST_RESPONSE},
        "destination": [
            {
                "endpoint": d.endpoint,
                "receiver": {"identifier": {"system": ODS, "value": d.organisation}},
            }
        ],
        "source": {"endpoint": "urn:linkwell:gateway"},
        "response": {"identifier": d.request_message_id, "code": "ok"},
        "focus": [{"reference": f"ServiceRequest/{sr_id}"}],
    }
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "linkwell:fhir:push-bundle:" + mid)),
        "meta": {"lastUpdated": _stamp(now or datetime.now(UTC)), "profile": [BUNDLE_PROFILE]},
        "type": "message",
        "timestamp": _stamp(now or datetime.now(UTC)),
        "entry": [
            {"fullUrl": f"urn:uuid:{mid}", "resource": header},
            {"fullUrl": f"ServiceRequest/{sr_id}", "resource": service_request},
            {"fullUrl": f"Task/{sr_id}", "resource": task},
        ],
    }
