"""What outcomes removes on a schedule (docs/retention.md). The record of care (the
referral, its timeline, wellbeing measurements and GP writebacks) is kept for the NHS
Records Management Code of Practice 2023 entry for adult health records: 8 years after
the conclusion of treatment, here the end of the episode (``ended_at``: its closure, or a
referral's own withdrawal), ``LINKWELL_RETAIN_RECORD_YEARS``. Then the reporting fact of
the referral is made anonymous (a random id, no person or link worker) and the record is
deleted. Refusals and the roster hold no personal data and are kept."""

from __future__ import annotations

from typing import Any

from services.runtime.retention import YEAR, Rule


def _record(shared: Any, _: Any) -> float:
    return float(shared.retain_record_years * YEAR)


# a row whose referral has gone, or ended before the cutoff ($1)
_GONE = (
    "NOT EXISTS (SELECT 1 FROM referral r WHERE r.referral_id = {table}.referral_id"
    " AND (r.ended_at IS NULL OR r.ended_at >= $1))"
)

RETENTION = (
    # first the reporting fact, while the referral row still says when it ended
    Rule(
        "reporting_fact",
        "referral_fact",
        "received_at",
        _record,
        action="redact",
        where="referral_id IN (SELECT referral_id FROM referral WHERE ended_at < $1)",
        redact={
            "referral_id": "gen_random_uuid()",
            "person_id": "NULL",
            "link_worker_id": "NULL",
            "anonymised": "true",
        },
        redacted="anonymised",
        schema="reporting",
    ),
    Rule("record_referral", "referral", "ended_at", _record, where="ended_at IS NOT NULL"),
    Rule(
        "record_timeline", "timeline", "occurred_at", _record, where=_GONE.format(table="timeline")
    ),
    Rule(
        "record_measurement",
        "measurement",
        "taken_at",
        _record,
        where=_GONE.format(table="measurement"),
    ),
    Rule(
        "record_writeback",
        "writeback",
        "created_at",
        _record,
        where=_GONE.format(table="writeback"),
    ),
)
