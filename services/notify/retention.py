"""What notify keeps of a message once it has been sent or given up: after
``LINKWELL_NOTIFY_RETAIN_SENT_DAYS`` its address, subject and body are emptied; its key
(so a redelivered event never sends it twice), referral id, audience, medium and times
remain, for counts. See docs/retention.md."""

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
)
