"""Figures for practices, PCNs and commissioners, computed from the reporting model's rows
(free of I/O; docs/domain.md#outcomes-evidence-and-money).

Which rows a window counts (the cohort rule):

- A **referral** belongs to a window by the UK calendar date of its ``received_at`` (when
  intake accepted it). Everything that happens to it afterwards (waitlisting, assignment,
  contacts, declining, withdrawal, completion, wellbeing measures) is reported as part of
  that cohort, even if it happened after the window ended. The figures for a recent window
  therefore grow as its referrals move on.
- A **rejected submission** belongs to a window by the UK date of its ``rejected_at``.
- **Coded** (the IIF PC-01 numerator) is the one exception to the cohort rule: PC-01 pays
  for people coded ``871731000000106`` *during* the period, so it counts the distinct
  people (``person_id``, or the ``referral_id`` when that is unknown) with a referral of
  the group whose ``coded_at`` falls in the window, whenever the referral was received.

Groupings (``Grouping``): ``practice`` (registered practice), ``pcn``, ``source`` (the
referrer's agency type), ``need`` (a referral counts once under each of its needs),
``pathway`` and ``month`` (of ``received_at``; rejections by ``rejected_at`` and coding by
``coded_at``). Rejections carry no need or pathway, so under those groupings they fall in
``unknown``, as do rejections whose form could not be read. The final ``total`` row counts
each referral and each person once, so under ``need`` it is not the sum of the groups.

Waits are in days (fractions of a day kept) from acceptance (``received_at``), over the
referrals of the cohort that have the later time. The median is ``statistics.median``; the
90th percentile uses linear interpolation between the closest ranks, which is
``statistics.quantiles(method="inclusive")`` and numpy's default ``percentile`` (the
value at position 0.9 * (n - 1) of the sorted waits, counting from 0). Derived figures are
rounded to 2 decimals (half up), percentage changes to 1 decimal.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, get_args

from contracts import UK
from services.outcomes.wellbeing import ONS4_ITEMS, ons4_band

from .model import ReferralRow, RejectionRow

Grouping = Literal["practice", "pcn", "source", "need", "pathway", "month"]
GROUPINGS: tuple[str, ...] = get_args(Grouping)
TOTAL = "total"
UNKNOWN = "unknown"

# The counts of a Figures, in the order they are shown (change is reported for each).
COUNTS = (
    "received",
    "rejected",
    "accepted",
    "waitlisted",
    "assigned",
    "first_contact",
    "declined",
    "withdrawn",
    "completed",
    "awaiting_nhs_number",
    "coded",
    "swemwbs_pairs",
    "ons4_pairs",
)

# ONS4 bands from worst to best, per item (for anxiety a lower band is better).
_BANDS_WORST_FIRST = ("low", "medium", "high", "very high")
_ANXIETY_WORST_FIRST = ("high", "medium", "low", "very low")
SHIFTS = ("better", "same", "worse")

_QUARTER = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE)


# ------------------------------------------------------------------------------ windows


@dataclass(frozen=True)
class Window:
    """A range of UK calendar dates, both ends included."""

    start: date
    end: date
    label: str

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"a window cannot end ({self.end}) before it starts ({self.start})")

    @classmethod
    def quarter(cls, name: str) -> Window:
        """A calendar quarter such as ``"2026Q3"`` (1 July to 30 September 2026). These are
        calendar quarters, not NHS financial-year quarters (which start in April)."""
        found = _QUARTER.match(name.strip())
        if not found:
            raise ValueError(f"not a quarter: {name!r} (expected e.g. 2026Q3)")
        year, number = int(found[1]), int(found[2])
        start = date(year, 3 * number - 2, 1)
        after = date(year + 1, 1, 1) if number == 4 else date(year, 3 * number + 1, 1)
        return cls(start, after - timedelta(days=1), f"{year}Q{number}")

    @classmethod
    def between(cls, start: date, end: date) -> Window:
        """Any range of dates, both included."""
        return cls(start, end, f"{start.isoformat()} to {end.isoformat()}")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def contains(self, moment: datetime) -> bool:
        """Whether the UK calendar date of this (timezone-aware) moment is in the window."""
        return self.start <= uk_date(moment) <= self.end

    def describe(self) -> str:
        """The label, with the dates when the label does not already give them."""
        dates = f"{self.start.isoformat()} to {self.end.isoformat()}"
        return self.label if self.label == dates else f"{self.label} ({dates})"


def uk_date(moment: datetime) -> date:
    """The UK calendar date of a timezone-aware moment."""
    if moment.tzinfo is None:
        raise ValueError("reporting needs timezone-aware datetimes")
    return moment.astimezone(UK).date()


def uk_month(moment: datetime) -> str:
    """The UK calendar month of a moment, as ``2026-07``."""
    return uk_date(moment).strftime("%Y-%m")


# ------------------------------------------------------------------------------ figures


@dataclass(frozen=True)
class Figures:
    """Everything reported for one group (or the total) in one window.

    ``assigned``, ``first_contact`` and ``contacted`` are also the number of people the
    waits and the contacts per person are computed from; ``coded``, ``swemwbs_pairs`` and
    ``ons4_pairs`` are the bases of the figures derived from them (disclosure uses this).
    """

    group: str
    by: Grouping
    window: Window
    received: int  # accepted referrals plus rejected submissions
    rejected: int
    rejected_by_reason: dict[str, int]  # a submission with two reasons counts under each
    accepted: int
    waitlisted: int  # ever waitlisted
    assigned: int  # ever given a link worker (joined referrals take no place: not counted)
    first_contact: int  # had a contact that reached the person
    declined: int
    withdrawn: int
    completed: int
    wait_assigned_median: float | None  # days from acceptance to a link worker
    wait_assigned_p90: float | None
    wait_first_contact_median: float | None  # days from acceptance to the first contact
    wait_first_contact_p90: float | None
    contacted: int  # referrals with at least one contact
    contacts_per_person: float | None  # mean contacts over those
    coded: int  # PC-01 numerator: distinct people coded in the window
    list_size: int | None  # registered patients of the practice or PCN, if given
    coded_percent: float | None  # coded / list size * 100
    swemwbs_pairs: int  # referrals with both a baseline and an end SWEMWBS
    swemwbs_mean_change: float | None  # mean of end - baseline metric scores
    ons4_pairs: int  # referrals with both a baseline and an end ONS4
    # per ONS4 item, people whose band got better / stayed the same / got worse
    ons4_shifts: dict[str, dict[str, int]] = field(default_factory=dict)
    # came without an NHS number and not confirmed yet: their GP writebacks wait
    awaiting_nhs_number: int = 0


@dataclass(frozen=True)
class Comparison:
    """One group's figures in two windows, and the change in each count.

    ``change`` and ``change_percent`` are keyed by the count's name (``COUNTS``) and, for
    rejections, ``rejected_by_reason.<code>``. The percentage is None when the count was 0
    before."""

    group: str
    before: Figures
    after: Figures
    change: dict[str, int]
    change_percent: dict[str, float | None]


def report(
    referrals: Iterable[ReferralRow],
    rejections: Iterable[RejectionRow],
    window: Window,
    by: Grouping,
    list_sizes: dict[str, int] | None = None,
) -> list[Figures]:
    """One ``Figures`` per group present in the window (sorted, ``unknown`` last), then the
    ``total``. ``list_sizes`` (registered patients by practice or PCN code) gives
    ``coded_percent`` when grouping by practice or PCN; the total's percentage uses the sum
    of all the list sizes given, so they should cover exactly the population reported on."""
    parts = _Parts.of(list(referrals), list(rejections), window, by)
    groups = _sorted_groups(parts.groups())
    return [parts.figures(g, list_sizes) for g in groups] + [parts.figures(TOTAL, list_sizes)]


def compare(
    referrals: Iterable[ReferralRow],
    rejections: Iterable[RejectionRow],
    before: Window,
    after: Window,
    by: Grouping,
    list_sizes: dict[str, int] | None = None,
) -> list[Comparison]:
    """Per group present in either window (sorted, ``unknown`` last, then ``total``), the
    figures before and after and the change in each count (after - before), with the
    percentage change where the count before was above 0 (an improvement project's
    baseline and follow-up, docs/domain.md#improvement-projects)."""
    referrals, rejections = list(referrals), list(rejections)
    was = _Parts.of(referrals, rejections, before, by)
    now = _Parts.of(referrals, rejections, after, by)
    groups = [*_sorted_groups(was.groups() | now.groups()), TOTAL]
    return [_comparison(g, was.figures(g, list_sizes), now.figures(g, list_sizes)) for g in groups]


def count_keys(figures: Figures) -> list[str]:
    """The names of the counts of a Figures (``COUNTS`` and one per rejection reason)."""
    return [*COUNTS, *(f"rejected_by_reason.{code}" for code in sorted(figures.rejected_by_reason))]


def count_of(figures: Figures, key: str) -> int:
    """The count a key of ``count_keys`` names (0 for a reason the figures do not have)."""
    if key.startswith("rejected_by_reason."):
        return figures.rejected_by_reason.get(key.split(".", 1)[1], 0)
    return getattr(figures, key)


def percent_change(before: int, after: int) -> float | None:
    """(after - before) / before as a percentage, 1 decimal; None when before is 0."""
    return None if before == 0 else rounded((after - before) / before * 100, 1)


def rounded(value: float, places: int = 2) -> float:
    """Half-up rounding of the value as written (so 2.675 gives 2.68, as people expect)."""
    step = Decimal(1).scaleb(-places)
    return float(Decimal(repr(value)).quantize(step, rounding=ROUND_HALF_UP))


# ------------------------------------------------------------------------------ workings


def _comparison(group: str, before: Figures, after: Figures) -> Comparison:
    keys = list(dict.fromkeys([*count_keys(before), *count_keys(after)]))
    change = {k: count_of(after, k) - count_of(before, k) for k in keys}
    percent = {k: percent_change(count_of(before, k), count_of(after, k)) for k in keys}
    return Comparison(group, before, after, change, percent)


def _sorted_groups(groups: Iterable[str]) -> list[str]:
    return sorted(groups, key=lambda g: (g == UNKNOWN, g))


def _referral_keys(
    by: Grouping, moment: Callable[[ReferralRow], datetime]
) -> Callable[[ReferralRow], tuple[str, ...]]:
    """How a referral is grouped: the group values it counts under (``moment`` is the
    time its month is taken from)."""

    def keys(r: ReferralRow) -> tuple[str, ...]:
        match by:
            case "practice":
                return (r.registered_practice,)
            case "pcn":
                return (r.pcn,)
            case "source":
                return (r.agency_type,)
            case "need":
                return tuple(dict.fromkeys(r.needs)) or (UNKNOWN,)
            case "pathway":
                return (r.pathway,)
            case "month":
                return (uk_month(moment(r)),)
        raise ValueError(f"unknown grouping {by!r}; expected one of {GROUPINGS}")

    return keys


def _rejection_key(by: Grouping, x: RejectionRow) -> str:
    match by:
        case "practice":
            return x.registered_practice or UNKNOWN
        case "pcn":
            return x.pcn or UNKNOWN
        case "source":
            return x.agency_type or UNKNOWN
        case "month":
            return uk_month(x.rejected_at)
        case _:
            return UNKNOWN  # rejections carry no need or pathway


@dataclass
class _Parts:
    """The rows one window counts, by group: the cohort, the rejections and the coded."""

    window: Window
    by: Grouping
    cohort: dict[str, list[ReferralRow]]
    rejections: dict[str, list[RejectionRow]]
    coded: dict[str, list[ReferralRow]]
    all_cohort: list[ReferralRow]
    all_rejections: list[RejectionRow]
    all_coded: list[ReferralRow]

    @classmethod
    def of(
        cls,
        referrals: Sequence[ReferralRow],
        rejections: Sequence[RejectionRow],
        window: Window,
        by: Grouping,
    ) -> _Parts:
        if by not in GROUPINGS:
            raise ValueError(f"unknown grouping {by!r}; expected one of {GROUPINGS}")
        cohort = [r for r in referrals if window.contains(r.received_at)]
        refused = [x for x in rejections if window.contains(x.rejected_at)]
        coded = [r for r in referrals if r.coded_at is not None and window.contains(r.coded_at)]
        parts = cls(window, by, {}, {}, {}, cohort, refused, coded)
        by_received = _referral_keys(by, lambda r: r.received_at)
        by_coded = _referral_keys(by, lambda r: r.coded_at)  # type: ignore[arg-type,return-value]
        for r in cohort:
            for key in by_received(r):
                parts.cohort.setdefault(key, []).append(r)
        for x in refused:
            parts.rejections.setdefault(_rejection_key(by, x), []).append(x)
        for r in coded:
            for key in by_coded(r):
                parts.coded.setdefault(key, []).append(r)
        return parts

    def groups(self) -> set[str]:
        return set(self.cohort) | set(self.rejections) | set(self.coded)

    def figures(self, group: str, list_sizes: dict[str, int] | None) -> Figures:
        if group == TOTAL:
            cohort, refused, coded = self.all_cohort, self.all_rejections, self.all_coded
        else:
            cohort = self.cohort.get(group, [])
            refused = self.rejections.get(group, [])
            coded = self.coded.get(group, [])
        list_size = self._list_size(group, list_sizes)
        return _figures(group, self.by, self.window, cohort, refused, coded, list_size)

    def _list_size(self, group: str, list_sizes: dict[str, int] | None) -> int | None:
        """The population a group's PC-01 percentage is of: its own list size, or for the
        total the sum of all those given, provided every group with people coded has one."""
        if not list_sizes or self.by not in ("practice", "pcn"):
            return None
        if group != TOTAL:
            return list_sizes.get(group)
        if any(g not in list_sizes for g in self.coded):
            return None
        return sum(list_sizes.values())


def _figures(
    group: str,
    by: Grouping,
    window: Window,
    cohort: Sequence[ReferralRow],
    refused: Sequence[RejectionRow],
    coded_rows: Sequence[ReferralRow],
    list_size: int | None,
) -> Figures:
    reasons: dict[str, int] = {}
    for x in refused:
        for code in dict.fromkeys(x.reasons):  # a reason named twice counts once
            reasons[code] = reasons.get(code, 0) + 1

    placed = [r for r in cohort if r.assigned_at is not None and not r.joined]
    reached = [r for r in cohort if r.first_contact_at is not None]
    to_worker = [_days(r.received_at, r.assigned_at) for r in placed if r.assigned_at]
    to_contact = [_days(r.received_at, r.first_contact_at) for r in reached if r.first_contact_at]
    contacted = [r.contacts for r in cohort if r.contacts > 0]

    people = {r.person_id or r.referral_id for r in coded_rows}
    # no list size (or a list of 0): no percentage
    percent = rounded(len(people) / list_size * 100) if list_size else None

    swemwbs = [
        (r.swemwbs_baseline, r.swemwbs_end)
        for r in cohort
        if r.swemwbs_baseline is not None and r.swemwbs_end is not None
    ]
    ons4 = [(r.ons4_baseline, r.ons4_end) for r in cohort if r.ons4_baseline and r.ons4_end]

    return Figures(
        group=group,
        by=by,
        window=window,
        received=len(cohort) + len(refused),
        rejected=len(refused),
        rejected_by_reason=dict(sorted(reasons.items())),
        accepted=len(cohort),
        waitlisted=sum(r.waitlisted_at is not None for r in cohort),
        assigned=len(placed),
        first_contact=len(reached),
        declined=sum(r.declined_at is not None for r in cohort),
        withdrawn=sum(r.withdrawn_at is not None for r in cohort),
        completed=sum(r.completed for r in cohort),
        wait_assigned_median=_median(to_worker),
        wait_assigned_p90=_p90(to_worker),
        wait_first_contact_median=_median(to_contact),
        wait_first_contact_p90=_p90(to_contact),
        contacted=len(contacted),
        contacts_per_person=rounded(statistics.fmean(contacted)) if contacted else None,
        coded=len(people),
        list_size=list_size,
        coded_percent=percent,
        swemwbs_pairs=len(swemwbs),
        swemwbs_mean_change=_mean_change(swemwbs),
        ons4_pairs=len(ons4),
        ons4_shifts=_ons4_shifts(ons4),
        awaiting_nhs_number=sum(r.awaiting_nhs_number for r in cohort),
    )


def _days(start: datetime, later: datetime) -> float:
    return (later - start) / timedelta(days=1)


def _median(values: list[float]) -> float | None:
    return rounded(statistics.median(values)) if values else None


def _p90(values: list[float]) -> float | None:
    """The 90th percentile, linear interpolation (numpy's default; ``inclusive`` quantiles)."""
    if not values:
        return None
    if len(values) == 1:  # statistics.quantiles needs two points before Python 3.13
        return rounded(values[0])
    return rounded(statistics.quantiles(values, n=10, method="inclusive")[8])


def _mean_change(pairs: list[tuple[float, float]]) -> float | None:
    """The mean of end - baseline, computed in decimals (metric scores have 2 places)."""
    if not pairs:
        return None
    total = sum(Decimal(repr(end)) - Decimal(repr(base)) for base, end in pairs)
    return float((total / len(pairs)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _ons4_shifts(pairs: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> dict[str, dict[str, int]]:
    """Per ONS4 item, how many people's band got better, stayed the same or got worse."""
    shifts = {item: dict.fromkeys(SHIFTS, 0) for item in ONS4_ITEMS}
    for baseline, end in pairs:
        for i, item in enumerate(ONS4_ITEMS):
            order = _ANXIETY_WORST_FIRST if item == "anxiety" else _BANDS_WORST_FIRST
            was = order.index(ons4_band(item, baseline[i]))
            now = order.index(ons4_band(item, end[i]))
            shifts[item]["better" if now > was else "worse" if now < was else "same"] += 1
    return shifts
