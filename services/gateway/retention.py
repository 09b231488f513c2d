"""What the gateway removes on a schedule (docs/retention.md): half-filled forms once
they have expired (``LINKWELL_GATEWAY_DRAFT_MINUTES``), professionals' sessions once they
can no longer be used (older than ``LINKWELL_GATEWAY_SESSION_MAX_SECONDS``, however they
ended), sign-ins after ``LINKWELL_GATEWAY_RETAIN_SIGN_INS_DAYS``, the delivery rows of steps
pushed to BaRS senders after ``LINKWELL_GATEWAY_RETAIN_PUSHES_DAYS``, and a submission (its
reference, a digest of the date of birth, its step) ``LINKWELL_RETAIN_ENDED_DAYS`` after
its referral ended (rejected, closed or withdrawn, as its answers told): its status page
then says it is not known."""

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
    # the FHIR door's steps told of an ended submission go first (they refer to it)
    Rule(
        "fhir_step_ended",
        "fhir_step",
        "told_at",
        lambda shared, _: shared.retain_ended_days * DAY,
        where="reference IN (SELECT reference FROM submission WHERE ended_at < $1)",
    ),
    Rule(
        "submission_ended",
        "submission",
        "ended_at",
        lambda shared, _: shared.retain_ended_days * DAY,
        # a step told after the cutoff holds it until the next sweep that sees it go
        where="ended_at IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM fhir_step f WHERE f.reference = submission.reference)"
        " AND NOT EXISTS (SELECT 1 FROM fhir_delivery p WHERE p.reference = submission.reference)",
    ),
)
