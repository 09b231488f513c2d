"""What intake removes on a schedule (docs/retention.md). Intake tells each service that
acts on an accepted referral what that service needs of it (``referral.placement.v1``,
``.contact.v1``, ``.recorded.v1``: docs/architecture/minimal-events.md); its own copy of
the full submission (names, date of birth, contact details, free text) is then a copy
kept only to look into a disputed answer or a replay, and is emptied after
``LINKWELL_INTAKE_RETAIN_SUBMISSION_DAYS``. What remains of the referral row (ids, the
sender's reference that drops resends, PCN, pathway, needs) is deleted
``LINKWELL_RETAIN_ENDED_DAYS`` after the referral ended (outcomes tells its end,
``referral.updated.v1`` closed or withdrawn). The ``person`` row (NHS number and date of
birth, to recognise a second referral for the same person) goes once no referral of the
person is left: every one of them ended past the limit (``retention.ended``). The
``submission`` table (each submission's outcome and reason codes) holds no personal
data."""

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
    # the referral, once it ended: nothing more will come of it
    Rule(
        "referral_ended",
        "referral",
        "ended_at",
        lambda shared, _: shared.retain_ended_days * DAY,
        where="ended_at IS NOT NULL",
    ),
    # the person, once none of their referrals is left (run after the rule above: its
    # clock, created_at, is before the first referral, so it never holds a person back)
    Rule(
        "person",
        "person",
        "created_at",
        lambda shared, _: shared.retain_ended_days * DAY,
        where="NOT EXISTS (SELECT 1 FROM referral r WHERE r.person_id = person.person_id)",
    ),
)
