"""The JSON API, pure: what a request must carry (a JSON body, an Idempotency-Key), the
form key and event id one organisation's key stands for, the problem documents refusals
are (RFC 9457, ``application/problem+json``) with the AMQP contract's reason codes
(``contracts.enums.RejectionCode``), and the view of where a referral stands. No I/O."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from contracts.api import ReferralStanding
from contracts.events import ReferralSubmitted
from contracts.rejections import reasons_from

from .store import ApiStanding

PROBLEM = "application/problem+json"
MAX_IDEMPOTENCY_KEY = 128
# printable ASCII without spaces or quotes: what an honest client's UUID or counter is
_KEY = re.compile(r"^[A-Za-z0-9._:~+/=-]{1,128}$")
_EVENT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    500: "Internal server error",
}


@dataclass
class Problem(Exception):
    """A refusal: an HTTP status, a machine-readable code, words, and (for a body the
    contract refuses) the reasons, as ``referral.rejected.v1`` gives them."""

    status: int
    code: str
    detail: str
    reasons: list[dict[str, Any]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": f"urn:linkwell:problem:{self.code}",
            "title": TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if self.reasons:
            doc["reasons"] = self.reasons
        return doc


def json_content_type(value: str | None) -> bool:
    """``application/json``, with parameters (a charset) or none."""
    if not value:
        return False
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json"


def idempotency_key(value: str | None) -> str:
    if value is None or not value.strip():
        raise Problem(
            400,
            "idempotency_key_missing",
            "Send an Idempotency-Key header: one value per referral, the same on a retry.",
        )
    value = value.strip()
    if not _KEY.match(value):
        raise Problem(
            400,
            "idempotency_key_invalid",
            f"The Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} letters, digits or "
            "._:~+/=- (a UUID is a good choice).",
        )
    return value


def form_key(organisation: str, key: str) -> str:
    """One organisation's key: another organisation's same key is another referral."""
    return f"api:{organisation}:{key}"


def request_digest(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()


def referral(body: bytes) -> ReferralSubmitted:
    """The contract's ``referral.submitted.v1`` data from the body, or a Problem with the
    reasons (never quoting a value)."""
    try:
        return ReferralSubmitted.model_validate_json(body)
    except ValidationError as exc:
        reasons = [r.model_dump(mode="json") for r in reasons_from(exc)]
        if any(e["type"] == "json_invalid" for e in exc.errors(include_input=False)):
            raise Problem(400, "schema_invalid", "The body is not valid JSON.") from None
        if any(e["type"] == "model_type" and not e["loc"] for e in exc.errors(include_input=False)):
            raise Problem(400, "schema_invalid", "The body must be a JSON object.") from None
        code = reasons[0]["code"] if reasons else "schema_invalid"
        raise Problem(
            422, code, "The referral does not match referral.submitted.v1.", reasons
        ) from None


def event_id(value: str) -> str | None:
    """A referral's id as the API gives it (the submission's event id), or None."""
    return value if _EVENT_ID.match(value) else None


def standing_view(standing: ApiStanding) -> dict[str, Any]:
    """Where a referral stands, as ``GET /v1/referrals/{id}`` answers: the first answer
    (``accepted``, ``rejected`` with its reasons, ``duplicate``; null until it comes),
    the latest status, the HL7 Gravity task status, and the referral's id once intake
    gave one."""
    return ReferralStanding.model_validate(
        {
            "id": standing.event_id,
            "answer": standing.answer,
            "status": standing.step,
            "task_status": standing.task_status,
            "referral_id": str(standing.referral_id) if standing.referral_id else None,
            "reasons": standing.reasons or [],
            "submitted_at": standing.submitted_at,
            "status_at": standing.step_at if standing.step_at.year > 1 else None,
            "withdrawn_at": standing.withdrawn_at,
        }
    ).model_dump(mode="json")
