"""Disclosure control: what a published figure may show (docs/domain.md#reporting-small-numbers).

The rule is NHS England's usual small-number rule for published counts:

- a count of 0 is shown as 0;
- a count from 1 to 7 is shown as ``*``;
- any other count is rounded to the nearest 5 (8 shows as 10, 12 as 10, 13 as 15).

Figures derived from counts of people (the median and 90th percentile waits, contacts per
person, the PC-01 percentage, the mean SWEMWBS change and the ONS4 band shifts) are shown
only when they are computed from 8 people or more; otherwise they are ``*``. The ONS4
shift counts are counts of people too, so when shown they are rounded like any count.

A PCN sees its own figures exactly (``exact=True``); anyone else (commissioners, anything
published) sees them suppressed. Changes between two windows are, when suppressed,
computed from the figures as shown, so that they reveal nothing the shown figures do not.
"""

from __future__ import annotations

from typing import Any

from .figures import COUNTS, Comparison, Figures, count_keys, percent_change

SUPPRESSED = "*"
SMALLEST_SHOWN = 8  # the smallest count shown, and the fewest people a derived figure needs
ROUND_TO = 5
RULE = (
    "NHS England small-number rule: a count of 1 to 7 is shown as *, any other count is "
    "rounded to the nearest 5 (0 stays 0); figures derived from fewer than 8 people "
    "are shown as *."
)
EXACT = "Exact figures for the PCN's own use: not for publication."

Shown = int | float | str | None

# Each derived figure and the count of people it is computed from.
DERIVED_FROM = {
    "wait_assigned_median": "assigned",
    "wait_assigned_p90": "assigned",
    "wait_first_contact_median": "first_contact",
    "wait_first_contact_p90": "first_contact",
    "contacts_per_person": "contacted",
    "coded_percent": "coded",
    "swemwbs_mean_change": "swemwbs_pairs",
}

# The order of a disclosed Figures' keys (as shown in tables, CSV and JSON).
FIELDS = (
    "received",
    "rejected",
    "accepted",
    "waitlisted",
    "assigned",
    "first_contact",
    "declined",
    "withdrawn",
    "completed",
    "wait_assigned_median",
    "wait_assigned_p90",
    "wait_first_contact_median",
    "wait_first_contact_p90",
    "contacts_per_person",
    "coded",
    "coded_percent",
    "swemwbs_pairs",
    "swemwbs_mean_change",
    "ons4_pairs",
    "awaiting_nhs_number",
)


def shown(count: int, exact: bool) -> int | str:
    """A count as it may be shown: itself when exact, else ``*`` or rounded to 5."""
    if count < 0:
        raise ValueError(f"a count cannot be negative: {count}")
    if exact or count == 0:
        return count
    if count < SMALLEST_SHOWN:
        return SUPPRESSED
    return ROUND_TO * ((count + ROUND_TO // 2) // ROUND_TO)  # integers never tie


def derived(value: float | None, people: int, exact: bool) -> float | str | None:
    """A derived figure as it may be shown: ``*`` when computed from fewer than 8 people
    (unless exact); None stays None (nothing to compute it from)."""
    if value is None or exact or people >= SMALLEST_SHOWN:
        return value
    return SUPPRESSED


def disclosed(figures: Figures, exact: bool) -> dict[str, Any]:
    """A Figures' display values: ``group``, then ``FIELDS``, then ``ons4_shifts`` (item ->
    better/same/worse) and ``rejected_by_reason`` (code -> count)."""
    values: dict[str, Any] = {"group": figures.group}
    for name in FIELDS:
        value = getattr(figures, name)
        if name in DERIVED_FROM:
            values[name] = derived(value, getattr(figures, DERIVED_FROM[name]), exact)
        else:
            values[name] = shown(value, exact)
    # no pairs at all: the zero counts hide nothing (the 0 pairs are shown anyway)
    enough = exact or figures.ons4_pairs == 0 or figures.ons4_pairs >= SMALLEST_SHOWN
    values["ons4_shifts"] = {
        item: {shift: shown(count, exact) if enough else SUPPRESSED for shift, count in by.items()}
        for item, by in figures.ons4_shifts.items()
    }
    values["rejected_by_reason"] = {
        code: shown(count, exact) for code, count in figures.rejected_by_reason.items()
    }
    return values


def disclosed_comparison(comparison: Comparison, exact: bool) -> dict[str, Any]:
    """A Comparison's display values: both windows' ``disclosed`` figures, and the change
    and percentage change in each count. Suppressed, the change is worked out from the
    counts as shown and is ``*`` when either of them is."""
    before = disclosed(comparison.before, exact)
    after = disclosed(comparison.after, exact)
    if exact:
        return {
            "group": comparison.group,
            "before": before,
            "after": after,
            "change": dict(comparison.change),
            "change_percent": dict(comparison.change_percent),
        }
    change: dict[str, int | str] = {}
    percent: dict[str, float | str | None] = {}
    keys = dict.fromkeys([*count_keys(comparison.before), *count_keys(comparison.after)])
    for key in keys:
        was, now = _shown_count(before, key), _shown_count(after, key)
        if isinstance(was, int) and isinstance(now, int):
            change[key], percent[key] = now - was, percent_change(was, now)
        else:
            change[key] = percent[key] = SUPPRESSED
    return {
        "group": comparison.group,
        "before": before,
        "after": after,
        "change": change,
        "change_percent": percent,
    }


def _shown_count(values: dict[str, Any], key: str) -> int | str:
    if key in COUNTS:
        return values[key]
    return values["rejected_by_reason"].get(key.split(".", 1)[1], 0)
