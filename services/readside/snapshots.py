"""Figures for commissioners, published per period and frozen (free of I/O): what a
snapshot holds. The table is outcomes' (``figures_snapshot`` in ``<ns>_reporting``,
migration 0003, written by ``services/outcomes/reporting/store.py: write_snapshot``);
publishing is ``services/ops/publishing.py``.

The period is the **calendar month** (UK dates, ``2026-11``). Commissioners report monthly
and quarterly; a quarter is three published months. Only one kind of period is published,
and periods never overlap, so no published figure is the sum of other published ones (a
quarter beside its months would be a sum a reader could subtract along, across snapshots).

A month is published once it has ended: by the schedule (``linkwell report publish
--due``, run every hour by cron or a timer) or at once by an operator (``linkwell report
publish --period 2026-11``); each publication is recorded on the audit trail. What is written is the
table as shown, suppressed (``services/readside/suppression.py``): the exact counts are not
kept in it. A snapshot is written once, never updated (the table refuses it).

The figures follow the cohort rule (``services/readside/figures.py``): a month's referrals
as they stood when it was published. Whatever happens to them later changes the live PCN
views, never a published snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from contracts import UK

from . import disclosure, figures, suppression
from .model import ReferralRow, RejectionRow, is_synthetic

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
SCHEDULE = "schedule"  # published_by for the scheduled publication
COUNTS = ("received", "accepted", "rejected", "assigned", "first_contact", "completed", "coded")
DERIVED = ("wait_assigned_median",)
RULE = (
    disclosure.RULE
    + " Where a total would reveal a suppressed count, another count of the same row or"
    " column (or the total) is suppressed as well."
)


def month(name: str) -> figures.Window:
    """A calendar month such as ``2026-11`` (UK dates)."""
    found = _MONTH.match(name.strip())
    if not found:
        raise ValueError(f"not a month: {name!r} (expected e.g. 2026-11)")
    start = date(int(found[1]), int(found[2]), 1)
    after = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return figures.Window(start, after - timedelta(days=1), start.strftime("%Y-%m"))


def ended(period: figures.Window, now: datetime) -> bool:
    """Whether the period is over (its last UK day has passed)."""
    return now.astimezone(UK).date() > period.end


def due(now: datetime, first: datetime | None, published: set[str]) -> list[str]:
    """The ended months not published yet, from the month of the first row (``first``)."""
    if first is None:
        return []
    today = now.astimezone(UK).date()
    at = figures.uk_date(first).replace(day=1)
    out = []
    while True:
        window = month(at.strftime("%Y-%m"))
        if window.end >= today:
            return out
        if window.label not in published:
            out.append(window.label)
        at = window.end + timedelta(days=1)


def next_month_starts(now: datetime) -> datetime:
    """When the current UK month ends (the next one can be published then)."""
    today = now.astimezone(UK).date()
    after = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    return datetime(after.year, after.month, after.day, tzinfo=UK).astimezone(UTC)


@dataclass(frozen=True)
class Snapshot:
    period: str
    start: date
    end: date
    published_by: str
    rule: str
    synthetic: bool
    figures: list[dict[str, Any]]  # per PCN as shown, the total last


def compose(
    referrals: Sequence[ReferralRow],
    rejections: Sequence[RejectionRow],
    period: figures.Window,
    published_by: str,
) -> Snapshot:
    """The period's figures by PCN, as they may be published: primary and secondary
    suppression of the counts; the median wait shown only from 8 people or more."""
    rows = figures.report(referrals, rejections, period, "pcn")
    exact = {f.group: {c: getattr(f, c) for c in COUNTS} for f in rows}
    table = suppression.shown_table(exact, COUNTS)
    shown = [
        {
            "group": f.group,
            **table[f.group],
            "wait_assigned_median": disclosure.derived(
                f.wait_assigned_median, f.assigned, exact=False
            ),
        }
        for f in rows
    ]
    return Snapshot(
        period=period.label,
        start=period.start,
        end=period.end,
        published_by=published_by,
        rule=RULE,
        synthetic=is_synthetic(referrals, rejections),
        figures=shown,
    )
