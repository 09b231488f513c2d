"""The gateway's JSON API (``/v1``), as models: what its answers are. The request body of
``POST /v1/referrals`` is ``referral.submitted.v1``'s data (``contracts.events``); the
OpenAPI document (``contracts/openapi/gateway.json``, ``linkwell openapi write``) is
generated from these and the event models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .events import Reason

Answer = Literal["accepted", "rejected", "duplicate"]


class ReferralLinks(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    self: Annotated[str, Field(description="Where GET tells where the referral stands.")]


class ReferralReceived(BaseModel):
    """``202``: the referral is committed in the gateway's outbox; it will reach intake.
    The same answer for a retry with the same Idempotency-Key and body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(description="The submission's id (its event id).")]
    status: Literal["received"] = "received"
    links: ReferralLinks


class ReferralStanding(BaseModel):
    """Where a referral stands: the first answer to it and its latest status."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    answer: Answer | None = Field(
        description="referral.accepted.v1, referral.rejected.v1 or referral.duplicate.v1's "
        "answer; null until it comes."
    )
    status: Annotated[str, Field(description="received, then the latest referral.status.v1 step.")]
    task_status: str | None = Field(description="The HL7 Gravity task status, once told.")
    referral_id: str | None = Field(description="The referral's id, once intake gave one.")
    reasons: list[Reason] = Field(description="A rejection's reasons (empty otherwise).")
    submitted_at: AwareDatetime
    status_at: AwareDatetime | None
    withdrawn_at: AwareDatetime | None


class Problem(BaseModel):
    """A refusal, as RFC 9457 problem details (``application/problem+json``), with a
    machine-readable ``code``: the AMQP contract's RejectionCode for a body the contract
    refuses, else one of the API's own (missing_credential, invalid_credential,
    credential_expired, credential_revoked, not_permitted, idempotency_key_missing,
    idempotency_key_invalid, idempotency_key_reused, unsupported_media_type, too_large,
    not_found, internal_error)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    title: str
    status: int
    detail: str
    code: str
    reasons: list[Reason] = Field(default_factory=list)
