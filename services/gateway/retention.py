"""What the gateway removes on a schedule (docs/retention.md): half-filled forms once
they have expired (``LINKWELL_GATEWAY_DRAFT_MINUTES``), professionals' sessions once they
can no longer be used (older than ``LINKWELL_GATEWAY_SESSION_MAX_SECONDS``, however they
ended), sign-ins after ``LINKWELL_GATEWAY_RETAIN_SIGN_INS_DAYS``, and the delivery rows of steps
pushed to BaRS senders after ``LINKWELL_GATEWAY_RETAIN_PUSHES_DAYS``."""

from __future__ import annotations

from services.runtime.retention import DAY, Rule

RETENTION = (
    # expires_at is already the end of its life: removed a minute after
    Rule("draft", "draft", "expires_at", lambda _, own: 60.0),
    Rule("session", "session", "created_at", lambda _, own: float(own.gateway_session_max_seconds)),
    Rule("sign_in", "sign_in", "at", lambda _, own: own.gateway_retain_sign_ins_days * DAY),
    # each step pushed to a BaRS sender (sent, given up or still trying), from its queuing
    Rule(
        "fhir_delivery",
        "fhir_delivery",
        "created_at",
        lambda _, own: own.gateway_retain_pushes_days * DAY,
    ),
)
