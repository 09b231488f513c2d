"""What intake removes on a schedule (docs/retention.md). Intake announces each accepted
referral whole (``referral.accepted.v1``) to the services that act on it; its own copy of
the full submission (names, date of birth, contact details, free text) is then a copy
kept only to look into a disputed answer or a replay, and is emptied after
``LINKWELL_INTAKE_RETAIN_SUBMISSION_DAYS``. What remains of the referral row (ids, the
sender's reference that drops resends, PCN, pathway, needs) holds no contact details.
The ``submission`` table (each submission's outcome and reason codes) holds no personal
data. The ``person`` table (NHS number and date of birth, to recognise a second
referral for the same person) is kept: intake is not told when an episode closes (a
limit there is for the closure rules, docs/retention.md)."""

from __future__ import annotations

from services.runtime.retention import DAY, Rule

RETENTION = (
    Rule(
        "referral_submission",
        "referral",
        "accepted_at",
        lambda shared, _: shared.retain_intake_submission_days * DAY,
        action="redact",
        redact={"submission": "'{}'::jsonb"},
        redacted="submission = '{}'::jsonb",
    ),
)
