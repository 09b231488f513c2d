"""What notify removes on a schedule (docs/retention.md). A message once sent or given
up: after ``LINKWELL_NOTIFY_RETAIN_SENT_DAYS`` its address, subject and body are emptied;
its key (so a redelivered event never sends it twice), referral id, audience, medium and
times remain, for counts. A referral's row (who sent it, how to reach the person): deleted
``LINKWELL_RETAIN_ENDED_DAYS`` after the referral ended (``referral.updated.v1`` closed
or withdrawn), when nothing more will be sent about it."""

from __future__ import annotations

from services.runtime.retention import DAY, Rule

_REDACT = {"address": "''", "subject": "''", "body": "''", "last_error": "NULL"}

RETENTION = (
    Rule(
        "notification_sent",
        "notification",
        "sent_at",
        lambda _, own: own.notify_retain_sent_days * DAY,
        action="redact",
        where="sent_at IS NOT NULL",
        redact=_REDACT,
        redacted="body = '' AND address = ''",
    ),
    Rule(
        "notification_given_up",
        "notification",
        "failed_at",
        lambda _, own: own.notify_retain_sent_days * DAY,
        action="redact",
        where="failed_at IS NOT NULL",
        redact=_REDACT,
        redacted="body = '' AND address = ''",
    ),
    Rule(
        "referral_contact",
        "referral",
        "ended_at",
        lambda shared, _: shared.retain_ended_days * DAY,
        where="ended_at IS NOT NULL",
    ),
)
