"""Figures for commissioners, published per period and frozen (``figures_snapshot`` in
``<ns>_reporting``, migration 0003).

The period is the **calendar month** (UK dates, ``2026-11``). Commissioners report monthly
and quarterly; a quarter is three published months. Only one kind of period is published,
and periods never overlap, so no published figure is the sum of other published ones (a
quarter beside its months would be a sum a reader could subtract along, across snapshots).

A month is published once it has ended: by outcomes' publisher (``SnapshotPublisher``,
which looks every hour and at the start of each month) or at once by an operator (``linkwell
report publish --period 2026-11``, recorded on the audit trail). What is written is the
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
from services.readside import disclosure, figures, suppression
from services.readside.model import ReferralRow, RejectionRow, is_synthetic
from services.runtime.poller import Poller

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
SCHEDULE = "schedule"  # published_by for the publisher's snapshots
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


# ------------------------------------------------------------------ publishing


async def publish(conn: Any, schema: str, period: str, by: str, now: datetime) -> Snapshot | None:
    """Compose and write one ended month's snapshot in the caller's transaction; None if it
    was published already (the first one stands). Raises ValueError for a month not ended."""
    from services.readside.store import load

    from . import store

    window = month(period)
    if not ended(window, now):
        raise ValueError(f"{window.label} has not ended: it can be published from {window.end + timedelta(days=1)}")
    referrals, rejections, _ = await load(conn, schema)
    snapshot = compose(referrals, rejections, window, by)
    return snapshot if await store.write_snapshot(conn, schema, snapshot) else None


class SnapshotPublisher(Poller):
    """Outcomes' publisher: each ended month, once (every hour it looks, and at the start
    of each month). Several replicas publish a month once: the first write stands."""

    name = "snapshot_publisher"

    def __init__(self, schema: str, unit_of_work: Any, clock: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self._reporting = schema
        self._unit_of_work = unit_of_work
        self._clock = clock or (lambda: datetime.now(UTC))

    def idle_for(self) -> float:
        now = self._clock()
        return max(1.0, min(3600.0, (next_month_starts(now) - now).total_seconds() + 1))

    async def work(self) -> bool:
        from services.runtime import audit
        from services.runtime.audit import AuditAction, AuditRecipientKind

        from . import store

        now = self._clock()
        async with self._pool.acquire() as conn:
            periods = due(
                now,
                await store.first_row_at(conn, self._reporting),
                await store.published_periods(conn, self._reporting),
            )
            if not periods:
                return False
            async with conn.transaction():
                snapshot = await publish(conn, self._reporting, periods[0], SCHEDULE, now)
                if snapshot is not None:
                    await audit.record(
                        self._unit_of_work(conn, None),
                        AuditAction.PUBLICATION,
                        AuditRecipientKind.COMMISSIONER,
                        detail={"period": snapshot.period, "what": "figures_snapshot"},
                    )
        return len(periods) > 1


def publisher(runner: Any) -> SnapshotPublisher:
    return SnapshotPublisher(
        runner.names.schema("reporting"),
        runner.unit_of_work,
        **{**runner.poller_kwargs("snapshots"), "batch": 1},
    )
