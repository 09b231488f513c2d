"""Pictures of a window's referrals, for reports and slides
(docs/domain.md#outcomes-evidence-and-money).

``plot`` draws three panels, one above the other, from the window's cohort (referrals
received in it, as in ``figures``):

1. referrals over time, by month (by week, from Monday, when the window is shorter than
   12 weeks), stacked by source (the referrer's agency type);
2. waits from acceptance to a link worker and to the first contact, as box plots (box from
   the 25th to the 75th percentile, line at the median, whiskers at the 10th and 90th,
   all interpolated as in ``figures``, so no single person's wait is drawn);
3. SWEMWBS before and after: the mean metric score at baseline and at the end, over the
   referrals that have both.

No identifier or personal detail is drawn. Unless ``exact`` (a PCN's own view), the
small-number rule applies (``disclosure``): a panel built on fewer than 8 people says so
instead of being drawn, the counts of the first panel are rounded to the nearest 5 and
bars of 1 to 7 referrals are left out (the panel says so), and the numbers of people are
shown as rounded.

Drawn with matplotlib's Agg canvas (no display, no global pyplot state). An ``.svg``
path gives SVG with text kept as text and a fixed hash salt and no date, so the same rows
give the same bytes; a ``.png`` path gives PNG.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from contracts.enums import AgencyType

from .disclosure import SMALLEST_SHOWN, SUPPRESSED, shown
from .figures import Window, uk_date
from .model import ReferralRow, is_synthetic

FORMATS = {".png": "png", ".svg": "svg"}
WEEKLY_UNDER_DAYS = 84  # windows shorter than 12 weeks are drawn by week
SMALL = f"Fewer than {SMALLEST_SHOWN} people: not shown (small-number rule)"
_RC = {"svg.hashsalt": "linkwell", "svg.fonttype": "none", "font.size": 9}


def plot(
    referrals: Sequence[ReferralRow],
    window: Window,
    path: Path,
    exact: bool,
    *,
    synthetic: bool = False,
) -> Path:
    """Draw the window's three panels to ``path`` (PNG or SVG by its suffix); returns it.
    ``synthetic`` (or any synthetic row) puts SYNTHETIC in the title, the footnote and
    across every panel."""
    synthetic = synthetic or is_synthetic(referrals)
    form = FORMATS.get(path.suffix.lower())
    if form is None:
        raise ValueError(f"cannot draw to {path.name}: use a .png or .svg path")
    cohort = [r for r in referrals if window.contains(r.received_at)]
    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(8.5, 11), layout="constrained")
        FigureCanvasAgg(figure)
        top, middle, bottom = figure.subplots(3, 1)
        title = f"Social prescribing referrals received {window.describe()}"
        figure.suptitle(f"SYNTHETIC DATA: {title}" if synthetic else title)
        _over_time(top, cohort, window, exact)
        _waits(middle, cohort, exact)
        _swemwbs(bottom, cohort, exact)
        if synthetic:
            for ax in (top, middle, bottom):
                _stamp(ax)
        note = (
            "Exact figures for the PCN's own use: not for publication."
            if exact
            else "Small numbers suppressed: counts rounded to the nearest 5, 1 to 7 not shown."
        )
        figure.text(
            0.5,
            -0.01,
            f"SYNTHETIC: invented referrals, not real people or figures. {note}"
            if synthetic
            else note,
            ha="center",
            va="top",
            fontsize=8,
        )
        metadata = {"Date": None} if form == "svg" else {"Software": None}
        figure.savefig(path, format=form, metadata=metadata, bbox_inches="tight", dpi=100)
    return path


# ------------------------------------------------------------------------------ panels


def _over_time(ax: Axes, cohort: list[ReferralRow], window: Window, exact: bool) -> None:
    weekly = window.days < WEEKLY_UNDER_DAYS
    ax.set_title(f"Referrals received by {'week' if weekly else 'month'}, by source")
    if not cohort or (not exact and len(cohort) < SMALLEST_SHOWN):
        _say(ax, SMALL if cohort else "No referrals received in this window")
        return
    starts = _weeks(window) if weekly else _months(window)

    def bin_of(r: ReferralRow) -> date:
        day = uk_date(r.received_at)
        return day - timedelta(days=day.weekday()) if weekly else day.replace(day=1)

    sources = sorted({r.agency_type for r in cohort}, key=_source_order)
    counts = {s: [0] * len(starts) for s in sources}
    for r in cohort:
        counts[r.agency_type][starts.index(bin_of(r))] += 1
    heights = {source: [shown(n, exact) for n in counts[source]] for source in sources}
    left_out = any(h == SUPPRESSED for hs in heights.values() for h in hs)
    if not any(isinstance(h, int) and h > 0 for hs in heights.values() for h in hs):
        _say(ax, f"Every bar is of 1 to {SMALLEST_SHOWN - 1} referrals: not shown")
        return
    bottoms = [0] * len(starts)
    places = range(len(starts))
    colours = matplotlib.colormaps["tab20"]
    for source in sources:
        drawn = [0 if h == SUPPRESSED else int(h) for h in heights[source]]
        ax.bar(
            places,
            drawn,
            bottom=bottoms,
            label=source.replace("_", " "),
            color=colours(_source_order(source) % 20),
        )
        bottoms = [b + h for b, h in zip(bottoms, drawn, strict=True)]
    ax.set_xticks(list(places))
    ax.set_xticklabels(
        [s.strftime("%d %b") if weekly else s.strftime("%b\n%Y") for s in starts],
        rotation=45 if weekly else 0,
    )
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("week received (from Monday)" if weekly else "month received")
    ax.set_ylabel("referrals" + ("" if exact else " (rounded to 5)"))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    if left_out:
        ax.text(
            0.0,
            -0.28 if weekly else -0.26,
            f"Bars of 1 to {SMALLEST_SHOWN - 1} referrals are not drawn.",
            transform=ax.transAxes,
            fontsize=7,
        )


def _waits(ax: Axes, cohort: list[ReferralRow], exact: bool) -> None:
    ax.set_title("Days from acceptance to a link worker and to the first contact")
    waits = {
        "to a link worker": [
            (r.assigned_at - r.received_at) / timedelta(days=1)
            for r in cohort
            if r.assigned_at is not None and not r.joined
        ],
        "to the first contact": [
            (r.first_contact_at - r.received_at) / timedelta(days=1)
            for r in cohort
            if r.first_contact_at is not None
        ],
    }
    drawn = {
        name: values
        for name, values in waits.items()
        if values and (exact or len(values) >= SMALLEST_SHOWN)
    }
    if not drawn:
        found = any(waits.values())
        _say(ax, SMALL if found else "No referral has been given a link worker yet")
        return
    ax.bxp(
        [
            _box(values, f"{name}\n(n={shown(len(values), exact)})")
            for name, values in drawn.items()
        ],
        showfliers=False,
    )
    ax.set_ylabel("days")
    hidden = [name for name, values in waits.items() if values and name not in drawn]
    if hidden:
        ax.text(
            0.99,
            0.95,
            f"{', '.join(hidden)}: {SMALL.lower()}",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=7,
        )


def _swemwbs(ax: Axes, cohort: list[ReferralRow], exact: bool) -> None:
    ax.set_title("SWEMWBS wellbeing, before and after (people measured at both)")
    pairs = [
        (r.swemwbs_baseline, r.swemwbs_end)
        for r in cohort
        if r.swemwbs_baseline is not None and r.swemwbs_end is not None
    ]
    if not pairs or (not exact and len(pairs) < SMALLEST_SHOWN):
        _say(ax, SMALL if pairs else "No one has both a baseline and an end SWEMWBS yet")
        return
    means = [statistics.fmean(p[0] for p in pairs), statistics.fmean(p[1] for p in pairs)]
    bars = ax.bar([0, 1], means, color=["#9ecae1", "#3182bd"], width=0.5)
    ax.bar_label(bars, labels=[f"{m:.2f}" for m in means], padding=2)
    ax.set_xticks([0, 1])
    ax.set_xticklabels(["baseline", "end"])
    ax.set_ylim(0, 35)
    ax.set_ylabel("mean metric score (7 to 35)")
    ax.set_xlabel(f"people with both measurements: {shown(len(pairs), exact)}")


# ------------------------------------------------------------------------------ workings


def _box(values: list[float], label: str) -> dict[str, object]:
    """A box plot's statistics, with the same linear percentiles as the figures: box from
    the 25th to the 75th percentile, whiskers at the 10th and the 90th."""
    if len(values) == 1:
        at = [values[0]] * 19
    else:
        at = statistics.quantiles(values, n=20, method="inclusive")  # 5th, 10th ... 95th
    return {
        "label": label,
        "whislo": at[1],
        "q1": at[4],
        "med": statistics.median(values),
        "q3": at[14],
        "whishi": at[17],
        "fliers": [],
    }


def _stamp(ax: Axes) -> None:
    """SYNTHETIC across a panel, behind its data."""
    ax.text(
        0.5, 0.5, "SYNTHETIC", transform=ax.transAxes, ha="center", va="center",
        fontsize=40, color="#d5281b", alpha=0.18, rotation=20, zorder=0,
    )  # fmt: skip


def _say(ax: Axes, message: str) -> None:
    """A panel that says why it has nothing drawn."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)


def _months(window: Window) -> list[date]:
    starts, month = [], window.start.replace(day=1)
    while month <= window.end:
        starts.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return starts


def _weeks(window: Window) -> list[date]:
    monday = window.start - timedelta(days=window.start.weekday())
    return [monday + timedelta(weeks=i) for i in range((window.end - monday).days // 7 + 1)]


def _source_order(source: str) -> int:
    """A fixed place per agency type, so a source keeps its colour from report to report."""
    known = [a.value for a in AgencyType]
    return known.index(source) if source in known else len(known)
